//! What marks an object as a Beam pipeline, and which SDK harness image it needs.
//!
//! A runner CR is a Beam pipeline when it carries the annotation `beamstack.dev/beam-sdk`. Its companions name the
//! Beam version and the Python minor (the webhook's configuration supplies them when absent), or an explicit image.
//! The harness must match the launcher exactly: Beam refuses a worker pool of another Beam or Python version.
//!
//! A pipeline with Java-backed transforms also carries `beamstack.dev/java-transforms`: it then gets the Java worker
//! pool too, from Beamstack's Java image for the same Beam release (or `beamstack.dev/java-image`).

use crate::config::HarnessConfig;
use crate::versions::{is_beam_version, is_python_minor};
use serde_json::Value;

use crate::contract::{
    ANNOTATION_BEAM_VERSION, ANNOTATION_HARNESS_IMAGE, ANNOTATION_JAVA_IMAGE, ANNOTATION_JAVA_TRANSFORMS,
    ANNOTATION_PYTHON_VERSION, ANNOTATION_SDK,
};

/// The harness an annotated object asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HarnessSpec {
    pub beam_version: String,
    pub python_version: String,
    pub image: String,
    /// Where each value came from, for messages: true when the object's annotations named it.
    pub image_from_annotation: bool,
    /// The Java worker pool, when the pipeline uses Java-backed transforms.
    pub java: Option<JavaPoolSpec>,
}

/// The Java worker pool a pipeline with Java-backed transforms asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JavaPoolSpec {
    pub image: String,
    pub image_from_annotation: bool,
    /// The transform types the annotation lists, for messages.
    pub transforms: Vec<String>,
}

/// Why an object's Beam annotations cannot be honoured. Validation turns each into a violation naming the annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationProblem {
    pub annotation: &'static str,
    pub message: String,
}

/// Reads the Beam annotations of a runner CR. `Ok(None)`: not a Beam pipeline.
pub(crate) fn harness_for(
    object: &Value,
    config: &HarnessConfig,
) -> Result<Option<HarnessSpec>, Vec<AnnotationProblem>> {
    let annotations = object.pointer("/metadata/annotations").and_then(Value::as_object);
    let annotation = |key: &str| annotations.and_then(|map| map.get(key)).and_then(Value::as_str);
    let Some(sdk) = annotation(ANNOTATION_SDK) else {
        return Ok(None);
    };
    let mut problems = Vec::new();
    if sdk != "python" {
        problems.push(AnnotationProblem {
            annotation: ANNOTATION_SDK,
            message: format!(
                "`{sdk}` is not a supported Beam SDK: Beamstack injects the Python worker pool, so use `python`"
            ),
        });
    }
    let beam_version = annotation(ANNOTATION_BEAM_VERSION).unwrap_or(&config.beam_version);
    if !is_beam_version(beam_version) {
        problems.push(AnnotationProblem {
            annotation: ANNOTATION_BEAM_VERSION,
            message: format!(
                "`{beam_version}` is not a Beam release: use a version such as {}",
                config.beam_version
            ),
        });
    }
    let python_version = annotation(ANNOTATION_PYTHON_VERSION).unwrap_or(&config.python_version);
    if !is_python_minor(python_version) {
        problems.push(AnnotationProblem {
            annotation: ANNOTATION_PYTHON_VERSION,
            message: format!(
                "`{python_version}` is not a Python minor: use the launcher's version, such as {}",
                config.python_version
            ),
        });
    }
    let explicit_image = annotation(ANNOTATION_HARNESS_IMAGE);
    if let Some(image) = explicit_image
        && (image.trim().is_empty() || image.contains(char::is_whitespace))
    {
        problems.push(AnnotationProblem {
            annotation: ANNOTATION_HARNESS_IMAGE,
            message: format!("`{image}` is not an image reference"),
        });
    }
    let java = java_pool(&annotation, beam_version, config, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    let image = explicit_image
        .map(str::to_owned)
        .unwrap_or_else(|| crate::contract::python_sdk_image(&config.image_repository, python_version, beam_version));
    Ok(Some(HarnessSpec {
        beam_version: beam_version.to_owned(),
        python_version: python_version.to_owned(),
        image,
        image_from_annotation: explicit_image.is_some(),
        java,
    }))
}

/// The Java pool `beamstack.dev/java-transforms` asks for; `None` without it.
fn java_pool<'a>(
    annotation: &impl Fn(&str) -> Option<&'a str>,
    beam_version: &str,
    config: &HarnessConfig,
    problems: &mut Vec<AnnotationProblem>,
) -> Option<JavaPoolSpec> {
    let explicit_image = annotation(ANNOTATION_JAVA_IMAGE);
    let Some(listed) = annotation(ANNOTATION_JAVA_TRANSFORMS) else {
        if explicit_image.is_some() {
            problems.push(AnnotationProblem {
                annotation: ANNOTATION_JAVA_IMAGE,
                message: format!(
                    "names a Java worker-pool image, but the object has no {ANNOTATION_JAVA_TRANSFORMS} annotation, so \
                     no Java pool is injected: list the pipeline's Java-backed transforms there, or remove this one"
                ),
            });
        }
        return None;
    };
    let transforms: Vec<String> = (listed.split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect();
    if transforms.is_empty() {
        problems.push(AnnotationProblem {
            annotation: ANNOTATION_JAVA_TRANSFORMS,
            message: "is empty: list the pipeline's Java-backed transform types (such as ReadFromPostgres), or \
                      remove the annotation when it has none"
                .to_owned(),
        });
        return None;
    }
    if let Some(image) = explicit_image
        && (image.trim().is_empty() || image.contains(char::is_whitespace))
    {
        problems.push(AnnotationProblem {
            annotation: ANNOTATION_JAVA_IMAGE,
            message: format!("`{image}` is not an image reference"),
        });
        return None;
    }
    // Beamstack's own image exists only for the releases its build publishes; a platform's repository may hold more.
    let own_repository = config.java.image_repository.trim_end_matches('/') == crate::contract::JAVA_IMAGE_REPOSITORY;
    if explicit_image.is_none() && own_repository && !crate::contract::JAVA_IMAGE_BEAM_RELEASES.contains(&beam_version)
    {
        problems.push(AnnotationProblem {
            annotation: ANNOTATION_JAVA_TRANSFORMS,
            message: format!(
                "Beamstack's Java image is published for Beam {} only, not for the pipeline's {beam_version}: run \
                 the pipeline with one of those releases, or name a Java image for {beam_version} in {}",
                crate::contract::JAVA_IMAGE_BEAM_RELEASES.join(", "),
                ANNOTATION_JAVA_IMAGE
            ),
        });
        return None;
    }
    Some(JavaPoolSpec {
        image: explicit_image
            .map(str::to_owned)
            .unwrap_or_else(|| crate::contract::java_image(&config.java.image_repository, beam_version)),
        image_from_annotation: explicit_image.is_some(),
        transforms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn annotated(annotations: Value) -> Value {
        json!({"metadata": {"name": "p", "annotations": annotations}})
    }

    #[test]
    fn unannotated_objects_are_not_pipelines() {
        let config = HarnessConfig::default();
        assert_eq!(harness_for(&json!({"metadata": {"name": "x"}}), &config), Ok(None));
        assert_eq!(harness_for(&json!({}), &config), Ok(None));
    }

    #[test]
    fn image_follows_annotations_then_config() {
        let config = HarnessConfig::default();
        let spec = harness_for(&annotated(json!({ANNOTATION_SDK: "python"})), &config)
            .unwrap()
            .unwrap();
        assert_eq!(spec.image, "apache/beam_python3.11_sdk:2.77.0");
        let spec = harness_for(
            &annotated(
                json!({ANNOTATION_SDK: "python", ANNOTATION_BEAM_VERSION: "2.76.0", ANNOTATION_PYTHON_VERSION: "3.12"}),
            ),
            &config,
        )
        .unwrap()
        .unwrap();
        assert_eq!(spec.image, "apache/beam_python3.12_sdk:2.76.0");
        let spec = harness_for(
            &annotated(json!({ANNOTATION_SDK: "python", ANNOTATION_HARNESS_IMAGE: "registry.acme/beam:custom"})),
            &config,
        )
        .unwrap()
        .unwrap();
        assert_eq!(spec.image, "registry.acme/beam:custom");
        assert!(spec.image_from_annotation);
    }

    #[test]
    fn java_transforms_add_the_java_pool_for_the_same_beam_release() {
        let config = HarnessConfig::default();
        let spec = harness_for(
            &annotated(json!({
                ANNOTATION_SDK: "python",
                ANNOTATION_BEAM_VERSION: "2.62.0",
                ANNOTATION_JAVA_TRANSFORMS: "ReadFromPostgres, WriteToPostgres",
            })),
            &config,
        )
        .unwrap()
        .unwrap();
        let java = spec.java.unwrap();
        assert_eq!(java.image, "ghcr.io/beamstack/beam-java-transforms:2.62.0");
        assert_eq!(java.transforms, ["ReadFromPostgres", "WriteToPostgres"]);
        assert!(!java.image_from_annotation);
        // Beam 2.77 (the configuration's default) has no Beamstack image: the annotation names one.
        let spec = harness_for(
            &annotated(json!({
                ANNOTATION_SDK: "python",
                ANNOTATION_JAVA_TRANSFORMS: "ReadFromKafka",
                ANNOTATION_JAVA_IMAGE: "registry.acme/beam-java:2.77.0-jdbc",
            })),
            &config,
        )
        .unwrap()
        .unwrap();
        assert_eq!(spec.java.unwrap().image, "registry.acme/beam-java:2.77.0-jdbc");
        let python_only = harness_for(&annotated(json!({ANNOTATION_SDK: "python"})), &config);
        assert_eq!(python_only.unwrap().unwrap().java, None);
    }

    #[test]
    fn java_annotations_that_cannot_be_honoured_are_named() {
        let config = HarnessConfig::default();
        for (annotations, named) in [
            (
                json!({ANNOTATION_SDK: "python", ANNOTATION_JAVA_TRANSFORMS: " , "}),
                ANNOTATION_JAVA_TRANSFORMS,
            ),
            (
                json!({ANNOTATION_SDK: "python", ANNOTATION_JAVA_IMAGE: "x:1"}),
                ANNOTATION_JAVA_IMAGE,
            ),
            (
                json!({ANNOTATION_SDK: "python", ANNOTATION_JAVA_TRANSFORMS: "Sql", ANNOTATION_JAVA_IMAGE: "a b"}),
                ANNOTATION_JAVA_IMAGE,
            ),
        ] {
            let problems = harness_for(&annotated(annotations.clone()), &config).unwrap_err();
            assert_eq!(
                problems.iter().map(|problem| problem.annotation).collect::<Vec<_>>(),
                [named],
                "{annotations}"
            );
        }
    }

    #[test]
    fn bad_annotations_are_all_reported() {
        let problems = harness_for(
            &annotated(
                json!({ANNOTATION_SDK: "java", ANNOTATION_BEAM_VERSION: "latest", ANNOTATION_PYTHON_VERSION: "3"}),
            ),
            &HarnessConfig::default(),
        )
        .unwrap_err();
        let named: Vec<_> = problems.iter().map(|problem| problem.annotation).collect();
        assert_eq!(
            named,
            [ANNOTATION_SDK, ANNOTATION_BEAM_VERSION, ANNOTATION_PYTHON_VERSION]
        );
    }
}
