//! What the fuzz targets share: the admission logic as the server builds it (the shipped policies, a tenant, a
//! configuration with every default switched on), the repository's fixtures, and the checks every answer must pass.

use base64::Engine as _;
use beamstack::admission::review::AdmissionReviewResponse;
use beamstack::admission::{Admission, BadRequest, Endpoint, Outcome};
use beamstack::config::Config;
use beamstack::policy::engine::{Engine, Limits};
use beamstack::policy::load;
use beamstack::policy::runtime::Runtime;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// The tenant of the fixtures' namespace (`team-a`), as in bench/src/lib.rs: the tenant policies evaluate.
pub const TENANT: &str = r#"apiVersion: beamstack.dev/v1alpha1
kind: Tenant
metadata: {name: team-a}
spec:
  namespaces: [team-a, team-b]
  budget: {cpu: "64", memory: 256Gi, jobs: 20, workers: 100, perJob: {cpu: "40", memory: 200Gi, workers: 50}}
  defaults: {nodeSelector: {pool: team-a}, volcanoQueue: team-a}
  allowances: {registries: [docker.io/apache, apache], flinkVersions: [v1_20, v2_0]}
"#;

/// A configuration with every default that can be on switched on, so the fuzzers reach placement and queues too.
pub const CONFIG: &str = r#"
flink:
  serviceAccount: flink
  jobManager: {cpu: 1, memory: 2048m}
  taskManager: {cpu: 1, memory: 2048m}
  placement:
    tolerations:
      - {key: dedicated, operator: Equal, value: beam, effect: NoSchedule}
    nodeSelector: {pool: beam}
    priorityClassName: batch-low
spark:
  serviceAccount: spark
  executorInstances: 1
  volcanoQueue: analytics
  placement:
    tolerations:
      - {key: dedicated, operator: Equal, value: spark, effect: NoSchedule}
    nodeSelector: {pool: spark}
    priorityClassName: batch-low
validation:
  allowedRegistries: [docker.io/apache, docker.io/library, ghcr.io/acme]
"#;

/// The repository root (this crate lives in `fuzz/`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn config() -> Config {
    Config::from_yaml(CONFIG).expect("the fuzz configuration")
}

/// The documents of the shipped policies (`policies/*.yaml`, not the tests below it) and the tenant.
pub fn shipped_documents() -> Vec<load::Document> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("policies"))
        .expect("policies/")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "yaml"))
        .collect();
    files.sort();
    let mut documents = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("policy file");
        documents.extend(load::documents(&file, &text).expect("policy YAML"));
    }
    documents.extend(load::documents(Path::new("tenant.yaml"), TENANT).expect("tenant YAML"));
    documents
}

/// An engine with `documents` compiled and installed; `None` when they do not compile.
pub fn engine_with(documents: &[load::Document], runtime: Arc<Runtime>) -> Option<Arc<Engine>> {
    let (set, _, _) = load::build(documents, &runtime).ok()?;
    let engine = Arc::new(Engine::new(runtime, Limits::default()));
    engine.install(set);
    Some(engine)
}

/// The admission logic of a server started with `--policies policies/` (and the tenant) and `CONFIG`, built once.
pub fn admission() -> &'static Admission {
    static ADMISSION: OnceLock<Admission> = OnceLock::new();
    ADMISSION.get_or_init(|| {
        let engine = engine_with(&shipped_documents(), Arc::new(Runtime::new())).expect("shipped policies compile");
        Admission::with_engine(config(), engine)
    })
}

/// Forgets the reservations earlier inputs made (an allowed /validate reserves the job's demand for a while), so
/// every input meets the same state and a crash reproduces from its input alone.
pub fn reset(admission: &Admission) {
    if let Some(engine) = admission.engine() {
        engine.with_ledger(|ledger| *ledger = Default::default());
    }
}

/// A fixture review or object from testdata/fixtures, parsed.
pub fn fixture(relative: &str) -> Value {
    let path = repo().join("testdata/fixtures").join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    if relative.ends_with(".json") {
        serde_json::from_str(&text).expect("fixture JSON")
    } else {
        let documents = load::documents(Path::new(relative), &text).expect("fixture YAML");
        documents.into_iter().next().expect("one document").value
    }
}

/// The reasons `Admission::review` gives for a 400 (webhook/src/admission/mod.rs); anything else is a new one.
pub const BAD_REQUEST_REASONS: &[&str] = &[
    "not-admission-review",
    "malformed-json",
    "too-deep",
    "invalid-field",
    "wrong-api-version",
    "missing-request",
    "missing-uid",
];

/// What the server sends for a body: a well-formed AdmissionReview answer, or a 400 with a known reason. Returns
/// the answer, serialised and parsed back as the API server would read it.
pub fn check_answer(endpoint: Endpoint, body: &[u8], answer: &Result<Outcome, BadRequest>) -> Option<Value> {
    match answer {
        Err(bad) => {
            assert!(
                BAD_REQUEST_REASONS.contains(&bad.reason),
                "unknown 400 reason {:?}: {}",
                bad.reason,
                bad.message
            );
            assert!(!bad.message.is_empty(), "a 400 without a message");
            // The answer is a JSON error body: the message must survive serialisation.
            serde_json::to_vec(&serde_json::json!({"message": bad.message})).expect("400 body");
            None
        }
        Ok(outcome) => {
            let review = &outcome.review;
            let bytes = serde_json::to_vec(review).expect("an AdmissionReview answer serialises");
            let value: Value = serde_json::from_slice(&bytes).expect("the answer is JSON");
            check_review(endpoint, body, review, &value);
            assert_eq!(
                outcome.record.allowed, review.response.allowed,
                "record and answer disagree"
            );
            assert_eq!(
                outcome.record.patched,
                review.response.patch.is_some(),
                "record and answer disagree"
            );
            Some(value)
        }
    }
}

fn check_review(endpoint: Endpoint, body: &[u8], review: &AdmissionReviewResponse, value: &Value) {
    assert_eq!(value["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(value["kind"], "AdmissionReview");
    let response = &review.response;
    // The uid is the request's: the API server matches answers by it.
    // (serde skips unknown fields without checking their strings are UTF-8, so the body may not parse as a Value.)
    if let Ok(request) = serde_json::from_slice::<Value>(body) {
        assert_eq!(
            request["request"]["uid"].as_str(),
            Some(response.uid.as_str()),
            "the answer's uid is not the request's"
        );
    }
    assert!(!response.uid.is_empty());
    match &response.status {
        Some(status) => {
            assert!(!response.allowed, "a status on an allowed answer");
            let code = status.code.expect("a denial has a code");
            assert!((400..600).contains(&code), "denial code {code}");
            assert!(
                status.message.as_deref().is_some_and(|message| !message.is_empty()),
                "a denial without a message"
            );
            if code == 500 {
                panic!(
                    "an admission rule panicked (caught, answered 500): {:?}",
                    status.message
                );
            }
        }
        None => assert!(response.allowed, "a denial without a status"),
    }
    match (&response.patch, response.patch_type) {
        (None, None) => {}
        (Some(patch), Some("JSONPatch")) => {
            assert_eq!(endpoint, Endpoint::Mutate, "/validate answered with a patch");
            assert!(response.allowed, "a patch on a denial");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(patch)
                .expect("the patch is base64");
            let patch: json_patch::Patch = serde_json::from_slice(&bytes).expect("the patch is a JSON patch");
            assert!(!patch.0.is_empty(), "an empty patch is sent as no patch");
        }
        other => panic!("patch and patchType disagree: {other:?}"),
    }
}

/// The JSON patch of an answer, decoded.
pub fn patch_of(outcome: &Outcome) -> Option<json_patch::Patch> {
    outcome.review.decoded_patch()
}
