//! String functions Kubernetes CEL users expect, and regexes compiled once and cached (cel's own `matches`
//! recompiles the pattern on every call).

use cel::extractors::This;
use cel::{ExecutionError, Value};
use regex::Regex;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

static REGEXES: LazyLock<RwLock<HashMap<String, Arc<Regex>>>> = LazyLock::new(Default::default);
const REGEX_CACHE_LIMIT: usize = 1024;

fn regex(pattern: &str) -> Result<Arc<Regex>, ExecutionError> {
    if let Some(compiled) = REGEXES.read().unwrap_or_else(|e| e.into_inner()).get(pattern) {
        return Ok(Arc::clone(compiled));
    }
    let compiled = Arc::new(
        Regex::new(pattern)
            .map_err(|error| ExecutionError::function_error("matches", format!("bad regex: {error}")))?,
    );
    let mut cache = REGEXES.write().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= REGEX_CACHE_LIMIT {
        cache.clear();
    }
    cache.insert(pattern.to_owned(), Arc::clone(&compiled));
    Ok(compiled)
}

pub(super) fn matches(This(text): This<Arc<String>>, pattern: Arc<String>) -> Result<bool, ExecutionError> {
    Ok(regex(&pattern)?.is_match(&text))
}

pub(super) fn find(This(text): This<Arc<String>>, pattern: Arc<String>) -> Result<Value, ExecutionError> {
    Ok(Value::from(
        regex(&pattern)?.find(&text).map_or("", |found| found.as_str()),
    ))
}

pub(super) fn find_all(This(text): This<Arc<String>>, pattern: Arc<String>) -> Result<Value, ExecutionError> {
    let found: Vec<Value> = regex(&pattern)?
        .find_iter(&text)
        .map(|m| Value::from(m.as_str()))
        .collect();
    Ok(Value::List(Arc::new(found)))
}

/// `normalizeImage('flink:1.20') == 'docker.io/library/flink:1.20'`: Docker's implicit registry spelled out.
pub(super) fn normalize_image(image: Arc<String>) -> Value {
    Value::from(crate::images::normalize_image(&image))
}

pub(super) fn lower_ascii(This(text): This<Arc<String>>) -> Value {
    Value::from(text.to_ascii_lowercase())
}

pub(super) fn upper_ascii(This(text): This<Arc<String>>) -> Value {
    Value::from(text.to_ascii_uppercase())
}

pub(super) fn join(This(items): This<Arc<Vec<Value>>>, separator: Arc<String>) -> Result<Value, ExecutionError> {
    let parts: Result<Vec<&str>, _> = items
        .iter()
        .map(|item| match item {
            Value::String(text) => Ok(text.as_str()),
            other => Err(ExecutionError::function_error(
                "join",
                format!("{:?} is not a string", other.type_of()),
            )),
        })
        .collect();
    Ok(Value::from(parts?.join(separator.as_str())))
}

pub(super) fn split(This(text): This<Arc<String>>, separator: Arc<String>) -> Value {
    Value::List(Arc::new(text.split(separator.as_str()).map(Value::from).collect()))
}
