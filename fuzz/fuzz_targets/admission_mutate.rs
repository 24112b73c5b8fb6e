//! Structured: a realistic review (the fixtures of testdata/fixtures: FlinkDeployment, FlinkSessionJob,
//! SparkApplication, ScheduledSparkApplication, Beam pipelines and plain jobs) edited by a list of arbitrary edits
//! (set, remove, add an unknown field, edit the old object of an UPDATE), sent to /mutate and /validate with the
//! shipped policies, a tenant and every default switched on.
//!
//! Asserts, besides what `admission_review` asserts for every answer:
//! - the /mutate patch applies cleanly to the object it was computed from;
//! - idempotence: the patched object sent again to /mutate gets no patch (and is not denied if the first was not);
//! - fields the webhook does not know (keys `x-fuzz-*`, put anywhere in the object) survive with their values,
//!   and `status` is never touched;
//! - /validate answers the patched object without panicking (every other input, for speed).

#![no_main]

use arbitrary::Arbitrary;
use beamstack::admission::Endpoint;
use beamstack::admission::review::review_of;
use beamstack_fuzz::{admission, check_answer, fixture, patch_of, reset};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::OnceLock;

#[derive(Arbitrary, Debug)]
struct Input {
    fixture: u8,
    update: bool,
    /// Add the `team` label the shipped `required-labels` policy asks for (most real objects have it).
    team_label: bool,
    edits: Vec<Edit>,
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Set(Vec<Step>, Leaf),
    Remove(Vec<Step>),
    /// A field Beamstack does not know, added to the object the path ends on.
    Unknown(Vec<Step>, Leaf),
    /// An edit of the old object (UPDATE only).
    Old(Vec<Step>, Leaf),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Step {
    /// The n-th key of an object or element of an array that is there.
    Existing(u8),
    /// A key Beamstack, the operators or Kubernetes know, created as `{}` when missing.
    Known(u8),
}

#[derive(Arbitrary, Debug)]
enum Leaf {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Word(u8),
    Text(String),
    EmptyObject,
    EmptyArray,
    /// `{"name": word}`: a container, volume, port or mount.
    Named(u8),
    /// `[word, ...]`
    Words(Vec<u8>),
}

const KEYS: &[&str] = &[
    "spec",
    "metadata",
    "annotations",
    "labels",
    "name",
    "namespace",
    "jobManager",
    "taskManager",
    "resource",
    "cpu",
    "memory",
    "podTemplate",
    "containers",
    "volumes",
    "volumeMounts",
    "image",
    "args",
    "ports",
    "containerPort",
    "flinkConfiguration",
    "serviceAccount",
    "tolerations",
    "nodeSelector",
    "priorityClassName",
    "driver",
    "executor",
    "cores",
    "instances",
    "dynamicAllocation",
    "enabled",
    "sidecars",
    "batchScheduler",
    "batchSchedulerOptions",
    "queue",
    "template",
    "job",
    "parallelism",
    "upgradeMode",
    "replicas",
    "flinkVersion",
    "mode",
    "status",
    "beamstack.dev/beam-sdk",
    "beamstack.dev/beam-version",
    "beamstack.dev/python-version",
    "beamstack.dev/harness-image",
    "beamstack.dev/mutations",
    "kubernetes.operator.pod-template.merge-arrays-by-name",
    "kubernetes",
    "operator",
    "team",
    "jarURI",
    "deploymentName",
    "type",
    "sparkVersion",
    "mainApplicationFile",
    "coreRequest",
    "coreLimit",
    "memoryOverhead",
    "schedule",
    "emptyDir",
    "mountPath",
    "high-availability",
    "state.checkpoints.dir",
    "state.savepoints.dir",
    "minExecutors",
    "maxExecutors",
    "initialExecutors",
    "apiVersion",
    "kind",
    "requests",
    "limits",
    // What settles a default elsewhere, and the operator's canary.
    "resources",
    "sparkConf",
    "spark.driver.memory",
    "spark.executor.instances",
    "spark.dynamicAllocation.enabled",
    "serviceAccountName",
    "kubernetes.service-account",
    "jobmanager.memory.process.size",
    "kubernetes.taskmanager.cpu.amount",
    "flink.apache.org/canary",
];

const WORDS: &[&str] = &[
    "",
    "python",
    "java",
    "2.77.0",
    "2.62.0",
    "2.70.0",
    "3.11",
    "3.9",
    "3.13",
    "1",
    "0",
    "-1",
    "2048m",
    "2048",
    "1g",
    "1Gi",
    "500m",
    "1.5",
    "0.0001",
    "1e3",
    "1k",
    "2Ti",
    "99999999999999999999Ei",
    "flink-main-container",
    "beam-worker-pool",
    "beam-artifact-staging",
    "--worker_pool",
    "true",
    "false",
    "v1_20",
    "v2_0",
    "v1_13",
    "apache/beam_python3.11_sdk:2.77.0",
    "apache/flink:1.20",
    "docker.io/apache/flink:1.20",
    "evil.io/x:1",
    "team-a",
    "team-b",
    "stateless",
    "last-state",
    "savepoint",
    "application",
    "native",
    "standalone",
    "volcano",
    "Equal",
    "Exists",
    "NoSchedule",
    "9223372036854775807",
    "NaN",
    "Ki",
    "kubernetes-admin",
    "s3://bucket/checkpoints",
];

fn word(index: u8) -> &'static str {
    WORDS[usize::from(index) % WORDS.len()]
}

impl Leaf {
    fn value(&self) -> Value {
        match self {
            Leaf::Null => Value::Null,
            Leaf::Bool(flag) => Value::Bool(*flag),
            Leaf::Int(number) => Value::from(*number),
            Leaf::Float(number) => Value::from(*number),
            Leaf::Word(index) => Value::from(word(*index)),
            Leaf::Text(text) => Value::from(text.as_str()),
            Leaf::EmptyObject => json!({}),
            Leaf::EmptyArray => json!([]),
            Leaf::Named(index) => json!({"name": word(*index)}),
            Leaf::Words(indexes) => Value::Array(indexes.iter().map(|index| Value::from(word(*index))).collect()),
        }
    }
}

#[derive(Debug, Clone)]
enum Segment {
    Key(String),
    Index(usize),
}

fn child_mut<'a>(node: &'a mut Value, segment: &Segment) -> Option<&'a mut Value> {
    match segment {
        Segment::Key(key) => node.as_object_mut()?.get_mut(key),
        Segment::Index(index) => node.as_array_mut()?.get_mut(*index),
    }
}

fn at_mut<'a>(root: &'a mut Value, path: &[Segment]) -> Option<&'a mut Value> {
    path.iter().try_fold(root, child_mut)
}

/// Walks `steps` from the root, creating known keys as `{}` on the way (not at the end), and returns the path.
fn resolve(root: &mut Value, steps: &[Step]) -> Vec<Segment> {
    let mut path = Vec::new();
    for (position, step) in steps.iter().enumerate() {
        let last = position + 1 == steps.len();
        let Some(node) = at_mut(root, &path) else { break };
        let segment = match (step, node) {
            (Step::Existing(index), Value::Object(map)) if !map.is_empty() => {
                let key = map.keys().nth(usize::from(*index) % map.len()).cloned();
                Segment::Key(key.unwrap_or_default())
            }
            (Step::Existing(index), Value::Array(items)) if !items.is_empty() => {
                Segment::Index(usize::from(*index) % items.len())
            }
            (Step::Known(index), Value::Object(map)) => {
                let key = KEYS[usize::from(*index) % KEYS.len()];
                if !last {
                    map.entry(key).or_insert_with(|| json!({}));
                }
                Segment::Key(key.to_owned())
            }
            _ => break,
        };
        path.push(segment);
    }
    path
}

fn set(root: &mut Value, path: &[Segment], value: Value) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    match (at_mut(root, parent), last) {
        (Some(Value::Object(map)), Segment::Key(key)) => {
            map.insert(key.clone(), value);
        }
        (Some(Value::Array(items)), Segment::Index(index)) if *index < items.len() => items[*index] = value,
        _ => {}
    }
}

fn remove(root: &mut Value, path: &[Segment]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    match (at_mut(root, parent), last) {
        (Some(Value::Object(map)), Segment::Key(key)) => {
            map.shift_remove(key);
        }
        (Some(Value::Array(items)), Segment::Index(index)) if *index < items.len() => {
            items.remove(*index);
        }
        _ => {}
    }
}

/// Every `x-fuzz-*` key with its value, by path; array elements are named by their `name` (positions may shift
/// when the webhook inserts a container before them).
fn unknown_fields(value: &Value) -> BTreeMap<String, Vec<String>> {
    fn walk(path: &str, value: &Value, out: &mut BTreeMap<String, Vec<String>>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    // Our own annotations (`beamstack.dev/mutations`, ...) are the webhook's to write: a value put
                    // there is replaced, whatever it holds (found by the long run).
                    if path == "/metadata/annotations" && key.starts_with("beamstack.dev/") {
                        continue;
                    }
                    let here = format!("{path}/{key}");
                    if key.starts_with("x-fuzz-") {
                        out.entry(here.clone()).or_default().push(child.to_string());
                    }
                    walk(&here, child, out);
                }
            }
            Value::Array(items) => {
                for item in items {
                    let name = item.get("name").map(Value::to_string).unwrap_or_else(|| "*".to_owned());
                    walk(&format!("{path}[{name}]"), item, out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    walk("", value, &mut out);
    for values in out.values_mut() {
        values.sort();
    }
    out
}

fn fixtures() -> &'static Vec<Value> {
    static FIXTURES: OnceLock<Vec<Value>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let mut objects: Vec<Value> = [
            "reviews/flink-pipeline-create.json",
            "reviews/spark-pipeline-create.json",
        ]
        .iter()
        .map(|name| fixture(name)["request"]["object"].clone())
        .collect();
        for name in [
            "flink-pipeline.yaml",
            "flink-plain.yaml",
            "flink-session-job.yaml",
            "scheduled-spark.yaml",
            "spark-pipeline.yaml",
            "spark-plain.yaml",
        ] {
            objects.push(fixture(&format!("objects/{name}")));
        }
        objects
    })
}

/// The review the API server sends: kind, name and namespace come from the request (the URL), not from the edited
/// body, and are strings.
fn review(kind: &Value, object: &Value, old: Option<&Value>, operation: &str) -> Vec<u8> {
    let mut review = review_of(object, old, operation);
    let request = &mut review["request"];
    request["kind"] = kind.clone();
    for (field, fallback) in [("name", Value::Null), ("namespace", json!("team-a"))] {
        if !request[field].is_string() {
            request[field] = fallback;
        }
    }
    serde_json::to_vec(&review).expect("review JSON")
}

/// How many arrays and objects deep `value` nests.
fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn mutate(body: &[u8]) -> (Option<json_patch::Patch>, bool) {
    let admission = admission();
    reset(admission);
    let answer = admission.review(Endpoint::Mutate, body);
    check_answer(Endpoint::Mutate, body, &answer);
    let outcome = answer.expect("a review built from an object is never a 400");
    (patch_of(&outcome), outcome.review.response.allowed)
}

fn validate(body: &[u8]) {
    let admission = admission();
    reset(admission);
    let answer = admission.review(Endpoint::Validate, body);
    check_answer(Endpoint::Validate, body, &answer);
    answer.expect("a review built from an object is never a 400");
}

fuzz_target!(|input: Input| {
    let fixtures = fixtures();
    let mut object = fixtures[usize::from(input.fixture) % fixtures.len()].clone();
    let kind = review_of(&object, None, "CREATE")["request"]["kind"].clone();
    if input.team_label
        && let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut)
    {
        let labels = metadata.entry("labels").or_insert_with(|| Value::Object(Map::new()));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert("team".into(), json!("team-a"));
        }
    }
    let mut old = object.clone();
    let mut unknown = 0;
    for edit in input.edits.iter().take(32) {
        match edit {
            Edit::Set(steps, leaf) => {
                let path = resolve(&mut object, steps);
                set(&mut object, &path, leaf.value());
            }
            Edit::Remove(steps) => {
                let path = resolve(&mut object, steps);
                remove(&mut object, &path);
            }
            Edit::Unknown(steps, leaf) => {
                let path = resolve(&mut object, steps);
                if let Some(Value::Object(map)) = at_mut(&mut object, &path) {
                    unknown += 1;
                    map.insert(format!("x-fuzz-{unknown}"), leaf.value());
                }
            }
            Edit::Old(steps, leaf) => {
                let path = resolve(&mut old, steps);
                set(&mut old, &path, leaf.value());
            }
        }
    }
    let (operation, old) = if input.update {
        ("UPDATE", Some(&old))
    } else {
        ("CREATE", None)
    };

    // Edits can nest a path past serde_json's limit of 128 levels, which the webhook answers with the documented
    // 400 `too-deep` (found by the long run); close to that depth only a well-formed answer or that 400 is asked for.
    if depth(&object).max(old.map_or(0, depth)) >= 110 {
        let admission = admission();
        reset(admission);
        let body = review(&kind, &object, old, operation);
        let answer = admission.review(Endpoint::Mutate, &body);
        check_answer(Endpoint::Mutate, &body, &answer);
        if let Err(refused) = answer {
            assert_eq!(refused.reason, "too-deep", "{}", refused.message);
        }
        return;
    }
    let (patch, allowed) = mutate(&review(&kind, &object, old, operation));
    let mut patched = object.clone();
    if let Some(patch) = &patch {
        json_patch::patch(&mut patched, patch).expect("the mutate patch applies to the object");
    }
    assert_eq!(
        unknown_fields(&object),
        unknown_fields(&patched),
        "fields the webhook does not know were changed"
    );
    assert_eq!(object.get("status"), patched.get("status"), "mutation touched status");
    // Without a patch the object sent again is the same request.
    if allowed && patch.is_some() {
        let (again, allowed_again) = mutate(&review(&kind, &patched, old, operation));
        assert!(
            again.is_none(),
            "not idempotent: the mutated object gets another patch: {}",
            serde_json::to_string(&again).unwrap_or_default()
        );
        assert!(allowed_again, "the mutated object is denied by /mutate");
    }
    // /validate sees what /mutate made (the API server validates after mutating); odd inputs, to halve the cost.
    if input.edits.len() % 2 == 1 {
        validate(&review(&kind, &patched, old, operation));
    }
});
