//! Beam's JSON schema for pipelines (draft-07, the "generic" level Beam validates with by default).
//!
//! The schema is fixed at build time, so it is compiled then: build.rs converts beam/pipeline.schema.yaml to JSON
//! and declares a `#[jsonschema::validator]` over it, which jsonschema's macro turns into Rust code. Compiling it at
//! start-up instead (parsing the YAML, then jsonschema compiling the draft-07 meta-schema to check the schema and
//! then the schema) was about 60 % of a `kubectl beam run`'s instructions. The tests below hold the generated
//! validator to the runtime-compiled one: the same errors (instance path, schema path, message) on every example
//! and refused variant in the repository and on about 26,000 mutations of them, and the same `check` result.

use super::yaml::line_of;
use serde_json::Value;

include!(concat!(env!("OUT_DIR"), "/pipeline_schema.rs"));

/// (line, transform, message).
pub type Problem = (Option<u64>, Option<String>, String);

/// Schema errors as (line, transform, message); the line is the nearest enclosing mapping's. In the order of the
/// failing values in the document: validators walk `properties` in different orders (the generated one in the
/// schema's, the runtime one in the document's), so their own order is not kept; errors at the same value stay in
/// the order the validator reports them, which is the same for both on every document the tests try.
pub fn check(root: &Value) -> Vec<Problem> {
    problems(root, PipelineSchema::iter_errors(root))
}

fn problems<'a>(root: &Value, errors: impl Iterator<Item = jsonschema::ValidationError<'a>>) -> Vec<Problem> {
    let mut problems = Vec::new();
    for error in errors {
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
        let position = position(root, &pointer);
        problems.push((
            position,
            (line, transform, format!("{}{location}", simplify(&error.to_string()))),
        ));
    }
    // Stable: errors at the same value keep the validator's order.
    problems.sort_by(|(a, _), (b, _)| a.cmp(b));
    problems.into_iter().map(|(_, problem)| problem).collect()
}

/// Where a JSON pointer's value is in the document: the index of each step among its siblings (a mapping's keys
/// in file order, a list's items), so that sorting by it sorts values in file order, a mapping before its values.
fn position(root: &Value, pointer: &str) -> Vec<usize> {
    let mut node = root;
    let mut position = Vec::new();
    for step in pointer.split('/').skip(1) {
        let step = step.replace("~1", "/").replace("~0", "~");
        let next = match node {
            Value::Object(map) => map
                .iter()
                .enumerate()
                .find_map(|(index, (key, value))| (*key == step).then_some((index, value))),
            Value::Array(items) => step
                .parse::<usize>()
                .ok()
                .and_then(|index| items.get(index).map(|value| (index, value))),
            _ => None,
        };
        let Some((index, value)) = next else { break };
        position.push(index);
        node = value;
    }
    position
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{self, LoadOptions};
    use serde_json::json;
    use std::path::{Path, PathBuf};
    use std::sync::LazyLock;

    /// What build.rs compiled into the binary, as JSON.
    const SCHEMA_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/pipeline.schema.json"));

    /// Beam's schema compiled at run time, as the plugin did before: the reference for the generated validator.
    static RUNTIME: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
        let schema: Value = serde_saphyr::from_str(include_str!("../../beam/pipeline.schema.yaml")).unwrap();
        jsonschema::validator_for(&schema).unwrap()
    });

    /// Every error of both validators, as (instance path, schema path, message), in their own orders.
    fn both(document: &Value) -> (Vec<String>, Vec<String>) {
        let show = |error: jsonschema::ValidationError<'_>| {
            format!("{} | {} | {}", error.instance_path(), error.schema_path(), error)
        };
        let generated = PipelineSchema::iter_errors(document).map(show).collect();
        let runtime = RUNTIME.iter_errors(document).map(show).collect();
        (generated, runtime)
    }

    /// The errors `check` reports (paths and messages, which is what a user and the Beam tests see).
    fn checked(document: &Value) -> (Vec<Problem>, Vec<Problem>) {
        (check(document), problems(document, RUNTIME.iter_errors(document)))
    }

    #[test]
    fn embedded_json_is_beams_yaml() {
        let yaml: Value = serde_saphyr::from_str(include_str!("../../beam/pipeline.schema.yaml")).unwrap();
        let json: Value = serde_json::from_str(SCHEMA_JSON).unwrap();
        assert_eq!(json, yaml);
        assert_eq!(
            serde_json::to_string(&json).unwrap(),
            serde_json::to_string(&yaml).unwrap()
        );
    }

    fn repo() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// Every example and refused variant in the repository, rendered and parsed as the plugin does (with line keys),
    /// one document per pipeline, and documents for what the examples lack (providers, tests, source and sink).
    fn corpus() -> Vec<Value> {
        let variables: Value =
            serde_json::from_str(&std::fs::read_to_string(repo().join("testdata/beam/variables.json")).unwrap())
                .unwrap();
        let options = LoadOptions {
            variables,
            search_path: vec![repo().join("testdata/beam-package")],
        };
        let mut files = Vec::new();
        let mut pending = vec![repo().join("examples/beam"), repo().join("testdata/beam/invalid")];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                } else if path.extension().is_some_and(|e| e == "yaml") {
                    files.push(path);
                }
            }
        }
        files.sort();
        let mut documents: Vec<Value> = files
            .iter()
            .filter_map(|file| pipeline::read(file, &options).ok())
            .flat_map(|(_, document)| pipeline::pipelines_of(&document))
            .collect();
        assert!(documents.len() >= 20, "{}", documents.len());
        let extra = [
            json!({"pipeline": {"source": {"type": "Create", "config": {"elements": [1]}},
                "transforms": [{"type": "LogForTesting"}], "sink": {"type": "WriteToText", "config": {"path": "x"}}},
                "providers": [{"include": "x.yaml"}, {"type": "python", "transforms": {"A": "a.B"}, "config": {}}],
                "options": {"streaming": true},
                "tests": [{"name": "t", "mock_inputs": [{"name": "A", "elements": [1]}],
                    "expected_outputs": [{"name": "B", "elements": [{"a": 1}]}], "allowed_sources": ["A"]}]}),
            json!({"pipeline": {"type": "composite", "transforms": [{"type": "chain", "transforms": [
                {"type": "Create", "config": {"elements": [1]}},
                {"type": "composite", "input": "x", "transforms": [{"type": "LogForTesting", "input": "input"}],
                    "output": {"out": "LogForTesting"}}]}],
                "extra_transforms": [{"type": "Sql", "windowing": {"type": "fixed"}, "resource_hints": {"cpu": 1}}]}}),
            json!({"pipeline": {"type": "chain", "source": {"type": "Create", "input": "x"}, "sink": {"type": "A", "output": "y"},
                "transforms": [{"type": "A", "input": ["a", 1], "output": {"a": 1}, "output_schema": [], "config": 1}]}}),
            json!({"pipeline": []}),
            json!({"pipelin": {}}),
            json!([]),
            json!(null),
        ];
        documents.extend(extra);
        // The same documents with every mapping's keys in reverse order: a validator's order may follow the file's.
        fn reversed(value: &Value) -> Value {
            match value {
                Value::Object(map) => Value::Object(map.iter().rev().map(|(k, v)| (k.clone(), reversed(v))).collect()),
                Value::Array(items) => Value::Array(items.iter().map(reversed).collect()),
                other => other.clone(),
            }
        }
        let reversed: Vec<Value> = documents.iter().map(reversed).collect();
        documents.extend(reversed);
        documents
    }

    /// Variants of a document: every value replaced by values of other types (and by the schema's special
    /// transform types), every key removed, an unknown key added to every mapping.
    fn variants(document: &Value) -> Vec<Value> {
        fn paths(value: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, bool)>) {
            match value {
                Value::Object(map) => {
                    out.push((path.clone(), true));
                    for (key, child) in map {
                        path.push(key.clone());
                        out.push((path.clone(), false));
                        paths(child, path, out);
                        path.pop();
                    }
                }
                Value::Array(items) => {
                    for (index, child) in items.iter().enumerate() {
                        path.push(index.to_string());
                        out.push((path.clone(), false));
                        paths(child, path, out);
                        path.pop();
                    }
                }
                _ => {}
            }
        }
        fn at<'v>(value: &'v mut Value, path: &[String]) -> &'v mut Value {
            path.iter().fold(value, |node, step| match node {
                Value::Array(items) => &mut items[step.parse::<usize>().unwrap()],
                other => &mut other[step.as_str()],
            })
        }
        let replacements = [
            json!(null),
            json!(1),
            json!("x"),
            json!("chain"),
            json!("composite"),
            json!([]),
            json!(["x"]),
            json!({}),
            json!({"type": "X"}),
        ];
        let mut found = Vec::new();
        paths(document, &mut Vec::new(), &mut found);
        let mut out = Vec::new();
        for (path, is_mapping) in found {
            if is_mapping {
                let mut variant = document.clone();
                at(&mut variant, &path)["bogus"] = json!(1);
                out.push(variant);
                continue;
            }
            if path.last().is_some_and(|key| key == super::super::yaml::LINE_KEY) {
                continue;
            }
            for replacement in &replacements {
                let mut variant = document.clone();
                *at(&mut variant, &path) = replacement.clone();
                out.push(variant);
            }
            let (parent, last) = path.split_at(path.len() - 1);
            let mut variant = document.clone();
            match at(&mut variant, parent) {
                Value::Object(map) => {
                    map.shift_remove(&last[0]);
                }
                Value::Array(items) => {
                    items.remove(last[0].parse::<usize>().unwrap());
                }
                _ => unreachable!(),
            }
            out.push(variant);
        }
        out
    }

    #[test]
    fn generated_validator_reports_what_the_runtime_one_reports() {
        let mut compared = 0;
        let mut refused = 0;
        for document in corpus() {
            for variant in std::iter::once(document.clone()).chain(variants(&document)) {
                let (mut generated, mut runtime) = both(&variant);
                refused += usize::from(!runtime.is_empty());
                // The same errors; their order may differ, which `check` settles (document order).
                generated.sort();
                runtime.sort();
                assert_eq!(generated, runtime, "on {variant}");
                let (ours, reference) = checked(&variant);
                assert_eq!(ours, reference, "on {variant}");
                compared += 1;
            }
        }
        assert!(
            compared > 20_000 && refused > 8_000,
            "{compared} documents, {refused} refused"
        );
    }

    #[test]
    fn a_refused_transform_is_located() {
        let file = repo().join("testdata/beam/invalid/unknown-key.yaml");
        let (_, document) = pipeline::read(Path::new(&file), &LoadOptions::default()).unwrap();
        let problems = check(&document);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let (line, transform, message) = &problems[0];
        assert_eq!((*line, transform.as_deref()), (Some(8), Some("LogForTesting")));
        assert!(
            message.contains("bogus") && message.ends_with(" at /pipeline/transforms/1"),
            "{message}"
        );
    }
}
