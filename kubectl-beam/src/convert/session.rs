//! Flink in session mode: the session cluster (a FlinkDeployment without a job) and the launcher Job that submits a
//! pipeline to it.

use super::flink::{flink_deployment, task_manager_pod_with_claims};
use super::labels::{labels, with_user_labels};
use super::options::{JOB_SERVER_JAR, JOB_SERVER_JAR_DIR, LAUNCHER_COMMAND, launcher_args};
use super::versions::Versions;
use super::{
    ClaimMount, FIELD_MANAGER, JOB_SERVER_JAR_IN_IMAGE, RunSettings, claim_mounts, claim_volumes, job_server_image,
    launcher_image, pipeline_mount, pipeline_volume,
};
use beamstack::contract::{
    ANNOTATION_BEAM_VERSION, ANNOTATION_PYTHON_VERSION, ANNOTATION_SDK, LABEL_RUNNER, SESSION_CLUSTER,
};
use serde_json::{Map, Value, json};

pub(super) fn flink_session_launcher(settings: &RunSettings, cluster: &str, options: &[(String, String)]) -> Value {
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
            "annotations": {SESSION_CLUSTER: cluster},
        },
        "spec": {
            "backoffLimit": 0,
            "template": {"metadata": {"labels": labels(settings)}, "spec": pod},
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
            SESSION_CLUSTER: settings.name,
            LABEL_RUNNER: "flink",
            "app.kubernetes.io/name": settings.name,
            "app.kubernetes.io/managed-by": FIELD_MANAGER,
        }),
    );
    let annotations = json!({
        ANNOTATION_SDK: "python",
        ANNOTATION_BEAM_VERSION: versions.beam,
        ANNOTATION_PYTHON_VERSION: versions.python_minor,
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
