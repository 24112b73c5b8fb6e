//! Admission: an AdmissionReview body in, an AdmissionReview answer out, with no IO.
//!
//! The server times, logs and counts around `Admission::review`; the plugin's offline checks call the same
//! functions on bare objects. Problems with the envelope itself (not JSON, not an AdmissionReview, no request)
//! are `BadRequest`s, answered with HTTP 400. Problems with a request we can identify (it has a uid) are answered
//! in the protocol: a denial whose message names the field.
//!
//! Policies (CEL, tenants) plug in at `Admission::judge`, beside the built-in rules.

pub mod review;

use crate::config::Config;
use crate::kinds::RunnerKind;
use crate::mutate::{self, Mutation};
use crate::validate::{self, Subject, Violation};
use base64::Engine;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};
use review::{AdmissionRequest, AdmissionResponse, AdmissionReviewRequest, AdmissionReviewResponse, Operation};
use serde_json::Value;
use std::panic::{AssertUnwindSafe, catch_unwind};
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
    /// Rules that denied, one entry per violation.
    pub denied_by: Vec<&'static str>,
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

pub struct Outcome {
    pub review: AdmissionReviewResponse,
    pub record: Record,
}

/// The admission logic with its configuration. Cheap to share: one per server, swapped whole on reload.
#[derive(Debug, Clone)]
pub struct Admission {
    config: Arc<Config>,
}

impl Admission {
    pub fn new(config: Config) -> Self {
        Self {
            config: Arc::new(config),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
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
        };
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
            Some(object) => {
                if record.name.is_empty()
                    && let Some(name) = crate::tree::get_str(object, &["metadata", "name"])
                {
                    record.name = name.to_owned();
                }
                let answer = catch_unwind(AssertUnwindSafe(|| match endpoint {
                    Endpoint::Mutate => self.mutate_response(kind, &request, object),
                    Endpoint::Validate => self.validate_response(kind, &request, object, &record.name),
                }));
                match answer {
                    Ok((response, rules)) => {
                        record.denied_by = rules;
                        response
                    }
                    Err(_) => {
                        tracing::error!(uid = %request.uid, kind = %kind, "admission rule panicked; denying");
                        record.denied_by = vec!["internal"];
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

    fn mutate_response(
        &self,
        kind: RunnerKind,
        request: &AdmissionRequest,
        object: &Value,
    ) -> (AdmissionResponse, Vec<&'static str>) {
        let Mutation { patch, .. } = mutate::mutate(kind, object, &self.config);
        let mut response = AdmissionResponse::allow(&request.uid);
        if !patch.0.is_empty() {
            // Serialising a Patch of JSON values cannot fail.
            let bytes = serde_json::to_vec(&patch).unwrap_or_default();
            response.patch = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
            response.patch_type = Some("JSONPatch");
        }
        (response, Vec::new())
    }

    fn validate_response(
        &self,
        kind: RunnerKind,
        request: &AdmissionRequest,
        object: &Value,
        name: &str,
    ) -> (AdmissionResponse, Vec<&'static str>) {
        let old_object = match request.operation {
            Operation::Update => request.old_object.as_ref().filter(|old| old.is_object()),
            _ => None,
        };
        let subject = Subject {
            kind,
            object,
            old_object,
            namespace: request.namespace.as_deref(),
        };
        let violations = self.judge(&subject);
        if violations.is_empty() {
            return (AdmissionResponse::allow(&request.uid), Vec::new());
        }
        let rules = violations.iter().map(|violation| violation.rule).collect();
        (
            AdmissionResponse::deny(&request.uid, denial(kind, name, &violations)),
            rules,
        )
    }

    /// Every rule that decides whether an object is admitted. The built-in rules today; CEL policies join here.
    pub fn judge(&self, subject: &Subject<'_>) -> Vec<Violation> {
        validate::validate(subject, &self.config)
    }
}

fn parse(body: &[u8]) -> Result<AdmissionRequest, BadRequest> {
    // The error path parses a second time to tell malformed JSON from JSON of the wrong shape: serde_json calls
    // some type errors (a number where an enum is expected) syntax errors.
    let syntax_error = || serde_json::from_slice::<serde::de::IgnoredAny>(body).err();
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
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    let review: AdmissionReviewRequest = serde_path_to_error::deserialize(deserializer).map_err(|error| {
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
    let request = review
        .request
        .ok_or_else(|| BadRequest::new("missing-request", "AdmissionReview has no `request`: nothing to review"))?;
    if request.uid.is_empty() {
        return Err(BadRequest::new(
            "missing-uid",
            "AdmissionReview field `request.uid` is empty",
        ));
    }
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

fn denial(kind: RunnerKind, name: &str, violations: &[Violation]) -> Status {
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
