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

pub mod versions;

use crate::pipeline::Pipeline;
// Flink's container in the JobManager and TaskManager pods, by the name the webhook completes.
use crate::pipeline::catalogue::Backing;
use beamstack::mutate::MAIN_CONTAINER as FLINK_MAIN_CONTAINER;
use serde_json::{Map, Value, json};
use std::sync::LazyLock;
use versions::Versions;

pub const PIPELINE_MOUNT: &str = "/etc/beam/pipeline";
/// Where the JobManager finds the pipeline's executable jar (Flink's folder for user jars in application mode).
pub const USRLIB: &str = "/opt/flink/usrlib";
pub const PIPELINE_JAR: &str = "beam-pipeline.jar";
/// The job server's jar in Beam's job server image.
pub const JOB_SERVER_JAR_IN_IMAGE: &str = "/opt/apache/beam/jars/beam-runners-flink-job-server.jar";
/// The job server's port inside the JobManager pod (its default).
pub const JOB_SERVER_PORT: u16 = 8099;
pub const FIELD_MANAGER: &str = "kubectl-beam";
pub const LABEL_PIPELINE: &str = "beamstack.dev/pipeline";
pub const LABEL_RUNNER: &str = "beamstack.dev/runner";
pub const ANNOTATION_SOURCE: &str = "beamstack.dev/source-file";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    Flink,
    Spark,
    Samza,
}

impl Runner {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "flink" => Ok(Runner::Flink),
            "spark" => Ok(Runner::Spark),
            "samza" => Ok(Runner::Samza),
            other => Err(format!("unknown runner `{other}`: use flink or spark")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Runner::Flink => "flink",
            Runner::Spark => "spark",
            Runner::Samza => "samza",
        }
    }
}

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
    pub job_manager: Resources,
    pub task_manager: Resources,
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

fn claim_volumes(claims: &[ClaimMount]) -> Vec<Value> {
    (claims.iter().enumerate())
        .map(|(index, mount)| {
            json!({"name": mount.volume_name(index), "persistentVolumeClaim": {"claimName": mount.claim}})
        })
        .collect()
}

fn claim_mounts(claims: &[ClaimMount]) -> Vec<Value> {
    (claims.iter().enumerate())
        .map(|(index, mount)| json!({"name": mount.volume_name(index), "mountPath": mount.path}))
        .collect()
}

/// The TaskManagers' pod template when claims are mounted: Flink's main container (file:// checkpoints and
/// savepoints on the claim) and the worker pool container the webhook completes (image, port, resources are its),
/// named as the webhook's default names it, both with the claims' mounts.
fn task_manager_pod_with_claims(claims: &[ClaimMount]) -> Option<Value> {
    if claims.is_empty() {
        return None;
    }
    Some(json!({
        "spec": {
            "containers": [
                {"name": FLINK_MAIN_CONTAINER, "volumeMounts": claim_mounts(claims)},
                {"name": HARNESS_CONTAINER, "volumeMounts": claim_mounts(claims)},
            ],
            "volumes": claim_volumes(claims),
        }
    }))
}

/// Where Flink keeps its high-availability metadata when `--ha-dir` does not say: `ha` beside the checkpoint
/// folder (`file:///data/flink/checkpoints` gives `file:///data/flink/ha`).
fn default_ha_dir(checkpoint_dir: &str) -> String {
    let trimmed = checkpoint_dir.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some((parent, _)) if !parent.ends_with('/') && !parent.is_empty() => format!("{parent}/ha"),
        _ => format!("{trimmed}/ha"),
    }
}

/// The name the webhook gives the worker pool container (its default harness.containerName).
pub const HARNESS_CONTAINER: &str = "beam-worker-pool";

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
            job_manager: Resources::default(),
            task_manager: Resources::default(),
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

/// Transforms that read unbounded sources make a streaming pipeline.
fn is_streaming(pipeline: &Pipeline) -> bool {
    pipeline.transforms.iter().any(|transform| {
        matches!(
            transform.transform_type.as_str(),
            "ReadFromKafka" | "ReadFromPubSub" | "ReadFromPubSubLite" | "ReadFromKinesis"
        )
    }) || pipeline.options().get("streaming").and_then(Value::as_bool) == Some(true)
}

/// The pipeline options kubectl beam sets, as `--key=value` pairs in a fixed order.
fn runner_options(pipeline: &Pipeline, settings: &RunSettings) -> Result<Vec<(String, String)>, String> {
    let mut options: Vec<(String, String)> = Vec::new();
    match (settings.runner, &settings.session) {
        (Runner::Flink, None) => {
            // The job server beside the launcher in the JobManager pod writes the executable jar, and runs nothing.
            options.push(("runner".into(), "PortableRunner".into()));
            options.push(("job_endpoint".into(), format!("localhost:{JOB_SERVER_PORT}")));
            options.push(("output_executable_path".into(), format!("{USRLIB}/{PIPELINE_JAR}")));
        }
        (Runner::Flink, Some(cluster)) => {
            options.push(("runner".into(), "FlinkRunner".into()));
            options.push(("flink_master".into(), format!("{cluster}-rest:8081")));
            options.push(("flink_version".into(), settings.versions.flink_minor.clone()));
            options.push(("flink_submit_uber_jar".into(), "true".into()));
            options.push((
                "flink_job_server_jar".into(),
                format!("{JOB_SERVER_JAR_DIR}/{JOB_SERVER_JAR}"),
            ));
        }
        (Runner::Spark, _) => {
            // As for Flink: Beam's Spark job server beside the launcher writes the executable jar.
            options.push(("runner".into(), "PortableRunner".into()));
            options.push(("job_endpoint".into(), format!("localhost:{JOB_SERVER_PORT}")));
            options.push(("output_executable_path".into(), format!("{SPARK_JAR_DIR}/pipeline.jar")));
        }
        (Runner::Samza, _) => unreachable!("refused before"),
    }
    // The Flink job carries the pipeline's name, so its metrics (label job_name) and its UI entry can be found.
    if !pipeline.options().iter().any(|(key, _)| key == "job_name") {
        options.push(("job_name".into(), settings.name.clone()));
    }
    options.push(("environment_type".into(), "EXTERNAL".into()));
    options.push(("environment_config".into(), "localhost:50000".into()));
    if let Some(parallelism) = settings.parallelism {
        options.push(("parallelism".into(), parallelism.to_string()));
    }
    if is_streaming(pipeline) {
        options.push(("streaming".into(), "true".into()));
    }
    if let Some(interval) = settings.checkpoint_interval_ms {
        options.push(("checkpointing_interval".into(), interval.to_string()));
    }
    // Beam lets the file's `options:` override flags of the same name; a silent override of what we generated would
    // leave a job we did not describe, so a conflict is an error and an equal value is fine.
    for (key, value) in pipeline.options() {
        if let Some((_, ours)) = options.iter().find(|(name, _)| *name == key) {
            let theirs = match &value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            if !theirs.eq_ignore_ascii_case(ours) {
                return Err(format!(
                    "{}: options.{key} is {theirs:?} in the pipeline, but this run sets {key}={ours:?}: Beam would let \
                     the file win and run a job unlike the one kubectl beam describes. Remove options.{key} from the \
                     file, or change the flag that sets it.",
                    pipeline.file.display()
                ));
            }
        }
    }
    let java = pipeline.java_transforms();
    if !java.is_empty() {
        let mut missing: Vec<String> = Vec::new();
        for transform in &java {
            if let Backing::Java(targets) = &transform.backing {
                if !targets.is_empty() && !targets.iter().any(|target| settings.beam_services.contains_key(target)) {
                    missing.push(format!(
                        "{} ({}): {}",
                        transform.name,
                        transform.transform_type,
                        targets.join(" or ")
                    ));
                } else if targets.is_empty() && settings.beam_services.is_empty() {
                    missing.push(format!(
                        "{} ({}): its provider's expansion service",
                        transform.name, transform.transform_type
                    ));
                }
            }
        }
        if !missing.is_empty() {
            return Err(format!(
                "{} uses Java-backed transforms, which need a Java expansion service when the pipeline is built and a \
                 Java environment on the workers; without one the job fails on the TaskManagers (\"Cannot run program \
                 docker\"). Run an expansion service in the cluster and pass it, for example \
                 --beam-services '{{\"<target>\":\"expansion-service.beam:8097\"}}', for:\n  {}",
                pipeline.file.display(),
                missing.join("\n  ")
            ));
        }
        let services = serde_json::to_string(&settings.beam_services).map_err(|error| error.to_string())?;
        options.push(("beam_services".into(), services));
    }
    Ok(options)
}

/// Beam YAML's launcher: the container command (the SDK image's entry point is Beam's boot, which is for workers).
const LAUNCHER_COMMAND: [&str; 3] = ["python", "-m", "apache_beam.yaml.main"];

/// Where the session launcher finds the job server's jar (copied out of the job server image), and its name.
const JOB_SERVER_JAR_DIR: &str = "/opt/beam/jars";
const JOB_SERVER_JAR: &str = "beam-runners-flink-job-server.jar";

/// The launcher's arguments: the pipeline file, then every option as a flag.
fn launcher_args(options: &[(String, String)]) -> Vec<String> {
    let mut args = vec![format!("--yaml_pipeline_file={PIPELINE_MOUNT}/pipeline.yaml")];
    args.extend(options.iter().map(|(key, value)| {
        if STORE_TRUE_FLAGS.contains(&key.as_str()) && value == "true" {
            format!("--{key}")
        } else {
            format!("--{key}={value}")
        }
    }));
    args
}

/// Beam options declared with argparse's `store_true`: Beam refuses them with a value (`--streaming=true` exits 2
/// with "argument --streaming: ignored explicit argument 'true'"), so they are passed bare. Found by running the
/// session launcher against a real Flink.
const STORE_TRUE_FLAGS: &[&str] = &["streaming", "flink_submit_uber_jar"];

fn labels(settings: &RunSettings) -> Value {
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
fn with_user_labels(user: &Map<String, Value>, ours: Value) -> Value {
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

/// The annotations that make the webhook inject the matching SDK harness.
fn harness_annotations(settings: &RunSettings, pipeline: &Pipeline) -> Value {
    json!({
        "beamstack.dev/beam-sdk": "python",
        "beamstack.dev/beam-version": settings.versions.beam,
        "beamstack.dev/python-version": settings.versions.python_minor,
        ANNOTATION_SOURCE: pipeline.file.file_name().and_then(|name| name.to_str()).unwrap_or(""),
    })
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
            json!({"beamstack.dev/includes": serde_json::to_string(&include_paths).unwrap_or_default()});
    }
    config_map
}

fn pipeline_volume(settings: &RunSettings) -> Value {
    json!({"name": "beam-pipeline", "configMap": {"name": format!("{}-pipeline", settings.name)}})
}

fn pipeline_mount() -> Value {
    json!({"name": "beam-pipeline", "mountPath": PIPELINE_MOUNT, "readOnly": true})
}

/// The objects of one run: the ConfigMap first, then the runner object (apply in this order).
pub fn objects(pipeline: &Pipeline, settings: &RunSettings) -> Result<Vec<Value>, String> {
    if settings.runner == Runner::Samza {
        return Err(
            "the Samza runner cannot be used: Beam removed it (discontinued as of Beam 2.74.0) and no Samza \
                    operator or CRD exists for Kubernetes. Use --runner flink (the default) or --runner spark."
                .into(),
        );
    }
    let options = runner_options(pipeline, settings)?;
    let runner_object = match (settings.runner, &settings.session) {
        (Runner::Flink, None) => flink_application(pipeline, settings, &options),
        (Runner::Flink, Some(cluster)) => flink_session_launcher(settings, cluster, &options),
        (Runner::Spark, _) => spark_application(pipeline, settings, &options),
        (Runner::Samza, _) => unreachable!(),
    };
    Ok(vec![config_map(pipeline, settings), runner_object])
}

fn flink_application(pipeline: &Pipeline, settings: &RunSettings, options: &[(String, String)]) -> Value {
    let versions = &settings.versions;
    let mut configuration = Map::new();
    configuration.insert(
        "taskmanager.numberOfTaskSlots".into(),
        Value::from(settings.task_slots.to_string()),
    );
    if let Some(interval) = settings.checkpoint_interval_ms {
        configuration.insert(
            "execution.checkpointing.interval".into(),
            Value::from(format!("{interval}ms")),
        );
    }
    let (checkpoint_key, savepoint_key) = versions.checkpoint_dir_keys();
    if let Some(dir) = &settings.checkpoint_dir {
        configuration.insert(checkpoint_key.into(), Value::from(dir.clone()));
    }
    if let Some(dir) = &settings.savepoint_dir {
        configuration.insert(savepoint_key.into(), Value::from(dir.clone()));
    }
    // A last-state upgrade resumes the job from the checkpoint its high-availability metadata points to: the
    // operator refuses last-state without HA ("Job could not be upgraded with last-state while HA disabled").
    if settings.upgrade_mode == "last-state" {
        let ha_dir = (settings.ha_dir.clone()).or_else(|| settings.checkpoint_dir.as_deref().map(default_ha_dir));
        if let Some(dir) = ha_dir {
            configuration.insert("high-availability.type".into(), Value::from("kubernetes"));
            configuration.insert("high-availability.storageDir".into(), Value::from(dir));
        }
    }
    let image = settings
        .image
        .clone()
        .unwrap_or_else(|| versions.flink_image(&settings.image_repository));
    let jar_volume = json!({"name": "beam-pipeline-jar", "emptyDir": {}});
    let jar_mount = json!({"name": "beam-pipeline-jar", "mountPath": USRLIB});
    let launcher_mounts = [
        vec![pipeline_mount(), jar_mount.clone()],
        claim_mounts(&settings.claims),
    ]
    .concat();
    let main_mounts = [vec![jar_mount.clone()], claim_mounts(&settings.claims)].concat();
    let volumes = [
        vec![pipeline_volume(settings), jar_volume],
        claim_volumes(&settings.claims),
    ]
    .concat();
    let job_manager_pod = json!({
        "spec": {
            "initContainers": [
                job_server_sidecar(settings, &jar_mount),
                {
                    "name": "beam-pipeline-jar",
                    "image": launcher_image(settings),
                    "command": LAUNCHER_COMMAND,
                    "args": launcher_args(options),
                    "volumeMounts": launcher_mounts,
                },
            ],
            "containers": [{
                "name": FLINK_MAIN_CONTAINER,
                "volumeMounts": main_mounts,
            }],
            "volumes": volumes,
        }
    });
    let mut task_manager = json!({"resource": settings.task_manager.to_json()});
    if let Some(pod) = task_manager_pod_with_claims(&settings.claims) {
        task_manager["podTemplate"] = pod;
    }
    let spec = json!({
        "image": image,
        "flinkVersion": versions.flink_version_enum(),
        "flinkConfiguration": configuration,
        "jobManager": {"resource": settings.job_manager.to_json(), "podTemplate": job_manager_pod},
        "taskManager": task_manager,
        "job": {
            "jarURI": format!("local://{USRLIB}/{PIPELINE_JAR}"),
            // Beam's entry point for executable pipeline jars: it runs the pipeline the jar holds.
            "entryClass": "org.apache.beam.runners.flink.FlinkPipelineRunner",
            "args": [],
            "parallelism": settings.parallelism.unwrap_or(1),
            "upgradeMode": settings.upgrade_mode,
        },
    });
    flink_deployment(
        &settings.name,
        &settings.namespace,
        labels(settings),
        harness_annotations(settings, pipeline),
        spec,
        settings.service_account.as_deref(),
    )
}

fn launcher_image(settings: &RunSettings) -> String {
    settings
        .launcher_image
        .clone()
        .unwrap_or_else(|| settings.versions.harness_image())
}

fn job_server_image(settings: &RunSettings) -> String {
    settings
        .job_server_image
        .clone()
        .unwrap_or_else(|| match settings.runner {
            Runner::Spark => settings.versions.spark_job_server_image(),
            _ => settings.versions.job_server_image(),
        })
}

/// Where the Spark driver finds the pipeline's executable jar.
const SPARK_JAR_DIR: &str = "/opt/beam/jars";

/// Beam's job server as a native sidecar of the JobManager pod (an init container that keeps running): started
/// before the launcher, which connects to it, and still there while the launcher runs. It writes the executable jar
/// into `jar_mount` and then idles; its memory is bounded for that (512 MiB was too little to write the jar: OOMKilled).
fn job_server_sidecar(settings: &RunSettings, jar_mount: &Value) -> Value {
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
        "startupProbe": {
            "exec": {"command": ["bash", "-c", format!("exec 3<>/dev/tcp/localhost/{JOB_SERVER_PORT}")]},
            "periodSeconds": 1,
            "failureThreshold": 120,
        },
        "resources": {"requests": {"cpu": "100m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}},
        "volumeMounts": [jar_mount],
    })
}

/// A FlinkDeployment around `spec`, with the service account when one is given.
fn flink_deployment(
    name: &str,
    namespace: &str,
    labels: Value,
    annotations: Value,
    mut spec: Value,
    service_account: Option<&str>,
) -> Value {
    if let Some(account) = service_account {
        spec["serviceAccount"] = Value::from(account);
    }
    json!({
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkDeployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations},
        "spec": spec,
    })
}

fn flink_session_launcher(settings: &RunSettings, cluster: &str, options: &[(String, String)]) -> Value {
    let jar_mount = json!({"name": "beam-job-server-jar", "mountPath": JOB_SERVER_JAR_DIR});
    let launcher_mounts = [
        vec![pipeline_mount(), jar_mount.clone()],
        claim_mounts(&settings.claims),
    ]
    .concat();
    let volumes = [
        vec![
            pipeline_volume(settings),
            json!({"name": "beam-job-server-jar", "emptyDir": {}}),
        ],
        claim_volumes(&settings.claims),
    ]
    .concat();
    let mut pod = json!({
        "restartPolicy": "Never",
        // Beam's Python SDK builds the uber jar from the job server's jar, which only Beam's job server image holds.
        "initContainers": [{
            "name": "beam-job-server-jar",
            "image": job_server_image(settings),
            "command": ["cp", JOB_SERVER_JAR_IN_IMAGE, format!("{JOB_SERVER_JAR_DIR}/{JOB_SERVER_JAR}")],
            "volumeMounts": [jar_mount],
        }],
        "containers": [{
            "name": "launcher",
            "image": launcher_image(settings),
            "command": LAUNCHER_COMMAND,
            "args": launcher_args(options),
            "volumeMounts": launcher_mounts,
        }],
        "volumes": volumes,
    });
    if let Some(account) = &settings.service_account {
        pod["serviceAccountName"] = Value::from(account.clone());
    }
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": settings.name,
            "namespace": settings.namespace,
            "labels": labels(settings),
            "annotations": {"beamstack.dev/session-cluster": cluster},
        },
        "spec": {
            "backoffLimit": 0,
            "template": {"metadata": {"labels": labels(settings)}, "spec": pod},
        },
    })
}

fn spark_application(pipeline: &Pipeline, settings: &RunSettings, options: &[(String, String)]) -> Value {
    let jar_dir = SPARK_JAR_DIR;
    let jar_volume = json!({"name": "beam-pipeline-jar", "emptyDir": {}});
    let jar_mount = json!({"name": "beam-pipeline-jar", "mountPath": jar_dir});
    let mut driver = json!({
        "cores": 1,
        "memory": "1g",
        "labels": labels(settings),
        "volumeMounts": [jar_mount.clone()],
        // Beam's images only, as for Flink: the Spark job server (a native sidecar) and Beam YAML's launcher in the
        // SDK image, which has it write the executable jar the driver runs.
        "initContainers": [
            job_server_sidecar(settings, &jar_mount),
            {
                "name": "build-pipeline-jar",
                "image": launcher_image(settings),
                "command": LAUNCHER_COMMAND,
                "args": launcher_args(options),
                "volumeMounts": [pipeline_mount(), jar_mount],
            },
        ],
    });
    if let Some(account) = &settings.service_account {
        driver["serviceAccount"] = Value::from(account.clone());
    }
    json!({
        "apiVersion": "sparkoperator.k8s.io/v1beta2",
        "kind": "SparkApplication",
        "metadata": {
            "name": settings.name,
            "namespace": settings.namespace,
            "labels": labels(settings),
            "annotations": harness_annotations(settings, pipeline),
        },
        "spec": {
            "type": "Java",
            "mode": "cluster",
            "image": settings.image.clone().unwrap_or_else(|| "apache/spark:3.5.6".into()),
            "sparkVersion": "3.5.6",
            "mainClass": "org.apache.beam.runners.spark.SparkPipelineRunner",
            "mainApplicationFile": format!("local://{jar_dir}/pipeline.jar"),
            "restartPolicy": {"type": "Never"},
            "volumes": [pipeline_volume(settings), jar_volume],
            "driver": driver,
            "executor": {
                "cores": 1,
                "memory": "2g",
                "instances": settings.parallelism.unwrap_or(1),
                "labels": labels(settings),
            },
        },
    })
}

/// How big a Flink session cluster is.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub name: String,
    pub namespace: String,
    pub versions: Versions,
    pub image: Option<String>,
    /// Repository of the default Flink image (`<repository>:<flink minor>`).
    pub image_repository: String,
    pub task_managers: u32,
    pub task_slots: u32,
    pub task_manager_cpu: f64,
    pub task_manager_memory: String,
    pub job_manager_cpu: f64,
    pub job_manager_memory: String,
    pub service_account: Option<String>,
    pub labels: Map<String, Value>,
    /// PersistentVolumeClaims mounted in the TaskManagers' worker pool, where the Python steps of every job the
    /// cluster runs read and write files (`cluster create --pvc`).
    pub claims: Vec<ClaimMount>,
}

pub const LABEL_SESSION_CLUSTER: &str = "beamstack.dev/session-cluster";

/// A Flink session cluster for `--session` runs: a FlinkDeployment without a job, sized by flags, annotated so the
/// webhook puts the worker pool into its TaskManagers.
pub fn session_cluster(settings: &ClusterSettings) -> Value {
    let versions = &settings.versions;
    let mut task_manager = json!({
        "replicas": settings.task_managers,
        "resource": {"cpu": settings.task_manager_cpu, "memory": settings.task_manager_memory},
    });
    if let Some(pod) = task_manager_pod_with_claims(&settings.claims) {
        task_manager["podTemplate"] = pod;
    }
    let spec = json!({
        "image": settings.image.clone().unwrap_or_else(|| versions.flink_image(&settings.image_repository)),
        "flinkVersion": versions.flink_version_enum(),
        "flinkConfiguration": {"taskmanager.numberOfTaskSlots": settings.task_slots.to_string()},
        "jobManager": {"resource": {"cpu": settings.job_manager_cpu, "memory": settings.job_manager_memory}},
        "taskManager": task_manager,
    });
    let labels = with_user_labels(
        &settings.labels,
        json!({
            LABEL_SESSION_CLUSTER: settings.name,
            LABEL_RUNNER: "flink",
            "app.kubernetes.io/name": settings.name,
            "app.kubernetes.io/managed-by": FIELD_MANAGER,
        }),
    );
    let annotations = json!({
        "beamstack.dev/beam-sdk": "python",
        "beamstack.dev/beam-version": versions.beam,
        "beamstack.dev/python-version": versions.python_minor,
    });
    flink_deployment(
        &settings.name,
        &settings.namespace,
        labels,
        annotations,
        spec,
        settings.service_account.as_deref(),
    )
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

    #[test]
    fn store_true_flags_are_passed_bare_because_beam_refuses_a_value() {
        let options = [
            ("runner".to_owned(), "FlinkRunner".to_owned()),
            ("flink_submit_uber_jar".to_owned(), "true".to_owned()),
            ("streaming".to_owned(), "true".to_owned()),
            ("parallelism".to_owned(), "2".to_owned()),
        ];
        assert_eq!(
            launcher_args(&options)[1..],
            [
                "--runner=FlinkRunner",
                "--flink_submit_uber_jar",
                "--streaming",
                "--parallelism=2"
            ]
        );
    }
}
