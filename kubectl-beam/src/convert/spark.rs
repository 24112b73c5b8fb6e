//! Spark: a SparkApplication running Beam's SparkPipelineRunner from an executable jar its driver pod builds.

use super::labels::{harness_annotations, labels};
use super::options::{LAUNCHER_COMMAND, launcher_args};
use super::{RunSettings, SPARK_JAR_DIR, job_server_sidecar, launcher_image, pipeline_mount, pipeline_volume};
use crate::pipeline::Pipeline;
use beamstack::contract::{SPARK_GROUP, SPARK_VERSION};
use serde_json::{Value, json};

pub(super) fn spark_application(pipeline: &Pipeline, settings: &RunSettings, options: &[(String, String)]) -> Value {
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
        "apiVersion": format!("{SPARK_GROUP}/{SPARK_VERSION}"),
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
