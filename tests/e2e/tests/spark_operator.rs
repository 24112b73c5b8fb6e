//! `kubectl beam run --runner spark` for real: the Kubeflow Spark operator v2.5.2 runs in the cluster as its chart
//! installs it (tests/node/manifests/spark-operator: its controller and its pod webhook, watching the namespace
//! beam-spark). The operator's spark-submit creates the driver pod, whose init containers (Beam's Spark job server
//! as a native sidecar, then Beam YAML's launcher) write the executable pipeline jar; the driver runs Beam's
//! SparkPipelineRunner from it and asks Kubernetes for executors, each with the worker pool Beamstack's webhook put in
//! `spec.executor.sidecars` and the Spark operator's pod webhook added to the pod. Every pod runs from the images
//! kubectl beam names by default - `apache/spark:3.5.6-java17`, `apache/beam_python3.11_sdk:2.62.0`,
//! `apache/beam_spark3_job_server:2.62.0` - here the stand-ins scripts/e2e-images.sh builds under those names
//! (tests/node/images/*/Dockerfile say what each stands for).
//!
//! Beam 2.62.0: the newest Beam whose Spark 3 runner resolves from the Maven mirror CI reaches; Spark 3.5.6.
//!
//! What it took (issue 13): the job-server jar relocates Guava and Gson (Spark's guava-14 comes first on the driver's
//! classpath, and Beam's GCS options failed against it: scripts/spark-job-server/pom.xml); the pipeline's ConfigMap is
//! mounted in the driver container itself (the operator's pod webhook adds volumes only for its mounts).
//! Inputs and outputs live on a PersistentVolume backed by a folder of this machine, mounted with `--pvc` where the
//! pipeline's code runs; the tests compare what the pipeline wrote there record by record.

use e2e::pipelines::*;
use e2e::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const NAMESPACE: &str = "beam-spark";
const CSV_FILTER: &str = "tests/e2e/fixtures/pipelines/csv_filter.yaml";
const RAISES: &str = "tests/e2e/fixtures/pipelines/raises.yaml";
const SLOW: &str = "tests/e2e/fixtures/pipelines/slow.yaml";

/// The versions the scenarios run (see the module comment).
const VERSIONS: &[&str] = &["--beam-version", "2.62.0", "--python-version", "3.11"];

/// Sizes that let a driver and an executor, each with Beam's containers beside it, fit on this 2-core node beside
/// the operators and Beamstack.
const SMALL: &[&str] = &[
    "--driver-cpu",
    "0.25",
    "--driver-memory",
    "512m",
    "--executor-cpu",
    "0.25",
    "--executor-memory",
    "1g",
];

/// `kubectl beam run FILE --runner spark -n beam-spark --name NAME -l team=data` with the tests' versions and sizes.
fn run_pipeline(file: &str, name: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "run",
        file,
        "--runner",
        "spark",
        "-n",
        NAMESPACE,
        "--name",
        name,
        // The shipped required-labels policy wants a team on every runner object.
        "-l",
        "team=data",
    ];
    args.extend_from_slice(VERSIONS);
    args.extend_from_slice(SMALL);
    args.extend_from_slice(extra);
    beam(&args)
}

/// The application's state as the operator reports it (`status.applicationState.state`), empty before it has one.
fn application_state(name: &str) -> String {
    let application = get("sparkapplication", NAMESPACE, name);
    application["status"]["applicationState"]["state"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// What the operator, the driver and its init containers said, for a failing test.
fn diagnostics(name: &str) -> String {
    let application = kubectl(&["get", "sparkapplication", name, "-n", NAMESPACE, "-o", "yaml"]).stdout;
    let pods = kubectl(&["get", "pods", "-n", NAMESPACE, "-o", "wide"]).stdout;
    let events = kubectl(&["get", "events", "-n", NAMESPACE, "--sort-by=.lastTimestamp"]).stdout;
    let controller = kubectl(&[
        "logs",
        "-n",
        "spark-operator",
        "deployment/spark-operator-controller",
        "--tail=30",
    ])
    .stdout;
    let driver = format!("{name}-driver");
    let logs = |container: &str| {
        let run = kubectl(&["logs", "-n", NAMESPACE, &driver, "-c", container, "--tail=40"]);
        format!("{}{}", run.stdout, run.stderr)
    };
    format!(
        "SparkApplication:\n{application}\npods:\n{pods}\nevents:\n{events}\ncontroller:\n{controller}\n\
         launcher:\n{}\njob server:\n{}\ndriver:\n{}",
        logs("build-pipeline-jar"),
        logs("beam-job-server"),
        logs("spark-kubernetes-driver")
    )
}

/// Waits until the operator reports one of `states`, and returns it.
fn wait_for_state(name: &str, states: &[&str], within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let state = application_state(name);
        if states.contains(&state.as_str()) {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: applicationState {state:?}, not one of {states:?} within {within:?}\n{}",
            diagnostics(name)
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Deletes the application and its pipeline's ConfigMap when dropped (when the scenario fails too), and waits, bounded and without panicking,
/// until its pods are gone: a driver left running would keep the node's room.
struct DeleteOnDrop(String);

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        delete_with_its_pipeline("sparkapplication", &self.0);
        let selector = format!("sparkoperator.k8s.io/app-name={}", self.0);
        wait_quietly_for_pods_to_go(NAMESPACE, &selector, &format!("SparkApplication {}", self.0));
    }
}

/// A Python-only batch pipeline on the operator: the driver pod builds the jar, Spark runs the executors with the
/// worker pool, the Python steps' records are the expected ones, and `status` reads the operator's COMPLETED.
#[test]
fn a_batch_pipeline_runs_on_the_spark_operator_with_the_worker_pool_in_its_executors() {
    require_cluster!();
    let _held = hold_the_node();
    let name = format!("orders-{}", std::process::id());
    let _application = DeleteOnDrop(name.clone());
    let data = DataVolume::new(NAMESPACE, &name);
    std::fs::write(data.dir.join("orders.csv"), ORDERS).unwrap();

    let pvc = data.claim();
    let started = Instant::now();
    let run = run_pipeline(
        CSV_FILTER,
        &name,
        &[
            "--pvc",
            &pvc,
            "--set",
            "input=/data/orders.csv",
            "--set",
            "output=/data/out/orders",
            "--wait",
        ],
    );
    assert!(
        run.ok,
        "kubectl beam run: {}\n{}\n{}",
        run.stdout,
        run.stderr,
        diagnostics(&name)
    );
    eprintln!(
        "kubectl beam run --wait returned after {:?}:\n{}",
        started.elapsed(),
        run.stdout
    );

    // The driver pod: Spark's container after Beam's job server and launcher, which the Spark operator's pod
    // webhook added from spec.driver.initContainers.
    let driver = wait_for("the driver pod", Duration::from_secs(120), || {
        pods(
            NAMESPACE,
            &format!("sparkoperator.k8s.io/app-name={name},spark-role=driver"),
        )
        .into_iter()
        .next()
    });
    assert_eq!(
        container_names(&driver, "initContainers"),
        ["beam-job-server", "build-pipeline-jar"],
        "{}",
        diagnostics(&name)
    );

    // An executor pod, while it lives (Spark deletes it when the job ends): Spark's container and the worker pool
    // Beamstack's webhook put in spec.executor.sidecars, added to the pod by the Spark operator's pod webhook.
    let executor = wait_for("an executor pod", Duration::from_secs(300), || {
        pods(
            NAMESPACE,
            &format!("sparkoperator.k8s.io/app-name={name},spark-role=executor"),
        )
        .into_iter()
        .next()
    });
    let containers = container_names(&executor, "containers");
    assert!(containers.contains(&"beam-worker-pool".to_owned()), "{containers:?}");

    let state = wait_for_state(
        &name,
        &["COMPLETED", "FAILED", "SUBMISSION_FAILED"],
        Duration::from_secs(600),
    );
    assert_eq!(state, "COMPLETED", "{}", diagnostics(&name));
    let application = get("sparkapplication", NAMESPACE, &name);
    let executors = application["status"]["executorState"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(
        !executors.is_empty(),
        "the operator saw the executors: {}",
        application["status"]
    );

    let status = beam(&["status", &name, "-n", NAMESPACE]);
    assert!(
        status.ok && status.stdout.contains("Succeeded"),
        "{}\n{}",
        status.stdout,
        status.stderr
    );
    assert!(
        status.stdout.contains("COMPLETED"),
        "the native state is shown: {}",
        status.stdout
    );

    assert_filtered_orders(&data.dir.join("out/orders"));

    let deleted = beam(&["delete", &name, "-n", NAMESPACE, "--wait"]);
    assert!(deleted.ok, "{}\n{}", deleted.stdout, deleted.stderr);
    let config_maps = kubectl(&["get", "configmaps", "-n", NAMESPACE, "-o", "name"]).stdout;
    assert!(
        !config_maps.contains(&format!("{name}-pipeline")),
        "the pipeline's ConfigMap went too: {config_maps}"
    );
}

/// A Python step that raises: the driver's job fails, the operator says FAILED with the driver's exit, `status` says
/// Failed with the Python error as its cause, `status -w` exits 1, and `logs` (the driver's, by default) holds the
/// traceback Beam relayed from the executor's worker pool. The worker pool's own log is not asserted: Spark retries
/// the task four times within a second and deletes the executor when the job ends, so it is rarely there to read.
#[test]
fn a_python_exception_fails_the_application_and_every_view_says_why() {
    require_cluster!();
    let _held = hold_the_node();
    let name = format!("raises-{}", std::process::id());
    let _application = DeleteOnDrop(name.clone());
    let run = run_pipeline(RAISES, &name, &[]);
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);

    let state = wait_for_state(&name, &["FAILED", "COMPLETED"], Duration::from_secs(600));
    assert_eq!(state, "FAILED", "{}", diagnostics(&name));
    let application = get("sparkapplication", NAMESPACE, &name);
    let error = application["status"]["applicationState"]["errorMessage"]
        .as_str()
        .unwrap_or("");
    eprintln!("the operator's error: {error}");
    assert!(!error.is_empty(), "the operator says why: {}", application["status"]);

    let status = beam(&["status", &name, "-n", NAMESPACE]);
    eprintln!("kubectl beam status:\n{}", status.stdout);
    assert!(
        status.stdout.contains("Failed (applicationState FAILED)"),
        "status:\n{}\n{}",
        status.stdout,
        status.stderr
    );
    assert!(
        status.stdout.contains(&format!("Error:        {error}")),
        "status shows the operator's error:\n{}",
        status.stdout
    );
    assert!(
        status
            .stdout
            .contains("Cause:        ZeroDivisionError: division by zero [while running 'MapToFields"),
        "status names the Python error and its step, from the driver's log:\n{}",
        status.stdout
    );
    let follow = beam(&["status", &name, "-n", NAMESPACE, "-w"]);
    assert_eq!(
        follow.code,
        Some(1),
        "status -w of a failed application:\n{}\n{}",
        follow.stdout,
        follow.stderr
    );

    let logs = beam(&["logs", &name, "-n", NAMESPACE]);
    assert!(
        logs.stdout.contains("Error received from SDK harness")
            && logs.stdout.contains("Traceback (most recent call last)")
            && logs.stdout.contains("ZeroDivisionError: division by zero"),
        "the driver's log has the worker pool's traceback:\n{}",
        tail(&logs.stdout, 40)
    );
}

/// A tenant budget counted from an application that really runs: a memory budget that the first application fits
/// and two do not. The webhook's count of the running application is compared with what the node's scheduler counts
/// for its driver and executor pods (`kubectl describe node`: Spark's containers with their overhead, Beam's job server
/// beside the driver as a native sidecar, the worker pool beside the executor), so the budget counts what runs.
/// The next is refused while the first runs and admitted once it is deleted.
#[test]
fn a_running_application_fills_the_tenant_budget_until_it_is_deleted() {
    require_cluster!();
    let _held = hold_the_node();
    let _tenant = TenantGuard("e2e-spark-data");
    assert!(apply(&tenant("e2e-spark-data", NAMESPACE, "memory: 6Gi")).ok);
    let first = format!("slow-{}", std::process::id());
    let next = format!("next-{}", std::process::id());
    let _first = DeleteOnDrop(first.clone());
    let _next = DeleteOnDrop(next.clone());
    let run = run_pipeline(SLOW, &first, &["--wait"]);
    assert!(run.ok, "{}\n{}\n{}", run.stdout, run.stderr, diagnostics(&first));
    wait_for_state(&first, &["RUNNING"], Duration::from_secs(240));
    wait_for("the first application's executor", Duration::from_secs(240), || {
        pods(
            NAMESPACE,
            &format!("sparkoperator.k8s.io/app-name={first},spark-role=executor"),
        )
        .into_iter()
        .next()
    });
    let scheduled = scheduled_memory_mib(&first);

    let refused = wait_for("the tenant's refusal", Duration::from_secs(30), || {
        let attempt = run_pipeline(SLOW, &next, &["--dry-run=server"]);
        (!attempt.ok && attempt.stderr.contains("tenant e2e-spark-data")).then_some(attempt)
    });
    eprintln!(
        "the scheduler counts {scheduled}Mi for {first}'s pods; the webhook said:\n{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains(&format!(
            "would use {}Mi of memory: it runs {scheduled}Mi, this job asks for {scheduled}Mi, the budget is 6Gi",
            2 * scheduled
        )),
        "the running application counts what its pods request: {}",
        refused.stderr
    );
    assert_eq!(
        application_state(&first),
        "RUNNING",
        "the budget was full while the application ran"
    );

    let deleted = beam(&["delete", &first, "-n", NAMESPACE, "--wait"]);
    assert!(deleted.ok, "{}\n{}", deleted.stdout, deleted.stderr);
    wait_for("room for the next application", Duration::from_secs(30), || {
        run_pipeline(SLOW, &next, &["--dry-run=server"]).ok.then_some(())
    });
}

/// The memory requests of an application's pods, in MiB, as the node counts them: `kubectl describe node` prints
/// each pod's requests the way the scheduler sums them (containers, native sidecars, init containers' peak).
fn scheduled_memory_mib(application: &str) -> u64 {
    let node = kubectl(&["describe", "node"]).stdout;
    let rows: Vec<&str> = node
        .lines()
        .filter(|line| {
            let mut columns = line.split_whitespace();
            columns.next() == Some(NAMESPACE)
                && columns
                    .next()
                    .is_some_and(|pod| pod.starts_with(&format!("{application}-")))
        })
        .collect();
    assert_eq!(rows.len(), 2, "a driver and an executor on the node:\n{node}");
    rows.iter()
        .map(|row| {
            // NAMESPACE NAME CPU-REQUESTS (%) CPU-LIMITS (%) MEMORY-REQUESTS (%) ...
            let memory = row.split_whitespace().nth(6).unwrap();
            mebibytes(memory).unwrap_or_else(|| panic!("memory request {memory:?} in {row:?}"))
        })
        .sum()
}

/// A Kubernetes quantity kubectl prints for memory (`1920Mi`, `2Gi`, bytes), in MiB when it is a whole number of them.
fn mebibytes(quantity: &str) -> Option<u64> {
    let bytes = if let Some(mebi) = quantity.strip_suffix("Mi") {
        mebi.parse::<u64>().ok()? << 20
    } else if let Some(gibi) = quantity.strip_suffix("Gi") {
        gibi.parse::<u64>().ok()? << 30
    } else if let Some(kibi) = quantity.strip_suffix("Ki") {
        kibi.parse::<u64>().ok()? << 10
    } else {
        quantity.parse::<u64>().ok()?
    };
    (bytes % (1 << 20) == 0).then_some(bytes >> 20)
}

/// Deletes a runner object (not waiting) and the ConfigMap kubectl beam made for its pipeline.
fn delete_with_its_pipeline(kind: &str, name: &str) {
    kubectl(&[
        "delete",
        kind,
        name,
        "-n",
        NAMESPACE,
        "--ignore-not-found",
        "--wait=false",
    ]);
    let config_map = format!("{name}-pipeline");
    kubectl(&[
        "delete",
        "configmap",
        &config_map,
        "-n",
        NAMESPACE,
        "--ignore-not-found",
    ]);
}

struct TenantGuard(&'static str);

impl Drop for TenantGuard {
    fn drop(&mut self) {
        kubectl(&["delete", "tenant", self.0, "--ignore-not-found"]);
    }
}

/// The last `count` lines of `text`.
fn tail(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// A ScheduledSparkApplication, as a user writes one around what `kubectl beam run --dry-run=client` makes (its
/// SparkApplication's spec as the template) and applies with plain kubectl: Beamstack's webhook completes the worker
/// pool in `spec.template`, and the operator's schedule creates a SparkApplication that runs the pipeline.
#[test]
fn a_scheduled_application_is_run_by_the_operator_on_its_schedule() {
    require_cluster!();
    let _held = hold_the_node();
    // The operator names each run <name>-<19 digits>, which must stay within 63 characters.
    let name = format!("nightly-{}", std::process::id());
    let data = DataVolume::new(NAMESPACE, &name);
    std::fs::write(data.dir.join("orders.csv"), ORDERS).unwrap();
    let pvc = data.claim();
    let planned = run_pipeline(
        CSV_FILTER,
        &name,
        &[
            "--pvc",
            &pvc,
            "--set",
            "input=/data/orders.csv",
            "--set",
            "output=/data/out/orders",
            "--dry-run=client",
            "-o",
            "json",
        ],
    );
    assert!(planned.ok, "{}", planned.stderr);
    let list: Value = serde_json::from_str(&planned.stdout).unwrap();
    let items = list["items"].as_array().unwrap();
    let config_map = items.iter().find(|item| item["kind"] == "ConfigMap").unwrap();
    let application = items.iter().find(|item| item["kind"] == "SparkApplication").unwrap();
    let scheduled = serde_json::json!({
        "apiVersion": "sparkoperator.k8s.io/v1beta2",
        "kind": "ScheduledSparkApplication",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": application["metadata"]["labels"],
                     "annotations": application["metadata"]["annotations"]},
        "spec": {
            "schedule": "@every 1m",
            "concurrencyPolicy": "Forbid",
            "successfulRunHistoryLimit": 1,
            "failedRunHistoryLimit": 1,
            "template": application["spec"],
        },
    });
    let _scheduled = DeleteScheduledOnDrop(name.clone());
    let applied = apply(&format!("{config_map}\n---\n{scheduled}"));
    assert!(applied.ok, "{}", applied.stderr);
    let stored = get("scheduledsparkapplication", NAMESPACE, &name);
    let sidecars = &stored["spec"]["template"]["executor"]["sidecars"];
    assert!(
        sidecars
            .as_array()
            .into_iter()
            .flatten()
            .any(|sidecar| sidecar["name"] == "beam-worker-pool"
                && sidecar["image"] == "apache/beam_python3.11_sdk:2.62.0"),
        "the webhook completed the worker pool in the template: {sidecars}"
    );

    // The first run comes one interval after creation.
    let run = wait_for("the operator's first run", Duration::from_secs(150), || {
        let stored = get("scheduledsparkapplication", NAMESPACE, &name);
        stored["status"]["lastRunName"]
            .as_str()
            .filter(|run| !run.is_empty())
            .map(str::to_owned)
    });
    eprintln!("the schedule made {run}");
    // Suspended now: one run is what the scenario needs.
    kubectl(&[
        "patch",
        "scheduledsparkapplication",
        &name,
        "-n",
        NAMESPACE,
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ]);
    let state = wait_for_state(
        &run,
        &["COMPLETED", "FAILED", "SUBMISSION_FAILED"],
        Duration::from_secs(600),
    );
    assert_eq!(state, "COMPLETED", "{}", diagnostics(&run));
    // The operator copies the schedule's labels to each run, the pipeline's among them: `status` of the pipeline
    // finds the run.
    let status = beam(&["status", &name, "-n", NAMESPACE]);
    assert!(
        status.ok && status.stdout.contains("Succeeded"),
        "{}\n{}",
        status.stdout,
        status.stderr
    );
    assert_filtered_orders(&data.dir.join("out/orders"));
}

/// Deletes a ScheduledSparkApplication when dropped; the operator's runs go with it (they are owned by it).
struct DeleteScheduledOnDrop(String);

impl Drop for DeleteScheduledOnDrop {
    fn drop(&mut self) {
        delete_with_its_pipeline("scheduledsparkapplication", &self.0);
        // Its runs' pods carry the run's name, <name>-<digits>, in their app-name label.
        let runs = kubectl(&["get", "sparkapplications", "-n", NAMESPACE, "-o", "name"]).stdout;
        for run in runs
            .lines()
            .filter_map(|line| line.strip_prefix("sparkapplication.sparkoperator.k8s.io/"))
        {
            if run.starts_with(&format!("{}-", self.0)) {
                let selector = format!("sparkoperator.k8s.io/app-name={run}");
                wait_quietly_for_pods_to_go(NAMESPACE, &selector, &format!("SparkApplication {run}"));
            }
        }
    }
}
