//! One table drives every version choice: Beam release -> the Flink minors it publishes runners for -> the
//! FlinkDeployment `flinkVersion` -> the job-server jar -> images; Beam + Python minor -> the SDK harness image.

/// What one Beam release supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeamRelease {
    pub beam: &'static str,
    /// Flink minors Beam publishes a runner (and job-server jar) for, oldest first.
    pub flink_minors: &'static [&'static str],
    pub python_minors: &'static [&'static str],
    /// Spark major the Spark runner supports.
    pub spark_major: &'static str,
}

/// Newest first. The Flink minors are the Python SDK's `FlinkRunnerOptions.PUBLISHED_FLINK_VERSIONS` of that
/// release and the Python minors its wheel's classifiers (`Requires-Python`), read from the release's PyPI wheel.
/// 2.70.0 and 2.62.0 are here because they are the releases whose Flink 1.19 runner the end-to-end tests on the
/// Flink operator can fetch: 2.62.0 is the one they run (see scripts/flink-local.sh).
pub const RELEASES: &[BeamRelease] = &[
    BeamRelease {
        beam: "2.77.0",
        flink_minors: &["1.19", "1.20", "2.0", "2.1", "2.2"],
        python_minors: &["3.10", "3.11", "3.12", "3.13"],
        spark_major: "3",
    },
    BeamRelease {
        beam: "2.70.0",
        flink_minors: &["1.17", "1.18", "1.19", "1.20"],
        python_minors: &["3.10", "3.11", "3.12", "3.13"],
        spark_major: "3",
    },
    BeamRelease {
        beam: "2.62.0",
        flink_minors: &["1.17", "1.18", "1.19"],
        python_minors: &["3.9", "3.10", "3.11", "3.12"],
        spark_major: "3",
    },
];

pub const DEFAULT_BEAM: &str = "2.77.0";
pub const DEFAULT_FLINK: &str = "1.20";
pub const DEFAULT_PYTHON: &str = "3.11";
use beamstack::contract::BEAM_IMAGE_REPOSITORY as BEAM_REPOSITORY;

pub fn release(beam: &str) -> Result<&'static BeamRelease, String> {
    RELEASES.iter().find(|release| release.beam == beam).ok_or_else(|| {
        format!(
            "Beam {beam} is not in kubectl-beam's version table: use one of {}",
            RELEASES
                .iter()
                .map(|release| release.beam)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// The resolved versions of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    pub beam: String,
    pub flink_minor: String,
    pub python_minor: String,
}

impl Versions {
    pub fn resolve(beam: &str, flink_minor: &str, python_minor: &str) -> Result<Self, String> {
        let release = release(beam)?;
        if !release.flink_minors.contains(&flink_minor) {
            return Err(format!(
                "Beam {beam} has no Flink {flink_minor} runner: use --flink-version {}",
                release.flink_minors.join(", ")
            ));
        }
        if !release.python_minors.contains(&python_minor) {
            return Err(format!(
                "Beam {beam} publishes no Python {python_minor} SDK: use --python-version {}",
                release.python_minors.join(", ")
            ));
        }
        Ok(Self {
            beam: beam.to_owned(),
            flink_minor: flink_minor.to_owned(),
            python_minor: python_minor.to_owned(),
        })
    }

    /// The FlinkDeployment `flinkVersion` enum value: `1.20` -> `v1_20`.
    pub fn flink_version_enum(&self) -> String {
        format!("v{}", self.flink_minor.replace('.', "_"))
    }

    /// Flink's keys for the checkpoint and savepoint folders: `execution.checkpointing.dir` and
    /// `execution.checkpointing.savepoint-dir` from 1.20 (the old names deprecated there, gone in 2.0);
    /// `state.checkpoints.dir` and `state.savepoints.dir` before, which is all 1.19 reads (found on a real 1.19
    /// JobManager: with the new key it kept its checkpoints in memory).
    pub fn checkpoint_dir_keys(&self) -> (&'static str, &'static str) {
        let mut parts = self.flink_minor.split('.').map(|part| part.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        if (major, minor) >= (1, 20) {
            ("execution.checkpointing.dir", "execution.checkpointing.savepoint-dir")
        } else {
            ("state.checkpoints.dir", "state.savepoints.dir")
        }
    }

    /// The Beam SDK harness (worker pool) image, which also runs Beam YAML's launcher: Beam's Python SDK image.
    pub fn harness_image(&self) -> String {
        beamstack::contract::python_sdk_image(BEAM_REPOSITORY, &self.python_minor, &self.beam)
    }

    /// Beam's Flink job server image for this Flink minor: its jar turns a pipeline into an executable Flink job.
    pub fn job_server_image(&self) -> String {
        format!(
            "{BEAM_REPOSITORY}/beam_flink{}_job_server:{}",
            self.flink_minor, self.beam
        )
    }

    /// The image the Spark pods run by default: Spark's own, in its Java 17 build (the plain `apache/spark:<version>`
    /// tag is the Java 11 one). Beam's part comes from Beam's images in the driver pod and the executor pods.
    pub fn spark_image(&self) -> String {
        format!("apache/spark:{SPARK_RELEASE}-java17")
    }

    /// Beam's Spark job server image (Spark 3): its jar turns a pipeline into an executable Spark job.
    pub fn spark_job_server_image(&self) -> String {
        format!("{BEAM_REPOSITORY}/beam_spark3_job_server:{}", self.beam)
    }

    /// The image the Flink pods run by default: Flink's own (`flink:<minor>` on Docker Hub). Beam's part comes from
    /// Beam's images in the same pods (the SDK image, the job server image). Override with --image or the defaults'
    /// imageRepository.
    pub fn flink_image(&self, repository: &str) -> String {
        format!("{repository}:{}", self.flink_minor)
    }
}

/// The Spark release kubectl beam's SparkApplications name (`spec.sparkVersion`) and run by default: the newest 3.5
/// release (Beam's Spark runner is built for Spark 3 and Scala 2.12, which Spark 4 left).
pub const SPARK_RELEASE: &str = "3.5.6";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_drives_every_name() {
        let versions = Versions::resolve("2.77.0", "1.20", "3.11").unwrap();
        assert_eq!(versions.flink_version_enum(), "v1_20");
        assert_eq!(versions.job_server_image(), "apache/beam_flink1.20_job_server:2.77.0");
        assert_eq!(versions.harness_image(), "apache/beam_python3.11_sdk:2.77.0");
        assert_eq!(versions.flink_image("flink"), "flink:1.20");
        assert_eq!(
            versions.spark_job_server_image(),
            "apache/beam_spark3_job_server:2.77.0"
        );
        assert_eq!(
            Versions::resolve("2.77.0", "2.0", "3.12").unwrap().flink_version_enum(),
            "v2_0"
        );
    }

    #[test]
    fn older_releases_have_their_own_rows() {
        let v270 = Versions::resolve("2.70.0", "1.19", "3.11").unwrap();
        assert_eq!(v270.flink_version_enum(), "v1_19");
        assert_eq!(v270.job_server_image(), "apache/beam_flink1.19_job_server:2.70.0");
        assert_eq!(v270.harness_image(), "apache/beam_python3.11_sdk:2.70.0");
        assert!(Versions::resolve("2.70.0", "1.20", "3.13").is_ok());
        assert!(Versions::resolve("2.70.0", "1.17", "3.10").is_ok());
        let v262 = Versions::resolve("2.62.0", "1.19", "3.11").unwrap();
        assert_eq!(v262.job_server_image(), "apache/beam_flink1.19_job_server:2.62.0");
        assert_eq!(v262.harness_image(), "apache/beam_python3.11_sdk:2.62.0");
        assert!(Versions::resolve("2.62.0", "1.17", "3.9").is_ok());
        // What those releases do not publish: Flink 2.x and 1.20 (2.62), Python 3.9 (2.70), Python 3.13 (2.62).
        assert!(
            Versions::resolve("2.70.0", "2.0", "3.11")
                .unwrap_err()
                .contains("--flink-version 1.17, 1.18, 1.19, 1.20")
        );
        assert!(
            Versions::resolve("2.62.0", "1.20", "3.11")
                .unwrap_err()
                .contains("--flink-version 1.17, 1.18, 1.19")
        );
        assert!(
            Versions::resolve("2.70.0", "1.19", "3.9")
                .unwrap_err()
                .contains("--python-version 3.10, 3.11, 3.12, 3.13")
        );
        assert!(
            Versions::resolve("2.62.0", "1.19", "3.13")
                .unwrap_err()
                .contains("--python-version 3.9, 3.10, 3.11, 3.12")
        );
    }

    #[test]
    fn unsupported_combinations_say_what_to_use() {
        assert!(
            Versions::resolve("2.77.0", "1.18", "3.11")
                .unwrap_err()
                .contains("--flink-version 1.19, 1.20")
        );
        assert!(
            Versions::resolve("2.77.0", "1.20", "3.9")
                .unwrap_err()
                .contains("--python-version")
        );
        assert!(
            Versions::resolve("2.60.0", "1.20", "3.11")
                .unwrap_err()
                .contains("use one of 2.77.0, 2.70.0, 2.62.0")
        );
    }
}
