//! The webhook's configuration file: the defaults it fills in, the harness it injects and the limits it checks.
//!
//! One YAML file, every key optional (the defaults below are what an empty file means), unknown keys refused so a
//! typo cannot silently do nothing. `Config::from_yaml` is pure; reading the file is the caller's business.

use crate::units;
use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("configuration is not valid YAML for beam-webhook: {0}")]
    Syntax(String),
    #[error("configuration key `{key}`: {message}")]
    Value { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Value {
        key: key.to_owned(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// Defaults for FlinkDeployment (and the checks that are specific to Flink).
    pub flink: FlinkConfig,
    /// Defaults for SparkApplication and the template of ScheduledSparkApplication.
    pub spark: SparkConfig,
    /// The Beam SDK harness (worker pool) sidecar injected into annotated pipelines.
    pub harness: HarnessConfig,
    /// Built-in checks that need a platform decision.
    pub validation: ValidationConfig,
}

/// Where pods land: merged into the runner's pod specs, keeping what the object already says.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Placement {
    /// Tolerations appended to the pods' tolerations unless an equal one is already there.
    pub tolerations: Vec<Toleration>,
    /// Node labels added to the pods' nodeSelector; a key the object already sets is left as it is.
    pub node_selector: BTreeMap<String, String>,
    /// Set when the object names no priority class.
    pub priority_class_name: Option<String>,
}

impl Placement {
    /// The tolerations as the JSON objects pod specs hold (to compare with what an object already has).
    pub fn toleration_values(&self) -> Vec<serde_json::Value> {
        self.tolerations
            .iter()
            .filter_map(|toleration| serde_json::to_value(toleration).ok())
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.tolerations.is_empty() && self.node_selector.is_empty() && self.priority_class_name.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct FlinkResource {
    /// Cores, as the FlinkDeployment's `resource.cpu` number.
    pub cpu: f64,
    /// A Flink memory size (`2048m` = 2048 MiB) or a Kubernetes quantity (`2Gi`).
    pub memory: String,
}

impl Default for FlinkResource {
    fn default() -> Self {
        Self {
            cpu: 1.0,
            memory: "2048m".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct FlinkConfig {
    /// `spec.serviceAccount` when absent.
    pub service_account: String,
    /// `spec.jobManager.resource` cpu and memory, each when absent.
    pub job_manager: FlinkResource,
    /// `spec.taskManager.resource` cpu and memory, each when absent.
    pub task_manager: FlinkResource,
    /// The `flinkVersion` values admitted. Default: the Flink minors Beam 2.77 publishes runners for.
    pub supported_versions: Vec<String>,
    /// Tolerations, nodeSelector and priorityClassName merged into `spec.podTemplate` (JobManager and TaskManagers).
    pub placement: Placement,
    /// Flink's Prometheus reporter on this port (0: left alone): its configuration in `spec.flinkConfiguration` and a
    /// container port named `metrics` on Flink's main container, each when absent. `kubectl beam status`, the
    /// chart's dashboard and its PodMonitor read it. Default 9249, the port Flink's documentation uses.
    pub metrics_port: u16,
    /// More `spec.flinkConfiguration` entries, each when the object lacks the key (flat or nested).
    pub configuration: BTreeMap<String, String>,
}

impl Default for FlinkConfig {
    fn default() -> Self {
        Self {
            service_account: "flink".into(),
            job_manager: FlinkResource::default(),
            task_manager: FlinkResource::default(),
            supported_versions: ["v1_19", "v1_20", "v2_0", "v2_1", "v2_2"].map(String::from).to_vec(),
            placement: Placement::default(),
            metrics_port: 9249,
            configuration: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SparkRole {
    /// `cores` when absent (whole cores, as the CRD requires).
    pub cores: u32,
    /// `memory` when absent, a JVM memory string (`512m`, `1g`).
    pub memory: String,
}

impl Default for SparkRole {
    fn default() -> Self {
        Self {
            cores: 1,
            memory: "1g".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SparkConfig {
    /// `spec.driver.serviceAccount` when absent. The default is the account the Spark operator's v2 chart makes in
    /// each job namespace for drivers (they create their executors' pods and services).
    pub service_account: String,
    /// `spec.driver` cores and memory, each when absent.
    pub driver: SparkRole,
    /// `spec.executor` cores and memory, each when absent.
    pub executor: SparkRole,
    /// `spec.executor.instances` when absent and dynamic allocation is off.
    pub executor_instances: u32,
    /// When set: `spec.batchScheduler: volcano` and `spec.batchSchedulerOptions.queue`, each when absent.
    pub volcano_queue: Option<String>,
    /// Tolerations and priorityClassName go to driver and executor; nodeSelector to the app-level selector unless
    /// the object uses role-level ones (the Spark operator refuses both at once).
    pub placement: Placement,
}

impl Default for SparkConfig {
    fn default() -> Self {
        Self {
            service_account: "spark-operator-spark".into(),
            driver: SparkRole::default(),
            executor: SparkRole::default(),
            executor_instances: 1,
            volcano_queue: None,
            placement: Placement::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct HarnessConfig {
    /// Beam version when the object's `beamstack.dev/beam-version` annotation is absent.
    pub beam_version: String,
    /// Python minor (`3.11`) when the object's `beamstack.dev/python-version` annotation is absent.
    pub python_version: String,
    /// Image repository prefix; the image is `<repository>/beam_python<minor>_sdk:<beam version>`.
    pub image_repository: String,
    /// Name of the injected container.
    pub container_name: String,
    /// Port the worker pool listens on (Beam's EXTERNAL environment expects `localhost:50000`).
    pub port: i32,
    /// Resources of the harness container when it has none of its own.
    pub resources: ResourceRequirements,
    /// Name of the emptyDir shared by the harness and the runner's main container for artifact staging.
    pub artifact_volume: String,
    /// Where that volume is mounted in both containers.
    pub artifact_mount_path: String,
    /// The Java worker pool, injected beside the Python one when a pipeline uses Java-backed transforms.
    pub java: JavaHarnessConfig,
}

/// The Java worker pool (images/beam-java-transforms, role `worker-pool`): it runs the stages of Java-backed
/// transforms (JDBC, Kafka) that the expansion service pointed at `localhost:<port>`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct JavaHarnessConfig {
    /// The image is `<imageRepository>:<beam version>`, unless the object's beamstack.dev/java-image names one.
    pub image_repository: String,
    /// Name of the injected container.
    pub container_name: String,
    /// Port the pool listens on (the expansion service's EXTERNAL environment names `localhost:<port>`).
    pub port: i32,
    /// Resources of the container when it has none of its own. The workers run in the pool's JVM, so its memory is
    /// the Java stages' memory.
    pub resources: ResourceRequirements,
}

/// A worker pool's default resources, the Python one's and the Java one's: half a core, 1 GiB.
fn worker_pool_resources() -> ResourceRequirements {
    let quantity = |text: &str| Quantity(text.to_owned());
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), quantity("500m")),
            ("memory".to_owned(), quantity("1Gi")),
        ])),
        limits: Some(BTreeMap::from([("memory".to_owned(), quantity("1Gi"))])),
        ..Default::default()
    }
}

impl Default for JavaHarnessConfig {
    fn default() -> Self {
        Self {
            image_repository: crate::contract::JAVA_IMAGE_REPOSITORY.into(),
            container_name: crate::contract::JAVA_POOL_CONTAINER.into(),
            port: crate::contract::JAVA_POOL_PORT.into(),
            resources: worker_pool_resources(),
        }
    }
}

impl Default for HarnessConfig {
    fn default() -> Self {
        Self {
            beam_version: "2.77.0".into(),
            python_version: "3.11".into(),
            image_repository: crate::contract::BEAM_IMAGE_REPOSITORY.into(),
            container_name: crate::contract::HARNESS_CONTAINER.into(),
            port: crate::contract::HARNESS_PORT.into(),
            resources: worker_pool_resources(),
            artifact_volume: "beam-artifact-staging".into(),
            artifact_mount_path: "/tmp/beam-artifact-staging".into(),
            java: JavaHarnessConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ValidationConfig {
    /// When not empty, every image must come from one of these registries or repository prefixes
    /// (`docker.io/apache`, `ghcr.io/acme`, `registry.internal:5000`). Images without a registry are `docker.io`.
    pub allowed_registries: Vec<String>,
}

impl Config {
    /// Parses and checks a configuration. An empty document means all defaults.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_saphyr::from_str::<Option<Config>>(text)
                .map_err(|error| ConfigError::Syntax(error.to_string()))?
                .unwrap_or_default()
        };
        config.check()?;
        Ok(config)
    }

    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text)
    }

    /// The checks serde cannot make: values that must parse in a runner's own notation.
    fn check(&self) -> Result<(), ConfigError> {
        for (key, resource) in [
            ("flink.jobManager", &self.flink.job_manager),
            ("flink.taskManager", &self.flink.task_manager),
        ] {
            if !(resource.cpu.is_finite() && resource.cpu > 0.0) {
                return Err(invalid(&format!("{key}.cpu"), "must be a positive number of cores"));
            }
            if units::flink_memory(&resource.memory).map_or(true, |bytes| bytes.0 == 0) {
                return Err(invalid(
                    &format!("{key}.memory"),
                    format!(
                        "`{}` is not a positive Flink memory size such as `2048m` or `2Gi`",
                        resource.memory
                    ),
                ));
            }
        }
        for (key, role) in [
            ("spark.driver", &self.spark.driver),
            ("spark.executor", &self.spark.executor),
        ] {
            if role.cores == 0 {
                return Err(invalid(&format!("{key}.cores"), "must be at least 1"));
            }
            if units::spark_memory(&role.memory).map_or(true, |bytes| bytes.0 == 0) {
                return Err(invalid(
                    &format!("{key}.memory"),
                    format!(
                        "`{}` is not a positive Spark memory string such as `512m` or `1g`",
                        role.memory
                    ),
                ));
            }
        }
        if self.spark.executor_instances == 0 {
            return Err(invalid("spark.executorInstances", "must be at least 1"));
        }
        if self.flink.supported_versions.is_empty() {
            return Err(invalid(
                "flink.supportedVersions",
                "must name at least one version, such as v1_20",
            ));
        }
        if let Some(bad) = self
            .flink
            .supported_versions
            .iter()
            .find(|version| !crate::versions::FLINK_VERSION_PATTERN.is_match(version))
        {
            return Err(invalid(
                "flink.supportedVersions",
                format!("`{bad}` is not a FlinkDeployment flinkVersion such as v1_20 or v2_0"),
            ));
        }
        let harness = &self.harness;
        if !crate::versions::is_beam_version(&harness.beam_version) {
            return Err(invalid("harness.beamVersion", "must be a Beam release such as 2.77.0"));
        }
        if !crate::versions::is_python_minor(&harness.python_version) {
            return Err(invalid("harness.pythonVersion", "must be a Python minor such as 3.11"));
        }
        if !(1..=65535).contains(&harness.port) {
            return Err(invalid("harness.port", "must be a port number between 1 and 65535"));
        }
        if harness.container_name.is_empty() || harness.artifact_volume.is_empty() {
            return Err(invalid(
                "harness.containerName",
                "container and volume names must not be empty",
            ));
        }
        if !harness.artifact_mount_path.starts_with('/') {
            return Err(invalid("harness.artifactMountPath", "must be an absolute path"));
        }
        check_resources("harness.resources", &harness.resources)?;
        let java = &harness.java;
        if !(1..=65535).contains(&java.port) || java.port == harness.port {
            return Err(invalid(
                "harness.java.port",
                "must be a port number between 1 and 65535, other than harness.port",
            ));
        }
        if java.container_name.is_empty() || java.container_name == harness.container_name {
            return Err(invalid(
                "harness.java.containerName",
                "must not be empty nor the Python worker pool's name",
            ));
        }
        if java.image_repository.trim().is_empty() || java.image_repository.contains(char::is_whitespace) {
            return Err(invalid("harness.java.imageRepository", "must be an image repository"));
        }
        check_resources("harness.java.resources", &java.resources)
    }
}

/// Every amount of a container's resources reads as Kubernetes reads it; `key` names the block in errors.
fn check_resources(key: &str, resources: &ResourceRequirements) -> Result<(), ConfigError> {
    for (role, amounts) in [("requests", &resources.requests), ("limits", &resources.limits)] {
        for (name, amount) in amounts.iter().flatten() {
            let parsed = match name.as_str() {
                "cpu" => units::quantity_millicores(&amount.0).map(|_| ()),
                _ => units::quantity_bytes(&amount.0).map(|_| ()),
            };
            if let Err(error) = parsed {
                return Err(invalid(&format!("{key}.{role}.{name}"), error.to_string()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_means_defaults() {
        assert_eq!(Config::from_yaml("").unwrap(), Config::default());
        assert_eq!(Config::from_yaml("# nothing\n").unwrap(), Config::default());
        assert_eq!(Config::default().harness.port, 50000);
    }

    #[test]
    fn a_full_file_is_read() {
        let config = Config::from_yaml(
            r#"
flink:
  serviceAccount: flink-runner
  jobManager: {cpu: 0.5, memory: 1g}
  supportedVersions: [v1_20]
  placement:
    tolerations: [{key: dedicated, operator: Equal, value: beam, effect: NoSchedule}]
    nodeSelector: {pool: beam}
    priorityClassName: batch
spark:
  volcanoQueue: analytics
  executorInstances: 2
harness:
  pythonVersion: "3.12"
validation:
  allowedRegistries: [docker.io/apache, ghcr.io/acme]
"#,
        )
        .unwrap();
        assert_eq!(config.flink.service_account, "flink-runner");
        assert_eq!(config.flink.job_manager.cpu, 0.5);
        assert_eq!(
            config.flink.task_manager.memory, "2048m",
            "unset keys keep their defaults"
        );
        assert_eq!(config.flink.placement.tolerations[0].key.as_deref(), Some("dedicated"));
        assert_eq!(config.spark.volcano_queue.as_deref(), Some("analytics"));
        assert_eq!(config.harness.python_version, "3.12");
        assert_eq!(config.validation.allowed_registries.len(), 2);
    }

    #[test]
    fn an_unknown_key_is_named() {
        let error = Config::from_yaml("flink:\n  serviceAcount: x\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("serviceAcount"), "{error}");
    }

    #[test]
    fn a_wrong_type_is_refused() {
        let error = Config::from_yaml("spark:\n  executorInstances: many\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("executorInstances") || error.contains("many"), "{error}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("flink:\n  jobManager: {memory: lots}\n", "flink.jobManager.memory"),
            ("flink:\n  taskManager: {cpu: 0}\n", "flink.taskManager.cpu"),
            ("spark:\n  driver: {memory: 1Gi}\n", "spark.driver.memory"),
            ("spark:\n  executor: {cores: 0}\n", "spark.executor.cores"),
            ("flink:\n  supportedVersions: [\"1.20\"]\n", "flink.supportedVersions"),
            ("harness:\n  beamVersion: latest\n", "harness.beamVersion"),
            ("harness:\n  pythonVersion: \"3\"\n", "harness.pythonVersion"),
            ("harness:\n  port: 0\n", "harness.port"),
            ("harness:\n  java: {port: 50000}\n", "harness.java.port"),
            (
                "harness:\n  java: {containerName: beam-worker-pool}\n",
                "harness.java.containerName",
            ),
            (
                "harness:\n  java: {resources: {limits: {cpu: lots}}}\n",
                "harness.java.resources.limits.cpu",
            ),
            (
                "harness:\n  resources: {requests: {memory: plenty}}\n",
                "harness.resources.requests.memory",
            ),
        ];
        for (yaml, key) in cases {
            let error = Config::from_yaml(yaml).unwrap_err().to_string();
            assert!(
                error.contains(key),
                "{yaml:?} gave {error:?}, expected it to name {key}"
            );
        }
    }
}

#[cfg(test)]
mod example_file {
    use super::*;

    #[test]
    fn the_documented_example_loads() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../webhook/config.example.yaml");
        let config = Config::from_file(&path).unwrap();
        assert_eq!(config.flink.placement.node_selector["pool"], "beam");
        assert_eq!(config.spark.volcano_queue.as_deref(), Some("analytics"));
        assert_eq!(
            config.harness,
            HarnessConfig::default(),
            "the example shows the harness defaults"
        );
        assert_eq!(
            config.flink.supported_versions,
            FlinkConfig::default().supported_versions
        );
    }
}
