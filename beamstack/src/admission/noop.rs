//! The no-op admission: the limit any webhook on our server stack can reach, for the API-server benchmark.
//!
//! `bench/apiserver` compares beam-webhook with a webhook that does no admission work at all but is otherwise the
//! same: the same binary (`beam-webhook serve --noop-patch-bytes N`), TLS, HTTP versions, body handling, metrics
//! and log line. It reads only the envelope's small fields (uid, kind, name, namespace, operation; parsing still
//! walks the whole body, as any webhook's must), allows, and on /mutate answers a fixed JSON patch as large as ours,
//! so the API server decodes and applies a patch of the same size. The patch adds a padding member at the root and
//! removes it again: valid for any object, and the stored object is the one that was sent.

use super::review::{AdmissionResponse, Operation};
use super::{BadRequest, Endpoint, Outcome, Record, operation_name};
use base64::Engine as _;
use kube::core::GroupVersionKind;
use serde::Deserialize;
use serde_json::json;

/// The member the patch adds and removes; no Kubernetes object has it.
const PADDING_MEMBER: &str = "beamstackNoopPadding";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoopAdmission {
    /// Base64 of the JSON patch /mutate answers, as the API server reads it.
    patch: String,
    patch_bytes: usize,
}

#[derive(Deserialize)]
struct Envelope {
    request: Option<Request>,
}

/// Only what the log line and the metrics name; `object` and the rest are skipped without being kept.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    uid: String,
    kind: GroupVersionKind,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    operation: Operation,
}

impl NoopAdmission {
    /// A no-op admission whose /mutate patch is `patch_bytes` long as JSON (or as short as a patch that adds and
    /// removes a member can be, when that is longer).
    pub fn new(patch_bytes: usize) -> Self {
        let patch_of = |padding: usize| {
            json!([
                {"op": "add", "path": format!("/{PADDING_MEMBER}"), "value": "x".repeat(padding)},
                {"op": "remove", "path": format!("/{PADDING_MEMBER}")},
            ])
            .to_string()
        };
        let overhead = patch_of(0).len();
        let patch = patch_of(patch_bytes.saturating_sub(overhead));
        Self {
            patch_bytes: patch.len(),
            patch: base64::engine::general_purpose::STANDARD.encode(patch),
        }
    }

    /// The length of the JSON patch /mutate answers, before base64.
    pub fn patch_bytes(&self) -> usize {
        self.patch_bytes
    }

    /// Allows every request; /mutate with the fixed patch. A body that is not JSON, or has no request, is refused
    /// (HTTP 400 from the server) with the reason `Admission::review` gives it; the envelope's other checks are skipped.
    pub fn review(&self, endpoint: Endpoint, body: &[u8]) -> Result<Outcome, BadRequest> {
        let envelope: Envelope = serde_json::from_slice(body)
            .map_err(|error| BadRequest::new("malformed-json", format!("not an AdmissionReview: {error}")))?;
        let request = envelope
            .request
            .ok_or_else(|| BadRequest::new("missing-request", "AdmissionReview has no `request`: nothing to review"))?;
        let mut response = AdmissionResponse::allow(&request.uid);
        if endpoint == Endpoint::Mutate {
            response.patch = Some(self.patch.clone());
            response.patch_type = Some("JSONPatch");
        }
        let record = Record {
            uid: request.uid,
            kind: request.kind.kind,
            ours: true,
            namespace: request.namespace.unwrap_or_default(),
            name: request.name.unwrap_or_default(),
            operation: operation_name(&request.operation),
            allowed: true,
            patched: endpoint == Endpoint::Mutate,
            denied_by: Vec::new(),
            policy_stats: Vec::new(),
            warnings: 0,
        };
        Ok(Outcome {
            review: response.into_review(),
            record,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::review::review_of;

    fn flink_review() -> Vec<u8> {
        let object = json!({
            "apiVersion": "flink.apache.org/v1beta1",
            "kind": "FlinkDeployment",
            "metadata": {"name": "wordcount", "namespace": "team-a"},
            "spec": {"image": "flink:1.20", "flinkVersion": "v1_20"}
        });
        serde_json::to_vec(&review_of(&object, None, "CREATE")).unwrap()
    }

    #[test]
    fn the_patch_has_the_asked_size_and_leaves_the_object_as_it_was() {
        let noop = NoopAdmission::new(1500);
        assert_eq!(noop.patch_bytes(), 1500);
        let outcome = noop.review(Endpoint::Mutate, &flink_review()).unwrap();
        let patch = outcome.review.decoded_patch().expect("a JSON patch");
        let original: serde_json::Value =
            serde_json::from_slice::<serde_json::Value>(&flink_review()).unwrap()["request"]["object"].clone();
        let mut patched = original.clone();
        json_patch::patch(&mut patched, &patch).unwrap();
        assert_eq!(patched, original);
        assert_eq!(outcome.review.response.patch_type, Some("JSONPatch"));
    }

    #[test]
    fn validate_allows_with_the_uid_and_no_patch_and_the_record_names_the_request() {
        let outcome = NoopAdmission::new(1500)
            .review(Endpoint::Validate, &flink_review())
            .unwrap();
        assert!(outcome.review.response.allowed);
        assert_eq!(outcome.review.response.uid, "00000000-0000-0000-0000-000000000000");
        assert_eq!(outcome.review.response.patch, None);
        assert_eq!(
            (
                outcome.record.kind.as_str(),
                outcome.record.namespace.as_str(),
                outcome.record.name.as_str()
            ),
            ("FlinkDeployment", "team-a", "wordcount")
        );
        assert_eq!((outcome.record.operation, outcome.record.patched), ("CREATE", false));
    }

    #[test]
    fn a_patch_smaller_than_its_envelope_is_the_smallest_one() {
        let smallest = NoopAdmission::new(0);
        assert!(smallest.patch_bytes() > 0);
        assert_eq!(NoopAdmission::new(10).patch_bytes(), smallest.patch_bytes());
    }

    #[test]
    fn bad_bodies_are_refused_with_the_reasons_the_real_admission_gives() {
        let noop = NoopAdmission::new(100);
        let real = crate::admission::Admission::new(crate::config::Config::default());
        let no_request = br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}"#;
        for body in [b"{".as_slice(), no_request] {
            let (ours, theirs) = (
                noop.review(Endpoint::Mutate, body).unwrap_err(),
                real.review(Endpoint::Mutate, body).unwrap_err(),
            );
            assert_eq!(ours.reason, theirs.reason, "{}", String::from_utf8_lossy(body));
        }
    }
}
