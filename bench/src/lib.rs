//! What the benchmark binaries share: the review every benchmark sends, the policy folder the webhook loads, and the
//! runner objects that fill the tenants' usage ledger. See `bench/run.sh` for how they are put together.

pub mod load;

use beamstack::admission::{Admission, Endpoint};
use beamstack::config::Config;
use beamstack::policy::engine::Engine;
use beamstack::policy::load as policy_load;
use kube::ResourceExt;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The tenant of the reviewed object's namespace. The cluster would hold it as a Tenant object (the e2e harness
/// creates them through the API server); without a cluster it sits in the policy folder beside the shipped
/// policies, which the webhook loads the same way. Its budget is large enough for 10,000 running jobs, so every
/// tenant rule evaluates and the admission is allowed.
pub const TENANT: &str = r#"apiVersion: beamstack.dev/v1alpha1
kind: Tenant
metadata: {name: team-a}
spec:
  namespaces: [team-a, team-a-1, team-a-2, team-a-3, team-a-4, team-a-5, team-a-6, team-a-7, team-a-8, team-a-9]
  budget: {cpu: "1000000", memory: 100000Ti, jobs: 100000, workers: 1000000, perJob: {cpu: "40", memory: 200Gi, workers: 50}}
  defaults: {nodeSelector: {pool: team-a}, volcanoQueue: team-a}
  allowances: {registries: [docker.io/apache, apache], flinkVersions: [v1_20, v2_0]}
"#;

/// The repository root (this crate lives in `bench/`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A policy folder as `beam-webhook serve --policies` reads it: the shipped policies and the benchmark's tenant.
pub fn write_policy_folder(folder: &Path) {
    std::fs::create_dir_all(folder).expect("create the policy folder");
    for entry in std::fs::read_dir(repo().join("policies")).expect("policies/").flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "yaml") {
            std::fs::copy(&path, folder.join(entry.file_name())).expect("copy a policy");
        }
    }
    std::fs::write(folder.join("tenant-team-a.yaml"), TENANT).expect("write the tenant");
}

/// The shipped RunnerPolicies (`policies/*.yaml`, as the chart's ConfigMap and the e2e harness take them).
pub fn shipped_policies() -> Vec<policy_load::Document> {
    let mut documents = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("policies"))
        .expect("policies/")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("policy file");
        documents.extend(policy_load::documents(&file, &text).expect("policy YAML"));
    }
    documents
        .into_iter()
        .filter(|document| document.value["kind"] == "RunnerPolicy")
        .collect()
}

/// `count` RunnerPolicies: the shipped ones, then renamed copies of them, round robin.
pub fn policies(count: usize) -> Vec<policy_load::Document> {
    let shipped = shipped_policies();
    (0..count)
        .map(|index| {
            let mut document = shipped[index % shipped.len()].clone();
            if index >= shipped.len() {
                let name = document.value["metadata"]["name"]
                    .as_str()
                    .unwrap_or("policy")
                    .to_owned();
                document.value["metadata"]["name"] = json!(format!("{name}-{index}"));
            }
            document
        })
        .collect()
}

/// An engine with `count` policies (see `policies`) and the tenant.
pub fn engine(count: usize) -> Arc<Engine> {
    let engine = Engine::standard();
    let mut documents = policies(count);
    documents.extend(policy_load::documents(Path::new("tenant.yaml"), TENANT).expect("tenant YAML"));
    let (set, _, _) = policy_load::build(&documents, engine.runtime()).expect("policies compile");
    engine.install(set);
    engine
}

/// A realistic FlinkDeployment CREATE review as the API server sends it to /mutate: the fixture of the router
/// tests (a Beam pipeline, 3 KB), with the `team` label the shipped `required-labels` policy asks for.
pub fn mutate_review() -> Value {
    let path = repo().join("testdata/fixtures/reviews/flink-pipeline-create.json");
    let mut review: Value = serde_json::from_slice(&std::fs::read(&path).expect("review fixture")).expect("JSON");
    review["request"]["object"]["metadata"]["labels"]["team"] = json!("team-a");
    review
}

/// The review /validate gets: the same request with the object as /mutate left it (the API server validates after
/// mutating).
pub fn validate_review(admission: &Admission) -> Value {
    let mut review = mutate_review();
    let body = serde_json::to_vec(&review).expect("JSON");
    let outcome = admission.review(Endpoint::Mutate, &body).expect("mutate");
    if let Some(patch) = outcome.review.decoded_patch() {
        json_patch::patch(&mut review["request"]["object"], &patch).expect("patch applies");
    }
    review
}

/// The webhook's answer to `body` (what the baseline server sends back unchanged).
pub fn answer(admission: &Admission, endpoint: Endpoint, body: &[u8]) -> Vec<u8> {
    let outcome = admission.review(endpoint, body).expect("review");
    assert!(
        outcome.review.response.allowed,
        "the benchmark review must be allowed: {:?}",
        outcome.review.response.status
    );
    serde_json::to_vec(&outcome.review).expect("JSON")
}

/// The admission logic with `count` policies and the tenant, default configuration.
pub fn admission(count: usize) -> Admission {
    Admission::with_engine(Config::default(), engine(count))
}

/// The runner CRs of a busy cluster, one at a time (as list pages deliver them, never all at once): `count` objects,
/// 7 in 10 FlinkDeployments and 3 in 10 SparkApplications (the fixtures, renamed), spread over 100 namespaces of
/// which the tenant's ten are `team-a`, `team-a-1`..`team-a-9`.
pub fn runner_objects(count: usize) -> impl Iterator<Item = Value> {
    let read = |name: &str| -> Value {
        let path = repo().join("testdata/fixtures/reviews").join(name);
        let review: Value = serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("JSON");
        review["request"]["object"].clone()
    };
    let flink = read("flink-pipeline-create.json");
    let spark = read("spark-pipeline-create.json");
    (0..count).map(move |index| {
        let mut object = if index % 10 < 7 { flink.clone() } else { spark.clone() };
        let namespace = match index % 100 {
            0 => "team-a".to_owned(),
            n @ 1..=9 => format!("team-a-{n}"),
            n => format!("other-{n}"),
        };
        object["metadata"]["name"] = json!(format!("job-{index}"));
        object["metadata"]["namespace"] = json!(namespace);
        object["metadata"]["uid"] = json!(format!("00000000-0000-0000-0000-{index:012}"));
        object["metadata"]["resourceVersion"] = json!(format!("{}", 1000 + index));
        object
    })
}

/// This process's resident set (VmRSS) and its peak (VmHWM), in bytes, from /proc.
pub fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Feeds `count` runner CRs to the ledger as `policy::cluster::watch_runners` does: the objects arrive as list pages
/// of 500 (kube's watcher default), are decoded as `DynamicObject`s, and each is reduced to its key and demand; the
/// watch keeps the `namespace/name` of every object it has seen to forget deleted ones after a re-list.
pub fn fill(engine: &Engine, count: usize) -> std::collections::HashSet<String> {
    let mut seen = std::collections::HashSet::with_capacity(count);
    let mut objects = runner_objects(count).peekable();
    while objects.peek().is_some() {
        let page: Vec<serde_json::Value> = objects.by_ref().take(500).collect();
        let text = serde_json::to_vec(&page).expect("JSON");
        drop(page);
        let decoded: Vec<kube::api::DynamicObject> = serde_json::from_slice(&text).expect("DynamicObject");
        for object in &decoded {
            let value = serde_json::to_value(object).unwrap_or_default();
            let kind = beamstack::kinds::RunnerKind::of_object(&value).expect("runner kind");
            let key = beamstack::policy::usage::ObjectKey::new(
                kind,
                &object.namespace().unwrap_or_default(),
                &object.name_any(),
            );
            seen.insert(format!("{}/{}", key.namespace, key.name));
            let demand = beamstack::policy::demand::demand_of(kind, &value);
            engine.with_ledger(|ledger| ledger.observe(key, demand));
        }
    }
    seen
}
