//! Where one admission's policy time goes: per-policy time for the shipped policies, and the request scope.
//! Run: `cargo bench -p webhook --bench policy_breakdown`.

use beamstack::kinds::RunnerKind;
use beamstack::policy::engine::{Engine, Request};
use beamstack::policy::load;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

fn main() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let engine = Engine::standard();
    let mut documents = load::read(&repo.join("policies")).unwrap();
    documents.extend(
        load::documents(
            Path::new("tenant.yaml"),
            "apiVersion: beamstack.dev/v1alpha1\nkind: Tenant\nmetadata: {name: team-a}\nspec:\n  namespaces: [team-a]\n  budget: {cpu: \"200\", memory: 800Gi, jobs: 100, workers: 200}\n  allowances: {registries: [docker.io/apache], flinkVersions: [v1_20]}\n",
        )
        .unwrap(),
    );
    let (set, _, _) = load::build(&documents, engine.runtime()).unwrap();
    engine.install(set);
    let text = std::fs::read_to_string(repo.join("policies/tests/resources/flink-pipeline.yaml")).unwrap();
    let object: Value = serde_saphyr::from_str(&text).unwrap();
    let request = Request {
        kind: RunnerKind::FlinkDeployment,
        create: true,
        object: &object,
        old_object: None,
        namespace: "team-a",
        name: "wordcount",
        user_info: None,
        dry_run: true,
    };
    let rounds = 3000;
    let mut per_policy: BTreeMap<String, Duration> = BTreeMap::new();
    let started = Instant::now();
    for _ in 0..rounds {
        for stat in engine.validate(&request).stats {
            *per_policy.entry(stat.policy).or_default() += stat.elapsed;
        }
    }
    let total = started.elapsed() / rounds;
    let policies: Duration = per_policy.values().sum::<Duration>() / rounds;
    println!(
        "validate with {} policies: {:.1} µs per request, of which policies {:.1} µs, scope and matching {:.1} µs",
        per_policy.len(),
        total.as_secs_f64() * 1e6,
        policies.as_secs_f64() * 1e6,
        (total - policies).as_secs_f64() * 1e6
    );
    let mut rows: Vec<_> = per_policy.into_iter().collect();
    rows.sort_by_key(|(_, elapsed)| std::cmp::Reverse(*elapsed));
    for (policy, elapsed) in rows {
        println!("  {policy:<28} {:>8.1} µs", (elapsed / rounds).as_secs_f64() * 1e6);
    }
}
