//! `kubectl beam run --dry-run=client`: every example pipeline becomes objects that are valid against the operators'
//! CRD schemas and equal to the golden files in testdata/golden/ (UPDATE_GOLDEN=1 rewrites them); and every refusal
//! says why.

use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{LazyLock, Mutex};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn beam(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-beam"))
        .args(args)
        .current_dir(repo())
        .env_remove("KUBECONFIG")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

static SCHEMAS: LazyLock<Mutex<HashMap<String, jsonschema::Validator>>> = LazyLock::new(Default::default);

/// Validates an object against its operator CRD (testdata/crds/); ConfigMaps and Jobs get a shape check.
fn assert_valid(object: &Value, context: &str) {
    let kind = object["kind"].as_str().unwrap();
    let file = match kind {
        "FlinkDeployment" => "flinkdeployments.flink.apache.org-v1.yml",
        "SparkApplication" => "sparkoperator.k8s.io_sparkapplications.yaml",
        "ConfigMap" => {
            assert!(
                object["data"]["pipeline.yaml"]
                    .as_str()
                    .is_some_and(|text| text.contains("pipeline")),
                "{context}"
            );
            return;
        }
        "Job" => {
            assert_eq!(object["apiVersion"], "batch/v1");
            assert!(
                object["spec"]["template"]["spec"]["containers"][0]["args"].is_array(),
                "{context}"
            );
            return;
        }
        other => panic!("{context}: unexpected kind {other}"),
    };
    let mut schemas = SCHEMAS.lock().unwrap();
    let validator = schemas.entry(file.to_owned()).or_insert_with(|| {
        let crd: Value =
            serde_saphyr::from_str(&std::fs::read_to_string(repo().join("testdata/crds").join(file)).unwrap()).unwrap();
        jsonschema::validator_for(&crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]).unwrap()
    });
    let errors: Vec<String> = validator
        .iter_errors(object)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{context}: {kind} is not valid against its CRD:\n{}",
        errors.join("\n")
    );
}

fn documents(yaml: &str) -> Vec<Value> {
    yaml.split("\n---\n")
        .map(|document| serde_saphyr::from_str(document).unwrap())
        .collect()
}

/// Expansion services for the Java-backed examples (any address: nothing is contacted offline).
const SERVICES: &str = r#"{"sdks:java:io:expansion-service:shadowJar":"expansion.beam:8097","sdks:java:extensions:sql:expansion-service:shadowJar":"sql-expansion.beam:8097"}"#;

#[test]
fn every_example_becomes_valid_runner_objects_equal_to_the_golden_files() {
    let examples = [
        "combine_sum",
        "docs_snippets/yaml_md_line283",
        "docs_snippets/yaml_md_line331",
        "explode",
        "jinja/import/wordCountImport",
        "jinja/include/wordCountInclude",
        "kafka",
        "map_to_fields_with_deps",
        "map_to_fields_with_java_deps",
        "simple_filter",
        "streaming_wordcount",
        "wordcount_minimal",
    ];
    for example in examples {
        let file = format!("examples/beam/{example}.yaml");
        let output = beam(&[
            "run",
            &file,
            "--dry-run=client",
            "-o",
            "yaml",
            "-n",
            "beam",
            "--jinja-variables",
            "testdata/beam/variables.json",
            "--jinja-search-path",
            "testdata/beam-package",
            "--beam-services",
            SERVICES,
        ]);
        let yaml = text(&output.stdout);
        assert!(output.status.success(), "{example}: {}", text(&output.stderr));
        let objects = documents(&yaml);
        assert_eq!(objects.len(), 2, "{example}: a ConfigMap and a FlinkDeployment");
        for object in &objects {
            assert_valid(object, example);
        }
        let golden = repo()
            .join("testdata/golden")
            .join(format!("{}.yaml", example.replace('/', "__")));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, &yaml).unwrap();
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_default();
        assert!(
            expected == yaml,
            "{example}: output differs from {} (UPDATE_GOLDEN=1 to accept):\n{yaml}",
            golden.display()
        );
    }
}

/// A container's args, as text.
fn args_of(container: &Value) -> Vec<&str> {
    container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect()
}

fn run_objects(args: &[&str]) -> Vec<Value> {
    let mut full = vec!["run", "--dry-run=client", "-o", "yaml", "-n", "beam"];
    full.extend_from_slice(args);
    let output = beam(&full);
    assert!(output.status.success(), "{}", text(&output.stderr));
    documents(&text(&output.stdout))
}

#[test]
fn the_flink_application_runs_the_pipeline_against_the_worker_pool() {
    let objects = run_objects(&[
        "examples/beam/simple_filter.yaml",
        "--parallelism",
        "4",
        "--slots",
        "2",
        "--checkpoint-interval",
        "30s",
        "--upgrade-mode",
        "last-state",
        "--checkpoint-dir",
        "s3://bucket/cp",
        "--name",
        "Products Filter",
    ]);
    let deployment = &objects[1];
    assert_eq!(deployment["metadata"]["name"], "products-filter");
    assert_eq!(
        deployment["metadata"]["labels"]["beamstack.dev/pipeline"],
        "products-filter"
    );
    assert_eq!(
        deployment["metadata"]["annotations"]["beamstack.dev/beam-sdk"], "python",
        "the webhook injects the harness"
    );
    // Flink's own image; Beam's part runs from Beam's images in the JobManager pod.
    assert_eq!(deployment["spec"]["image"], "flink:1.20");
    let job = &deployment["spec"]["job"];
    assert_eq!(job["entryClass"], "org.apache.beam.runners.flink.FlinkPipelineRunner");
    assert_eq!(job["jarURI"], "local:///opt/flink/usrlib/beam-pipeline.jar");
    let pod = &deployment["spec"]["jobManager"]["podTemplate"]["spec"];
    let job_server = &pod["initContainers"][0];
    assert_eq!(job_server["name"], "beam-job-server");
    assert_eq!(job_server["image"], "apache/beam_flink1.20_job_server:2.77.0");
    assert_eq!(
        job_server["restartPolicy"], "Always",
        "a native sidecar, there while the launcher runs"
    );
    let launcher = &pod["initContainers"][1];
    assert_eq!(launcher["image"], "apache/beam_python3.11_sdk:2.77.0");
    assert_eq!(
        launcher["command"],
        serde_json::json!(["python", "-m", "apache_beam.yaml.main"])
    );
    let args = args_of(launcher);
    for part in [
        "--yaml_pipeline_file=/etc/beam/pipeline/pipeline.yaml",
        "--runner=PortableRunner",
        "--job_endpoint=localhost:8099",
        "--output_executable_path=/opt/flink/usrlib/beam-pipeline.jar",
        "--environment_type=EXTERNAL",
        "--environment_config=localhost:50000",
        "--parallelism=4",
        "--checkpointing_interval=30000",
    ] {
        assert!(args.contains(&part), "{part} not in {args:?}");
    }
    // The jar the launcher has the job server write is where the JobManager looks.
    assert_eq!(
        pod["containers"][0]["volumeMounts"][0]["mountPath"],
        "/opt/flink/usrlib"
    );
    assert_eq!(job["parallelism"], 4);
    assert_eq!(
        deployment["spec"]["flinkConfiguration"]["taskmanager.numberOfTaskSlots"], "2",
        "parallelism 4 on two TaskManagers of two slots"
    );
    assert_eq!(job["upgradeMode"], "last-state");
    assert_eq!(
        deployment["spec"]["flinkConfiguration"]["execution.checkpointing.dir"],
        "s3://bucket/cp"
    );
    assert_eq!(
        deployment["spec"]["flinkConfiguration"]["execution.checkpointing.interval"],
        "30000ms"
    );
    assert_eq!(objects[0]["metadata"]["name"], "products-filter-pipeline");
}

#[test]
fn session_mode_makes_a_launcher_job_and_spark_a_spark_application() {
    let objects = run_objects(&["examples/beam/explode.yaml", "--session", "shared"]);
    let job = &objects[1];
    assert_eq!(job["kind"], "Job");
    let args = args_of(&job["spec"]["template"]["spec"]["containers"][0]);
    for part in [
        "--runner=FlinkRunner",
        "--flink_master=shared-rest:8081",
        "--flink_submit_uber_jar",
        "--flink_version=1.20",
        "--flink_job_server_jar=/opt/beam/jars/beam-runners-flink-job-server.jar",
        "--environment_type=EXTERNAL",
    ] {
        assert!(args.contains(&part), "{part} not in {args:?}");
    }
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["containers"][0]["image"], "apache/beam_python3.11_sdk:2.77.0");
    assert_eq!(
        pod["initContainers"][0]["image"],
        "apache/beam_flink1.20_job_server:2.77.0"
    );
    let objects = run_objects(&["examples/beam/explode.yaml", "--runner", "spark", "--parallelism", "3"]);
    let spark = &objects[1];
    assert_valid(spark, "spark");
    assert_eq!(
        spark["spec"]["mainClass"],
        "org.apache.beam.runners.spark.SparkPipelineRunner"
    );
    assert_eq!(spark["spec"]["executor"]["instances"], 3);
    // Beam's own images: the Spark job server beside the launcher, which has it write the jar the driver runs.
    let init = &spark["spec"]["driver"]["initContainers"];
    assert_eq!(init[0]["image"], "apache/beam_spark3_job_server:2.77.0");
    assert_eq!(init[0]["restartPolicy"], "Always");
    let build = &init[1];
    assert_eq!(build["image"], "apache/beam_python3.11_sdk:2.77.0");
    let args = args_of(build);
    for part in [
        "--output_executable_path=/opt/beam/jars/pipeline.jar",
        "--runner=PortableRunner",
        "--job_endpoint=localhost:8099",
    ] {
        assert!(args.contains(&part), "{part} not in {args:?}");
    }
    assert_eq!(
        spark["spec"]["mainApplicationFile"],
        "local:///opt/beam/jars/pipeline.jar"
    );
}

/// A Spark run has no Flink: a Flink version that the Beam release lacks (from a flag or the plugin defaults) does
/// not refuse it, as it refuses a Flink run.
#[test]
fn a_spark_run_ignores_the_flink_version() {
    let args = [
        "examples/beam/explode.yaml",
        "--beam-version",
        "2.62.0",
        "--flink-version",
        "1.20",
    ];
    let objects = run_objects(&[&args[..], &["--runner", "spark"]].concat());
    assert_eq!(objects[1]["kind"], "SparkApplication");
    let mut flink = vec!["run", "--dry-run=client"];
    flink.extend_from_slice(&args);
    let refused = beam(&flink);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("Beam 2.62.0 has no Flink 1.20 runner"),
        "{}",
        text(&refused.stderr)
    );
}

#[test]
fn refusals_say_why_and_what_to_do() {
    let cases: [(&[&str], &str); 8] = [
        (
            &["testdata/beam/postgres.yaml"],
            "published for Beam 2.62.0 (the worker pool is built and tested",
        ),
        (
            &["examples/beam/explode.yaml", "--runner", "samza"],
            "Beam removed it (discontinued as of Beam 2.74.0)",
        ),
        (
            &["examples/beam/map_to_fields_with_java_deps.yaml"],
            "needs Beam's SQL expansion service",
        ),
        (
            &["examples/beam/explode.yaml", "--flink-version", "1.17"],
            "--flink-version 1.19, 1.20",
        ),
        (&["examples/beam/kafka.yaml"], "TOPIC"),
        (&["testdata/beam/invalid/dangling-input.yaml"], "dangling-input.yaml:8"),
        (
            &["examples/beam/explode.yaml", "--session", "shared", "--slots", "2"],
            "cluster create --slots",
        ),
        (&["examples/beam/explode.yaml", "--slots", "0"], "--slots"),
    ];
    for (args, words) in cases {
        let mut full = vec!["run", "--dry-run=client"];
        full.extend_from_slice(args);
        let output = beam(&full);
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{args:?} should fail");
        assert!(stderr.contains(words), "{args:?}: {words:?} not in {stderr}");
    }
    let session = beam(&[
        "run",
        "--dry-run=client",
        "testdata/beam/postgres.yaml",
        "--beam-version",
        "2.62.0",
        "--flink-version",
        "1.19",
        "--session",
        "shared",
    ]);
    assert!(
        text(&session.stderr).contains("a session cluster's TaskManagers have none"),
        "{}",
        text(&session.stderr)
    );
}

#[test]
fn java_backed_transforms_get_an_expansion_service_beside_the_launcher_and_the_java_pool() {
    for (file, runner, served) in [
        (
            "testdata/beam/postgres.yaml",
            "flink",
            "ReadFromPostgres,WriteToPostgres",
        ),
        (
            "testdata/beam/postgres.yaml",
            "spark",
            "ReadFromPostgres,WriteToPostgres",
        ),
        ("examples/beam/kafka.yaml", "flink", "ReadFromKafka,WriteToKafka"),
    ] {
        let output = beam(&[
            "run",
            file,
            "--runner",
            runner,
            "--beam-version",
            "2.62.0",
            "--flink-version",
            "1.19",
            "--dry-run=client",
            "-o",
            "json",
            "--jinja-variables",
            "testdata/beam/variables.json",
        ]);
        assert!(output.status.success(), "{file}: {}", text(&output.stderr));
        let list: Value = serde_json::from_slice(&output.stdout).unwrap();
        let object = &list["items"][1];
        assert_valid(object, file);
        assert_eq!(
            object["metadata"]["annotations"]["beamstack.dev/java-transforms"],
            served
        );
        let pod = if runner == "flink" {
            &object["spec"]["jobManager"]["podTemplate"]["spec"]
        } else {
            &object["spec"]["driver"]
        };
        let init: Vec<&str> = (pod["initContainers"].as_array().unwrap().iter())
            .map(|container| container["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            init[1], "beam-expansion-service",
            "{file}: started before the launcher: {init:?}"
        );
        let service = &pod["initContainers"][1];
        assert_eq!(service["image"], "ghcr.io/beamstack/beam-java-transforms:2.62.0");
        assert_eq!(service["restartPolicy"], "Always");
        assert_eq!(args_of(service), ["expansion-service", "8091"]);
        let launcher = args_of(&pod["initContainers"][2]);
        let services = launcher
            .iter()
            .find_map(|arg| arg.strip_prefix("--beam_services="))
            .unwrap_or_else(|| panic!("{launcher:?}"));
        let services: Value = serde_json::from_str(services).unwrap();
        assert!(
            (services.as_object().unwrap().values()).all(|address| address == "localhost:8091"),
            "{services}"
        );
    }
}

#[test]
fn pipeline_options_that_conflict_with_the_run_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("conflict.yaml");
    std::fs::write(&file, "pipeline:\n  type: chain\n  transforms:\n    - type: Create\n      config: {elements: [{a: 1}]}\n    - type: LogForTesting\noptions:\n  runner: DirectRunner\n  yaml_experimental_features: Combine\n").unwrap();
    let output = beam(&["run", "--dry-run=client", file.to_str().unwrap()]);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("options.runner is \"DirectRunner\"") && stderr.contains("Remove options.runner"),
        "{stderr}"
    );
    std::fs::write(&file, "pipeline:\n  type: chain\n  transforms:\n    - type: Create\n      config: {elements: [{a: 1}]}\n    - type: LogForTesting\noptions:\n  yaml_experimental_features: Combine\n").unwrap();
    assert!(
        beam(&["run", "--dry-run=client", file.to_str().unwrap()])
            .status
            .success(),
        "other options pass through"
    );
}

#[test]
fn validate_names_file_line_and_transform() {
    let output = beam(&["validate", "testdata/beam/invalid/unconsumed-errors.yaml"]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("unconsumed-errors.yaml:8: transform \"Double\": its error output `errors` is not consumed"),
        "{stderr}"
    );
    let output = beam(&["validate", "examples/beam/tests/../wordcount_minimal.yaml"]);
    assert!(
        text(&output.stdout).contains("valid Beam YAML"),
        "{}",
        text(&output.stderr)
    );
    let output = beam(&["validate", "examples/beam/simple_filter.yaml"]);
    assert!(text(&output.stdout).contains("all Python"));
}

#[test]
fn completion_scripts_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let output = beam(&["completion", shell]);
        assert!(output.status.success());
        assert!(text(&output.stdout).contains("run"), "{shell}");
    }
}

#[test]
fn name_output_lists_kind_and_name() {
    let output = beam(&[
        "run",
        "--dry-run=client",
        "-o",
        "name",
        "-n",
        "x",
        "examples/beam/explode.yaml",
    ]);
    assert_eq!(
        text(&output.stdout),
        "configmap/explode-pipeline\nflinkdeployment.flink.apache.org/explode\n"
    );
}

#[test]
fn without_a_cluster_the_error_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-kubeconfig");
    for args in [
        vec!["run", "examples/beam/explode.yaml"],
        vec!["list"],
        vec!["status", "explode"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_kubectl-beam"))
            .args(&args)
            .arg("--kubeconfig")
            .arg(&missing)
            .current_dir(repo())
            .output()
            .unwrap();
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{args:?}");
        assert!(stderr.contains("no-such-kubeconfig"), "{args:?}: {stderr}");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_kubectl-beam"))
        .args(["list"])
        .env("HOME", dir.path())
        .env_remove("KUBECONFIG")
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        text(&output.stderr).contains("use --dry-run=client"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn a_session_cluster_is_a_jobless_flink_deployment_ready_for_the_harness() {
    let output = beam(&[
        "cluster",
        "create",
        "Shared",
        "--task-managers",
        "3",
        "--slots",
        "4",
        "--task-manager-memory",
        "4g",
        "--job-manager-cpu",
        "0.5",
        "--pvc",
        "data:/data",
        "--dry-run=client",
        "-o",
        "yaml",
        "-n",
        "beam",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let cluster: Value = serde_saphyr::from_str(&text(&output.stdout)).unwrap();
    assert_valid(&cluster, "session cluster");
    assert_eq!(cluster["metadata"]["name"], "shared");
    assert!(cluster["spec"].get("job").is_none(), "a session cluster has no job");
    assert_eq!(cluster["spec"]["taskManager"]["replicas"], 3);
    assert_eq!(
        cluster["spec"]["flinkConfiguration"]["taskmanager.numberOfTaskSlots"],
        "4"
    );
    assert_eq!(
        cluster["metadata"]["annotations"]["beamstack.dev/beam-sdk"], "python",
        "the webhook adds the worker pool"
    );
    assert_eq!(cluster["metadata"]["labels"]["beamstack.dev/session-cluster"], "shared");
    assert_eq!(cluster["spec"]["jobManager"]["resource"]["cpu"], 0.5);
    // The claim is mounted in the worker pool of every TaskManager, where the jobs' Python steps run.
    let task_manager = &cluster["spec"]["taskManager"]["podTemplate"]["spec"];
    assert_eq!(task_manager["containers"][1]["name"], "beam-worker-pool");
    assert_eq!(
        task_manager["containers"][1]["volumeMounts"][0],
        serde_json::json!({"name": "beam-pvc-0", "mountPath": "/data"})
    );
    assert_eq!(task_manager["volumes"][0]["persistentVolumeClaim"]["claimName"], "data");
    let bad = beam(&[
        "cluster",
        "create",
        "x",
        "--task-manager-memory",
        "lots",
        "--dry-run=client",
    ]);
    assert!(
        text(&bad.stderr).contains("--task-manager-memory"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn an_older_beam_release_gets_its_newest_flink_minor_by_default() {
    // Beam 2.62.0 publishes no Flink 1.20 runner (the built-in default): its newest, 1.19, is used.
    let objects = run_objects(&["examples/beam/simple_filter.yaml", "--beam-version", "2.62.0"]);
    let deployment = &objects[1];
    assert_eq!(deployment["spec"]["flinkVersion"], "v1_19");
    assert_eq!(deployment["spec"]["image"], "flink:1.19");
    assert_eq!(
        deployment["spec"]["jobManager"]["podTemplate"]["spec"]["initContainers"][0]["image"],
        "apache/beam_flink1.19_job_server:2.62.0"
    );
    // The Spark runner does not need a Flink minor, and no longer trips over the default one.
    let objects = run_objects(&[
        "examples/beam/simple_filter.yaml",
        "--beam-version",
        "2.62.0",
        "--runner",
        "spark",
    ]);
    assert_eq!(objects[1]["kind"], "SparkApplication");
}

#[test]
fn last_state_upgrades_turn_high_availability_on_beside_the_checkpoints() {
    let objects = run_objects(&[
        "examples/beam/simple_filter.yaml",
        "--upgrade-mode",
        "last-state",
        "--checkpoint-dir",
        "file:///data/flink/checkpoints",
    ]);
    assert_valid(&objects[1], "flink");
    let configuration = &objects[1]["spec"]["flinkConfiguration"];
    assert_eq!(configuration["high-availability.type"], "kubernetes");
    assert_eq!(configuration["high-availability.storageDir"], "file:///data/flink/ha");
    assert_eq!(
        configuration["execution.checkpointing.dir"],
        "file:///data/flink/checkpoints"
    );
    // Flink 1.19 reads only the older keys.
    let objects = run_objects(&[
        "examples/beam/simple_filter.yaml",
        "--flink-version",
        "1.19",
        "--checkpoint-dir",
        "file:///data/cp",
        "--savepoint-dir",
        "file:///data/sp",
    ]);
    let configuration = &objects[1]["spec"]["flinkConfiguration"];
    assert_eq!(configuration["state.checkpoints.dir"], "file:///data/cp");
    assert_eq!(configuration["state.savepoints.dir"], "file:///data/sp");
    assert!(configuration.get("execution.checkpointing.dir").is_none());
    let objects = run_objects(&[
        "examples/beam/simple_filter.yaml",
        "--upgrade-mode",
        "last-state",
        "--checkpoint-dir",
        "s3://bucket/checkpoints",
        "--ha-dir",
        "s3://bucket/recovery",
    ]);
    assert_eq!(
        objects[1]["spec"]["flinkConfiguration"]["high-availability.storageDir"],
        "s3://bucket/recovery"
    );
    // Stateless jobs need no high availability.
    let objects = run_objects(&[
        "examples/beam/simple_filter.yaml",
        "--checkpoint-dir",
        "file:///data/cp",
    ]);
    assert!(
        objects[1]["spec"]["flinkConfiguration"]
            .get("high-availability.type")
            .is_none()
    );
}

#[test]
fn claims_are_mounted_where_pipeline_code_runs_and_pods_are_sized_by_flags() {
    let objects = run_objects(&[
        "examples/beam/simple_filter.yaml",
        "--pvc",
        "data:/data",
        "--job-manager-cpu",
        "0.5",
        "--task-manager-memory",
        "1536m",
    ]);
    let deployment = &objects[1];
    assert_valid(deployment, "flink");
    let spec = &deployment["spec"];
    assert_eq!(
        spec["jobManager"]["resource"],
        serde_json::json!({"cpu": 0.5, "memory": "2048m"})
    );
    assert_eq!(
        spec["taskManager"]["resource"],
        serde_json::json!({"cpu": 1.0, "memory": "1536m"})
    );
    let claim = serde_json::json!({"name": "beam-pvc-0", "persistentVolumeClaim": {"claimName": "data"}});
    let mount = serde_json::json!({"name": "beam-pvc-0", "mountPath": "/data"});
    let job_manager = &spec["jobManager"]["podTemplate"]["spec"];
    assert!(job_manager["volumes"].as_array().unwrap().contains(&claim));
    let launcher = &job_manager["initContainers"][1];
    assert!(
        launcher["volumeMounts"].as_array().unwrap().contains(&mount),
        "{launcher}"
    );
    // The worker pool (which the webhook completes) gets it in the TaskManagers, where the steps read and write.
    // Flink's own container gets it too, in both pods: file:// checkpoints and savepoints can live on the claim.
    let task_manager = &spec["taskManager"]["podTemplate"]["spec"];
    for (index, name) in ["flink-main-container", "beam-worker-pool"].iter().enumerate() {
        assert_eq!(task_manager["containers"][index]["name"], *name);
        assert_eq!(task_manager["containers"][index]["volumeMounts"][0], mount);
    }
    assert_eq!(task_manager["volumes"][0], claim);
    let main = &job_manager["containers"][0];
    assert_eq!(main["name"], "flink-main-container");
    assert!(main["volumeMounts"].as_array().unwrap().contains(&mount), "{main}");

    // In session mode the claim goes to the launcher Job (the session cluster's TaskManagers got theirs from
    // `cluster create --pvc`).
    let session = run_objects(&[
        "examples/beam/simple_filter.yaml",
        "--session",
        "shared",
        "--pvc",
        "data:/data",
    ]);
    let pod = &session[1]["spec"]["template"]["spec"];
    assert!(pod["volumes"].as_array().unwrap().contains(&claim), "{pod}");
    assert!(
        pod["containers"][0]["volumeMounts"]
            .as_array()
            .unwrap()
            .contains(&mount),
        "{pod}"
    );

    for (args, message) in [
        (&["--pvc", "data"][..], "give CLAIM:/path"),
        (&["--pvc", "Data:/x"][..], "not a PersistentVolumeClaim name"),
        (&["--pvc", "data:relative"][..], "must be absolute"),
        (
            &["--task-manager-cpu", "0"][..],
            "--task-manager-cpu must be a positive",
        ),
        (&["--job-manager-memory", "lots"][..], "--job-manager-memory"),
    ] {
        let mut full = vec!["run", "examples/beam/simple_filter.yaml", "--dry-run=client"];
        full.extend_from_slice(args);
        let output = beam(&full);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(
            text(&output.stderr).contains(message),
            "{args:?}: {}",
            text(&output.stderr)
        );
    }
}
