//! Admission: an AdmissionReview body in, an AdmissionReview answer out, with no IO.
//!
//! The server times, logs and counts around `Admission::review`; the plugin's offline checks call the same
//! functions on bare objects. Problems with the envelope itself (not JSON, not an AdmissionReview, no request)
//! are `BadRequest`s, answered with HTTP 400. Problems with a request we can identify (it has a uid) are answered
//! in the protocol: a denial whose message names the field.
//!
//! CEL policies (`policy::engine`) run beside the built-in rules: their mutations before the built-in defaults on
//! /mutate, their validations after the built-in rules on /validate, all violations in one denial.

pub mod noop;
pub mod review;

use crate::config::Config;
use crate::kinds::RunnerKind;
use crate::mutate::{self, Changes};
use crate::policy::engine::{self, Engine, PolicyStat};
use crate::policy::load::{DirectorySource, LoadError, Reload};
use crate::policy::model::{RunnerPolicy, Tenant};
use crate::validate::{self, Subject, Violation};
use base64::Engine as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};
use review::{AdmissionRequest, AdmissionResponse, AdmissionReviewRequest, AdmissionReviewResponse, Operation};
use serde_json::Value;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Mutate,
    Validate,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Mutate => "mutate",
            Endpoint::Validate => "validate",
        }
    }
}

/// A body that is not an AdmissionReview we can answer. The message says what was wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BadRequest {
    /// A short machine-readable reason, also the metric label.
    pub reason: &'static str,
    pub message: String,
}

impl BadRequest {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// What happened to one request, for the log line and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub uid: String,
    /// The runner kind, or the request's own kind when it is not one of ours.
    pub kind: String,
    pub ours: bool,
    pub namespace: String,
    pub name: String,
    pub operation: &'static str,
    pub allowed: bool,
    pub patched: bool,
    /// Rules that denied, one entry per violation (`policy/<name>` for RunnerPolicies).
    pub denied_by: Vec<String>,
    /// How each RunnerPolicy went.
    pub policy_stats: Vec<PolicyStat>,
    pub warnings: usize,
}

impl Record {
    pub fn outcome(&self) -> &'static str {
        match (self.allowed, self.patched) {
            (false, _) => "denied",
            (true, true) => "patched",
            (true, false) => "allowed",
        }
    }
}

#[derive(Debug)]
pub struct Outcome {
    pub review: AdmissionReviewResponse,
    pub record: Record,
}

/// The admission logic with its configuration and policy engine. Cheap to share: one per server.
#[derive(Debug, Clone)]
pub struct Admission {
    config: Arc<Config>,
    engine: Option<Arc<Engine>>,
}

/// Our own API group: the webhook judges RunnerPolicy and Tenant objects too.
const OWN_GROUP: &str = crate::policy::model::GROUP;

/// How many policies and tenants a policy folder held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loaded {
    pub policies: usize,
    pub tenants: usize,
}

impl Admission {
    pub fn new(config: Config) -> Self {
        Self {
            config: Arc::new(config),
            engine: None,
        }
    }

    pub fn with_engine(config: Config, engine: Arc<Engine>) -> Self {
        Self {
            config: Arc::new(config),
            engine: Some(engine),
        }
    }

    /// Policy-backed: a fresh engine with the policies and tenants of the folder `dir` in force. Nothing is in
    /// force until all of it compiles, so every error comes back at once. The source re-reads the folder into the
    /// same engine when its files change (the webhook polls it); the counts say what was loaded.
    pub fn with_policy_folder(config: Config, dir: &Path) -> Result<(Self, DirectorySource, Loaded), Vec<LoadError>> {
        let engine = Engine::standard();
        let source = DirectorySource::new(dir);
        let loaded = match source.poll(&engine) {
            Reload::Installed { policies, tenants } => Loaded { policies, tenants },
            Reload::Unchanged => Loaded::default(),
            Reload::Rejected(errors) => return Err(errors),
        };
        Ok((Self::with_engine(config, engine), source, loaded))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn engine(&self) -> Option<&Arc<Engine>> {
        self.engine.as_ref()
    }

    /// Answers one AdmissionReview body.
    pub fn review(&self, endpoint: Endpoint, body: &[u8]) -> Result<Outcome, BadRequest> {
        let request = parse(body)?;
        let operation = operation_name(&request.operation);
        let mut record = Record {
            uid: request.uid.clone(),
            kind: request.kind.kind.clone(),
            ours: false,
            namespace: request.namespace.clone().unwrap_or_default(),
            name: request.name.clone().unwrap_or_default(),
            operation,
            allowed: true,
            patched: false,
            denied_by: Vec::new(),
            policy_stats: Vec::new(),
            warnings: 0,
        };
        if request.kind.group == OWN_GROUP && endpoint == Endpoint::Validate {
            let response = self.judge_own_kind(&request);
            record.ours = true;
            record.allowed = response.allowed;
            if !response.allowed {
                record.denied_by = vec![format!("{}-compiles", request.kind.kind.to_lowercase())];
            }
            return Ok(Outcome {
                review: response.into_review(),
                record,
            });
        }
        let kind = RunnerKind::from_gvk(&request.kind.group, &request.kind.version, &request.kind.kind);
        let judged = matches!(request.operation, Operation::Create | Operation::Update)
            && request.sub_resource.as_deref().is_none_or(str::is_empty);
        let (Some(kind), true) = (kind, judged) else {
            // Not ours, or a DELETE/CONNECT, or a subresource (status, scale): allowed unchanged.
            return Ok(Outcome {
                review: AdmissionResponse::allow(&request.uid).into_review(),
                record,
            });
        };
        record.ours = true;
        record.kind = kind.kind().to_owned();
        let response = match request.object.as_ref() {
            None => invalid_request(&request.uid, "request.object", format!("required for {operation}")),
            Some(object) if !object.is_object() => invalid_request(
                &request.uid,
                "request.object",
                format!("must be a JSON object, got {}", type_name(object)),
            ),
            // The Flink operator's own health-check canary: no defaults, rules or policies (kinds.rs says why).
            Some(object) if kind.is_operator_canary(object) => AdmissionResponse::allow(&request.uid),
            Some(object) => {
                if record.name.is_empty()
                    && let Some(name) = crate::tree::get_str(object, &["metadata", "name"])
                {
                    record.name = name.to_owned();
                }
                let answer = catch_unwind(AssertUnwindSafe(|| match endpoint {
                    Endpoint::Mutate => self.mutate_response(kind, &request, object, &record.name),
                    Endpoint::Validate => self.validate_response(kind, &request, object, &record.name),
                }));
                match answer {
                    Ok((response, rules, stats)) => {
                        record.denied_by = rules;
                        record.policy_stats = stats;
                        record.warnings = response.warnings.len();
                        response
                    }
                    Err(_) => {
                        tracing::error!(uid = %request.uid, kind = %kind, "admission rule panicked; denying");
                        record.denied_by = vec!["internal".to_owned()];
                        AdmissionResponse::deny(
                            &request.uid,
                            failure(
                                500,
                                "InternalError",
                                "beam-webhook failed on this object; please report it with the object",
                                None,
                            ),
                        )
                    }
                }
            }
        };
        record.allowed = response.allowed;
        record.patched = response.patch.is_some();
        Ok(Outcome {
            review: response.into_review(),
            record,
        })
    }

    fn engine_request<'a>(
        &self,
        kind: RunnerKind,
        request: &'a AdmissionRequest,
        object: &'a Value,
        name: &'a str,
    ) -> engine::Request<'a> {
        engine::Request {
            kind,
            create: request.operation == Operation::Create,
            object,
            old_object: match request.operation {
                Operation::Update => request.old_object.as_ref().filter(|old| old.is_object()),
                _ => None,
            },
            namespace: request.namespace.as_deref().unwrap_or_default(),
            name,
            user_info: request.user_info_json.as_ref(),
            dry_run: request.dry_run.unwrap_or(false),
        }
    }

    fn mutate_response(
        &self,
        kind: RunnerKind,
        request: &AdmissionRequest,
        object: &Value,
        name: &str,
    ) -> (AdmissionResponse, Vec<String>, Vec<PolicyStat>) {
        let mut mutated = object.clone();
        let mut changes = Changes::default();
        let mut stats = Vec::new();
        let mut warnings = Vec::new();
        // Policy mutations first: a tenant's defaults fill fields before the global defaults would.
        if let Some(engine) = &self.engine {
            let verdict = engine.mutate(&self.engine_request(kind, request, object, name), &mut mutated);
            stats = verdict.stats;
            warnings = verdict.warnings;
            if !verdict.violations.is_empty() {
                let violations: Vec<Violation> = verdict
                    .violations
                    .iter()
                    .map(|violation| {
                        Violation::from_policy(&violation.policy, violation.field.clone(), &violation.message)
                    })
                    .collect();
                let rules = violations.iter().map(|violation| violation.rule.to_string()).collect();
                let mut response = AdmissionResponse::deny(&request.uid, denial(kind.kind(), name, &violations));
                response.warnings = warnings;
                return (response, rules, stats);
            }
            for change in verdict.changes {
                changes.note(change);
            }
        }
        for change in mutate::apply_defaults(kind, &mut mutated, &self.config).as_slice() {
            changes.note(change.clone());
        }
        if !changes.is_empty() {
            mutate::annotate(&mut mutated, &changes);
        }
        let patch = json_patch::diff(object, &mutated);
        let mut response = AdmissionResponse::allow(&request.uid);
        response.warnings = warnings;
        if !patch.0.is_empty() {
            // Serialising a Patch of JSON values cannot fail.
            let bytes = serde_json::to_vec(&patch).unwrap_or_default();
            response.patch = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
            response.patch_type = Some("JSONPatch");
        }
        (response, Vec::new(), stats)
    }

    fn validate_response(
        &self,
        kind: RunnerKind,
        request: &AdmissionRequest,
        object: &Value,
        name: &str,
    ) -> (AdmissionResponse, Vec<String>, Vec<PolicyStat>) {
        let engine_request = self.engine_request(kind, request, object, name);
        let subject = Subject {
            kind,
            object,
            old_object: engine_request.old_object,
            namespace: request.namespace.as_deref(),
        };
        let mut violations = validate::validate(&subject, &self.config);
        let mut response = AdmissionResponse::allow(&request.uid);
        let mut stats = Vec::new();
        if let Some(engine) = &self.engine {
            let verdict = engine.validate(&engine_request);
            violations.extend(verdict.violations.iter().map(|violation| {
                Violation::from_policy(&violation.policy, violation.field.clone(), &violation.message)
            }));
            response.warnings = verdict.warnings;
            response.audit_annotations = verdict.audit_annotations;
            for ignored in &verdict.ignored_errors {
                tracing::warn!(uid = %request.uid, error = %ignored, "policy error ignored (failurePolicy Ignore)");
            }
            stats = verdict.stats;
            if violations.is_empty() {
                engine.reserve(&engine_request);
            }
        }
        if violations.is_empty() {
            return (response, Vec::new(), stats);
        }
        let rules = violations.iter().map(|violation| violation.rule.to_string()).collect();
        let warnings = std::mem::take(&mut response.warnings);
        let audit = std::mem::take(&mut response.audit_annotations);
        let mut denied = AdmissionResponse::deny(&request.uid, denial(kind.kind(), name, &violations));
        denied.warnings = warnings;
        denied.audit_annotations = audit;
        (denied, rules, stats)
    }

    /// RunnerPolicy and Tenant objects are judged by the webhook itself: a policy that does not compile is refused
    /// with the error and its position, so a broken policy never reaches the cluster.
    fn judge_own_kind(&self, request: &AdmissionRequest) -> AdmissionResponse {
        let allow = AdmissionResponse::allow(&request.uid);
        if !matches!(request.operation, Operation::Create | Operation::Update) {
            return allow;
        }
        let Some(object) = request.object.as_ref() else {
            return allow;
        };
        let problem = match request.kind.kind.as_str() {
            "RunnerPolicy" => match serde_json::from_value::<RunnerPolicy>(object.clone()) {
                Err(error) => Some(("spec".to_owned(), format!("not a valid RunnerPolicy: {error}"))),
                Ok(policy) => {
                    let runtime = self.engine.as_ref().map(|engine| Arc::clone(engine.runtime()));
                    let runtime = runtime.unwrap_or_else(|| Arc::new(crate::policy::runtime::Runtime::new()));
                    crate::policy::compile::compile(&policy, &runtime)
                        .err()
                        .map(|error| (error.field, error.message))
                }
            },
            "Tenant" => match serde_json::from_value::<Tenant>(object.clone()) {
                Err(error) => Some(("spec".to_owned(), format!("not a valid Tenant: {error}"))),
                Ok(tenant) => crate::policy::check_tenant(&tenant)
                    .err()
                    .map(|bad| (bad.field.to_owned(), bad.problem)),
            },
            _ => None,
        };
        match problem {
            None => allow,
            Some((field, message)) => {
                let name = request.name.clone().unwrap_or_default();
                let violation = Violation {
                    field,
                    message,
                    rule: std::borrow::Cow::Borrowed("own-kind"),
                };
                AdmissionResponse::deny(&request.uid, denial(&request.kind.kind, &name, &[violation]))
            }
        }
    }

    /// Every built-in rule for an object, without policies (for callers that have no request).
    pub fn judge(&self, subject: &Subject<'_>) -> Vec<Violation> {
        validate::validate(subject, &self.config)
    }
}

fn parse(body: &[u8]) -> Result<AdmissionRequest, BadRequest> {
    // The error path parses a second time to tell malformed JSON from JSON of the wrong shape: serde_json calls
    // some type errors (a number where an enum is expected) syntax errors. Parsed into a Value, not skipped: skipping
    // does not check that strings are UTF-8.
    let syntax_error = || serde_json::from_slice::<serde_json::Value>(body).err();
    // serde would read a struct from a JSON array too; an AdmissionReview is an object.
    if !body.trim_ascii_start().starts_with(b"{") {
        return Err(match syntax_error() {
            None => BadRequest::new(
                "not-admission-review",
                "request body must be a JSON object: an AdmissionReview",
            ),
            Some(error) => BadRequest::new("malformed-json", format!("request body is not valid JSON: {error}")),
        });
    }
    // A well-formed review is read without path tracking, which costs about a fifth of a whole admission (the
    // object is a deep tree); only a body that fails is read again, with paths, to name the field in the answer.
    if let Ok(review) = serde_json::from_slice::<AdmissionReviewRequest>(body) {
        return check_envelope(review);
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    let review: AdmissionReviewRequest = serde_path_to_error::deserialize(&mut *deserializer).map_err(|error| {
        let path = shorten(&error.path().to_string());
        let inner = error.into_inner();
        if inner.to_string().starts_with("recursion limit exceeded") {
            BadRequest::new(
                "too-deep",
                format!("request body is nested too deeply (over 128 levels) at `{path}`"),
            )
        } else if syntax_error().is_some() {
            BadRequest::new("malformed-json", format!("request body is not valid JSON: {inner}"))
        } else if path == "." {
            BadRequest::new(
                "not-admission-review",
                format!("request body is not an AdmissionReview: {inner}"),
            )
        } else {
            BadRequest::new("invalid-field", format!("AdmissionReview field `{path}`: {inner}"))
        }
    })?;
    // One document and nothing after it: `{...}}garbage` is not an AdmissionReview.
    deserializer
        .end()
        .map_err(|error| BadRequest::new("malformed-json", format!("request body is not valid JSON: {error}")))?;
    check_envelope(review)
}

/// The envelope's own rules, once the body has been read: version, kind, a request with a uid.
fn check_envelope(review: AdmissionReviewRequest) -> Result<AdmissionRequest, BadRequest> {
    if review.api_version.as_deref() != Some(review::API_VERSION) {
        return Err(BadRequest::new(
            "wrong-api-version",
            format!(
                "apiVersion must be {}, got {}: configure the webhook with admissionReviewVersions [\"v1\"]",
                review::API_VERSION,
                review
                    .api_version
                    .as_deref()
                    .map_or("nothing".to_owned(), |version| format!("{version:?}"))
            ),
        ));
    }
    if review.kind.as_deref() != Some(review::KIND) {
        return Err(BadRequest::new(
            "not-admission-review",
            format!(
                "kind must be AdmissionReview, got {:?}",
                review.kind.unwrap_or_default()
            ),
        ));
    }
    let mut request = review
        .request
        .ok_or_else(|| BadRequest::new("missing-request", "AdmissionReview has no `request`: nothing to review"))?;
    if request.uid.is_empty() {
        return Err(BadRequest::new(
            "missing-uid",
            "AdmissionReview field `request.uid` is empty",
        ));
    }
    request.user_info_json = request
        .user_info
        .as_ref()
        .and_then(|user| serde_json::to_value(user).ok());
    Ok(request)
}

/// Keeps error messages small when a hostile body has a path thousands of segments long.
fn shorten(path: &str) -> String {
    const LIMIT: usize = 200;
    if path.len() <= LIMIT {
        return path.to_owned();
    }
    let cut = (0..=LIMIT)
        .rev()
        .find(|&index| path.is_char_boundary(index))
        .unwrap_or(0);
    format!("{}…", &path[..cut])
}

fn operation_name(operation: &Operation) -> &'static str {
    match operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn failure(code: i32, reason: &str, message: &str, causes: Option<Vec<StatusCause>>) -> Status {
    Status {
        code: Some(code),
        message: Some(message.to_owned()),
        reason: Some(reason.to_owned()),
        status: Some("Failure".to_owned()),
        details: causes.map(|causes| StatusDetails {
            causes: Some(causes),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn invalid_request(uid: &str, field: &str, message: String) -> AdmissionResponse {
    let text = format!("{field}: {message}");
    AdmissionResponse::deny(uid, failure(400, "BadRequest", &text, None))
}

fn denial(kind: &str, name: &str, violations: &[Violation]) -> Status {
    let causes = violations
        .iter()
        .map(|violation| StatusCause {
            field: Some(violation.field.clone()),
            message: Some(violation.message.clone()),
            reason: Some("FieldValueInvalid".to_owned()),
        })
        .collect();
    failure(
        403,
        "Forbidden",
        &validate::denial_message(kind, name, violations),
        Some(causes),
    )
}
