//! `kubectl beam run` for real on Flink (issue 12): the Flink Kubernetes Operator 1.7.0 runs in the cluster as its
//! chart installs it (tests/node/manifests/flink-kubernetes-operator, watching the namespace beam-flink), and every
//! pod of a pipeline runs on the node from the images kubectl beam names by default - Flink's `flink:1.19`, Beam's
//! `apache/beam_python3.11_sdk:2.62.0` and `apache/beam_flink1.19_job_server:2.62.0` - here the stand-ins
//! scripts/e2e-images.sh builds under those names (tests/node/images/*/Dockerfile say what each stands for).
//!
//! Beam 2.62.0 with Flink 1.19: the newest pair whose Flink runner resolves from the Maven mirror CI reaches.
//! Inputs and outputs live on a PersistentVolume backed by a folder of this machine (.e2e/flink-data), mounted with
//! `--pvc` where the pipeline's code runs; the tests compare what the pipeline wrote there record by record.

use e2e::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const NAMESPACE: &str = "beam-flink";
const CSV_FILTER: &str = "tests/e2e/fixtures/flink/csv_filter.yaml";
const ORDERS: &str = "id,customer,amount\n1,alice,10\n2,bob,25\n3,carol,30\n4,dave,20\n5,erin,99\n";

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

/// The versions the operator scenarios run (see the module comment).
const VERSIONS: &[&str] = &[
    "--beam-version",
    "2.62.0",
    "--flink-version",
    "1.19",
    "--python-version",
    "3.11",
];

/// One pipeline at a time: the node has room for one JobManager and one TaskManager.
static NODE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A PersistentVolume on a folder of this machine and its claim in beam-flink, removed when dropped.
struct DataVolume {
    name: String,
    dir: PathBuf,
}

impl DataVolume {
    fn new(name: &str) -> Self {
        let dir = root().join(".e2e/flink-data").join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let manifest = format!(
            "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: {name}}}\nspec:\n  capacity: {{storage: 1Gi}}\n  \
             accessModes: [ReadWriteMany]\n  persistentVolumeReclaimPolicy: Retain\n  storageClassName: \"\"\n  \
             hostPath: {{path: {dir}, type: Directory}}\n  claimRef: {{namespace: {NAMESPACE}, name: {name}}}\n---\n\
             apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}, namespace: {NAMESPACE}}}\nspec:\n  \
             accessModes: [ReadWriteMany]\n  storageClassName: \"\"\n  volumeName: {name}\n  \
             resources: {{requests: {{storage: 1Gi}}}}\n",
            dir = dir.display()
        );
        let run = apply(&manifest);
        assert!(run.ok, "{}", run.stderr);
        Self {
            name: name.to_owned(),
            dir,
        }
    }

    fn claim(&self) -> String {
        format!("{}:/data", self.name)
    }
}

impl Drop for DataVolume {
    fn drop(&mut self) {
        kubectl(&[
            "delete",
            "pvc",
            &self.name,
            "-n",
            NAMESPACE,
            "--wait=false",
            "--ignore-not-found",
        ]);
        kubectl(&["delete", "pv", &self.name, "--wait=false", "--ignore-not-found"]);
    }
}

fn wait_for<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn pods(selector: &str) -> Vec<Value> {
    let run = kubectl(&["get", "pods", "-n", NAMESPACE, "-l", selector, "-o", "json"]);
    assert!(run.ok, "{}", run.stderr);
    let list: Value = serde_json::from_str(&run.stdout).unwrap();
    list["items"].as_array().cloned().unwrap_or_default()
}

fn container_names(pod: &Value, field: &str) -> Vec<String> {
    pod["spec"][field]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|container| container["name"].as_str().map(str::to_owned))
        .collect()
}

/// Every line of every shard a Beam write produced for an output prefix, sorted.
fn output_lines(prefix: &Path) -> Vec<String> {
    let dir = prefix.parent().unwrap();
    let stem = prefix.file_name().unwrap().to_str().unwrap();
    let mut lines: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| entry.file_name().to_string_lossy().starts_with(stem))
                .flat_map(|entry| {
                    std::fs::read_to_string(entry.path())
                        .unwrap_or_default()
                        .lines()
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .unwrap_or_default();
    lines.sort();
    lines
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

#[test]
fn application_mode_batch_pipeline_runs_on_the_operator_with_the_injected_worker_pool() {
    require_cluster!();
    let _node = NODE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let _webhook = webhook_shared();
    let name = format!("orders-{}", std::process::id());
    let data = DataVolume::new(&name);
    std::fs::write(data.dir.join("orders.csv"), ORDERS).unwrap();

    let pvc = data.claim();
    let mut args = vec![
        "run",
        CSV_FILTER,
        "-n",
        NAMESPACE,
        "--name",
        &name,
        "--pvc",
        &pvc,
        "--set",
        "input=/data/orders.csv",
        "--set",
        "output=/data/out/orders",
        // The shipped required-labels policy wants a team on every runner object.
        "-l",
        "team=data",
        "--wait",
    ];
    args.extend_from_slice(VERSIONS);
    args.extend_from_slice(SMALL);
    let started = Instant::now();
    let run = beam(&args);
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
    let job_manager = pods(&format!("app={name},component=jobmanager"));
    assert_eq!(job_manager.len(), 1, "{}", diagnostics(&name));
    assert_eq!(
        container_names(&job_manager[0], "initContainers"),
        ["beam-job-server", "beam-pipeline-jar"]
    );
    // Flink made the TaskManagers; each has the worker pool the webhook injected.
    let task_manager = wait_for("a TaskManager pod", Duration::from_secs(120), || {
        pods(&format!("app={name},component=taskmanager")).into_iter().next()
    });
    let containers = container_names(&task_manager, "containers");
    assert!(containers.contains(&"beam-worker-pool".to_owned()), "{containers:?}");

    // The job finishes; the operator's own status says so, and kubectl beam reads it as Succeeded.
    let state = wait_for("the job to finish", Duration::from_secs(300), || {
        let deployment = get("flinkdeployment", NAMESPACE, &name);
        let state = deployment["status"]["jobStatus"]["state"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        matches!(state.as_str(), "FINISHED" | "FAILED" | "CANCELED").then_some(state)
    });
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

    // Orders over 20, customer upper-cased, total doubled: what the Python steps computed in the worker pool.
    let lines = output_lines(&data.dir.join("out/orders"));
    let mut records: Vec<Value> = lines.iter().map(|line| serde_json::from_str(line).unwrap()).collect();
    records.sort_by_key(|record| record["id"].as_i64());
    let expected: Vec<Value> = vec![
        serde_json::json!({"id": 2, "customer": "BOB", "total": 50}),
        serde_json::json!({"id": 3, "customer": "CAROL", "total": 60}),
        serde_json::json!({"id": 5, "customer": "ERIN", "total": 198}),
    ];
    assert_eq!(records, expected, "{lines:?}");

    let deleted = beam(&["delete", &name, "-n", NAMESPACE, "--wait"]);
    assert!(deleted.ok, "{}\n{}", deleted.stdout, deleted.stderr);
    wait_for("the pipeline's pods to go", Duration::from_secs(180), || {
        pods(&format!("app={name}")).is_empty().then_some(())
    });
}
