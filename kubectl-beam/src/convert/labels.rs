//! The labels and annotations on a run's objects: ours (found by `list` and `status`), the user's, and the ones
//! that make the webhook inject the matching SDK harness.

use super::java::JavaPlan;
use super::{FIELD_MANAGER, RunSettings};
use crate::pipeline::Pipeline;
use beamstack::contract::{
    ANNOTATION_BEAM_VERSION, ANNOTATION_JAVA_IMAGE, ANNOTATION_JAVA_TRANSFORMS, ANNOTATION_PYTHON_VERSION,
    ANNOTATION_SDK, ANNOTATION_SOURCE_FILE, LABEL_PIPELINE, LABEL_RUNNER,
};
use serde_json::{Map, Value, json};
use std::sync::LazyLock;

pub(super) fn labels(settings: &RunSettings) -> Value {
    with_user_labels(
        &settings.labels,
        json!({
            LABEL_PIPELINE: settings.name,
            LABEL_RUNNER: settings.runner.as_str(),
            "app.kubernetes.io/name": settings.name,
            "app.kubernetes.io/managed-by": FIELD_MANAGER,
        }),
    )
}

/// The user's labels first, ours over them: `list` and `status` find jobs by ours.
pub(super) fn with_user_labels(user: &Map<String, Value>, ours: Value) -> Value {
    let mut labels = user.clone();
    if let Value::Object(ours) = ours {
        labels.extend(ours);
    }
    Value::Object(labels)
}

/// Parses `-l key=value[,key=value]` as kubectl run does, checking names and values the way the API server will.
pub fn parse_labels(assignments: &[String]) -> Result<Map<String, Value>, String> {
    // Compiled on first use: most runs have no -l, and compiling both was a sixth of `run`'s start (callgrind).
    static NAME: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
            .expect("label name pattern")
    });
    static VALUE: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$").expect("label value pattern")
    });
    let mut labels = Map::new();
    for assignment in assignments.iter().flat_map(|text| text.split(',')) {
        let (key, text) = assignment
            .split_once('=')
            .ok_or_else(|| format!("-l {assignment:?}: labels are key=value"))?;
        if !NAME.is_match(key) || !VALUE.is_match(text) {
            return Err(format!(
                "-l {assignment:?}: not a valid Kubernetes label (names and values: up to 63 letters, digits, '-', \
                 '_' or '.', starting and ending with a letter or digit)"
            ));
        }
        labels.insert(key.to_owned(), Value::from(text));
    }
    Ok(labels)
}

/// The annotations that make the webhook inject the matching SDK harness, and the Java worker pool when the run
/// serves Java-backed transforms (from the same image as the expansion service when `--java-image` names one).
pub(super) fn harness_annotations(settings: &RunSettings, pipeline: &Pipeline, java: &JavaPlan) -> Value {
    let mut annotations = json!({
        ANNOTATION_SDK: "python",
        ANNOTATION_BEAM_VERSION: settings.versions.beam,
        ANNOTATION_PYTHON_VERSION: settings.versions.python_minor,
        ANNOTATION_SOURCE_FILE: pipeline.file.file_name().and_then(|name| name.to_str()).unwrap_or(""),
    });
    if java.runs_expansion_service() {
        let served: Vec<&str> = java.served.iter().map(String::as_str).collect();
        annotations[ANNOTATION_JAVA_TRANSFORMS] = Value::from(served.join(","));
        if let Some(image) = &settings.java_image {
            annotations[ANNOTATION_JAVA_IMAGE] = Value::from(image.clone());
        }
    }
    annotations
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_checked_like_the_api_server_does() {
        let labels = parse_labels(&["team=a,beamstack.dev/tenant=team-a".into(), "cost-center=".into()]).unwrap();
        assert_eq!(labels["team"], "a");
        assert_eq!(labels["beamstack.dev/tenant"], "team-a");
        assert_eq!(labels["cost-center"], "");
        assert!(parse_labels(&["team".into()]).unwrap_err().contains("key=value"));
        assert!(
            parse_labels(&["team=a b".into()])
                .unwrap_err()
                .contains("not a valid Kubernetes label")
        );
        assert!(parse_labels(&["-team=a".into()]).is_err());
        // Ours win over the user's: list and status find jobs by them.
        let merged = with_user_labels(
            &parse_labels(&["beamstack.dev/pipeline=x".into()]).unwrap(),
            json!({"beamstack.dev/pipeline": "wc"}),
        );
        assert_eq!(merged["beamstack.dev/pipeline"], "wc");
    }
}
