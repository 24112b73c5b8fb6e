//! The `admission.k8s.io/v1` AdmissionReview envelope.
//!
//! Our own thin types rather than kube's `AdmissionRequest<T>`: kube's needs a typed `Resource` for the object and
//! would re-serialise metadata through `ObjectMeta`, while mutation must work on the raw JSON the API server sent.
//! The parts that are plain data (group/version/kind, operation, user info, Status) reuse kube's and k8s-openapi's.

use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::core::GroupVersionKind;
pub use kube::core::admission::Operation;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub(crate) const API_VERSION: &str = "admission.k8s.io/v1";
pub const KIND: &str = "AdmissionReview";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReviewRequest {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub request: Option<AdmissionRequest>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    pub uid: String,
    pub kind: GroupVersionKind,
    #[serde(default)]
    pub sub_resource: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    pub operation: Operation,
    #[serde(default)]
    pub user_info: Option<UserInfo>,
    /// The same user info as raw JSON, for policies' `request.userInfo`.
    #[serde(skip)]
    pub user_info_json: Option<Value>,
    #[serde(default)]
    pub object: Option<Value>,
    #[serde(default)]
    pub old_object: Option<Value>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReviewResponse {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub response: AdmissionResponse,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    pub uid: String,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Base64 of the JSON patch, as the API server's `[]byte` field expects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub audit_annotations: BTreeMap<String, String>,
}

impl AdmissionResponse {
    pub fn allow(uid: &str) -> Self {
        Self {
            uid: uid.to_owned(),
            allowed: true,
            status: None,
            patch: None,
            patch_type: None,
            warnings: Vec::new(),
            audit_annotations: BTreeMap::new(),
        }
    }

    pub fn deny(uid: &str, status: Status) -> Self {
        Self {
            allowed: false,
            status: Some(status),
            ..Self::allow(uid)
        }
    }

    pub fn into_review(self) -> AdmissionReviewResponse {
        AdmissionReviewResponse {
            api_version: API_VERSION,
            kind: KIND,
            response: self,
        }
    }
}

impl AdmissionReviewResponse {
    /// The JSON patch this response carries, decoded (for tests and the plugin's offline output).
    pub fn decoded_patch(&self) -> Option<json_patch::Patch> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.response.patch.as_ref()?)
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}
/// The AdmissionReview the API server would send for `object` (a dry run by `kubectl-beam`): what the offline
/// checks, the fuzz targets and the benchmarks feed the admission code.
pub fn review_of(object: &Value, old: Option<&Value>, operation: &str) -> Value {
    let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "00000000-0000-0000-0000-000000000000",
            "kind": {"group": group, "version": version, "kind": kind},
            "name": object.pointer("/metadata/name").cloned().unwrap_or(Value::Null),
            "namespace": object.pointer("/metadata/namespace").cloned().unwrap_or(json!("default")),
            "operation": operation,
            "userInfo": {"username": "kubectl-beam", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": old.cloned().unwrap_or(Value::Null),
            "dryRun": true
        }
    })
}
