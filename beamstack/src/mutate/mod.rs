//! Mutation: object in, JSON patch out.
//!
//! The object is edited as raw JSON (a copy of what the API server sent) and the patch is the diff between the two,
//! so fields Beamstack does not model can neither be dropped nor reordered. Every step only fills what is unset or
//! reconciles what Beamstack owns (the harness container), which makes a second pass over the result a no-op.
//! `status` is never touched: every step writes below `spec` or into Beamstack's own annotations.

mod flink;
pub use flink::MERGE_BY_NAME_KEY;
mod harness;
mod spark;

use crate::config::Config;
use crate::kinds::RunnerKind;
use serde_json::Value;

use crate::contract::{ANNOTATION_MUTATED_BY, ANNOTATION_MUTATIONS};

/// What one mutation did: the fields it set, as dotted paths.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes(Vec<String>);

impl Changes {
    pub fn note(&mut self, what: impl Into<String>) {
        self.0.push(what.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

/// The outcome of mutating one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    pub patch: json_patch::Patch,
    pub changes: Changes,
}

impl Mutation {
    pub fn is_empty(&self) -> bool {
        self.patch.0.is_empty()
    }
}

/// Computes defaults and harness injection for a runner CR.
pub fn mutate(kind: RunnerKind, object: &Value, config: &Config) -> Mutation {
    let mut mutated = object.clone();
    let changes = apply(kind, &mut mutated, config);
    Mutation {
        patch: json_patch::diff(object, &mutated),
        changes,
    }
}

/// Applies every mutation step to `object` in place and records what changed in the annotations.
pub fn apply(kind: RunnerKind, object: &mut Value, config: &Config) -> Changes {
    let changes = apply_defaults(kind, object, config);
    if !changes.is_empty() {
        annotate(object, &changes);
    }
    changes
}

/// Built-in defaults and harness injection, without the annotation (so policy mutations can join the same note).
pub(crate) fn apply_defaults(kind: RunnerKind, object: &mut Value, config: &Config) -> Changes {
    let mut changes = Changes::default();
    if !object.is_object() {
        return changes;
    }
    let harness = crate::harness::harness_for(object, &config.harness).ok().flatten();
    match kind {
        RunnerKind::FlinkDeployment => {
            flink::apply_defaults(object, &config.flink, &mut changes);
            if let Some(spec) = &harness {
                flink::inject_harness(object, spec, &config.harness, &mut changes);
            }
        }
        // A session job runs on a session cluster, which carries the resources and the harness.
        RunnerKind::FlinkSessionJob => {}
        RunnerKind::SparkApplication | RunnerKind::ScheduledSparkApplication => {
            let spec_path = kind.spec_path();
            spark::apply_defaults(object, spec_path, &config.spark, &mut changes);
            if let Some(spec) = &harness {
                spark::inject_harness(object, spec_path, spec, &config.harness, &mut changes);
            }
        }
    }
    changes
}

/// Records which Beamstack version mutated the object and what it set.
pub(crate) fn annotate(object: &mut Value, changes: &Changes) {
    if let Some(annotations) = crate::tree::object_at(object, &["metadata", "annotations"]) {
        annotations.insert(
            ANNOTATION_MUTATED_BY.to_owned(),
            Value::from(format!("beam-webhook {}", crate::VERSION)),
        );
        annotations.insert(
            ANNOTATION_MUTATIONS.to_owned(),
            Value::from(changes.as_slice().join(", ")),
        );
    }
}
