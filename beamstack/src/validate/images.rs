//! Image rules for every runner: the registry allowlist and harness images that contradict the pipeline.

use super::{Subject, Violation};
use crate::config::Config;
use crate::contract::{ANNOTATION_BEAM_VERSION, ANNOTATION_HARNESS_IMAGE, ANNOTATION_PYTHON_VERSION};
use crate::harness::{self, HarnessSpec};
use crate::images::{normalize_image, parse_python_sdk_image};
use crate::tree::get;
use serde_json::Value;

pub fn check(subject: &Subject<'_>, config: &Config, out: &mut Vec<Violation>) {
    let images = subject.kind.images_of(subject.object);
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
    let (python, tag) = parse_python_sdk_image(image)?;
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
        return parse_python_sdk_image(&spec.image);
    }
    Some((spec.python_version.clone(), Some(spec.beam_version.clone())))
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
