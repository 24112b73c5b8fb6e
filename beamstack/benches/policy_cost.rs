//! Cost of one admission with 0, 10 and 50 RunnerPolicies, measured through `Admission::review` (parse, built-in
//! rules, policies, answer), in one process on one core. The policies are the shipped ones (copied under new
//! names to reach 50), with a tenant whose budget, allowances and defaults make every tenant rule evaluate.
//!
//! Run: `cargo bench -p webhook --bench policy_cost` (prints p50, p99 and mean per admission, in µs).

use beamstack::admission::{Admission, Endpoint};
use beamstack::config::Config;
use beamstack::policy::engine::Engine;
use beamstack::policy::load;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TENANT: &str = r#"
apiVersion: beamstack.dev/v1alpha1
kind: Tenant
metadata: {name: team-a}
spec:
  namespaces: [team-a]
  budget: {cpu: "200", memory: 800Gi, jobs: 100, workers: 200, perJob: {cpu: "40", memory: 200Gi, workers: 50}}
  defaults: {nodeSelector: {pool: team-a}, volcanoQueue: team-a}
  allowances: {registries: [docker.io/apache], flinkVersions: [v1_20, v2_0]}
"#;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `count` policies: the shipped ones, renamed copies after the first round.
fn policies(count: usize) -> Vec<load::Document> {
    let shipped: Vec<load::Document> = load::read(&repo().join("policies"))
        .unwrap()
        .into_iter()
        .filter(|document| document.value["kind"] == "RunnerPolicy")
        .collect();
    (0..count)
        .map(|index| {
            let mut document = shipped[index % shipped.len()].clone();
            let name = document.value["metadata"]["name"].as_str().unwrap().to_owned();
            document.value["metadata"]["name"] = json!(format!("{name}-{index}"));
            document
        })
        .collect()
}

fn admission(count: usize) -> Admission {
    let engine = Engine::standard();
    let mut documents = policies(count);
    documents.extend(load::documents(Path::new("tenant.yaml"), TENANT).unwrap());
    let (set, _, _) = load::build(&documents, engine.runtime()).unwrap();
    engine.install(set);
    Admission::with_engine(Config::default(), engine)
}

fn review(object: &Value) -> Vec<u8> {
    serde_json::to_vec(&beamstack::admission::review::review_of(object, None, "CREATE")).unwrap()
}

fn measure(admission: &Admission, endpoint: Endpoint, body: &[u8], rounds: usize) -> Vec<Duration> {
    for _ in 0..rounds / 10 {
        admission.review(endpoint, body).unwrap();
    }
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        let outcome = admission.review(endpoint, body).unwrap();
        samples.push(started.elapsed());
        std::hint::black_box(outcome);
    }
    samples.sort();
    samples
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn main() {
    let text = std::fs::read_to_string(repo().join("policies/tests/resources/flink-pipeline.yaml")).unwrap();
    let object: Value = serde_saphyr::from_str(&text).unwrap();
    // Validation sees the mutated object, as in the API server.
    let plain = admission(0);
    let mutated_body = review(&object);
    let outcome = plain.review(Endpoint::Mutate, &mutated_body).unwrap();
    let mut mutated = object.clone();
    json_patch::patch(&mut mutated, &outcome.review.decoded_patch().unwrap()).unwrap();
    let validate_body = review(&mutated);

    let rounds = 5000;
    println!(
        "policy_cost: one admission of a {}-byte FlinkDeployment review, {rounds} rounds each",
        validate_body.len()
    );
    println!(
        "{:<10} {:>9} {:>10} {:>10} {:>10} {:>16}",
        "endpoint", "policies", "p50 µs", "p99 µs", "mean µs", "µs per policy"
    );
    for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
        let body = if endpoint == Endpoint::Validate {
            &validate_body
        } else {
            &mutated_body
        };
        let mut baseline = 0.0;
        for count in [0, 10, 50] {
            let admission = admission(count);
            let outcome = admission.review(endpoint, body).unwrap();
            assert!(
                outcome.review.response.allowed,
                "{count} policies: {:?}",
                outcome.review.response.status
            );
            let samples = measure(&admission, endpoint, body, rounds);
            let mean = micros(samples.iter().sum::<Duration>()) / samples.len() as f64;
            let p50 = micros(samples[samples.len() / 2]);
            let p99 = micros(samples[samples.len() * 99 / 100]);
            if count == 0 {
                baseline = p50;
            }
            let per_policy = if count == 0 {
                "-".to_owned()
            } else {
                format!("{:.2}", (p50 - baseline) / count as f64)
            };
            println!(
                "{:<10} {count:>9} {p50:>10.1} {p99:>10.1} {mean:>10.1} {per_policy:>16}",
                endpoint.as_str()
            );
        }
    }
}
