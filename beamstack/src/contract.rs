//! What the webhook and the `kubectl beam` plugin agree on: the annotations and labels one writes and the other
//! reads, the API groups of the runner kinds, the worker-pool container, Beam's SDK image names and the runners.
//! Both binaries name these through this module, so changing one here changes it on both sides.

use std::fmt;

/// Beamstack's own API group (RunnerPolicy, Tenant).
pub const GROUP: &str = "beamstack.dev";

pub const FLINK_GROUP: &str = "flink.apache.org";
pub const FLINK_VERSION: &str = "v1beta1";
/// The label the Flink operator puts on its health-check canaries (CanaryResourceManager).
pub const FLINK_CANARY_LABEL: &str = "flink.apache.org/canary";
pub const SPARK_GROUP: &str = "sparkoperator.k8s.io";
pub const SPARK_VERSION: &str = "v1beta2";

/// Marks a runner object as a Beam pipeline (value: the SDK, `python`); the webhook injects the worker pool.
pub const ANNOTATION_SDK: &str = "beamstack.dev/beam-sdk";
/// The Beam release the pipeline was launched with; the harness must be the same.
pub const ANNOTATION_BEAM_VERSION: &str = "beamstack.dev/beam-version";
/// The Python minor of the launcher (`3.11`); the harness must be the same.
pub const ANNOTATION_PYTHON_VERSION: &str = "beamstack.dev/python-version";
/// An explicit worker-pool image, instead of Beam's SDK image for the two versions above.
pub const ANNOTATION_HARNESS_IMAGE: &str = "beamstack.dev/harness-image";
/// The pipeline's Java-backed transform types (`ReadFromPostgres,WriteToPostgres`): when present, the webhook injects
/// the Java worker pool beside the Python one, which runs those transforms' stages (Beam's EXTERNAL environment that
/// the expansion service wrote into them points at `localhost:<JAVA_POOL_PORT>`).
pub const ANNOTATION_JAVA_TRANSFORMS: &str = "beamstack.dev/java-transforms";
/// An explicit image for the Java worker pool, instead of Beamstack's Java image for the pipeline's Beam release.
pub const ANNOTATION_JAVA_IMAGE: &str = "beamstack.dev/java-image";
/// Which version of Beamstack mutated the object.
pub const ANNOTATION_MUTATED_BY: &str = "beamstack.dev/mutated-by";
/// What the last mutation set, so "why is my toleration missing?" has an answer on the object itself.
pub const ANNOTATION_MUTATIONS: &str = "beamstack.dev/mutations";
/// The pipeline file a run came from.
pub const ANNOTATION_SOURCE_FILE: &str = "beamstack.dev/source-file";
/// The files a pipeline's Jinja includes, carried in its ConfigMap.
pub const ANNOTATION_INCLUDES: &str = "beamstack.dev/includes";

/// The pipeline's name, on every object of a run.
pub const LABEL_PIPELINE: &str = "beamstack.dev/pipeline";
/// `flink` or `spark`, on every object of a run.
pub const LABEL_RUNNER: &str = "beamstack.dev/runner";
/// The tenant a run is counted against.
pub const LABEL_TENANT: &str = "beamstack.dev/tenant";
/// A label on a session cluster's FlinkDeployment (value: its name), and an annotation on a session-mode launcher
/// Job (value: the cluster it submits to).
pub const SESSION_CLUSTER: &str = "beamstack.dev/session-cluster";

/// The worker-pool container the webhook adds beside Flink's TaskManagers and Spark's executors (its default name,
/// `harness.containerName` in the webhook's configuration).
pub const HARNESS_CONTAINER: &str = "beam-worker-pool";
/// Where the worker pool listens: Beam's EXTERNAL environment is given `localhost:<port>`.
pub const HARNESS_PORT: u16 = 50000;
/// The Java worker-pool container (its default name, `harness.java.containerName` in the webhook's configuration).
pub const JAVA_POOL_CONTAINER: &str = "beam-java-worker-pool";
/// Where the Java worker pool listens; the expansion service's EXTERNAL environment is `localhost:<port>`.
pub const JAVA_POOL_PORT: u16 = 50001;
/// Beamstack's image for Java-backed transforms (images/beam-java-transforms): the expansion service and the Java
/// worker pool on one classpath, tagged with the Beam release it holds.
pub const JAVA_IMAGE_REPOSITORY: &str = "ghcr.io/beamstack/beam-java-transforms";
/// The Beam releases Beamstack's Java image is published for (images/beam-java-transforms/beam-releases): the
/// worker pool is compiled and tested against each release's jars, so no other tag exists.
pub const JAVA_IMAGE_BEAM_RELEASES: &[&str] = &["2.62.0"];
/// Flink's main container in a pod template: the operator's name for it, which its merge rules key on.
pub const FLINK_MAIN_CONTAINER: &str = "flink-main-container";

/// Where Beam publishes its images (Docker Hub's `apache/`): the SDK, the job servers.
pub const BEAM_IMAGE_REPOSITORY: &str = "apache";

/// Beam's Python SDK image (the worker pool), as Beam publishes it: `<repository>/beam_python<minor>_sdk:<beam>`.
pub fn python_sdk_image(repository: &str, python_minor: &str, beam_version: &str) -> String {
    format!(
        "{}/beam_python{python_minor}_sdk:{beam_version}",
        repository.trim_end_matches('/')
    )
}

/// Beamstack's Java image for a Beam release: `<repository>:<beam>`.
pub fn java_image(repository: &str, beam_version: &str) -> String {
    format!("{}:{beam_version}", repository.trim_end_matches('/'))
}

/// A runner name Beamstack cannot launch on, with what to use instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownRunner {
    #[error(
        "the Samza runner cannot be used: Beam removed it (discontinued as of Beam 2.74.0) and no Samza operator or \
         CRD exists for Kubernetes. Use --runner flink (the default) or --runner spark."
    )]
    Samza,
    #[error("unknown runner `{0}`: use flink or spark")]
    Other(String),
}

/// The runners Beamstack launches pipelines on, each through its operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runner {
    Flink,
    Spark,
}

impl Runner {
    /// A runner named on a command line or in a file; Samza and unknown names get what to use instead.
    pub fn parse(text: &str) -> Result<Self, UnknownRunner> {
        match text.to_ascii_lowercase().as_str() {
            "flink" => Ok(Runner::Flink),
            "spark" => Ok(Runner::Spark),
            "samza" => Err(UnknownRunner::Samza),
            other => Err(UnknownRunner::Other(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Runner::Flink => "flink",
            Runner::Spark => "spark",
        }
    }

    pub fn group(self) -> &'static str {
        match self {
            Runner::Flink => FLINK_GROUP,
            Runner::Spark => SPARK_GROUP,
        }
    }

    pub fn version(self) -> &'static str {
        match self {
            Runner::Flink => FLINK_VERSION,
            Runner::Spark => SPARK_VERSION,
        }
    }
}

impl fmt::Display for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runners_parse_case_insensitively_and_samza_says_what_to_use() {
        assert_eq!(Runner::parse("Flink"), Ok(Runner::Flink));
        assert_eq!(Runner::parse("spark"), Ok(Runner::Spark));
        let samza = Runner::parse("samza").unwrap_err().to_string();
        assert!(
            samza.contains("Beam removed it") && samza.contains("--runner flink"),
            "{samza}"
        );
        assert!(
            Runner::parse("dataflow")
                .unwrap_err()
                .to_string()
                .contains("use flink or spark")
        );
    }

    #[test]
    fn the_java_image_releases_are_the_ones_its_build_publishes() {
        let listed: Vec<&str> = include_str!("../../images/beam-java-transforms/beam-releases")
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(str::trim)
            .collect();
        assert_eq!(listed, JAVA_IMAGE_BEAM_RELEASES);
    }

    #[test]
    fn sdk_images_are_named_as_beam_publishes_them() {
        assert_eq!(
            python_sdk_image("apache/", "3.11", "2.77.0"),
            "apache/beam_python3.11_sdk:2.77.0"
        );
        assert_eq!(
            java_image(JAVA_IMAGE_REPOSITORY, "2.62.0"),
            "ghcr.io/beamstack/beam-java-transforms:2.62.0"
        );
    }
}
