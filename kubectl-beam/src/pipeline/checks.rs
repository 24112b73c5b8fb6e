//! Beam's checks of a pipeline's structure, as `yaml_transform.preprocess` makes them before anything runs: chains
//! have implicit inputs, every input names exactly one transform, declared error outputs are consumed, and every
//! transform type exists. Unlike Beam, every problem is reported, not only the first.

use super::catalogue::{Backing, STANDARD_CATALOGUE};
use super::yaml::line_of;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<u64>,
    /// The transform's name, or its type when it has none.
    pub transform: Option<String>,
    pub message: String,
}

/// One transform of the pipeline, with what backs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformInfo {
    pub name: String,
    pub transform_type: String,
    pub line: Option<u64>,
    pub backing: Backing,
}

/// What the checks learned: the problems, and every leaf transform.
#[derive(Debug, Default)]
pub struct Report {
    pub problems: Vec<Problem>,
    pub transforms: Vec<TransformInfo>,
}

fn identify(transform: &Value) -> String {
    transform
        .get("name")
        .and_then(Value::as_str)
        .or_else(|| transform.get("type").and_then(Value::as_str))
        .unwrap_or("<unnamed>")
        .to_owned()
}

/// Every name an `input` refers to (a string, a list, or a mapping of tags to names).
fn input_refs(input: &Value) -> Vec<String> {
    match input {
        Value::String(name) => vec![name.clone()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Value::Object(map) => map
            .iter()
            .filter(|(key, _)| key.as_str() != super::yaml::LINE_KEY)
            .flat_map(|(_, value)| input_refs(value))
            .collect(),
        _ => Vec::new(),
    }
}

fn explicitly_empty(input: &Value) -> bool {
    match input {
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.keys().all(|key| key == super::yaml::LINE_KEY),
        _ => false,
    }
}

pub fn check(root: &Value) -> Report {
    let mut report = Report::default();
    let provided = provided_types(root);
    if let Some(pipeline) = root.get("pipeline") {
        check_scope(pipeline, &HashSet::new(), &provided, &mut report);
    }
    report
}

/// Transform types the file's own `providers:` define, with their backing.
fn provided_types(root: &Value) -> HashMap<String, Backing> {
    let mut types = HashMap::new();
    for provider in root.get("providers").and_then(Value::as_array).into_iter().flatten() {
        let kind = provider.get("type").and_then(Value::as_str).unwrap_or("");
        let backing = if kind.contains("java") || kind.contains("Jar") || kind == "maven" {
            Backing::Java(Vec::new())
        } else {
            Backing::Python
        };
        for (name, _) in provider
            .get("transforms")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if name != super::yaml::LINE_KEY {
                types.insert(name.clone(), backing.clone());
            }
        }
    }
    types
}

fn is_composite(transform: &Value) -> bool {
    matches!(
        transform.get("type").and_then(Value::as_str),
        Some("composite" | "chain")
    ) || transform.get("transforms").is_some()
}

/// Checks one composite (or chain): its transforms, their inputs, and its error outputs.
fn check_scope(spec: &Value, outer_inputs: &HashSet<String>, provided: &HashMap<String, Backing>, report: &mut Report) {
    let chain = spec.get("type").and_then(Value::as_str) == Some("chain");
    let mut transforms: Vec<&Value> = Vec::new();
    if let Some(source) = spec.get("source") {
        transforms.push(source);
    }
    transforms.extend(spec.get("transforms").and_then(Value::as_array).into_iter().flatten());
    if let Some(sink) = spec.get("sink") {
        transforms.push(sink);
    }
    let extra: Vec<&Value> = spec
        .get("extra_transforms")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();

    if chain {
        for (index, transform) in transforms.iter().enumerate() {
            let explicit = transform.get("input").is_some() || transform.get("output").is_some();
            let allowed =
                index == 0 && transform.get("output").is_none() && transform.get("input").is_some_and(explicitly_empty);
            if explicit && !allowed {
                report.problems.push(Problem {
                    line: line_of(transform),
                    transform: Some(identify(transform)),
                    message: "is part of a chain, must have implicit inputs and outputs: remove `input`/`output`, \
                              or make the pipeline a composite"
                        .into(),
                });
            }
        }
    }

    // Names resolve to a transform's `name` and to its `type`; more than one match is ambiguous.
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    let everything: Vec<&Value> = transforms.iter().chain(extra.iter()).copied().collect();
    for (index, transform) in everything.iter().enumerate() {
        for key in ["name", "type"] {
            if let Some(name) = transform.get(key).and_then(Value::as_str) {
                let entry = by_name.entry(name).or_default();
                if !entry.contains(&index) {
                    entry.push(index);
                }
            }
        }
    }
    let resolve = |reference: &str| -> Result<Option<usize>, String> {
        if outer_inputs.contains(reference) {
            return Ok(None);
        }
        let (base, _) = match by_name.get(reference) {
            Some(_) => (reference, None),
            None => match reference.rsplit_once('.') {
                Some((base, tag)) => (base, Some(tag)),
                None => (reference, None),
            },
        };
        if outer_inputs.contains(base) {
            return Ok(None);
        }
        match by_name.get(base).map(Vec::as_slice) {
            None | Some([]) => Err(format!("input `{reference}` names no transform in this pipeline")),
            Some([index]) => Ok(Some(*index)),
            Some(_) => Err(format!(
                "input `{reference}` is ambiguous: several transforms have that name or type; give them names"
            )),
        }
    };
    let mut consumed: HashSet<(usize, String)> = HashSet::new();
    for transform in &everything {
        let Some(input) = transform.get("input") else { continue };
        for reference in input_refs(input) {
            match resolve(&reference) {
                Ok(Some(index)) => {
                    if let Some((_, tag)) = reference.rsplit_once('.') {
                        consumed.insert((index, tag.to_owned()));
                    }
                }
                Ok(None) => {}
                Err(message) => report.problems.push(Problem {
                    line: line_of(transform),
                    transform: Some(identify(transform)),
                    message,
                }),
            }
        }
    }

    for (index, transform) in everything.iter().enumerate() {
        if is_composite(transform) {
            let inputs: HashSet<String> = match transform.get("input") {
                Some(Value::Object(map)) => map
                    .keys()
                    .filter(|key| key.as_str() != super::yaml::LINE_KEY)
                    .cloned()
                    .collect(),
                Some(_) => HashSet::from(["input".to_owned()]),
                None => HashSet::new(),
            };
            check_scope(transform, &inputs, provided, report);
            continue;
        }
        let transform_type = transform.get("type").and_then(Value::as_str).unwrap_or("");
        let language = transform.pointer("/config/language").and_then(Value::as_str);
        let backing = provided.get(transform_type).cloned().or_else(|| {
            STANDARD_CATALOGUE
                .resolve(transform_type, language)
                .map(|(_, backing)| backing)
        });
        match backing {
            Some(backing) => report.transforms.push(TransformInfo {
                name: identify(transform),
                transform_type: transform_type.to_owned(),
                line: line_of(transform),
                backing,
            }),
            None if transform_type.is_empty() => {} // the schema reports a missing type
            None => {
                let hint = if STANDARD_CATALOGUE.is_known(transform_type) {
                    format!(" with language `{}`", language.unwrap_or("generic"))
                } else {
                    String::new()
                };
                report.problems.push(Problem {
                    line: line_of(transform),
                    transform: Some(identify(transform)),
                    message: format!(
                        "unknown transform type `{transform_type}`{hint}: Beam 2.77 has no such transform; \
                         see `kubectl beam validate --list-transforms` or declare it under `providers:`"
                    ),
                });
            }
        }
        let error_output = transform
            .pointer("/config/error_handling/output")
            .and_then(Value::as_str);
        if let Some(tag) = error_output {
            let consumed_here = consumed.contains(&(index, tag.to_owned()));
            if !consumed_here {
                report.problems.push(Problem {
                    line: line_of(transform),
                    transform: Some(identify(transform)),
                    message: format!(
                        "its error output `{tag}` is not consumed: add a transform with `input: {}.{tag}` \
                         (in a chain, under extra_transforms)",
                        identify(transform)
                    ),
                });
            }
        }
    }
}
