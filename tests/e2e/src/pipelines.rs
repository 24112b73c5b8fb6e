//! What the scenarios that run real pipelines on the operators share: a volume on this machine for a pipeline's
//! files, waiting, the pods of a job, and the records a pipeline wrote.

use crate::{apply, kubectl, root, webhook_shared};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One pipeline at a time: the node has room for one JobManager and one TaskManager, or one Spark driver and one
/// executor, beside the operators and Beamstack.
static NODE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What a scenario holds while it runs: the node (one pipeline at a time) and the webhook (shared with the other
/// end-to-end scenarios, which may not restart it meanwhile).
pub struct HeldNode {
    _node: std::sync::MutexGuard<'static, ()>,
    _webhook: std::sync::RwLockReadGuard<'static, ()>,
}

pub fn hold_the_node() -> HeldNode {
    HeldNode {
        _node: NODE.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
        _webhook: webhook_shared(),
    }
}

/// Until no pod in `namespace` matches `selector` (bounded, and never panicking: it runs while a failed scenario
/// unwinds too); says so when some are still there.
pub fn wait_quietly_for_pods_to_go(namespace: &str, selector: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        let listed = kubectl(&["get", "pods", "-n", namespace, "-l", selector, "-o", "name"]);
        if listed.ok && listed.stdout.trim().is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    eprintln!("{what}: pods still there after 180 s");
}

/// A PersistentVolume on a folder of this machine (.e2e/pipeline-data/NAME) and its claim NAME in `namespace`,
/// removed when dropped: mounted with `kubectl beam run --pvc NAME:/data` where a pipeline's code runs, so the test
/// writes its inputs and reads its outputs here.
pub struct DataVolume {
    pub name: String,
    pub namespace: String,
    pub dir: PathBuf,
}

impl DataVolume {
    pub fn new(namespace: &str, name: &str) -> Self {
        let dir = root().join(".e2e/pipeline-data").join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // The runners' containers run as their own users (Flink 9999, Spark 185), the worker pool as root: all of
        // them write here.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let manifest = format!(
            "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: {name}}}\nspec:\n  capacity: {{storage: 1Gi}}\n  \
             accessModes: [ReadWriteMany]\n  persistentVolumeReclaimPolicy: Retain\n  storageClassName: \"\"\n  \
             hostPath: {{path: {dir}, type: Directory}}\n  claimRef: {{namespace: {namespace}, name: {name}}}\n---\n\
             apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  \
             accessModes: [ReadWriteMany]\n  storageClassName: \"\"\n  volumeName: {name}\n  \
             resources: {{requests: {{storage: 1Gi}}}}\n",
            dir = dir.display()
        );
        let run = apply(&manifest);
        assert!(run.ok, "{}", run.stderr);
        Self {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            dir,
        }
    }

    /// The `--pvc` argument that mounts it at /data.
    pub fn claim(&self) -> String {
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
            &self.namespace,
            "--wait=false",
            "--ignore-not-found",
        ]);
        kubectl(&["delete", "pv", &self.name, "--wait=false", "--ignore-not-found"]);
    }
}

/// Until `check` gives a value (asked every second), or fails naming `what`.
pub fn wait_for<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The pods in `namespace` that `selector` (a label selector) selects.
pub fn pods(namespace: &str, selector: &str) -> Vec<Value> {
    let run = kubectl(&["get", "pods", "-n", namespace, "-l", selector, "-o", "json"]);
    assert!(run.ok, "{}", run.stderr);
    let list: Value = serde_json::from_str(&run.stdout).unwrap();
    list["items"].as_array().cloned().unwrap_or_default()
}

/// The names of a pod's `containers` or `initContainers`.
pub fn container_names(pod: &Value, field: &str) -> Vec<String> {
    pod["spec"][field]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|container| container["name"].as_str().map(str::to_owned))
        .collect()
}

/// Every line of every shard a Beam write produced for an output prefix, sorted.
pub fn output_lines(prefix: &Path) -> Vec<String> {
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

/// The orders tests/e2e/fixtures/pipelines/csv_filter.yaml reads (the Spark scenarios run it too).
pub const ORDERS: &str = "id,customer,amount\n1,alice,10\n2,bob,25\n3,carol,30\n4,dave,20\n5,erin,99\n";

/// Orders over 20, customer upper-cased, total doubled: what csv_filter.yaml's Python steps make of ORDERS.
pub fn assert_filtered_orders(prefix: &Path) {
    let lines = output_lines(prefix);
    let mut records: Vec<Value> = lines.iter().map(|line| serde_json::from_str(line).unwrap()).collect();
    records.sort_by_key(|record| record["id"].as_i64());
    let expected: Vec<Value> = vec![
        serde_json::json!({"id": 2, "customer": "BOB", "total": 50}),
        serde_json::json!({"id": 3, "customer": "CAROL", "total": 60}),
        serde_json::json!({"id": 5, "customer": "ERIN", "total": 198}),
    ];
    assert_eq!(records, expected, "{lines:?}");
}
