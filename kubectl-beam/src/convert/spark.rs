//! Spark: a SparkApplication running Beam's SparkPipelineRunner from an executable jar its driver pod builds. The
//! driver serves that jar to the executors (Beam stages it: see the launcher options), whose worker pool runs the
//! pipeline's Python steps.

use super::java::JavaPlan;
use super::labels::{harness_annotations, labels};
use super::versions::SPARK_RELEASE;
use super::{
    RunSettings, SPARK_JAR_DIR, claim_mounts, claim_volumes, job_server_sidecar, launcher_init_containers,
    pipeline_mount, pipeline_volume,
};
use crate::pipeline::Pipeline;
use beamstack::contract::{HARNESS_CONTAINER, SPARK_GROUP, SPARK_VERSION};
use serde_json::{Value, json};

/// The API server as pods reach it: the master Spark's driver runs against on Kubernetes.
pub(super) const SPARK_MASTER_IN_CLUSTER: &str = "k8s://https://kubernetes.default.svc";

pub(super) fn spark_application(
    pipeline: &Pipeline,
    settings: &RunSettings,
    options: &[(String, String)],
    java: &JavaPlan,
) -> Value {
    let jar_volume = json!({"name": "beam-pipeline-jar", "emptyDir": {}});
    let jar_mount = json!({"name": "beam-pipeline-jar", "mountPath": SPARK_JAR_DIR});
    let claims = claim_mounts(&settings.claims);
    let mut job_server = job_server_sidecar(settings, &jar_mount);
    // A master that is not local makes the pipeline jar's SparkPipelineRunner stage its files to the executors
    // (Beam's files_to_stage: the jar itself): Spark's spark.master from spark-submit still decides where it runs.
    if let Some(args) = job_server["args"].as_array_mut() {
        args.push(Value::from(format!("--spark-master-url={SPARK_MASTER_IN_CLUSTER}")));
    }
    // The Spark operator's pod webhook adds a volume to the pod only for a mount of the driver's own container (and
    // spark-submit only emptyDir, hostPath, NFS and claims): the pipeline's ConfigMap, which the launcher reads, is
    // mounted in the driver's container too, or the init container's mount names a volume the pod lacks (found by
    // the real operator: "spec.initContainers[1].volumeMounts[0].name: Not found").
    let driver_mounts = [vec![pipeline_mount(), jar_mount.clone()], claims.clone()].concat();
    let launcher_mounts = [vec![pipeline_mount(), jar_mount], claims.clone()].concat();
    let volumes = [
        vec![pipeline_volume(settings), jar_volume],
        claim_volumes(&settings.claims),
    ]
    .concat();
    let mut driver = json!({
        "cores": 1,
        "coreRequest": cpu_request(settings.spark_driver.cpu),
        "memory": settings.spark_driver.memory,
        "labels": labels(settings),
        "volumeMounts": driver_mounts,
    });
    // Beam's images only, as for Flink: the Spark job server (a native sidecar), the expansion service for
    // Java-backed transforms, and Beam YAML's launcher in the SDK image, which has the job server write the
    // executable jar the driver runs. Init containers reach the driver pod through the Spark operator's pod webhook.
    driver["initContainers"] = Value::from(launcher_init_containers(
        settings,
        java,
        job_server,
        "build-pipeline-jar",
        options,
        launcher_mounts,
    ));
    if let Some(account) = &settings.service_account {
        driver["serviceAccount"] = Value::from(account.clone());
    }
    let mut executor = json!({
        "cores": 1,
        "coreRequest": cpu_request(settings.spark_executor.cpu),
        "memory": settings.spark_executor.memory,
        "instances": settings.parallelism.unwrap_or(1),
        "labels": labels(settings),
    });
    if !claims.is_empty() {
        // The executors' Spark container and the worker pool the webhook completes (image, port, resources are
        // its) both see the claims: the Python steps read and write there.
        executor["volumeMounts"] = Value::from(claims.clone());
        executor["sidecars"] = json!([{"name": HARNESS_CONTAINER, "volumeMounts": claims}]);
    }
    json!({
        "apiVersion": format!("{SPARK_GROUP}/{SPARK_VERSION}"),
        "kind": "SparkApplication",
        "metadata": {
            "name": settings.name,
            "namespace": settings.namespace,
            "labels": labels(settings),
            "annotations": harness_annotations(settings, pipeline, java),
        },
        "spec": {
            "type": "Java",
            "mode": "cluster",
            "image": settings.image.clone().unwrap_or_else(|| settings.versions.spark_image()),
            "sparkVersion": SPARK_RELEASE,
            "mainClass": "org.apache.beam.runners.spark.SparkPipelineRunner",
            "mainApplicationFile": format!("local://{SPARK_JAR_DIR}/pipeline.jar"),
            "restartPolicy": {"type": "Never"},
            "volumes": volumes,
            "driver": driver,
            "executor": executor,
        },
    })
}

/// A pod's CPU request as a Kubernetes quantity in millicores (0.25 is "250m"): Spark's `cores` stays 1, the task
/// slots of the JVM, while the pod may ask for less or more of the node.
fn cpu_request(cores: f64) -> String {
    format!("{}m", (cores * 1000.0).round().max(1.0) as u64)
}
