//! The offline policy-test runner (`kubectl beam policy test`): resources that must pass and resources that must fail, run offline through the very admission
//! code the webhook runs (`/mutate`, then `/validate` on the patched object).
//!
//! A `PolicyTest` file names the policy files under test, the tenants, namespaces and usage the cases assume, and
//! the cases: a resource (a file, optionally with `set:` overrides of dotted paths) and what the policies must say.
//!
//! ```yaml
//! apiVersion: beamstack.dev/v1alpha1
//! kind: PolicyTest
//! metadata: {name: tenant-budget}
//! spec:
//!   policies: [../tenant-budget.yaml]
//!   tenants: [{metadata: {name: team-a}, spec: {namespaces: [team-a], budget: {cpu: "10"}}}]
//!   namespaces: {team-a: {team: a}}
//!   usage: {team-a: {cpu: "8", memory: 20Gi, jobs: 2, workers: 4}}
//!   cases:
//!     - name: a small job fits
//!       resource: resources/flink-small.yaml
//!       expect: allow
//!     - name: a large one does not
//!       resource: resources/flink-small.yaml
//!       set: {spec.taskManager.replicas: 20}
//!       expect: deny
//!       messageContains: would use
//! ```

use crate::admission::review::review_of;
use crate::admission::{Admission, Endpoint};
use crate::config::Config;
use crate::policy::engine::{Engine, Limits, PolicySet};
use crate::policy::load::{self, Document, LoadError};
use crate::policy::model::Tenant;
use crate::policy::runtime::Runtime;
use crate::policy::tenants::TenantDirectory;
use crate::policy::usage::usage_from_json;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyTestSpec {
    /// Policy files (relative to the test file). Empty: every policy in the folder above the test file.
    #[serde(default)]
    pub policies: Vec<PathBuf>,
    #[serde(default)]
    pub tenants: Vec<Tenant>,
    /// Namespace labels, for namespace selectors, `namespaceObject` and label-selected tenants.
    #[serde(default)]
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// What each tenant already runs: `{cpu, memory, jobs, workers}`.
    #[serde(default)]
    pub usage: BTreeMap<String, Value>,
    pub cases: Vec<Case>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// A resource file, relative to the test file.
    #[serde(default)]
    pub resource: Option<PathBuf>,
    /// Or the resource inline.
    #[serde(default)]
    pub object: Option<Value>,
    /// Overrides: dotted path (numbers index lists) to value; null removes the field.
    #[serde(default)]
    pub set: BTreeMap<String, Value>,
    /// CREATE (default) or UPDATE; an UPDATE compares against `oldSet` applied to the same resource.
    #[serde(default)]
    pub operation: Option<String>,
    #[serde(default)]
    pub old_set: Option<BTreeMap<String, Value>>,
    /// allow, deny, warn or audit.
    pub expect: Expectation,
    #[serde(default)]
    pub message_contains: Option<String>,
    /// After mutation, these dotted paths must hold these values.
    #[serde(default)]
    pub patched: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expectation {
    Allow,
    Deny,
    Warn,
    Audit,
}

impl Expectation {
    pub fn as_str(self) -> &'static str {
        match self {
            Expectation::Allow => "allow",
            Expectation::Deny => "deny",
            Expectation::Warn => "warn",
            Expectation::Audit => "audit",
        }
    }
}

/// One case's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    pub test: String,
    pub case: String,
    pub expected: String,
    pub got: String,
    pub passed: bool,
    /// Messages, warnings and mismatches, for the report.
    pub detail: String,
}

fn problem(file: &Path, message: impl Into<String>) -> LoadError {
    LoadError {
        file: file.to_owned(),
        line: 0,
        message: message.into(),
    }
}

/// Runs every PolicyTest found below `dir`.
pub fn run_folder(dir: &Path) -> Result<Vec<CaseResult>, Vec<LoadError>> {
    let documents = load::read(dir)?;
    let tests: Vec<&Document> = documents
        .iter()
        .filter(|document| document.value.get("kind").and_then(Value::as_str) == Some("PolicyTest"))
        .collect();
    if tests.is_empty() {
        return Err(vec![problem(dir, "no PolicyTest documents found")]);
    }
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for test in tests {
        match run_test(test, dir) {
            Ok(mut cases) => results.append(&mut cases),
            Err(mut problems) => errors.append(&mut problems),
        }
    }
    if errors.is_empty() { Ok(results) } else { Err(errors) }
}

fn run_test(document: &Document, root: &Path) -> Result<Vec<CaseResult>, Vec<LoadError>> {
    let name = document
        .value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("unnamed")
        .to_owned();
    let spec: PolicyTestSpec = serde_path_to_error::deserialize(document.value.get("spec").unwrap_or(&Value::Null))
        .map_err(|error| {
            vec![LoadError {
                file: document.file.clone(),
                line: document.line,
                message: format!("PolicyTest {name}: {} at `spec.{}`", error.inner(), error.path()),
            }]
        })?;
    let base = document.file.parent().unwrap_or(root).to_owned();
    let policy_documents = if spec.policies.is_empty() {
        load::read(base.parent().unwrap_or(&base))?
    } else {
        let mut all = Vec::new();
        for file in &spec.policies {
            let path = base.join(file);
            let text = std::fs::read_to_string(&path).map_err(|error| vec![problem(&path, error.to_string())])?;
            all.extend(load::documents(&path, &text).map_err(|error| vec![error])?);
        }
        all
    };
    let runtime = Arc::new(Runtime::new());
    let (set, _, file_tenants) = load::build(&policy_documents, &runtime)?;
    let engine = Arc::new(Engine::new(runtime, Limits::default()));
    let mut tenants = file_tenants;
    tenants.extend(spec.tenants.iter().cloned());
    let labels: HashMap<String, BTreeMap<String, String>> = spec.namespaces.clone().into_iter().collect();
    engine.install(PolicySet {
        policies: set.policies,
        tenants: TenantDirectory::new(tenants, labels),
    });
    for (tenant, usage) in &spec.usage {
        let usage = usage_from_json(usage)
            .map_err(|message| vec![problem(&document.file, format!("usage of {tenant}: {message}"))])?;
        engine.state_usage(tenant, usage);
    }
    let admission = Admission::with_engine(Config::default(), engine);
    let mut results = Vec::new();
    for case in &spec.cases {
        let object = case_object(case, &base)
            .map_err(|message| vec![problem(&document.file, format!("case {:?}: {message}", case.name))])?;
        results.push(run_case(&admission, &name, case, object));
    }
    Ok(results)
}

fn case_object(case: &Case, base: &Path) -> Result<(Value, Option<Value>), String> {
    let mut object = match (&case.resource, &case.object) {
        (Some(file), None) => {
            let path = base.join(file);
            let text = std::fs::read_to_string(&path).map_err(|error| format!("{}: {error}", path.display()))?;
            serde_saphyr::from_str::<Value>(&text).map_err(|error| format!("{}: {error}", path.display()))?
        }
        (None, Some(object)) => object.clone(),
        _ => return Err("give exactly one of `resource` and `object`".into()),
    };
    let original = object.clone();
    for (path, value) in &case.set {
        set_path(&mut object, path, value.clone()).map_err(|error| error.to_string())?;
    }
    let old = match &case.old_set {
        None => None,
        Some(overrides) => {
            let mut old = original;
            for (path, value) in overrides {
                set_path(&mut old, path, value.clone()).map_err(|error| error.to_string())?;
            }
            Some(old)
        }
    };
    Ok((object, old))
}

/// A `set:` path that does not fit the object, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct BadPath {
    pub path: String,
    pub problem: String,
}

/// Sets (or with null, removes) the value at a dotted path; numeric segments index lists.
pub(crate) fn set_path(object: &mut Value, path: &str, value: Value) -> Result<(), BadPath> {
    let bad = |problem: String| BadPath {
        path: path.to_owned(),
        problem,
    };
    let segments: Vec<&str> = path.split('.').collect();
    let (last, parents) = segments.split_last().ok_or_else(|| bad("empty path".into()))?;
    let mut node = object;
    for segment in parents {
        node = match node {
            Value::Array(items) => {
                let index: usize = segment
                    .parse()
                    .map_err(|_| bad(format!("`{segment}` indexes a list")))?;
                items.get_mut(index).ok_or_else(|| bad(format!("no element {index}")))?
            }
            Value::Object(map) => map.entry(*segment).or_insert_with(|| json!({})),
            _ => return Err(bad(format!("`{segment}` is not inside an object or list"))),
        };
    }
    match node {
        Value::Object(map) if value.is_null() => {
            map.remove(*last);
        }
        Value::Object(map) => {
            map.insert((*last).to_owned(), value);
        }
        Value::Array(items) => {
            let index: usize = last.parse().map_err(|_| bad(format!("`{last}` indexes a list")))?;
            *items.get_mut(index).ok_or_else(|| bad(format!("no element {index}")))? = value;
        }
        _ => return Err(bad("the parent is not an object or list".into())),
    }
    Ok(())
}

fn get_path<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(object, |node, segment| match node {
        Value::Array(items) => items.get(segment.parse::<usize>().ok()?),
        Value::Object(map) => map.get(segment),
        _ => None,
    })
}

/// What the admission code says about one object: mutate, patch, validate.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    pub patched: Value,
    pub patch: Option<json_patch::Patch>,
    pub allowed: bool,
    pub message: String,
    /// Violations that came from policies (`[policy name] ...`), and from built-in rules.
    pub policy_violations: Vec<String>,
    pub builtin_violations: Vec<String>,
    pub warnings: Vec<String>,
    pub audit: BTreeMap<String, String>,
}

/// Why an object could not be run through the admission at all (a refusal is an `Evaluation`, not an error).
#[derive(Debug, thiserror::Error)]
pub enum EvaluationError {
    #[error("the AdmissionReview could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the admission code rejected the review: {0}")]
    Review(String),
    #[error("the mutation's patch does not apply: {0}")]
    Patch(#[from] json_patch::PatchError),
}

pub fn evaluate(
    admission: &Admission,
    object: &Value,
    old: Option<&Value>,
    operation: &str,
) -> Result<Evaluation, EvaluationError> {
    let body = serde_json::to_vec(&review_of(object, old, operation))?;
    let mutated = admission
        .review(Endpoint::Mutate, &body)
        .map_err(|error| EvaluationError::Review(error.message))?;
    let mut evaluation = Evaluation {
        patched: object.clone(),
        ..Evaluation::default()
    };
    evaluation
        .warnings
        .extend(mutated.review.response.warnings.iter().cloned());
    if !mutated.review.response.allowed {
        let status = mutated.review.response.status.clone().unwrap_or_default();
        evaluation.message = status.message.unwrap_or_default();
        collect_causes(&status.details, &mut evaluation);
        return Ok(evaluation);
    }
    if let Some(patch) = mutated.review.decoded_patch() {
        json_patch::patch(&mut evaluation.patched, &patch)?;
        evaluation.patch = Some(patch);
    }
    let body = serde_json::to_vec(&review_of(&evaluation.patched, old, operation))?;
    let validated = admission
        .review(Endpoint::Validate, &body)
        .map_err(|error| EvaluationError::Review(error.message))?;
    let response = &validated.review.response;
    evaluation.allowed = response.allowed;
    evaluation.warnings.extend(response.warnings.iter().cloned());
    evaluation.audit = response.audit_annotations.clone();
    if let Some(status) = &response.status {
        evaluation.message = status.message.clone().unwrap_or_default();
        collect_causes(&status.details, &mut evaluation);
    }
    Ok(evaluation)
}

fn collect_causes(
    details: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusDetails>,
    evaluation: &mut Evaluation,
) {
    for cause in details.iter().flat_map(|details| details.causes.iter().flatten()) {
        let message = cause.message.clone().unwrap_or_default();
        let line = match cause.field.as_deref().filter(|field| !field.is_empty()) {
            Some(field) => format!("{field}: {message}"),
            None => message.clone(),
        };
        if message.starts_with("[policy ") {
            evaluation.policy_violations.push(line);
        } else {
            evaluation.builtin_violations.push(line);
        }
    }
}

fn run_case(admission: &Admission, test: &str, case: &Case, (object, old): (Value, Option<Value>)) -> CaseResult {
    let operation = case.operation.clone().unwrap_or_else(|| {
        if old.is_some() {
            "UPDATE".into()
        } else {
            "CREATE".into()
        }
    });
    let mut result = CaseResult {
        test: test.to_owned(),
        case: case.name.clone(),
        expected: case.expect.as_str().to_owned(),
        got: String::new(),
        passed: false,
        detail: String::new(),
    };
    let evaluation = match evaluate(admission, &object, old.as_ref(), &operation) {
        Ok(evaluation) => evaluation,
        Err(error) => {
            result.got = "error".into();
            result.detail = error.to_string();
            return result;
        }
    };
    // The verdict of the policies under test; built-in rules are reported beside it.
    let got = if !evaluation.policy_violations.is_empty() {
        Expectation::Deny
    } else if !evaluation.warnings.is_empty() {
        Expectation::Warn
    } else if !evaluation.audit.is_empty() {
        Expectation::Audit
    } else {
        Expectation::Allow
    };
    result.got = got.as_str().to_owned();
    let mut notes: Vec<String> = evaluation.policy_violations.clone();
    notes.extend(evaluation.warnings.iter().map(|warning| format!("warning: {warning}")));
    notes.extend(
        evaluation
            .audit
            .iter()
            .map(|(key, value)| format!("audit {key}: {value}")),
    );
    notes.extend(
        evaluation
            .builtin_violations
            .iter()
            .map(|violation| format!("built-in rule: {violation}")),
    );
    let mut passed = got == case.expect;
    if let Some(wanted) = &case.message_contains {
        let everything = notes.join("\n");
        if !everything.contains(wanted.as_str()) {
            passed = false;
            notes.push(format!("expected a message containing {wanted:?}"));
        }
    }
    for (path, wanted) in &case.patched {
        let actual = get_path(&evaluation.patched, path);
        if actual != Some(wanted) {
            passed = false;
            notes.push(format!(
                "{path}: expected {wanted}, got {}",
                actual.map_or("nothing".into(), Value::to_string)
            ));
        }
    }
    result.passed = passed;
    result.detail = notes.join("\n");
    result
}
