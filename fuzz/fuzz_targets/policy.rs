//! RunnerPolicy compilation and evaluation with the webhook's policy code (policy::load, compile, engine, runtime).
//!
//! The first byte picks the mode:
//! - a policy file: the rest is YAML, split into documents and built as `--policies DIR` builds a folder;
//! - a CEL expression: the rest is put into one slot of a policy (a validation, a messageExpression, a match
//!   condition, a variable, a mutation's expression, or a mutation's path and expression), with the action and
//!   failure policy the first byte also picks.
//!
//! Asserts: no panic; a set that does not compile is a list of errors with messages (file and line); the webhook's
//! own judgement of a RunnerPolicy object on /validate agrees with the file loader (a policy that compiles is
//! admitted, one that does not is refused with the error); and when the set compiles, /mutate and /validate of the
//! fixture reviews (a FlinkDeployment or a SparkApplication, both Beam pipelines of the tenant's namespace) answer
//! well-formed AdmissionReviews, a 500 (a panic the server caught) counting as a crash, and patches apply.

#![no_main]

use beamstack::admission::{Admission, Endpoint};
use beamstack::policy::engine::{Engine, Limits};
use beamstack::policy::load::{self, Document};
use beamstack::policy::runtime::Runtime;
use beamstack_fuzz::{TENANT, check_answer, config, engine_with, fixture, patch_of};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

struct Setup {
    runtime: Arc<Runtime>,
    /// Judges RunnerPolicy objects (no policies of its own).
    judge: Admission,
    tenant: Vec<Document>,
    reviews: Vec<Vec<u8>>,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let runtime = Arc::new(Runtime::new());
        let engine = engine_with(&[], Arc::clone(&runtime)).expect("an empty set compiles");
        let reviews = [
            "reviews/flink-pipeline-create.json",
            "reviews/spark-pipeline-create.json",
        ]
        .iter()
        .map(|name| {
            let mut review = fixture(name);
            review["request"]["object"]["metadata"]["labels"]["team"] = json!("team-a");
            serde_json::to_vec(&review).expect("review JSON")
        })
        .collect();
        Setup {
            runtime,
            judge: Admission::with_engine(config(), engine),
            tenant: load::documents(Path::new("tenant.yaml"), TENANT).expect("tenant YAML"),
            reviews,
        }
    })
}

fn policy_document(slot: u8, action: &str, failure_policy: &str, text: &str) -> Value {
    let mut spec = json!({
        "action": action,
        "failurePolicy": failure_policy,
        "match": {"kinds": ["FlinkDeployment", "SparkApplication"]},
    });
    match slot % 6 {
        0 => spec["validations"] = json!([{"expression": text, "message": "fuzz"}]),
        1 => spec["validations"] = json!([{"expression": "false", "messageExpression": text}]),
        2 => {
            spec["matchConditions"] = json!([{"name": "fuzz", "expression": text}]);
            spec["validations"] = json!([{"expression": "object.metadata.name != ''"}]);
        }
        3 => {
            spec["variables"] = json!([{"name": "fuzz", "expression": text}]);
            spec["validations"] = json!([{"expression": "variables.fuzz == variables.fuzz"}]);
        }
        4 => spec["mutations"] = json!([{"path": "spec.fuzzed", "expression": text}]),
        _ => {
            let (path, expression) = text.split_once('\n').unwrap_or((text, "'fuzz'"));
            spec["mutations"] = json!([{"path": path, "expression": expression, "strategy": "Replace"}]);
        }
    }
    json!({
        "apiVersion": "beamstack.dev/v1alpha1",
        "kind": "RunnerPolicy",
        "metadata": {"name": "fuzz"},
        "spec": spec,
    })
}

/// The webhook's answer to a RunnerPolicy object on /validate: allowed or not.
fn judged(setup: &Setup, object: &Value) -> bool {
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "fuzz",
            "kind": {"group": "beamstack.dev", "version": "v1alpha1", "kind": "RunnerPolicy"},
            "operation": "CREATE",
            "name": object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(""),
            "object": object,
        }
    });
    let body = serde_json::to_vec(&review).expect("review JSON");
    let answer = setup.judge.review(Endpoint::Validate, &body);
    check_answer(Endpoint::Validate, &body, &answer);
    answer
        .expect("a RunnerPolicy review is never a 400")
        .review
        .response
        .allowed
}

fn is_runner_policy(document: &Document) -> bool {
    document.value.get("apiVersion").and_then(Value::as_str) == Some("beamstack.dev/v1alpha1")
        && document.value.get("kind").and_then(Value::as_str) == Some("RunnerPolicy")
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let setup = setup();
    let file = PathBuf::from("fuzz.yaml");
    let mut documents = if mode % 4 == 0 {
        match load::documents(&file, text) {
            Ok(documents) => documents,
            Err(error) => {
                assert!(!error.message.is_empty());
                return;
            }
        }
    } else {
        let action = ["Deny", "Warn", "Audit"][usize::from(mode >> 2) % 3];
        let failure_policy = if mode & 0x80 == 0 { "Fail" } else { "Ignore" };
        let value = policy_document(mode >> 4, action, failure_policy, text);
        vec![Document {
            file: file.clone(),
            line: 1,
            text: serde_json::to_string(&value).expect("JSON"),
            value,
        }]
    };
    // The admission webhook judges each RunnerPolicy object as the file loader does.
    for document in documents.iter().filter(|document| is_runner_policy(document)) {
        let compiles = load::build(std::slice::from_ref(document), &setup.runtime).is_ok();
        assert_eq!(
            judged(setup, &document.value),
            compiles,
            "the webhook's judgement of a RunnerPolicy disagrees with the file loader: {}",
            document.value
        );
    }
    documents.extend(setup.tenant.iter().cloned());
    let engine = match load::build(&documents, &setup.runtime) {
        Ok((set, _, _)) => {
            let engine = Arc::new(Engine::new(Arc::clone(&setup.runtime), Limits::default()));
            engine.install(set);
            engine
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "a refused set without an error");
            for error in &errors {
                assert!(!error.message.is_empty());
                let _ = error.to_string();
            }
            return;
        }
    };
    let admission = Admission::with_engine(config(), engine);
    // One fixture per input (a FlinkDeployment or a SparkApplication), for speed.
    for body in setup.reviews.iter().skip(data.len() % 2).take(1) {
        for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
            let answer = admission.review(endpoint, body);
            check_answer(endpoint, body, &answer);
            let outcome = answer.expect("a fixture review is never a 400");
            if let Some(patch) = patch_of(&outcome) {
                let review: Value = serde_json::from_slice(body).expect("fixture JSON");
                let mut object = review["request"]["object"].clone();
                json_patch::patch(&mut object, &patch).expect("the mutate patch applies to the object");
            }
        }
    }
});
