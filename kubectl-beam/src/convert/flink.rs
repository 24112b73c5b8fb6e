//! Flink in application mode: one FlinkDeployment per pipeline, its JobManager pod turning the pipeline into an
//! executable jar before Flink starts.

use super::java::JavaPlan;
use super::labels::{harness_annotations, labels};
use super::{
    ClaimMount, PIPELINE_JAR, RunSettings, USRLIB, claim_mounts, claim_volumes, job_server_sidecar,
    launcher_init_containers, pipeline_mount, pipeline_volume,
};
use crate::pipeline::Pipeline;
use beamstack::contract::{FLINK_GROUP, FLINK_MAIN_CONTAINER, FLINK_VERSION, HARNESS_CONTAINER};
use serde_json::{Map, Value, json};

pub(super) fn flink_application(
    pipeline: &Pipeline,
    settings: &RunSettings,
    options: &[(String, String)],
    java: &JavaPlan,
) -> Value {
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
    let init_containers = launcher_init_containers(
        settings,
        java,
        job_server_sidecar(settings, &jar_mount),
        "beam-pipeline-jar",
        options,
        launcher_mounts,
    );
    let job_manager_pod = json!({
        "spec": {
            "initContainers": init_containers,
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
        harness_annotations(settings, pipeline, java),
        spec,
        settings.service_account.as_deref(),
    )
}

/// The TaskManagers' pod template when claims are mounted: Flink's main container (file:// checkpoints and
/// savepoints on the claim) and the worker pool container the webhook completes (image, port, resources are its),
/// named as the webhook's default names it, both with the claims' mounts.
pub(super) fn task_manager_pod_with_claims(claims: &[ClaimMount]) -> Option<Value> {
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

/// A FlinkDeployment around `spec`, with the service account when one is given.
pub(super) fn flink_deployment(
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
        "apiVersion": format!("{FLINK_GROUP}/{FLINK_VERSION}"),
        "kind": "FlinkDeployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations},
        "spec": spec,
    })
}
