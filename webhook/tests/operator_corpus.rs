//! The operators' own example manifests through the webhook as the API server sends them: /mutate, then /validate of
//! the result, each document with and without a typical configuration and with and without the Beam annotations.
//!
//! The corpus (testdata/operator-corpus; SOURCES.md in each folder names repository, commit and path) holds the
//! Flink operator's examples, e2e data and documentation manifests and the Spark operator's. verdicts.yaml writes
//! down, for every document, what the operator does with it and the operator's rule that decides, and what the
//! webhook must answer with and without the annotations. Every variant must also:
//! - keep every value the document holds (arrays by item, in their order), changing only what was unset;
//! - not fill what the document settles another way (`resources` for `resource`, `flinkConfiguration` memory and
//!   account keys, a Spark driver template's account, `sparkConf` cores, memory and executors);
//! - give no patch on a second pass;
//! - be valid against the operator's CRD (release 1.15, or the main branch's for documents using its `resources`).

mod common;

use beamstack::config::Config;
use common::*;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const RUNNER_KINDS: [&str; 4] = [
    "FlinkDeployment",
    "FlinkSessionJob",
    "SparkApplication",
    "ScheduledSparkApplication",
];

/// One entry of verdicts.yaml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Verdict {
    /// `flink/<file>` or `spark/<file>`.
    file: String,
    /// The document's `metadata.name`, after its namespace and a slash when it has one (a file may hold two
    /// objects of one name); absent for a file that is not YAML.
    document: Option<String>,
    /// What the operator (with the API server's schema before it) does with the document as published.
    operator: Operator,
    /// The operator's rule that decides, and what Beamstack does about it.
    because: String,
    /// The fields the webhook denies without the Beam annotations (empty: allowed).
    #[serde(default)]
    plain: Vec<String>,
    /// The fields it denies with them.
    #[serde(default)]
    beam: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Operator {
    Accepts,
    Rejects,
    /// The API server's schema refuses it (a required field missing) before any validating webhook.
    SchemaRejects,
    /// Not YAML: never reaches the API server.
    NotYaml,
}

struct Document {
    file: String,
    name: String,
    object: Value,
}

fn corpus_dir() -> std::path::PathBuf {
    repo_path("testdata/operator-corpus")
}

/// Every runner document of the corpus; files that are not YAML by name.
fn corpus() -> (Vec<Document>, Vec<String>) {
    let mut documents = Vec::new();
    let mut not_yaml = Vec::new();
    for runner in ["flink", "spark"] {
        let mut files: Vec<_> = std::fs::read_dir(corpus_dir().join(runner))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
            .collect();
        files.sort();
        for path in files {
            let file = format!("{runner}/{}", path.file_name().unwrap().to_string_lossy());
            let text = std::fs::read_to_string(&path).unwrap();
            let Ok(values) = serde_saphyr::from_multiple::<Value>(&text) else {
                not_yaml.push(file);
                continue;
            };
            for object in values {
                let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
                if RUNNER_KINDS.contains(&kind) {
                    let metadata = &object["metadata"];
                    let name = metadata["name"].as_str().unwrap_or_default();
                    let name = match metadata["namespace"].as_str() {
                        Some(namespace) => format!("{namespace}/{name}"),
                        None => name.to_owned(),
                    };
                    documents.push(Document {
                        file: file.clone(),
                        name,
                        object,
                    });
                }
            }
        }
    }
    (documents, not_yaml)
}

fn verdicts() -> Vec<Verdict> {
    let path = corpus_dir().join("verdicts.yaml");
    serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|error| panic!("{error}"))
}

/// The configuration a platform team would typically run (webhook/config.example.yaml's settings, with its own
/// accounts, sizes, placement and Flink options), without a registry allowlist, which denies by design.
fn typical_config() -> Config {
    Config::from_yaml(
        r#"
flink:
  serviceAccount: flink-jobs
  jobManager: {cpu: 0.5, memory: 1g}
  taskManager: {cpu: 2, memory: 4g}
  placement:
    tolerations: [{key: dedicated, operator: Equal, value: data, effect: NoSchedule}]
    nodeSelector: {pool: data}
    priorityClassName: batch-low
  configuration:
    state.backend.type: rocksdb
spark:
  serviceAccount: spark-jobs
  driver: {cores: 1, memory: 2g}
  executor: {cores: 2, memory: 4g}
  executorInstances: 2
  volcanoQueue: analytics
  placement:
    tolerations: [{key: dedicated, operator: Equal, value: data, effect: NoSchedule}]
    nodeSelector: {pool: data}
harness:
  resources:
    requests: {cpu: 500m, memory: 1Gi}
    limits: {memory: 1Gi}
"#,
    )
    .unwrap()
}

/// The document as `kubectl beam` would mark it: a Python Beam pipeline.
fn with_beam_annotations(object: &Value) -> Value {
    let mut object = object.clone();
    let metadata = object["metadata"].as_object_mut().unwrap();
    let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
    annotations["beamstack.dev/beam-sdk"] = json!("python");
    object
}

/// Where `patched` lost or changed something `original` holds, at `path`. Objects by key, null meaning unset;
/// arrays by item, named items by name, the original's items in their order.
fn losses(original: &Value, patched: &Value, path: &str, out: &mut Vec<String>) {
    match (original, patched) {
        (Value::Object(before), Value::Object(after)) => {
            for (key, value) in before {
                match after.get(key) {
                    Some(now) => losses(value, now, &format!("{path}/{key}"), out),
                    None if value.is_null() => {}
                    None => out.push(format!("{path}/{key} removed")),
                }
            }
        }
        (Value::Array(before), Value::Array(after)) => {
            let named = |item: &Value| item.get("name").and_then(Value::as_str).map(str::to_owned);
            let mut from = 0;
            for item in before {
                let found = after[from..].iter().position(|candidate| match named(item) {
                    Some(name) => named(candidate).as_deref() == Some(name.as_str()),
                    None => candidate == item,
                });
                match found {
                    Some(offset) => {
                        let label = named(item).unwrap_or_else(|| (from + offset).to_string());
                        losses(item, &after[from + offset], &format!("{path}[{label}]"), out);
                        from += offset + 1;
                    }
                    None => out.push(format!("{path}: item {item} removed or moved")),
                }
            }
        }
        (Value::Null, _) => {}
        (before, after) if before != after => out.push(format!("{path}: {before} became {after}")),
        _ => {}
    }
}

fn flink_setting<'a>(object: &'a Value, key: &str) -> Option<&'a Value> {
    object["spec"]["flinkConfiguration"]
        .get(key)
        .filter(|value| !value.is_null())
}

/// Defaults the patch filled although the document settles the same thing elsewhere: the operators would read the
/// filled value over the document's own.
fn overridden(original: &Value, patched: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let added =
        |pointer: &str| original.pointer(pointer).is_none_or(Value::is_null) && patched.pointer(pointer).is_some();
    match original["kind"].as_str().unwrap() {
        "FlinkDeployment" => {
            for (role, prefix) in [("jobManager", "jobmanager"), ("taskManager", "taskmanager")] {
                let uses_resources = !original["spec"][role]["resources"].is_null();
                if uses_resources && added(&format!("/spec/{role}/resource")) {
                    out.push(format!("spec.{role}.resource added beside resources"));
                }
                let memory_key = format!("{prefix}.memory.process.size");
                if flink_setting(original, &memory_key).is_some()
                    && (added(&format!("/spec/{role}/resource/memory"))
                        || added(&format!("/spec/{role}/resources/requests/memory")))
                {
                    out.push(format!("spec.{role} memory added over {memory_key}"));
                }
            }
            if let Some(account) = flink_setting(original, "kubernetes.service-account")
                && added("/spec/serviceAccount")
                && patched["spec"]["serviceAccount"] != *account
            {
                out.push("spec.serviceAccount differs from kubernetes.service-account".into());
            }
        }
        "SparkApplication" | "ScheduledSparkApplication" => {
            let spec_pointer = if original["kind"] == "SparkApplication" {
                "/spec"
            } else {
                "/spec/template"
            };
            let spec = original.pointer(spec_pointer).unwrap();
            let template = &spec["driver"]["template"]["spec"];
            let template_account = ["serviceAccountName", "serviceAccount"]
                .iter()
                .any(|key| template[key].is_string());
            if template_account && added(&format!("{spec_pointer}/driver/serviceAccount")) {
                out.push("driver.serviceAccount added over the driver template's".into());
            }
            for role in ["driver", "executor"] {
                for amount in ["cores", "memory"] {
                    if !spec["sparkConf"][format!("spark.{role}.{amount}")].is_null()
                        && added(&format!("{spec_pointer}/{role}/{amount}"))
                    {
                        out.push(format!("{role}.{amount} added over sparkConf"));
                    }
                }
            }
            let executors_settled = !spec["sparkConf"]["spark.executor.instances"].is_null()
                || spec["sparkConf"]["spark.dynamicAllocation.enabled"] == "true"
                || spec["dynamicAllocation"]["enabled"] == true;
            if executors_settled && added(&format!("{spec_pointer}/executor/instances")) {
                out.push("executor.instances added although sparkConf or dynamic allocation settles it".into());
            }
        }
        _ => {}
    }
    out
}

fn uses_flink_resources(object: &Value) -> bool {
    ["jobManager", "taskManager"]
        .iter()
        .any(|role| !object["spec"][role]["resources"].is_null())
}

#[tokio::test]
async fn the_operators_own_examples_get_through_as_the_operators_would_have_them() {
    let (documents, not_yaml) = corpus();
    let verdicts = verdicts();
    assert!(
        documents.len() >= 70,
        "the corpus has {} runner documents",
        documents.len()
    );
    let mut expected: BTreeMap<(String, String), &Verdict> = BTreeMap::new();
    for verdict in &verdicts {
        let name = verdict.document.clone().unwrap_or_default();
        assert!(
            verdict.because.len() > 20,
            "{}/{name}: say which operator rule decides",
            verdict.file
        );
        let duplicate = expected.insert((verdict.file.clone(), name.clone()), verdict);
        assert!(duplicate.is_none(), "{} {name} is listed twice", verdict.file);
    }
    for file in &not_yaml {
        let verdict = expected.remove(&(file.clone(), String::new()));
        assert!(
            verdict.is_some_and(|verdict| verdict.operator == Operator::NotYaml),
            "{file} is not YAML, and verdicts.yaml does not say so"
        );
    }
    let configurations = [("default", Config::default()), ("typical", typical_config())];
    let mut problems = Vec::new();
    let mut judged = 0;
    for document in &documents {
        let key = (document.file.clone(), document.name.clone());
        let Some(verdict) = expected.remove(&key) else {
            problems.push(format!(
                "{} {}: no verdict in verdicts.yaml",
                document.file, document.name
            ));
            continue;
        };
        assert_ne!(verdict.operator, Operator::NotYaml, "{} parses", document.file);
        let schema = if uses_flink_resources(&document.object) {
            flink_main_crd_validator()
        } else {
            crd_validator(document.object["kind"].as_str().unwrap())
        };
        let schema_valid = schema_errors(&schema, &document.object).is_empty();
        if schema_valid == (verdict.operator == Operator::SchemaRejects) {
            problems.push(format!(
                "{} {}: verdicts.yaml says {:?}, the CRD says {:?}",
                document.file,
                document.name,
                verdict.operator,
                schema_errors(&schema, &document.object)
            ));
        }
        for (config_name, config) in &configurations {
            let state = state(config.clone());
            for (variant, object, denied) in [
                ("plain", document.object.clone(), &verdict.plain),
                ("beam", with_beam_annotations(&document.object), &verdict.beam),
            ] {
                judged += 1;
                let at = format!(
                    "{} {} ({config_name} configuration, {variant})",
                    document.file, document.name
                );
                let (patched, patch) = mutated(&state, "CREATE", &object).await;
                let mut lost = Vec::new();
                losses(&object, &patched, "", &mut lost);
                problems.extend(lost.into_iter().map(|loss| format!("{at}: {loss}")));
                problems.extend(
                    overridden(&object, &patched)
                        .into_iter()
                        .map(|what| format!("{at}: {what}")),
                );
                let (_, again) = mutated(&state, "CREATE", &patched).await;
                if !again.0.is_empty() {
                    problems.push(format!("{at}: a second pass patches {again:?}"));
                }
                let response = validated(&state, "CREATE", &patched, None).await;
                let mut fields = denied_fields(&response);
                fields.dedup();
                if fields != *denied {
                    problems.push(format!(
                        "{at}: denied {fields:?}, verdicts.yaml says {denied:?}: {}",
                        response["status"]["message"]
                    ));
                }
                if schema_valid {
                    let errors = schema_errors(&schema, &patched);
                    if !errors.is_empty() {
                        problems.push(format!(
                            "{at}: the patched object breaks the CRD: {errors:?} (patch {patch:?})"
                        ));
                    }
                }
            }
        }
    }
    problems.extend(
        expected
            .keys()
            .map(|(file, name)| format!("verdicts.yaml lists {file} {name}, the corpus has no such document")),
    );
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert_eq!(judged, documents.len() * 4);
    let accepted = verdicts
        .iter()
        .filter(|verdict| verdict.operator == Operator::Accepts)
        .count();
    assert!(accepted >= 60, "{accepted} documents the operators accept");
}
