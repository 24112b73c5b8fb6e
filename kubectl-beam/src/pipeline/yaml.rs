//! YAML with line numbers, the way Beam reads pipelines: every mapping carries a `__line__` key (Beam's
//! SafeLineLoader does the same, and its schema allows the key), so every error can name its line.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use serde_saphyr::Spanned;

pub const LINE_KEY: &str = "__line__";

/// A YAML node whose map values know where they are.
enum Node {
    Value(Value),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(String, Spanned<Node>)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a YAML value")
            }
            fn visit_bool<E>(self, value: bool) -> Result<Node, E> {
                Ok(Node::Value(Value::Bool(value)))
            }
            fn visit_i64<E>(self, value: i64) -> Result<Node, E> {
                Ok(Node::Value(Value::from(value)))
            }
            fn visit_u64<E>(self, value: u64) -> Result<Node, E> {
                Ok(Node::Value(Value::from(value)))
            }
            fn visit_f64<E>(self, value: f64) -> Result<Node, E> {
                Ok(Node::Value(
                    serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number),
                ))
            }
            fn visit_str<E>(self, value: &str) -> Result<Node, E> {
                Ok(Node::Value(Value::String(value.to_owned())))
            }
            fn visit_string<E>(self, value: String) -> Result<Node, E> {
                Ok(Node::Value(Value::String(value)))
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Value(Value::Null))
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Value(Value::Null))
            }
            fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
                Node::deserialize(deserializer)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<Node>>()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Value>()? {
                    let key = match key {
                        Value::String(text) => text,
                        other => other.to_string(),
                    };
                    if entries.iter().any(|(existing, _)| *existing == key) {
                        return Err(de::Error::custom(format!("duplicate key `{key}`")));
                    }
                    entries.push((key, map.next_value::<Spanned<Node>>()?));
                }
                Ok(Node::Map(entries))
            }
        }
        deserializer.deserialize_any(NodeVisitor)
    }
}

/// Converts a node to JSON; a mapping gets `__line__` = the line of its first entry (where the mapping starts).
fn to_json(node: Node, line: u64) -> Value {
    match node {
        Node::Value(value) => value,
        Node::Seq(items) => Value::Array(
            items
                .into_iter()
                .map(|item| to_json(item.value, item.referenced.line()))
                .collect(),
        ),
        Node::Map(entries) => {
            let first_line = entries.first().map_or(line, |(_, value)| value.referenced.line());
            let mut map = Map::new();
            for (key, value) in entries {
                let line = value.referenced.line();
                map.insert(key, to_json(value.value, line));
            }
            map.insert(LINE_KEY.to_owned(), Value::from(first_line));
            Value::Object(map)
        }
    }
}

/// Parses one YAML document into JSON with `__line__` keys.
pub fn parse(text: &str) -> Result<Value, String> {
    let node: Option<Spanned<Node>> = serde_saphyr::from_str(text).map_err(|error| error.to_string())?;
    Ok(node.map_or(Value::Null, |node| to_json(node.value, node.referenced.line())))
}

/// The `__line__` of a mapping.
pub fn line_of(value: &Value) -> Option<u64> {
    value.get(LINE_KEY).and_then(Value::as_u64)
}

/// A copy without the `__line__` keys.
pub fn strip_lines(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(key, _)| key.as_str() != LINE_KEY)
                .map(|(key, value)| (key.clone(), strip_lines(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_lines).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mappings_know_their_lines() {
        let text = "# comment\npipeline:\n  type: chain\n  transforms:\n    - type: Create\n      config:\n        elements: [1, 2]\n    - type: LogForTesting\n";
        let value = parse(text).unwrap();
        assert_eq!(line_of(&value["pipeline"]), Some(3));
        assert_eq!(line_of(&value["pipeline"]["transforms"][0]), Some(5));
        assert_eq!(line_of(&value["pipeline"]["transforms"][1]), Some(8));
        assert_eq!(line_of(&value["pipeline"]["transforms"][0]["config"]), Some(7));
        assert_eq!(
            strip_lines(&value),
            json!({"pipeline": {"type": "chain", "transforms": [{"type": "Create", "config": {"elements": [1, 2]}}, {"type": "LogForTesting"}]}})
        );
    }

    #[test]
    fn duplicate_keys_and_bad_yaml_are_errors() {
        let error = parse("a: 1\na: 2\n").unwrap_err();
        assert!(error.to_lowercase().contains("duplicate"), "{error}");
        assert!(parse("a: [1, 2\n").is_err());
    }
}
