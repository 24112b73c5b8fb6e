//! Helpers shared by the webhook's integration tests: fixtures, AdmissionReview bodies, the router, patches and the
//! operators' CRD schemas.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use beamstack::admission::Admission;
use beamstack::config::Config;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};
use tower::ServiceExt;
use webhook::server::{AppState, admission_router};

pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(relative)
}

/// A runner object from `testdata/fixtures/objects/<name>.yaml`, as the JSON the API server would send.
pub fn fixture(name: &str) -> Value {
    let path = repo_path(&format!("testdata/fixtures/objects/{name}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn group_version_kind(object: &Value) -> (String, String, String) {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    (
        group.into(),
        version.into(),
        object["kind"].as_str().unwrap_or("Unknown").into(),
    )
}

/// An `admission.k8s.io/v1` AdmissionReview as the API server sends it.
pub fn review(operation: &str, object: &Value, old_object: Option<&Value>) -> Value {
    let (group, version, kind) = group_version_kind(object);
    let plural = format!("{}s", kind.to_lowercase());
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": plural},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "requestResource": {"group": group, "version": version, "resource": plural},
            "name": object["metadata"]["name"],
            "namespace": object["metadata"]["namespace"],
            "operation": operation,
            "userInfo": {"username": "alice", "uid": "1", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": old_object.cloned().unwrap_or(Value::Null),
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

pub fn state(config: Config) -> Arc<AppState> {
    AppState::new(Admission::new(config))
}

/// POSTs a body to the admission router (no sockets) and returns the status and JSON answer.
pub async fn post(state: &Arc<AppState>, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = admission_router(Arc::clone(state)).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}

/// The `response` of an AdmissionReview answer to `review`, sent to `path`; fails the test on a non-200 answer.
pub async fn answer(state: &Arc<AppState>, path: &str, review: &Value) -> Value {
    let (status, body) = post(state, path, serde_json::to_vec(review).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(body["kind"], "AdmissionReview");
    assert_eq!(
        body["response"]["uid"], review["request"]["uid"],
        "the answer must echo the request's uid"
    );
    body["response"].clone()
}

/// The JSON patch in an answer, decoded; an empty patch when the answer has none.
pub fn patch_of(response: &Value) -> json_patch::Patch {
    use base64::Engine;
    match response.get("patch").and_then(Value::as_str) {
        None => json_patch::Patch(Vec::new()),
        Some(encoded) => {
            assert_eq!(response["patchType"], "JSONPatch");
            let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
            serde_json::from_slice(&bytes).unwrap()
        }
    }
}

/// Runs `/mutate` on an object and returns the patched object and the patch.
pub async fn mutated(state: &Arc<AppState>, operation: &str, object: &Value) -> (Value, json_patch::Patch) {
    let response = answer(state, "/mutate", &review(operation, object, None)).await;
    assert_eq!(response["allowed"], true, "mutation never denies: {response}");
    let patch = patch_of(&response);
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).unwrap();
    (patched, patch)
}

/// Runs `/validate` and returns the response.
pub async fn validated(state: &Arc<AppState>, operation: &str, object: &Value, old: Option<&Value>) -> Value {
    answer(state, "/validate", &review(operation, object, old)).await
}

/// The fields named by the causes of a denial.
pub fn denied_fields(response: &Value) -> Vec<String> {
    response["status"]["details"]["causes"]
        .as_array()
        .map(|causes| {
            causes
                .iter()
                .filter_map(|cause| cause["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

static SCHEMAS: LazyLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = LazyLock::new(Default::default);

/// The CRD's openAPIV3Schema for an object's kind, from `testdata/crds/` (the operators' releases we test).
pub fn crd_validator(kind: &str) -> Arc<jsonschema::Validator> {
    let file = match kind {
        "FlinkDeployment" => "flinkdeployments.flink.apache.org-v1.yml",
        "FlinkSessionJob" => "flinksessionjobs.flink.apache.org-v1.yml",
        "SparkApplication" => "sparkoperator.k8s.io_sparkapplications.yaml",
        "ScheduledSparkApplication" => "sparkoperator.k8s.io_scheduledsparkapplications.yaml",
        other => panic!("no CRD for {other}"),
    };
    schema_validator(file)
}

/// The FlinkDeployment CRD of the Flink operator's main branch (1.16: `resources` with requests and limits).
pub fn flink_main_crd_validator() -> Arc<jsonschema::Validator> {
    schema_validator("flink-main/flinkdeployments.flink.apache.org-v1.yml")
}

fn schema_validator(file: &str) -> Arc<jsonschema::Validator> {
    let mut cache = SCHEMAS.lock().unwrap();
    Arc::clone(cache.entry(file.to_owned()).or_insert_with(|| {
        let text = std::fs::read_to_string(repo_path(&format!("testdata/crds/{file}"))).unwrap();
        let crd: Value = serde_saphyr::from_str(&text).unwrap();
        let schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
        Arc::new(jsonschema::validator_for(&schema).unwrap())
    }))
}

/// Every schema error of `object` against `validator`, with where it is.
pub fn schema_errors(validator: &jsonschema::Validator, object: &Value) -> Vec<String> {
    validator
        .iter_errors(object)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect()
}

/// Fails the test with every schema error when `object` is not valid against its kind's CRD.
pub fn assert_valid_against_crd(object: &Value) {
    let kind = object["kind"].as_str().unwrap();
    let errors = schema_errors(&crd_validator(kind), object);
    assert!(
        errors.is_empty(),
        "{kind} {} is not valid against its CRD:\n{}",
        object["metadata"]["name"],
        errors.join("\n")
    );
}
