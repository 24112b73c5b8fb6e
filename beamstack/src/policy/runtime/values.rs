//! Conversion between JSON and CEL values. Numbers: JSON integers become CEL `int`, as in Kubernetes, so
//! `replicas * 2` works.

use super::checking::visit;
use super::{CelQuantity, Compiled, VARIABLES};
use cel::Value;
use cel::common::ast::Expr;
use cel::objects::{Key, Map};
use std::collections::HashMap;
use std::sync::Arc;

/// A JSON value straight into cel's evaluation representation, in one pass. Going through `Value` costs two more
/// deep copies (`add_variable_from_value` converts and clones the whole tree again); the object is the largest
/// thing a request carries.
pub fn to_val(value: &serde_json::Value) -> Box<dyn cel::common::value::Val> {
    use cel::common::types::{CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt};
    match value {
        serde_json::Value::Null => Box::new(CelNull),
        serde_json::Value::Bool(flag) => Box::new(CelBool::from(*flag)),
        serde_json::Value::Number(number) => match (number.as_i64(), number.as_u64()) {
            (Some(int), _) => Box::new(CelInt::from(int)),
            (None, Some(uint)) => Box::new(CelUInt::from(uint)),
            _ => Box::new(CelDouble::from(number.as_f64().unwrap_or(f64::NAN))),
        },
        serde_json::Value::String(text) => Box::new(CelString::from(text.clone())),
        serde_json::Value::Array(items) => Box::new(CelList::from(items.iter().map(to_val).collect::<Vec<_>>())),
        serde_json::Value::Object(map) => Box::new(CelMap::from(
            map.iter()
                .map(|(key, value)| (CelMapKey::String(CelString::from(key.clone())), to_val(value)))
                .collect::<HashMap<_, _>>(),
        )),
    }
}

/// The request-level variables an expression refers to (`object`, `tenant`, ...).
pub(crate) fn referenced_variables(compiled: &Compiled) -> Vec<&'static str> {
    let mut found = Vec::new();
    visit(&compiled.expression, &mut |node| {
        if let Expr::Ident(name) = &node.expr
            && let Some(variable) = VARIABLES.iter().find(|variable| **variable == name.as_str())
            && !found.contains(variable)
        {
            found.push(*variable);
        }
    });
    found
}

/// A JSON value as CEL sees it; integers are `int` (or `uint` past i64), as Kubernetes converts them.
pub fn to_cel(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(flag) => Value::Bool(*flag),
        serde_json::Value::Number(number) => match (number.as_i64(), number.as_u64()) {
            (Some(int), _) => Value::Int(int),
            (None, Some(uint)) => Value::UInt(uint),
            _ => Value::Float(number.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(text) => Value::String(Arc::new(text.clone())),
        serde_json::Value::Array(items) => Value::List(Arc::new(items.iter().map(to_cel).collect())),
        serde_json::Value::Object(map) => Value::Map(Map {
            map: Arc::new(
                map.iter()
                    .map(|(key, value)| (Key::String(Arc::new(key.clone())), to_cel(value)))
                    .collect(),
            ),
        }),
    }
}

/// A CEL value that JSON cannot hold (a NaN, a type, a function), named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} has no JSON form")]
pub struct NoJsonForm(String);

/// A CEL value as JSON, for mutations. Quantities become their string form.
pub fn to_json(value: &Value) -> Result<serde_json::Value, NoJsonForm> {
    Ok(match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(flag) => serde_json::Value::Bool(*flag),
        Value::Int(int) => serde_json::Value::from(*int),
        Value::UInt(uint) => serde_json::Value::from(*uint),
        Value::Float(float) => serde_json::Number::from_f64(*float)
            .map(serde_json::Value::Number)
            .ok_or_else(|| NoJsonForm("NaN and infinities".into()))?,
        Value::String(text) => serde_json::Value::String(text.as_ref().clone()),
        Value::List(items) => serde_json::Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Value::Map(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map
                .map
                .iter()
                .map(|(key, value)| {
                    let key = match key {
                        Key::String(text) => text.as_ref().clone(),
                        Key::Int(int) => int.to_string(),
                        Key::Uint(uint) => uint.to_string(),
                        Key::Bool(flag) => flag.to_string(),
                    };
                    Ok((key, to_json(value)?))
                })
                .collect::<Result<_, NoJsonForm>>()?;
            // CEL maps are unordered; sorting keeps mutations deterministic (and so idempotent).
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().collect())
        }
        Value::Opaque(opaque) => match opaque.downcast_ref::<CelQuantity>() {
            Some(quantity) => serde_json::Value::String(quantity.0.to_string()),
            None => return Err(NoJsonForm(format!("a {}", opaque.runtime_type_name()))),
        },
        other => return Err(NoJsonForm(format!("{:?}", other.type_of()))),
    })
}
