//! `kubectl beam run` for real on Flink: the Flink Kubernetes Operator 1.7.0 runs in the cluster as its
//! chart installs it (tests/node/manifests/flink-kubernetes-operator, watching the namespace beam-flink), and every
//! pod of a pipeline runs on the node from the images kubectl beam names by default - Flink's `flink:1.19`, Beam's
//! `apache/beam_python3.11_sdk:2.62.0` and `apache/beam_flink1.19_job_server:2.62.0` - here the stand-ins
//! scripts/e2e-images.sh builds under those names (tests/node/images/*/Dockerfile say what each stands for).
//!
//! Beam 2.62.0 with Flink 1.19: the newest pair whose Flink runner resolves from the Maven mirror CI reaches.
//! Inputs and outputs live on a PersistentVolume backed by a folder of this machine (.e2e/pipeline-data), mounted with
//! `--pvc` where the pipeline's code runs; the tests compare what the pipeline wrote there record by record.

use e2e::pipelines::*;
use e2e::postgres::Postgres;
use e2e::*;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const NAMESPACE: &str = "beam-flink";
const CSV_FILTER: &str = "tests/e2e/fixtures/pipelines/csv_filter.yaml";
const RAISES: &str = "tests/e2e/fixtures/pipelines/raises.yaml";
const SLOW: &str = "tests/e2e/fixtures/pipelines/slow.yaml";
const TICKS: &str = "tests/e2e/fixtures/pipelines/ticks.yaml";
const POSTGRES: &str = "tests/e2e/fixtures/pipelines/postgres.yaml";

/// Sizes that let a JobManager and a TaskManager (with its worker pool) fit on this 2-core node beside Beamstack.
const SMALL: &[&str] = &[
    "--job-manager-cpu",
    "0.25",
    "--job-manager-memory",
    "1024m",
    "--task-manager-cpu",
    "0.25",
    "--task-manager-memory",
    "1536m",
];

/// As SMALL, for a job whose TaskManager pod also runs the Java worker pool (500m) and whose JobManager pod runs the
/// expansion service (100m): 2.0 cores' worth of requests must fit beside Beamstack, CoreDNS and the Spark operator
/// (370m), and 0.25 cores for each Flink process leave 70m too little.
const SMALL_WITH_JAVA: &[&str] = &[
    "--job-manager-cpu",
    "0.2",
    "--job-manager-memory",
    "1024m",
    "--task-manager-cpu",
    "0.2",
    "--task-manager-memory",
    "1536m",
];

/// The versions the operator scenarios run (see the module comment).
const VERSIONS: &[&str] = &[
    "--beam-version",
    "2.62.0",
    "--flink-version",
    "1.19",
    "--python-version",
    "3.11",
];

/// `kubectl beam delete NAME --wait`, then until the pods labelled `app=NAME` are gone.
fn delete_and_wait_for_pods_to_go(name: &str) {
    let deleted = beam(&["delete", name, "-n", NAMESPACE, "--wait"]);
    assert!(deleted.ok, "{}\n{}", deleted.stdout, deleted.stderr);
    wait_for_pods_to_go(name);
}

/// Polls `done` every two seconds until it holds or `within` has passed; whether it held.
fn wait_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn wait_for_pods_to_go(app: &str) {
    wait_for(&format!("the pods of {app} to go"), Duration::from_secs(180), || {
        pods(NAMESPACE, &format!("app={app}")).is_empty().then_some(())
    });
}

/// What the operator and Flink said, for a failing test.
fn diagnostics(name: &str) -> String {
    let deployment = kubectl(&["get", "flinkdeployment", name, "-n", NAMESPACE, "-o", "yaml"]).stdout;
    let pods = kubectl(&["get", "pods", "-n", NAMESPACE, "-o", "wide"]).stdout;
    let events = kubectl(&["get", "events", "-n", NAMESPACE, "--sort-by=.lastTimestamp"]).stdout;
    let operator = kubectl(&[
        "logs",
        "-n",
        "flink-operator",
        "deployment/flink-kubernetes-operator",
        "--tail=30",
    ])
    .stdout;
    let launcher = kubectl(&[
        "logs",
        "-n",
        NAMESPACE,
        &format!("deployment/{name}"),
        "-c",
        "beam-pipeline-jar",
        "--tail=30",
    ]);
    format!(
        "FlinkDeployment:\n{deployment}\npods:\n{pods}\nevents:\n{events}\noperator:\n{operator}\nlauncher:\n{}{}",
        launcher.stdout, launcher.stderr
    )
}

/// The Flink job's state as the operator reports it (`status.jobStatus.state`), empty before it has one.
fn job_state(name: &str) -> String {
    let deployment = get("flinkdeployment", NAMESPACE, name);
    deployment["status"]["jobStatus"]["state"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// Waits until the operator reports one of `states` for the job, and returns it.
fn wait_for_job_state(name: &str, states: &[&str], within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let state = job_state(name);
        if states.contains(&state.as_str()) {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "job {name}: state {state:?}, not one of {states:?} within {within:?}\n{}",
            diagnostics(name)
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// `kubectl beam run FILE -n beam-flink --name NAME -l team=data` with the tests' versions and sizes, then `extra`.
fn run_pipeline(file: &str, name: &str, extra: &[&str]) -> Run {
    run_pipeline_sized(file, name, SMALL, extra)
}

/// As `run_pipeline`, with other pod sizes.
fn run_pipeline_sized(file: &str, name: &str, sizes: &[&str], extra: &[&str]) -> Run {
    let mut args = vec![
        "run",
        file,
        "-n",
        NAMESPACE,
        "--name",
        name,
        // The shipped required-labels policy wants a team on every runner object.
        "-l",
        "team=data",
    ];
    args.extend_from_slice(VERSIONS);
    args.extend_from_slice(sizes);
    args.extend_from_slice(extra);
    beam(&args)
}

#[test]
fn application_mode_batch_pipeline_runs_on_the_operator_with_the_injected_worker_pool() {
    require_cluster!();
    let _held = hold_the_node();
    let name = format!("orders-{}", std::process::id());
    let _job = DeleteOnDrop::flink_deployment(&name);
    let data = DataVolume::new(NAMESPACE, &name);
    std::fs::write(data.dir.join("orders.csv"), ORDERS).unwrap();

    let pvc = data.claim();
    let args = [
        "--pvc",
        &pvc,
        "--set",
        "input=/data/orders.csv",
        "--set",
        "output=/data/out/orders",
        "--wait",
    ];
    let started = Instant::now();
    let run = run_pipeline(CSV_FILTER, &name, &args);
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

    // The operator made the JobManager from the generated spec: Flink's image, the job server and the launcher
    // before it.
    let job_manager = pods(NAMESPACE, &format!("app={name},component=jobmanager"));
    assert_eq!(job_manager.len(), 1, "{}", diagnostics(&name));
    assert_eq!(
        container_names(&job_manager[0], "initContainers"),
        ["beam-job-server", "beam-pipeline-jar"]
    );
    // Flink made the TaskManagers; each has the worker pool the webhook injected.
    let task_manager = wait_for("a TaskManager pod", Duration::from_secs(120), || {
        pods(NAMESPACE, &format!("app={name},component=taskmanager"))
            .into_iter()
            .next()
    });
    let containers = container_names(&task_manager, "containers");
    assert!(containers.contains(&"beam-worker-pool".to_owned()), "{containers:?}");

    // The job finishes; the operator's own status says so, and kubectl beam reads it as Succeeded.
    let state = wait_for_job_state(&name, &["FINISHED", "FAILED", "CANCELED"], Duration::from_secs(300));
    assert_eq!(state, "FINISHED", "{}", diagnostics(&name));
    let status = beam(&["status", &name, "-n", NAMESPACE]);
    assert!(
        status.ok && status.stdout.contains("Succeeded"),
        "{}\n{}",
        status.stdout,
        status.stderr
    );
    assert!(
        status.stdout.contains("FINISHED"),
        "the native state is shown: {}",
        status.stdout
    );

    // What the Python steps computed in the worker pool.
    assert_filtered_orders(&data.dir.join("out/orders"));

    delete_and_wait_for_pods_to_go(&name);
}

/// Java-backed transforms without Docker: `kubectl beam run` of a pipeline that reads PostgreSQL with Beam YAML's
/// JDBC read, runs two Python steps, and writes PostgreSQL with the JDBC write, given no flag a Python pipeline would
/// not need. The JobManager pod expands the JDBC transforms through Beamstack's Java image (the expansion service
/// beside the launcher), the webhook puts the Java worker pool beside the Python one in the TaskManager, the real
/// operator runs the job, and the rows in the database are the test's judge. The Java stages span several workers
/// (JdbcIO's read is two stages), which Beam's own worker pool could not serve one after another.
#[test]
fn java_backed_jdbc_transforms_read_and_write_a_real_postgres() {
    require_cluster!();
    let _held = hold_the_node();
    let name = format!("pg-{}", std::process::id());
    let _job = DeleteOnDrop::flink_deployment(&name);
    let database = Postgres::start(NAMESPACE, &format!("postgres-{}", std::process::id()));
    database.sql(
        "CREATE TABLE people (id INT PRIMARY KEY, name TEXT, age INT);
         INSERT INTO people VALUES (1, 'ada', 36), (2, 'bob', 17), (3, 'cy', 52), (4, 'dee', 29);
         CREATE TABLE adults (id INT PRIMARY KEY, name TEXT, age_next_year BIGINT);",
    );

    let host = format!("--set=host={}", database.name);
    let started = Instant::now();
    let run = run_pipeline_sized(
        POSTGRES,
        &name,
        SMALL_WITH_JAVA,
        &[&host, "--set=table=adults", "--wait"],
    );
    assert!(
        run.ok,
        "kubectl beam run: {}\n{}\n{}",
        run.stdout,
        run.stderr,
        java_diagnostics(&name)
    );
    eprintln!("kubectl beam run --wait returned after {:?}", started.elapsed());

    let job_manager = pods(NAMESPACE, &format!("app={name},component=jobmanager"));
    assert_eq!(job_manager.len(), 1, "{}", java_diagnostics(&name));
    assert_eq!(
        container_names(&job_manager[0], "initContainers"),
        ["beam-job-server", "beam-expansion-service", "beam-pipeline-jar"]
    );
    let task_manager = wait_for("a TaskManager pod", Duration::from_secs(120), || {
        pods(NAMESPACE, &format!("app={name},component=taskmanager"))
            .into_iter()
            .next()
    });
    // In the operator's order (it puts Flink's container last).
    let mut containers = container_names(&task_manager, "containers");
    containers.sort();
    assert_eq!(
        containers,
        ["beam-java-worker-pool", "beam-worker-pool", "flink-main-container"]
    );

    // The Java pool's own log shows the workers it started for the JDBC stages (read while the TaskManager is
    // there: Flink releases it once the job is done).
    let mut java_log = String::new();
    let workers_started = wait_until(Duration::from_secs(240), || {
        let logs = beam(&["logs", &name, "-n", NAMESPACE, "--role", "java-harness"]);
        java_log = format!("{}{}", logs.stdout, logs.stderr);
        java_log.contains("Starting worker") || !job_state(&name).is_empty() && job_state(&name) != "RUNNING"
    });
    assert!(workers_started, "logs --role java-harness:\n{java_log}");

    let state = wait_for_job_state(&name, &["FINISHED", "FAILED", "CANCELED"], Duration::from_secs(300));
    assert_eq!(state, "FINISHED", "{}", java_diagnostics(&name));
    assert!(
        java_log.contains("Starting worker"),
        "the Java pool started no worker:\n{java_log}"
    );
    let status = beam(&["status", &name, "-n", NAMESPACE]);
    assert!(
        status.ok && status.stdout.contains("Succeeded"),
        "{}\n{}",
        status.stdout,
        status.stderr
    );
    let expansion = beam(&["logs", &name, "-n", NAMESPACE, "--role", "expansion-service"]);
    assert!(
        expansion.stdout.contains("jdbc_read"),
        "logs --role expansion-service:\n{}{}",
        expansion.stdout,
        expansion.stderr
    );

    // What the Java read, the Python steps and the Java write did, in the database.
    assert_eq!(
        database.sql("SELECT id, name, age_next_year FROM adults ORDER BY id"),
        "1|ADA|37\n3|CY|53\n4|DEE|30\n"
    );

    delete_and_wait_for_pods_to_go(&name);
}

/// The general diagnostics, and the logs of the Java side.
fn java_diagnostics(name: &str) -> String {
    let mut text = diagnostics(name);
    for (selector, container) in [
        (format!("app={name},component=jobmanager"), "beam-expansion-service"),
        (format!("app={name},component=taskmanager"), "beam-java-worker-pool"),
        (format!("app={name},component=taskmanager"), "flink-main-container"),
    ] {
        let logs = kubectl(&["logs", "-n", NAMESPACE, "-l", &selector, "-c", container, "--tail=40"]);
        text.push_str(&format!("\n{container}:\n{}{}", logs.stdout, logs.stderr));
    }
    text
}

/// Session mode: `kubectl beam cluster create`, then `run --session`: the launcher Job's pod builds the uber jar from
/// the job server's jar and submits it to the session cluster, whose TaskManager (with the injected worker pool) runs
/// the Python steps; `status` and `list` agree that it succeeded.
#[test]
fn session_mode_job_runs_in_the_session_cluster_and_status_and_list_agree() {
    require_cluster!();
    let _held = hold_the_node();
    let cluster = format!("session-{}", std::process::id());
    let name = format!("orders-session-{}", std::process::id());
    let _cluster = DeleteOnDrop::flink_deployment(&cluster);
    let _job = DeleteOnDrop::job(&name);
    let data = DataVolume::new(NAMESPACE, &name);
    std::fs::write(data.dir.join("orders.csv"), ORDERS).unwrap();
    let pvc = data.claim();

    let mut args = vec![
        "cluster",
        "create",
        &cluster,
        "-n",
        NAMESPACE,
        "--task-managers",
        "1",
        "--slots",
        "1",
        "--job-manager-cpu",
        "0.25",
        "--job-manager-memory",
        "1024m",
        "--task-manager-cpu",
        "0.25",
        "--task-manager-memory",
        "1536m",
        "--pvc",
        &pvc,
        "-l",
        "team=data",
    ];
    args.extend_from_slice(VERSIONS);
    let created = beam(&args);
    assert!(created.ok, "{}\n{}", created.stdout, created.stderr);
    wait_for("the session cluster's JobManager", Duration::from_secs(240), || {
        let deployment = get("flinkdeployment", NAMESPACE, &cluster);
        (deployment["status"]["jobManagerDeploymentStatus"] == "READY").then_some(())
    });

    let run = beam(&[
        "run",
        CSV_FILTER,
        "-n",
        NAMESPACE,
        "--name",
        &name,
        "--session",
        &cluster,
        "--pvc",
        &pvc,
        "--set",
        "input=/data/orders.csv",
        "--set",
        "output=/data/out/orders",
        "-l",
        "team=data",
        "--beam-version",
        "2.62.0",
        "--flink-version",
        "1.19",
        "--python-version",
        "3.11",
    ]);
    assert!(run.ok, "{}\n{}\n{}", run.stdout, run.stderr, diagnostics(&cluster));

    // Flink's resource manager starts a TaskManager for the submitted job, from the pod template the webhook
    // completed: the worker pool is in it.
    let task_manager = wait_for("a session TaskManager pod", Duration::from_secs(240), || {
        pods(NAMESPACE, &format!("app={cluster},component=taskmanager"))
            .into_iter()
            .next()
    });
    let containers = container_names(&task_manager, "containers");
    assert!(containers.contains(&"beam-worker-pool".to_owned()), "{containers:?}");

    // The launcher follows the job to its end; its Job completes with it.
    let launcher = wait_for("the launcher Job to end", Duration::from_secs(300), || {
        let job = get("job", NAMESPACE, &name);
        let done = job["status"]["succeeded"].as_i64() == Some(1) || job["status"]["failed"].as_i64() >= Some(1);
        done.then_some(job)
    });
    let launcher_log = kubectl(&["logs", "-n", NAMESPACE, &format!("job/{name}"), "--tail=40"]).stdout;
    assert_eq!(
        launcher["status"]["succeeded"],
        1,
        "launcher:\n{launcher_log}\n{}",
        diagnostics(&cluster)
    );
    assert_filtered_orders(&data.dir.join("out/orders"));

    let status = beam(&["status", &name, "-n", NAMESPACE]);
    assert!(
        status.ok && status.stdout.contains("Succeeded"),
        "{}\n{}",
        status.stdout,
        status.stderr
    );
    let list = beam(&["list", "-n", NAMESPACE, "-o", "json"]);
    assert!(list.ok, "{}", list.stderr);
    let rows: Vec<Value> = serde_json::from_str(&list.stdout).unwrap();
    let row = rows.iter().find(|row| row["name"] == name.as_str());
    assert_eq!(
        row.map(|row| row["phase"].clone()),
        Some(Value::from("Succeeded")),
        "list: {}",
        list.stdout
    );
    let session = rows.iter().find(|row| row["name"] == cluster.as_str());
    assert_eq!(
        session.map(|row| row["phase"].clone()),
        Some(Value::from("Running")),
        "the session cluster stays up: {}",
        list.stdout
    );

    let deleted = beam(&["delete", &name, "-n", NAMESPACE, "--wait"]);
    assert!(deleted.ok, "{}\n{}", deleted.stdout, deleted.stderr);
    let cluster_deleted = beam(&["cluster", "delete", &cluster, "-n", NAMESPACE]);
    assert!(
        cluster_deleted.ok,
        "{}\n{}",
        cluster_deleted.stdout, cluster_deleted.stderr
    );
    wait_for_pods_to_go(&cluster);
}

/// A failing job: a Python step raises on the TaskManager's worker pool. The operator reports the job FAILED;
/// `status` says Failed with its error, `status -w` exits 1, `logs --role harness` shows Python's traceback and
/// `events` shows the Warning.
#[test]
fn a_python_exception_fails_the_job_and_every_view_says_why() {
    require_cluster!();
    let _held = hold_the_node();
    let name = format!("raises-{}", std::process::id());
    let _job = DeleteOnDrop::flink_deployment(&name);
    let run = run_pipeline(RAISES, &name, &[]);
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);

    wait_for_job_state(&name, &["FAILED"], Duration::from_secs(300));
    // The TaskManager that ran the step is released ~30 s after the job ends (Flink's idle timeout): its worker
    // pool's log is read first.
    let harness = beam(&["logs", &name, "-n", NAMESPACE, "--role", "harness"]);
    assert!(
        harness.stdout.contains("Traceback (most recent call last)") && harness.stdout.contains("ZeroDivisionError"),
        "logs --role harness:\n{}\n{}\n{}",
        harness.stdout,
        harness.stderr,
        diagnostics(&name)
    );

    let status = beam(&["status", &name, "-n", NAMESPACE]);
    assert!(
        status.stdout.contains("Failed") && status.stdout.contains("FAILED"),
        "status:\n{}\n{}",
        status.stdout,
        status.stderr
    );
    let deployment = get("flinkdeployment", NAMESPACE, &name);
    eprintln!(
        "the operator's status of a failed job: {}",
        serde_json::to_string_pretty(&deployment["status"]).unwrap()
    );
    if let Some(error) = deployment["status"]["error"].as_str().filter(|error| !error.is_empty()) {
        let first_line = error.lines().next().unwrap_or(error);
        let shown = &first_line[..first_line.len().min(40)];
        assert!(
            status.stdout.contains(shown),
            "status shows the operator's error {shown:?}:\n{}",
            status.stdout
        );
    }
    let follow = beam(&["status", &name, "-n", NAMESPACE, "-w"]);
    assert_eq!(
        follow.code,
        Some(1),
        "status -w of a failed job:\n{}\n{}",
        follow.stdout,
        follow.stderr
    );

    let events = beam(&["events", &name, "-n", NAMESPACE]);
    assert!(
        events.ok && events.stdout.contains("Warning"),
        "events:\n{}\n{}",
        events.stdout,
        events.stderr
    );

    let deleted = beam(&["delete", &name, "-n", NAMESPACE, "--wait"]);
    assert!(deleted.ok, "{}\n{}", deleted.stdout, deleted.stderr);
}

/// A Tenant over beam-flink, deleted when dropped.
struct TenantGuard(&'static str);

impl Drop for TenantGuard {
    fn drop(&mut self) {
        kubectl(&["delete", "tenant", self.0, "--ignore-not-found"]);
    }
}

/// A tenant's budget counts the job it really runs: the next job over budget is refused while it runs;
/// once it is deleted, the same job is admitted.
#[test]
fn a_running_job_fills_the_tenant_budget_until_it_is_deleted() {
    require_cluster!();
    let _held = hold_the_node();
    let _tenant = TenantGuard("e2e-flink-data");
    assert!(apply(&tenant("e2e-flink-data", NAMESPACE, "jobs: 1")).ok);
    let first = format!("slow-{}", std::process::id());
    let next = format!("next-{}", std::process::id());
    let _first = DeleteOnDrop::flink_deployment(&first);
    let _next = DeleteOnDrop::flink_deployment(&next);
    let run = run_pipeline(SLOW, &first, &["--wait"]);
    assert!(run.ok, "{}\n{}\n{}", run.stdout, run.stderr, diagnostics(&first));
    wait_for_job_state(&first, &["RUNNING"], Duration::from_secs(240));

    // The webhook knows the Tenant through its watch; the refusal names it and what it counts.
    let refused = wait_for("the tenant's refusal", Duration::from_secs(30), || {
        let attempt = run_pipeline(SLOW, &next, &["--dry-run=server"]);
        (!attempt.ok && attempt.stderr.contains("tenant e2e-flink-data")).then_some(attempt)
    });
    assert!(
        refused.stderr.contains("would run 2 jobs: it runs 1, the budget is 1"),
        "{}",
        refused.stderr
    );
    assert_eq!(job_state(&first), "RUNNING", "the budget was full while the job ran");

    let deleted = beam(&["delete", &first, "-n", NAMESPACE, "--wait"]);
    assert!(deleted.ok, "{}\n{}", deleted.stdout, deleted.stderr);
    // The webhook's ledger follows the delete through its watch.
    wait_for("room for the next job", Duration::from_secs(30), || {
        run_pipeline(SLOW, &next, &["--dry-run=server"]).ok.then_some(())
    });
    wait_for_pods_to_go(&first);
}

/// Streaming: a streaming pipeline runs until it is deleted. The webhook turned Flink's Prometheus reporter on and
/// named its port; Prometheus scrapes the real JobManager and TaskManager (scripts/e2e-cluster.sh discovers the pods
/// as the chart's PodMonitor selects them), and `kubectl beam status` shows the job's throughput and checkpoint age
/// from it. `kubectl beam delete --wait`: the operator cancels the job, and every pod and ConfigMap goes.
#[test]
fn a_streaming_pipeline_reports_prometheus_metrics_and_delete_cancels_it() {
    require_cluster!();
    let _held = hold_the_node();
    let name = format!("ticks-{}", std::process::id());
    let _job = DeleteOnDrop::flink_deployment(&name);
    // Two slots at parallelism 2: at parallelism 1 Flink chains Beam's Impulse source into the stage that starts the
    // ticks, and there, in some runs, the stage never emitted its first element (every task's numRecordsOut stayed 0
    // for 6 minutes while checkpoints completed; docs/status.md).
    let run = run_pipeline(
        TICKS,
        &name,
        &[
            "--checkpoint-interval",
            "5s",
            "--parallelism",
            "2",
            "--slots",
            "2",
            "--wait",
        ],
    );
    assert!(run.ok, "{}\n{}\n{}", run.stdout, run.stderr, diagnostics(&name));
    wait_for_job_state(&name, &["RUNNING"], Duration::from_secs(240));

    let deployment = get("flinkdeployment", NAMESPACE, &name);
    assert_eq!(
        deployment["spec"]["flinkConfiguration"]["metrics.reporter.prom.port"], "9249",
        "the webhook turned the reporter on"
    );
    // Each different answer is printed (shown when the test fails): a run on the slower instance once waited past
    // 240 s here with nothing to say why.
    let mut last_metrics = Value::Null;
    let report = wait_for(
        "status with throughput and checkpoint age from Prometheus",
        Duration::from_secs(360),
        || {
            let status = beam(&["status", &name, "-n", NAMESPACE, "-o", "json"]);
            let report: Value = serde_json::from_str(&status.stdout).ok()?;
            let metrics = &report["metrics"];
            if *metrics != last_metrics {
                eprintln!("status metrics now: {metrics} ({})", report["phase"]);
                last_metrics = metrics.clone();
            }
            let flowing = metrics["recordsPerSecond"].as_f64()? > 0.0;
            (flowing && metrics["checkpointAgeSeconds"].as_f64().is_some()).then_some(report)
        },
    );
    eprintln!("status: {report}");
    assert_eq!(report["phase"], "Running");
    let age = report["metrics"]["checkpointAgeSeconds"].as_f64().unwrap();
    assert!(age < 60.0, "checkpoints every 5 s, the last {age} s ago");
    let table = beam(&["status", &name, "-n", NAMESPACE]);
    assert!(
        table.stdout.contains("records/s"),
        "the table shows the throughput: {}",
        table.stdout
    );
    // The ticks LogForTesting logged: Python's log records travel over Beam's Fn API logging service into the
    // TaskManager's log (the worker pool's own output has only its start and crashes). Waited for: the first record
    // can reach Prometheus before its log line reaches the TaskManager's log (a CI run read the tail a moment early
    // and found only the tasks' start-up lines).
    let mut last_logs = String::new();
    let found = wait_until(Duration::from_secs(120), || {
        let task_manager = beam(&["logs", &name, "-n", NAMESPACE, "--role", "taskmanager", "--tail", "200"]);
        last_logs = format!("{}\n{}", task_manager.stdout, task_manager.stderr);
        task_manager.stdout.contains("{\"second\": ")
    });
    assert!(found, "logs --role taskmanager after 120 s:\n{last_logs}");

    let deleted = beam(&["delete", &name, "-n", NAMESPACE, "--wait"]);
    assert!(deleted.ok, "{}\n{}", deleted.stdout, deleted.stderr);
    wait_for("the job's pods and ConfigMaps to go", Duration::from_secs(180), || {
        let config_maps = kubectl(&["get", "configmaps", "-n", NAMESPACE, "-o", "name"]).stdout;
        let left: Vec<&str> = config_maps.lines().filter(|line| line.contains(&name)).collect();
        (pods(NAMESPACE, &format!("app={name}")).is_empty() && left.is_empty()).then_some(())
    });
}

/// A scenario's runner object, deleted when dropped, when the scenario fails too: a job left running would keep its
/// room on the node and fail every scenario after it. Dropping waits (bounded, and never panicking: it may run while
/// a failed assertion unwinds) until the object's pods are gone, while the scenario still holds the node.
struct DeleteOnDrop {
    kind: &'static str,
    name: String,
    pods: String,
}

impl DeleteOnDrop {
    fn flink_deployment(name: &str) -> Self {
        Self {
            kind: "flinkdeployment",
            name: name.to_owned(),
            pods: format!("app={name}"),
        }
    }

    fn job(name: &str) -> Self {
        Self {
            kind: "job",
            name: name.to_owned(),
            pods: format!("batch.kubernetes.io/job-name={name}"),
        }
    }
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        kubectl(&[
            "delete",
            self.kind,
            &self.name,
            "-n",
            NAMESPACE,
            "--ignore-not-found",
            "--wait=false",
        ]);
        wait_quietly_for_pods_to_go(NAMESPACE, &self.pods, &format!("{} {}", self.kind, self.name));
    }
}

/// The operator's view of a job after a change: the job RUNNING, the spec reconciled with `parallelism`, the job id.
fn upgraded_job_id(name: &str, parallelism: u32) -> Option<String> {
    let deployment = get("flinkdeployment", NAMESPACE, name);
    let status = &deployment["status"];
    let reconciled: Value =
        serde_json::from_str(status["reconciliationStatus"]["lastReconciledSpec"].as_str()?).ok()?;
    // The operator stores {"spec": ..., "resource_metadata": ...} there.
    let done = status["reconciliationStatus"]["state"] == "DEPLOYED"
        && status["jobStatus"]["state"] == "RUNNING"
        && reconciled["spec"]["job"]["parallelism"] == parallelism;
    done.then(|| status["jobStatus"]["jobId"].as_str().unwrap_or("").to_owned())
}

/// The checkpoint the running job `job_id` of `name` restored from, as Flink's REST API reports it (through the API
/// server's proxy to the JobManager's rest Service): its id and path, or None before the job has restored one.
fn restored_checkpoint(name: &str, job_id: &str) -> Option<(u64, String)> {
    let path = format!("/api/v1/namespaces/{NAMESPACE}/services/{name}-rest:8081/proxy/jobs/{job_id}/checkpoints");
    let run = kubectl(&["get", "--raw", &path]);
    let statistics: Value = serde_json::from_str(&run.stdout).ok()?;
    let restored = &statistics["latest"]["restored"];
    Some((restored["id"].as_u64()?, restored["external_path"].as_str()?.to_owned()))
}

/// The highest `chk-N` the job wrote to `dir`, if any.
fn newest_checkpoint(dir: &Path) -> Option<u64> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.strip_prefix("chk-")?.parse().ok())
        .max()
}

/// Upgrades: the same streaming pipeline run again with another parallelism: the operator upgrades the job.
/// Stateless (1 -> 2) starts a new job. Last-state (2 -> 4, two slots per TaskManager) resumes the same job from the
/// checkpoint Flink's high-availability metadata points to, both on a volume of the node. A last-state change across
/// parallelism 1 is refused by the webhook before it reaches the operator: Beam's Impulse source has no operator
/// uid, and its generated id differs between a graph where it is chained (parallelism 1) and one where it is not,
/// so Flink would refuse the checkpoint ("There is no operator for the state ...").
#[test]
fn running_again_with_another_parallelism_upgrades_stateless_and_last_state() {
    require_cluster!();
    let _held = hold_the_node();
    // Both end on two TaskManagers, each with the worker pool's default request (500m), beside the JobManager, the
    // operator and Beamstack: a tenth of a core per TaskManager is what still fits the 2-core node (they may burst:
    // the test operator's limit factor).
    for (mode, from, to, slots) in [("stateless", "1", "2", "1"), ("last-state", "2", "4", "2")] {
        let name = format!("upgrade-{mode}-{}", std::process::id());
        let data = DataVolume::new(NAMESPACE, &name);
        let _job = DeleteOnDrop::flink_deployment(&name);
        let pvc = data.claim();
        let sizes = [
            "--job-manager-cpu",
            "0.25",
            "--job-manager-memory",
            "1024m",
            "--task-manager-cpu",
            "0.1",
            "--task-manager-memory",
            "1536m",
        ];
        let run = |parallelism: &str, more: &[&str]| {
            let mut extra = vec![
                "--pvc",
                &pvc,
                "--upgrade-mode",
                mode,
                "--checkpoint-interval",
                "5s",
                "--checkpoint-dir",
                "file:///data/checkpoints",
                "--parallelism",
                parallelism,
                "--slots",
                slots,
            ];
            extra.extend_from_slice(more);
            run_pipeline_sized(TICKS, &name, &sizes, &extra)
        };
        let first = run(from, &[]);
        assert!(first.ok, "{mode}: {}\n{}", first.stdout, first.stderr);
        let before = wait_for(&format!("{mode}: the job running"), Duration::from_secs(300), || {
            upgraded_job_id(&name, from.parse().unwrap())
        });
        // A completed checkpoint on the volume before the upgrade, for last-state to resume from.
        let checkpoints = data.dir.join("checkpoints").join(&before);
        let checkpointed = wait_for(
            &format!("{mode}: a checkpoint in {}", checkpoints.display()),
            Duration::from_secs(120),
            || newest_checkpoint(&checkpoints),
        );

        if mode == "last-state" {
            // Across parallelism 1 the webhook refuses the change, naming the field and the ways out.
            let across = run("1", &["--dry-run=server"]);
            assert!(!across.ok, "last-state {from} -> 1 must be refused: {}", across.stdout);
            for words in [
                "spec.job.parallelism",
                "from parallelism 2 to 1",
                "allowNonRestoredState",
            ] {
                assert!(across.stderr.contains(words), "{words:?} not in {}", across.stderr);
            }
        }
        let second = run(to, &[]);
        assert!(second.ok, "{mode}: {}\n{}", second.stdout, second.stderr);
        let after = wait_for(
            &format!("{mode}: the upgraded job running"),
            Duration::from_secs(300),
            || upgraded_job_id(&name, to.parse().unwrap()),
        );
        eprintln!("{mode}: job {before} became {after}");
        if mode == "stateless" {
            assert_ne!(before, after, "a stateless upgrade starts a new job");
        } else {
            assert_eq!(before, after, "a last-state upgrade resumes the same job");
            assert!(data.dir.join("ha").is_dir(), "Flink's HA metadata on the volume");
            let (restored, path) = wait_for(
                "last-state: Flink's REST API names the checkpoint it restored",
                Duration::from_secs(120),
                || restored_checkpoint(&name, &after),
            );
            eprintln!("last-state: restored checkpoint {restored} from {path}");
            assert!(
                restored >= checkpointed && path.contains(&format!("/data/checkpoints/{before}/chk-{restored}")),
                "restored chk-{restored} at {path}; chk-{checkpointed} was on the volume before the upgrade"
            );
        }
        wait_for(&format!("{mode}: two TaskManagers"), Duration::from_secs(180), || {
            (pods(NAMESPACE, &format!("app={name},component=taskmanager")).len() == 2).then_some(())
        });
        let status = beam(&["status", &name, "-n", NAMESPACE, "-o", "json"]);
        let report: Value = serde_json::from_str(&status.stdout).unwrap_or_default();
        assert_eq!(
            report["parallelism"],
            to.parse::<u32>().unwrap(),
            "{mode}: {}",
            status.stdout
        );

        delete_and_wait_for_pods_to_go(&name);
    }
}
