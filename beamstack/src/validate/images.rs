//! Image rules for every runner: the registry allowlist and harness images that contradict the pipeline.

use super::{Subject, Violation, field};
use crate::config::Config;
use crate::contract::Runner;
use crate::contract::{ANNOTATION_BEAM_VERSION, ANNOTATION_HARNESS_IMAGE, ANNOTATION_PYTHON_VERSION};
use crate::harness::{self, HarnessSpec};
use crate::tree::get;
use serde_json::Value;

pub fn check(subject: &Subject<'_>, config: &Config, out: &mut Vec<Violation>) {
    let images = images_of(subject);
    let allowed = &config.validation.allowed_registries;
    if !allowed.is_empty() {
        for (path, image) in &images {
            if !allowed.iter().any(|entry| registry_allows(entry, image)) {
                out.push(Violation::new(
                    "image-registry",
                    path.clone(),
                    format!(
                        "`{image}` is not from an allowed registry: use one of {}",
                        allowed.join(", ")
                    ),
                ));
            }
        }
    }
    match harness::harness_for(subject.object, &config.harness) {
        Ok(None) => {}
        Err(problems) => out.extend(problems.into_iter().map(|problem| {
            Violation::new(
                "beam-annotations",
                format!("metadata.annotations[{}]", problem.annotation),
                problem.message,
            )
        })),
        Ok(Some(spec)) => {
            let mut checked: Vec<(String, &str)> = images
                .iter()
                .map(|(path, image)| (path.clone(), image.as_str()))
                .collect();
            if spec.image_from_annotation {
                checked.push((
                    format!("metadata.annotations[{ANNOTATION_HARNESS_IMAGE}]"),
                    spec.image.as_str(),
                ));
            }
            for (path, image) in checked {
                if let Some(message) = contradiction(&spec, subject.object, image) {
                    out.push(Violation::new("harness-version", path, message));
                }
            }
        }
    }
}

/// A Beam SDK image whose Python minor or Beam version is not the pipeline's.
fn contradiction(spec: &HarnessSpec, object: &Value, image: &str) -> Option<String> {
    let (python, tag) = harness::parse_python_sdk_image(image)?;
    let (want_python, want_beam) = declared_versions(spec, object)?;
    let mut problems = Vec::new();
    if python != want_python {
        problems.push(format!("Python {python} but the pipeline runs Python {want_python}"));
    }
    if let (Some(tag), Some(want_beam)) = (&tag, &want_beam)
        && tag != want_beam
    {
        problems.push(format!("Beam {tag} but the pipeline runs Beam {want_beam}"));
    }
    (!problems.is_empty()).then(|| {
        format!(
            "harness image `{image}` is for {}: the worker pool must match the launcher exactly; use \
             apache/beam_python{want_python}_sdk:{} or fix the beamstack.dev/ annotations",
            problems.join(" and "),
            want_beam.as_deref().unwrap_or("<beam version>")
        )
    })
}

/// The Python minor and Beam version the pipeline declares. With only an image annotation, the image's own tag is
/// the declaration (a custom image that is not a Beam SDK image declares nothing we can check).
fn declared_versions(spec: &HarnessSpec, object: &Value) -> Option<(String, Option<String>)> {
    let annotated = |key: &str| get(object, &["metadata", "annotations", key]).is_some();
    let versions_annotated = annotated(ANNOTATION_PYTHON_VERSION) || annotated(ANNOTATION_BEAM_VERSION);
    if spec.image_from_annotation && !versions_annotated {
        return harness::parse_python_sdk_image(&spec.image);
    }
    Some((spec.python_version.clone(), Some(spec.beam_version.clone())))
}

/// Every image an object names, with its field path.
pub fn images_of(subject: &Subject<'_>) -> Vec<(String, String)> {
    let object = subject.object;
    let mut found = Vec::new();
    let mut image_at = |path: &[&str]| {
        if let Some(image) = get(object, path).and_then(Value::as_str) {
            found.push((path.join("."), image.to_owned()));
        }
    };
    match subject.kind.runner() {
        Runner::Flink => image_at(&["spec", "image"]),
        Runner::Spark => {
            let spec = subject.kind.spec_path();
            image_at(&[spec, &["image"]].concat());
            for role in ["driver", "executor"] {
                image_at(&[spec, &[role, "image"]].concat());
            }
        }
    }
    for (path, container) in containers_of(subject) {
        if let Some(image) = container.get("image").and_then(Value::as_str) {
            found.push((format!("{path}.image"), image.to_owned()));
        }
    }
    found
}

/// Every container an object declares (pod templates, sidecars, init containers), with its field path.
pub fn containers_of<'a>(subject: &Subject<'a>) -> Vec<(String, &'a Value)> {
    let mut found = Vec::new();
    for (path, key) in container_lists(subject) {
        if let Some(list) = get(subject.object, &[&path[..], &[key]].concat()).and_then(Value::as_array) {
            for (index, container) in list.iter().enumerate() {
                found.push((field(&path, &format!("{key}[{index}]")), container));
            }
        }
    }
    found
}

/// Every volume an object declares, with its field path.
pub fn volumes_of<'a>(subject: &Subject<'a>) -> Vec<(String, &'a Value)> {
    let owners: Vec<Vec<&str>> = match subject.kind.runner() {
        Runner::Flink => vec![
            vec!["spec", "podTemplate", "spec"],
            vec!["spec", "jobManager", "podTemplate", "spec"],
            vec!["spec", "taskManager", "podTemplate", "spec"],
        ],
        Runner::Spark => vec![subject.kind.spec_path().to_vec()],
    };
    let mut found = Vec::new();
    for owner in owners {
        if let Some(list) = get(subject.object, &[&owner[..], &["volumes"]].concat()).and_then(Value::as_array) {
            for (index, volume) in list.iter().enumerate() {
                found.push((field(&owner, &format!("volumes[{index}]")), volume));
            }
        }
    }
    found
}

/// Where an object keeps lists of containers: (path of the owner, key of the list).
fn container_lists(subject: &Subject<'_>) -> Vec<(Vec<&'static str>, &'static str)> {
    match subject.kind.runner() {
        Runner::Flink => [
            vec!["spec", "podTemplate", "spec"],
            vec!["spec", "jobManager", "podTemplate", "spec"],
            vec!["spec", "taskManager", "podTemplate", "spec"],
        ]
        .into_iter()
        .flat_map(|template| [(template.clone(), "initContainers"), (template, "containers")])
        .collect(),
        Runner::Spark => ["driver", "executor"]
            .into_iter()
            .flat_map(|role| {
                let owner = [subject.kind.spec_path(), &[role]].concat();
                [(owner.clone(), "initContainers"), (owner, "sidecars")]
            })
            .collect(),
    }
}

/// `registry/path` with Docker's implicit defaults spelled out: `flink:1.20` is `docker.io/library/flink:1.20`.
pub fn normalize_image(image: &str) -> String {
    let image = image.trim();
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            let (registry, rest) = image.split_once('/').unwrap_or((image, ""));
            let registry = if registry == "index.docker.io" {
                "docker.io"
            } else {
                registry
            };
            format!("{registry}/{rest}")
        }
        Some(_) => format!("docker.io/{image}"),
        None => format!("docker.io/library/{image}"),
    }
}

/// An entry is a registry (`ghcr.io`) or a repository prefix (`docker.io/apache`); it matches whole path segments.
fn registry_allows(entry: &str, image: &str) -> bool {
    let entry = entry.trim().trim_end_matches('/');
    let entry = if entry.contains('/') || entry.contains('.') || entry.contains(':') || entry == "localhost" {
        entry.to_owned()
    } else {
        format!("docker.io/{entry}")
    };
    let normalized = normalize_image(image);
    normalized.starts_with(&format!("{entry}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_normalize_like_docker() {
        assert_eq!(normalize_image("flink:1.20"), "docker.io/library/flink:1.20");
        assert_eq!(
            normalize_image("apache/beam_python3.11_sdk:2.77.0"),
            "docker.io/apache/beam_python3.11_sdk:2.77.0"
        );
        assert_eq!(normalize_image("ghcr.io/acme/job:1"), "ghcr.io/acme/job:1");
        assert_eq!(normalize_image("localhost/x"), "localhost/x");
        assert_eq!(normalize_image("registry:5000/x"), "registry:5000/x");
    }

    #[test]
    fn allowlist_matches_whole_segments() {
        assert!(registry_allows("docker.io", "flink:1.20"));
        assert!(registry_allows("docker.io/apache", "apache/beam_python3.11_sdk:2.77.0"));
        assert!(!registry_allows("docker.io/apache", "apachex/evil:1"));
        assert!(registry_allows("ghcr.io/acme", "ghcr.io/acme/job:1"));
        assert!(!registry_allows("ghcr.io/acme", "ghcr.io/acmeevil/job:1"));
        assert!(!registry_allows("ghcr.io", "ghcr.io.evil.com/job:1"));
        assert!(registry_allows("registry:5000", "registry:5000/x"));
    }
}
