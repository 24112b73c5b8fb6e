//! The pipeline options a run sets, and the launcher that hands them to Beam YAML.

use super::java::JavaPlan;
use super::{JOB_SERVER_PORT, PIPELINE_JAR, PIPELINE_MOUNT, RunSettings, Runner, SPARK_JAR_DIR, USRLIB};
use crate::pipeline::Pipeline;
use beamstack::contract::HARNESS_PORT;
use serde_json::Value;

/// Transforms that read unbounded sources make a streaming pipeline.
pub(super) fn is_streaming(pipeline: &Pipeline) -> bool {
    pipeline.transforms.iter().any(|transform| {
        matches!(
            transform.transform_type.as_str(),
            "ReadFromKafka" | "ReadFromPubSub" | "ReadFromPubSubLite" | "ReadFromKinesis"
        )
    }) || pipeline.options().get("streaming").and_then(Value::as_bool) == Some(true)
}

/// The pipeline options kubectl beam sets, as `--key=value` pairs in a fixed order.
pub(super) fn runner_options(
    pipeline: &Pipeline,
    settings: &RunSettings,
    java: &JavaPlan,
) -> Result<Vec<(String, String)>, String> {
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
            let jar = format!("{SPARK_JAR_DIR}/pipeline.jar");
            options.push(("runner".into(), "PortableRunner".into()));
            options.push(("job_endpoint".into(), format!("localhost:{JOB_SERVER_PORT}")));
            options.push(("output_executable_path".into(), jar.clone()));
            // The driver serves the jar to the executors (they have no copy of the driver pod's volume); without
            // it, Beam would stage the driver's whole classpath, Spark's 250 jars included.
            options.push(("files_to_stage".into(), jar));
            // Each executor keeps its Python worker between tasks: without it Beam stops the worker when a task
            // ends and the worker pool starts a new one for the next.
            options.push(("environment_cache_millis".into(), "10000".into()));
        }
    }
    // The Flink job carries the pipeline's name, so its metrics (label job_name) and its UI entry can be found.
    if !pipeline.options().iter().any(|(key, _)| key == "job_name") {
        options.push(("job_name".into(), settings.name.clone()));
    }
    options.push(("environment_type".into(), "EXTERNAL".into()));
    options.push(("environment_config".into(), format!("localhost:{HARNESS_PORT}")));
    // Flink's options; on Spark the parallelism is the executor count (spec.executor.instances).
    if settings.runner == Runner::Flink
        && let Some(parallelism) = settings.parallelism
    {
        options.push(("parallelism".into(), parallelism.to_string()));
    }
    if is_streaming(pipeline) {
        options.push(("streaming".into(), "true".into()));
    }
    if settings.runner == Runner::Flink
        && let Some(interval) = settings.checkpoint_interval_ms
    {
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
    // The expansion services of the Java-backed transforms: the user's and, for what they do not name, ours beside
    // the launcher (the plan refused the pipeline if some transform had neither).
    if !pipeline.java_transforms().is_empty() {
        let services = serde_json::to_string(&java.services).map_err(|error| error.to_string())?;
        options.push(("beam_services".into(), services));
    }
    Ok(options)
}

/// Beam YAML's launcher: the container command (the SDK image's entry point is Beam's boot, which is for workers).
pub(super) const LAUNCHER_COMMAND: [&str; 3] = ["python", "-m", "apache_beam.yaml.main"];

/// The launcher's command: Beam YAML's, with a `java` for its provider check when the run serves Java transforms.
pub(super) fn launcher_command(java: &JavaPlan) -> Vec<String> {
    if java.runs_expansion_service() {
        super::java::with_java_placeholder(&LAUNCHER_COMMAND)
    } else {
        LAUNCHER_COMMAND.map(String::from).to_vec()
    }
}

/// Where the session launcher finds the job server's jar (copied out of the job server image), and its name.
pub(super) const JOB_SERVER_JAR_DIR: &str = "/opt/beam/jars";
pub(super) const JOB_SERVER_JAR: &str = "beam-runners-flink-job-server.jar";

/// The launcher's arguments: the pipeline file, then every option as a flag.
pub(super) fn launcher_args(options: &[(String, String)]) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
