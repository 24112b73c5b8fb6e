//! From a checked pipeline to the runner's custom resources.
//!
//! Every image is one the Apache projects publish: Flink's (`flink:<minor>`), Beam's Python SDK
//! (`apache/beam_python<py>_sdk:<beam>`) and Beam's Flink job server (`apache/beam_flink<minor>_job_server:<beam>`),
//! composed in the pod. No image holds Flink, Java and Python with Beam together, and none needs to:
//!
//! - Flink, application mode (default): one FlinkDeployment per pipeline, running Flink's image. Before its
//!   JobManager starts, two containers of the JobManager pod turn the pipeline into an executable jar: Beam's job
//!   server (a native sidecar, from the job server image) and Beam YAML's launcher (`apache_beam.yaml.main` in the
//!   SDK image, `--output_executable_path`), which hands it the pipeline; the job server writes the jar into a volume
//!   the JobManager mounts at /opt/flink/usrlib. The job's entry class is Beam's `FlinkPipelineRunner`, which runs
//!   the pipeline in that jar; its Python steps run in the EXTERNAL worker pool the webhook injects into every
//!   TaskManager (`localhost:50000`).
//! - Flink, session mode (`--session CLUSTER`): a launcher Job that submits to `<cluster>-rest:8081` with
//!   FlinkRunner and an uber jar, which Beam's Python SDK builds without Java from the job server's jar (copied out
//!   of the job server image by an init container).
//! - Spark: a SparkApplication running Beam's SparkPipelineRunner from an executable pipeline jar that an init
//!   container builds (`--output_executable_path`), executors with the worker pool. A documented design: no public
//!   example of Beam Python on the Spark operator exists (apache/beam#20537).
//! - Samza: refused (no operator exists, and Beam removed the runner in 2.74).
//!
//! In every case the pipeline goes into a ConfigMap (the rendered pipeline Beam runs, the source, its Jinja
//! includes and variables) mounted at /etc/beam/pipeline, owned by the runner object so it is deleted with it.

mod flink;
pub mod java;
mod labels;
mod options;
mod session;
mod spark;
pub mod versions;

pub use labels::parse_labels;
pub use session::{ClusterSettings, session_cluster};

use crate::pipeline::Pipeline;
use beamstack::contract::ANNOTATION_INCLUDES;
pub use beamstack::contract::Runner;
use flink::flink_application;
use labels::labels;
use options::runner_options;
use serde_json::{Map, Value, json};
use session::flink_session_launcher;
use spark::spark_application;
use versions::Versions;

pub const PIPELINE_MOUNT: &str = "/etc/beam/pipeline";
/// Where the JobManager finds the pipeline's executable jar (Flink's folder for user jars in application mode).
pub const USRLIB: &str = "/opt/flink/usrlib";
pub const PIPELINE_JAR: &str = "beam-pipeline.jar";
/// Where the Spark driver finds the pipeline's executable jar.
const SPARK_JAR_DIR: &str = "/opt/beam/jars";
/// The job server's jar in Beam's job server image.
pub const JOB_SERVER_JAR_IN_IMAGE: &str = "/opt/apache/beam/jars/beam-runners-flink-job-server.jar";
/// The job server's port inside the JobManager pod (its default).
pub const JOB_SERVER_PORT: u16 = 8099;
pub const FIELD_MANAGER: &str = "kubectl-beam";

/// Everything a run decides besides the pipeline itself.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub name: String,
    pub namespace: String,
    pub runner: Runner,
    /// Flink session cluster to submit to, instead of a FlinkDeployment of its own.
    pub session: Option<String>,
    pub versions: Versions,
    /// The Flink (or Spark) image; derived from the version table when absent.
    pub image: Option<String>,
    /// Repository of the default Flink image (`<repository>:<flink minor>`).
    pub image_repository: String,
    /// The image that runs Beam YAML's launcher (default: Beam's Python SDK image).
    pub launcher_image: Option<String>,
    /// The image holding Beam's Flink job server (default: Beam's job server image).
    pub job_server_image: Option<String>,
    /// The image of the expansion service for Java-backed transforms (default: Beamstack's Java image for the Beam
    /// release, which the webhook's Java worker pool also runs).
    pub java_image: Option<String>,
    pub job_manager: Resources,
    pub task_manager: Resources,
    /// The Spark driver's and each executor's pod: cores requested and JVM memory (Spark's format).
    pub spark_driver: Resources,
    pub spark_executor: Resources,
    pub parallelism: Option<u32>,
    pub upgrade_mode: String,
    pub checkpoint_interval_ms: Option<u64>,
    pub checkpoint_dir: Option<String>,
    pub savepoint_dir: Option<String>,
    /// Flink's high-availability storage for last-state upgrades (default: `ha` beside the checkpoint folder).
    pub ha_dir: Option<String>,
    pub service_account: Option<String>,
    /// `--beam_services`: expansion-service target -> host:port, for Java-backed transforms.
    pub beam_services: Map<String, Value>,
    pub task_slots: u32,
    /// The user's labels (`-l team=a`), under ours: a team label is what policies and tenants read.
    pub labels: Map<String, Value>,
    /// PersistentVolumeClaims mounted where pipeline code runs (`--pvc claim:/path`): the launcher, which checks
    /// the files a pipeline reads when it builds it, and the worker pool, where Python steps read and write files.
    pub claims: Vec<ClaimMount>,
}

/// A PersistentVolumeClaim and where it is mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMount {
    pub claim: String,
    pub path: String,
}

impl ClaimMount {
    /// `claim:/absolute/path`, the claim a Kubernetes name.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (claim, path) = text
            .split_once(':')
            .ok_or_else(|| format!("--pvc {text:?}: give CLAIM:/path, such as data:/data"))?;
        let name_ok = !claim.is_empty()
            && claim.len() <= 253
            && claim
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && claim.starts_with(|c: char| c.is_ascii_alphanumeric())
            && claim.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !name_ok {
            return Err(format!(
                "--pvc {text:?}: `{claim}` is not a PersistentVolumeClaim name (lower-case letters, digits, '-' and '.')"
            ));
        }
        if !path.starts_with('/') || path.contains(':') {
            return Err(format!(
                "--pvc {text:?}: the mount path must be absolute, such as /data"
            ));
        }
        Ok(Self {
            claim: claim.to_owned(),
            path: path.to_owned(),
        })
    }

    fn volume_name(&self, index: usize) -> String {
        format!("beam-pvc-{index}")
    }
}

impl RunSettings {
    pub fn new(name: &str, namespace: &str, versions: Versions) -> Self {
        Self {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            runner: Runner::Flink,
            session: None,
            versions,
            image: None,
            image_repository: DEFAULT_FLINK_REPOSITORY.into(),
            launcher_image: None,
            job_server_image: None,
            java_image: None,
            job_manager: Resources::default(),
            task_manager: Resources::default(),
            spark_driver: Resources {
                cpu: 1.0,
                memory: "1g".into(),
            },
            spark_executor: Resources {
                cpu: 1.0,
                memory: "2g".into(),
            },
            parallelism: None,
            upgrade_mode: "stateless".into(),
            checkpoint_interval_ms: None,
            checkpoint_dir: None,
            savepoint_dir: None,
            ha_dir: None,
            service_account: None,
            beam_services: Map::new(),
            task_slots: 1,
            labels: Map::new(),
            claims: Vec::new(),
        }
    }
}

/// Flink's official image on Docker Hub.
pub const DEFAULT_FLINK_REPOSITORY: &str = "flink";

/// What one Flink process's pod asks for: the FlinkDeployment's `resource` (CPU cores, a Flink memory size).
#[derive(Debug, Clone, PartialEq)]
pub struct Resources {
    pub cpu: f64,
    pub memory: String,
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            cpu: 1.0,
            memory: "2048m".into(),
        }
    }
}

impl Resources {
    fn to_json(&self) -> Value {
        json!({"cpu": self.cpu, "memory": self.memory})
    }
}

/// The rendered pipeline as the launcher's Beam will render it again: protected when it holds Jinja markers.
fn runnable_pipeline(rendered: &str) -> String {
    // The blanked leading comment lines only matter for line numbers while checking.
    let rendered = rendered.trim_start_matches(['\n', '\r']);
    if rendered.contains("{{") || rendered.contains("{%") || rendered.contains("{#") {
        // A raw block ends at the first `{% endraw %}` (or `{%- endraw %}`, `{%endraw%}`, ...), so a pipeline that
        // holds one (a value rendered from `{{ "{% endraw %}" }}` or a variable) would end it early, and Beam would
        // fail on the rest (found by fuzz/fuzz_targets/beam_yaml.rs). Every `{%` is therefore written outside the
        // raw block, as an expression; Jinja drops one trailing newline, hence the `\n`.
        let protected = rendered.replace("{%", "{% endraw %}{{ '{%' }}{% raw %}");
        format!("{{% raw %}}{protected}{{% endraw %}}\n")
    } else {
        rendered.to_owned()
    }
}

fn config_map(pipeline: &Pipeline, settings: &RunSettings) -> Value {
    let mut data = Map::new();
    data.insert(
        "pipeline.yaml".into(),
        Value::from(runnable_pipeline(&pipeline.rendered)),
    );
    data.insert("source.yaml".into(), Value::from(pipeline.sources.source.clone()));
    let variables = &pipeline.sources.variables;
    if variables.as_object().is_some_and(|map| !map.is_empty()) {
        data.insert(
            "jinja-variables.json".into(),
            Value::from(serde_json::to_string_pretty(variables).unwrap_or_default()),
        );
    }
    let mut include_paths = Vec::new();
    for (index, (name, contents)) in pipeline.sources.includes.iter().enumerate() {
        let key = format!("include-{index}.yaml");
        include_paths.push(json!({"key": key, "path": name}));
        data.insert(key, Value::from(contents.clone()));
    }
    let mut config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": format!("{}-pipeline", settings.name),
            "namespace": settings.namespace,
            "labels": labels(settings),
        },
        "data": data,
    });
    if !include_paths.is_empty() {
        // Where each include sits relative to the pipeline, for Beam's search path when it renders again.
        config_map["metadata"]["annotations"] =
            json!({ANNOTATION_INCLUDES: serde_json::to_string(&include_paths).unwrap_or_default()});
    }
    config_map
}

pub(super) fn pipeline_volume(settings: &RunSettings) -> Value {
    json!({"name": "beam-pipeline", "configMap": {"name": format!("{}-pipeline", settings.name)}})
}

pub(super) fn pipeline_mount() -> Value {
    json!({"name": "beam-pipeline", "mountPath": PIPELINE_MOUNT, "readOnly": true})
}

/// The objects of one run: the ConfigMap first, then the runner object (apply in this order).
pub fn objects(pipeline: &Pipeline, settings: &RunSettings) -> Result<Vec<Value>, String> {
    let java = java::plan(pipeline, settings)?;
    let options = runner_options(pipeline, settings, &java)?;
    let runner_object = match (settings.runner, &settings.session) {
        (Runner::Flink, None) => flink_application(pipeline, settings, &options, &java),
        (Runner::Flink, Some(cluster)) => flink_session_launcher(settings, cluster, &options),
        (Runner::Spark, _) => spark_application(pipeline, settings, &options, &java),
    };
    Ok(vec![config_map(pipeline, settings), runner_object])
}

pub(super) fn claim_volumes(claims: &[ClaimMount]) -> Vec<Value> {
    (claims.iter().enumerate())
        .map(|(index, mount)| {
            json!({"name": mount.volume_name(index), "persistentVolumeClaim": {"claimName": mount.claim}})
        })
        .collect()
}

pub(super) fn claim_mounts(claims: &[ClaimMount]) -> Vec<Value> {
    (claims.iter().enumerate())
        .map(|(index, mount)| json!({"name": mount.volume_name(index), "mountPath": mount.path}))
        .collect()
}

pub(super) fn launcher_image(settings: &RunSettings) -> String {
    settings
        .launcher_image
        .clone()
        .unwrap_or_else(|| settings.versions.harness_image())
}

pub(super) fn job_server_image(settings: &RunSettings) -> String {
    settings
        .job_server_image
        .clone()
        .unwrap_or_else(|| match settings.runner {
            Runner::Spark => settings.versions.spark_job_server_image(),
            _ => settings.versions.job_server_image(),
        })
}

/// Beam's job server as a native sidecar of the JobManager pod (an init container that keeps running): started
/// before the launcher, which connects to it, and still there while the launcher runs. It writes the executable jar
/// into `jar_mount` and then idles; its memory is bounded for that (512 MiB was too little to write the jar: OOMKilled).
pub(super) fn job_server_sidecar(settings: &RunSettings, jar_mount: &Value) -> Value {
    json!({
        "name": "beam-job-server",
        "image": job_server_image(settings),
        "restartPolicy": "Always",
        "args": [
            format!("--job-port={JOB_SERVER_PORT}"),
            format!("--artifact-port={}", JOB_SERVER_PORT - 1),
            format!("--expansion-port={}", JOB_SERVER_PORT - 2),
        ],
        "env": [{"name": "JAVA_TOOL_OPTIONS", "value": "-Xmx512m -XX:+UseSerialGC"}],
        // It listens on localhost only (the pod's own containers are its only clients), where a kubelet tcpSocket
        // probe, which dials the pod's address, cannot see it: the probe connects from inside instead.
        "startupProbe": port_probe(JOB_SERVER_PORT),
        "resources": {"requests": {"cpu": "100m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}},
        "volumeMounts": [jar_mount],
    })
}

/// The init containers of the pod the launcher runs in, in their order: Beam's job server (a native sidecar), the
/// expansion service when the run serves Java-backed transforms (another, started before the launcher, which
/// expands the pipeline through it), and the launcher `name`, which has the job server write the executable jar.
pub(super) fn launcher_init_containers(
    settings: &RunSettings,
    java: &java::JavaPlan,
    job_server: Value,
    name: &str,
    options: &[(String, String)],
    mounts: Vec<Value>,
) -> Vec<Value> {
    let mut containers = vec![job_server];
    if java.runs_expansion_service() {
        containers.push(java::expansion_service_sidecar(settings));
    }
    containers.push(json!({
        "name": name,
        "image": launcher_image(settings),
        "command": options::launcher_command(java),
        "args": options::launcher_args(options),
        "volumeMounts": mounts,
    }));
    containers
}

/// A native sidecar's startup probe that waits for a port on localhost from inside the container (bash's
/// /dev/tcp), within one run (up to 25 s, trying every 0.2 s) rather than failing once a second while the JVM starts:
/// every failed probe is a Warning event ("Unhealthy"), and `status` would show those instead of the ones that
/// matter. Five runs that each time out (two minutes) are still reported: a server that never listens.
pub(super) fn port_probe(port: u16) -> Value {
    json!({
        "exec": {"command": ["bash", "-c", format!(
            "for attempt in $(seq 125); do (exec 3<>/dev/tcp/localhost/{port}) 2>/dev/null && exit 0; sleep 0.2; done; exit 1"
        )]},
        "timeoutSeconds": 30,
        "periodSeconds": 1,
        "failureThreshold": 5,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the launcher's Beam does with the ConfigMap's pipeline: Jinja with no variables, undefined is an error.
    fn render_like_beam(text: &str) -> Result<String, minijinja::Error> {
        let mut environment = minijinja::Environment::new();
        environment.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        environment.render_str(text, minijinja::context! {})
    }

    #[test]
    fn the_configmap_pipeline_renders_back_to_the_checked_one_whatever_jinja_it_holds() {
        // Regression (fuzz/regressions/beam_yaml-endraw.yaml): a rendered pipeline holding `{% endraw %}` ended the
        // raw block early and Beam's second rendering failed with "unknown statement endraw".
        for rendered in [
            "pipeline:\n  type: chain",
            "\n\npipeline: {elements: ['{{ x }}', '{# c #}']}",
            "elements: ['{% endraw %}']",
            "elements: ['{%- endraw -%}', '{%endraw%}', '{%+ endraw %}', '{% raw %}', '{%', '%}']",
            "elements: ['{% endraw %}{{ undefined }}{% for x in y %}']\n",
            "a{{% endraw %}{",
            "{%",
            "{{",
        ] {
            let stored = runnable_pipeline(rendered);
            let again = render_like_beam(&stored).unwrap_or_else(|error| panic!("{rendered:?}: {error}\n{stored}"));
            assert_eq!(again, rendered.trim_start_matches(['\n', '\r']), "{stored}");
        }
    }
}
