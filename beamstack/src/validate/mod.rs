//! Built-in validation: object in, every violation out.
//!
//! Rules never stop at the first problem: a denial lists all of them, each with the field it concerns, so one
//! round trip tells the user everything to fix. Rules follow the operators' own admission checks (docs/webhook.md's
//! rule table) plus the platform's choices from the configuration (registries, supported Flink versions).

mod flink;
mod images;
mod spark;

use crate::config::Config;
use crate::kinds::RunnerKind;
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// One broken rule: the field it concerns, what is wrong and what to do, and the rule's name (a metric label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub message: String,
    pub rule: Cow<'static, str>,
}

impl Violation {
    pub fn new(rule: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            rule: Cow::Borrowed(rule),
        }
    }

    /// A failed validation of a RunnerPolicy; its rule label is `policy/<name>`.
    pub fn from_policy(policy: &str, field: Option<String>, message: &str) -> Self {
        Self {
            field: field.unwrap_or_default(),
            message: format!("[policy {policy}] {message}"),
            rule: Cow::Owned(format!("policy/{policy}")),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// What a rule may look at besides the object.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub kind: RunnerKind,
    pub object: &'a Value,
    /// The stored object on UPDATE; rules about transitions read it.
    pub old_object: Option<&'a Value>,
    pub namespace: Option<&'a str>,
}

/// Runs every built-in rule for the subject's kind.
pub fn validate(subject: &Subject<'_>, config: &Config) -> Vec<Violation> {
    let mut violations = Vec::new();
    if !subject.object.is_object() {
        violations.push(Violation::new("object", "", "the object must be a JSON object"));
        return violations;
    }
    match subject.kind {
        RunnerKind::FlinkDeployment => flink::deployment(subject, config, &mut violations),
        RunnerKind::FlinkSessionJob => flink::session_job(subject, &mut violations),
        RunnerKind::SparkApplication | RunnerKind::ScheduledSparkApplication => {
            spark::application(subject, &mut violations)
        }
    }
    images::check(subject, config, &mut violations);
    violations
}

/// The message of a denial: every violation on a line of its own, so kubectl prints a readable list.
pub(crate) fn denial_message(kind: &str, name: &str, violations: &[Violation]) -> String {
    let count = violations.len();
    let noun = if count == 1 { "problem" } else { "problems" };
    let mut message = format!("{kind} {name:?} has {count} {noun}:");
    for violation in violations {
        message.push_str("\n- ");
        message.push_str(&violation.to_string());
    }
    message
}

/// A dotted path with the JSON-path style index for arrays: `spec.containers[1].image`.
/// What is wrong with a count the operators read as a Kubernetes int32 (replicas, parallelism, instances), if
/// anything: it must be a whole number from 1 to 2147483647.
pub(crate) fn count_fault(value: &serde_json::Value) -> Option<String> {
    match value.as_i64() {
        Some(count) if (1..=i64::from(i32::MAX)).contains(&count) => None,
        _ => Some(format!("must be a whole number from 1 to 2147483647, got {value}")),
    }
}

pub(crate) fn field(path: &[&str], rest: &str) -> String {
    crate::tree::dotted(path, rest)
}
