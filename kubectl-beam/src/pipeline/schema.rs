//! Beam's JSON schema for pipelines (draft-07, the "generic" level Beam validates with by default).

use super::yaml::line_of;
use serde_json::Value;
use std::sync::LazyLock;

static VALIDATOR: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    let schema: Value =
        serde_saphyr::from_str(include_str!("../../beam/pipeline.schema.yaml")).expect("Beam's schema is YAML");
    jsonschema::validator_for(&schema).expect("Beam's schema compiles")
});

/// Schema errors as (line, transform, message); the line is the nearest enclosing mapping's.
pub fn check(root: &Value) -> Vec<(Option<u64>, Option<String>, String)> {
    let mut problems = Vec::new();
    for error in VALIDATOR.iter_errors(root) {
        let pointer = error.instance_path().to_string();
        // Walk up from the failing value to the nearest mapping that knows its line, and the transform around it.
        let mut line = None;
        let mut transform = None;
        let mut path = pointer.as_str();
        loop {
            if let Some(node) = root.pointer(path) {
                if line.is_none() {
                    line = line_of(node);
                }
                if transform.is_none() && node.get("type").is_some() && path.contains("/transforms/") {
                    transform = node
                        .get("name")
                        .or_else(|| node.get("type"))
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                }
            }
            match path.rfind('/') {
                Some(cut) => path = &path[..cut],
                None => break,
            }
        }
        let location = if pointer.is_empty() {
            String::new()
        } else {
            format!(" at {pointer}")
        };
        problems.push((line, transform, format!("{}{location}", simplify(&error.to_string()))));
    }
    problems
}

/// jsonschema's messages quote whole objects; keep them to a line.
fn simplify(message: &str) -> String {
    let message = message.replace(super::yaml::LINE_KEY, "");
    if message.chars().count() > 200 {
        format!("{}…", message.chars().take(200).collect::<String>())
    } else {
        message
    }
}
