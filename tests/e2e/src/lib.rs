//! Helpers for the end-to-end scenarios: the real kubectl and the real plugin against the cluster that
//! `scripts/e2e-cluster.sh up` started (its kubeconfig is `.e2e/kubeconfig`).
//!
//! Without that cluster the scenarios skip, saying so, unless BEAMSTACK_E2E=1 (as `scripts/test.sh` sets), where a
//! missing cluster is a failure.

pub mod pipelines;
pub mod postgres;

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn kubeconfig() -> PathBuf {
    root().join(".e2e/kubeconfig")
}

/// Is the cluster up? Panics when it must be (BEAMSTACK_E2E=1) and is not.
pub fn cluster_up() -> bool {
    if kubeconfig().exists() {
        return true;
    }
    assert!(
        std::env::var_os("BEAMSTACK_E2E").is_none(),
        "BEAMSTACK_E2E is set but no cluster runs: bash scripts/e2e-cluster.sh up"
    );
    eprintln!("skipped: no end-to-end cluster (bash scripts/e2e-tools.sh && bash scripts/e2e-cluster.sh up)");
    false
}

/// Skips the scenario when no cluster runs (see `cluster_up`).
#[macro_export]
macro_rules! require_cluster {
    () => {
        if !$crate::cluster_up() {
            return;
        }
    };
}

/// Scenarios share one webhook: most only need it up (read), the ones that stop it take it whole (write).
static WEBHOOK: RwLock<()> = RwLock::new(());

pub fn webhook_shared() -> RwLockReadGuard<'static, ()> {
    WEBHOOK.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn webhook_exclusive() -> RwLockWriteGuard<'static, ()> {
    WEBHOOK.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The result of a command, as text.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            ok: output.status.success(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

fn command(program: &Path) -> Command {
    let mut command = Command::new(program);
    command.env("KUBECONFIG", kubeconfig()).current_dir(root());
    // The plugin's user config must not come from the machine running the tests.
    command.env("BEAMSTACK_CONFIG", root().join(".e2e/no-user-config.yaml"));
    command
}

pub fn kubectl_path() -> PathBuf {
    root().join(".tools/bin/kubectl")
}

pub fn kubectl(args: &[&str]) -> Run {
    command(&kubectl_path()).args(args).output().unwrap().into()
}

/// kubectl with a document on stdin.
pub fn kubectl_stdin(args: &[&str], input: &str) -> Run {
    let mut child = command(&kubectl_path())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap().into()
}

pub fn apply(input: &str) -> Run {
    kubectl_stdin(&["apply", "-f", "-"], input)
}

pub fn plugin_path() -> PathBuf {
    root().join("target/debug/kubectl-beam")
}

pub fn beam(args: &[&str]) -> Run {
    command(&plugin_path()).args(args).output().unwrap().into()
}

/// A running plugin command (for `status -w`).
pub fn beam_spawn(args: &[&str]) -> std::process::Child {
    command(&plugin_path())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// An object as the API server stores it.
pub fn get(kind: &str, namespace: &str, name: &str) -> Value {
    let run = kubectl(&["get", kind, name, "-n", namespace, "-o", "json"]);
    assert!(run.ok, "kubectl get {kind} {name}: {}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap()
}

/// A fresh namespace for one scenario, with labels. Its name carries the test process's id: namespaces of an earlier
/// run against the same cluster may still be terminating.
pub fn namespace(prefix: &str, labels: &[(&str, &str)]) -> String {
    let name = format!("{prefix}-{}", std::process::id());
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}: {v:?}")).collect();
    let run = apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels: {{{}}}\n",
        labels.join(", ")
    ));
    assert!(run.ok, "namespace {name}: {}", run.stderr);
    name
}

/// A Tenant owning one namespace, with a budget given as YAML flow fields (such as `cpu: "9"`).
pub fn tenant(name: &str, namespace: &str, budget: &str) -> String {
    format!(
        "apiVersion: beamstack.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: {name}\nspec:\n  namespaces: [{namespace}]\n  budget: {{{budget}}}\n"
    )
}

/// A file of the repository, as text.
pub fn fixture(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap()
}

/// A fixture moved to another namespace (fixtures name team-a).
pub fn in_namespace(yaml: &str, namespace: &str) -> String {
    yaml.replace("namespace: team-a", &format!("namespace: {namespace}"))
}

/// Runs a script of the repository (the cluster harness).
pub fn script(args: &[&str]) -> Run {
    Command::new("bash")
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
        .into()
}

/// A base64 CA certificate that did not sign the webhook's.
pub fn other_ca_base64() -> String {
    let dir = root().join(".e2e/other-ca");
    let run = Command::new(root().join("target/debug/beam-webhook"))
        .args(["certs", "--out", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(run.status.success());
    let pem = std::fs::read(dir.join("ca.crt")).unwrap();
    let run = Command::new("base64")
        .args(["-w0", dir.join("ca.crt").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!pem.is_empty());
    String::from_utf8(run.stdout).unwrap()
}

/// Patches the caBundle of every webhook of both configurations.
pub fn set_ca_bundle(bundle_base64: &str) {
    for (kind, webhooks) in [
        ("mutatingwebhookconfiguration", 1),
        ("validatingwebhookconfiguration", 2),
    ] {
        let operations: Vec<String> = (0..webhooks)
            .map(|index| {
                format!(
                    "{{\"op\": \"replace\", \"path\": \"/webhooks/{index}/clientConfig/caBundle\", \"value\": \"{bundle_base64}\"}}"
                )
            })
            .collect();
        let run = kubectl(&[
            "patch",
            kind,
            "beamstack",
            "--type=json",
            "-p",
            &format!("[{}]", operations.join(",")),
        ]);
        assert!(run.ok, "{}", run.stderr);
    }
}

pub fn base64_decode(text: &str) -> Vec<u8> {
    let mut child = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    child.wait_with_output().unwrap().stdout
}

pub fn base64_of(bytes: &[u8]) -> String {
    let mut child = Command::new("base64")
        .arg("-w0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    Write::write_all(&mut child.stdin.take().unwrap(), bytes).unwrap();
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
}

/// Server-side dry runs of one object, back to back on a thread until `finish`: each goes through both webhooks and
/// stores nothing. For scenarios that change certificates or pods while the API server keeps calling.
pub struct AdmissionLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(usize, Vec<Failure>)>,
}

/// An admission that failed: when it was answered, and what kubectl printed.
#[derive(Debug)]
pub struct Failure {
    pub at: std::time::Instant,
    pub stderr: String,
}

impl AdmissionLoad {
    pub fn start(object: &str) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let (stop, object) = (stop.clone(), object.to_string());
            std::thread::spawn(move || {
                let (mut sent, mut failures) = (0, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let run = kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &object);
                    sent += 1;
                    if !run.ok {
                        failures.push(Failure {
                            at: std::time::Instant::now(),
                            stderr: run.stderr,
                        });
                    }
                }
                (sent, failures)
            })
        };
        AdmissionLoad { stop, thread }
    }

    /// Stops the load; returns how many admissions were sent and those that failed.
    pub fn finish(self) -> (usize, Vec<Failure>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }

    /// Stops the load; asserts at least `minimum` admissions were sent and none failed. Returns how many were sent.
    pub fn finish_without_failures(self, minimum: usize) -> usize {
        let (sent, failures) = self.finish();
        assert!(sent >= minimum, "only {sent} admissions were sent");
        assert!(
            failures.is_empty(),
            "{} of {sent} admissions failed: {:?}",
            failures.len(),
            failures.first()
        );
        sent
    }
}

/// The namespace the harness installs Beamstack into (scripts/e2e-cluster.sh).
pub const RELEASE_NAMESPACE: &str = "beamstack";
/// The name the API server calls the webhook by (the chart's Service), which its serving certificate carries.
pub const WEBHOOK_HOST: &str = "beam-webhook.beamstack.svc";

/// Every pod of the webhook's Deployment (terminating ones included), as the API server stores them.
pub fn webhook_pods() -> Vec<Value> {
    let run = kubectl(&[
        "get",
        "pods",
        "-n",
        RELEASE_NAMESPACE,
        "-l",
        "app.kubernetes.io/name=beamstack-webhook",
        "-o",
        "json",
    ]);
    assert!(run.ok, "{}", run.stderr);
    let pods: Value = serde_json::from_str(&run.stdout).unwrap();
    pods["items"].as_array().cloned().unwrap_or_default()
}

/// The webhook pods that are Ready, as (name, pod IP).
pub fn ready_webhook_pods() -> Vec<(String, String)> {
    webhook_pods()
        .iter()
        .filter(|pod| pod["metadata"]["deletionTimestamp"].is_null())
        .filter(|pod| {
            pod["status"]["conditions"]
                .as_array()
                .is_some_and(|conditions| conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        })
        .map(|pod| {
            (
                pod["metadata"]["name"].as_str().unwrap().to_owned(),
                pod["status"]["podIP"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Does the webhook pod at `ip` serve a certificate for the Service's name that `ca_pem` trusts? The TLS handshake
/// the API server makes, from this machine to the pod (the node's bridge routes pod addresses).
pub fn pod_serves_trusted(ca_pem: &[u8], ip: &str) -> bool {
    let file = root().join(format!(".e2e/trust-{}.pem", std::process::id()));
    std::fs::write(&file, ca_pem).unwrap();
    Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "--max-time",
            "5",
            "--cacert",
            file.to_str().unwrap(),
        ])
        .args(["--resolve", &format!("{WEBHOOK_HOST}:9443:{ip}")])
        .arg(format!("https://{WEBHOOK_HOST}:9443/"))
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// The sum over the Ready webhook pods of one sample of their /metrics (admin port 8080), matched by its line's
/// start (name and labels).
pub fn webhook_metric_sum(series: &str) -> f64 {
    ready_webhook_pods()
        .iter()
        .map(|(name, ip)| {
            let served = Command::new("curl")
                .args(["-fsS", "--max-time", "5", &format!("http://{ip}:8080/metrics")])
                .output()
                .unwrap();
            assert!(served.status.success(), "metrics of {name}");
            String::from_utf8_lossy(&served.stdout)
                .lines()
                .find(|line| line.starts_with(series))
                .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .unwrap_or(0.0)
        })
        .sum()
}

/// Replaces the data of the provided-mode Secret the webhook pods mount (the kubelet then updates their volume).
pub fn replace_webhook_secret(dir: &Path) {
    let file = |name: &str| format!("--from-file={}", dir.join(name).display());
    let rendered = kubectl(&[
        "create",
        "secret",
        "generic",
        "beam-webhook-tls",
        "-n",
        RELEASE_NAMESPACE,
        "--type",
        "kubernetes.io/tls",
        &file("tls.crt"),
        &file("tls.key"),
        &file("ca.crt"),
        "--dry-run=client",
        "-o",
        "yaml",
    ]);
    assert!(rendered.ok, "{}", rendered.stderr);
    let replaced = kubectl_stdin(&["replace", "-f", "-"], &rendered.stdout);
    assert!(replaced.ok, "{}", replaced.stderr);
}

/// New certificates for the webhook's Service (`beam-webhook certs`), in `dir`.
pub fn new_webhook_certificates(dir: &Path) {
    let made = Command::new(root().join("target/debug/beam-webhook"))
        .args(["certs", "--out", dir.to_str().unwrap()])
        .args(["--service", "beam-webhook", "--namespace", RELEASE_NAMESPACE])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
}

/// Waits until every Ready webhook pod (at least `replicas`) serves a certificate `ca_pem` trusts.
pub fn wait_until_pods_serve(ca_pem: &[u8], replicas: usize, within: std::time::Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let pods = ready_webhook_pods();
        if pods.len() >= replicas && pods.iter().all(|(_, ip)| pod_serves_trusted(ca_pem, ip)) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the webhook pods {pods:?} did not serve the new certificate within {within:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// `helm` against the harness's cluster.
pub fn helm(args: &[&str]) -> Run {
    command(&root().join(".tools/bin/helm"))
        .args(args)
        .output()
        .unwrap()
        .into()
}

/// The CA of the provided-mode Secret the harness made (base64, as the API returns it); the CA-rotation scenario rotates it.
pub fn provided_ca_base64() -> String {
    let ca = kubectl(&[
        "get",
        "secret",
        "beam-webhook-tls",
        "-n",
        RELEASE_NAMESPACE,
        "-o",
        "jsonpath={.data.ca\\.crt}",
    ]);
    assert!(ca.ok && !ca.stdout.is_empty(), "{}", ca.stderr);
    ca.stdout
}

/// Puts the harness's installation back as scripts/e2e-cluster.sh made it (provided mode, the shared Secret), with
/// the CA the Secret holds now.
pub fn restore_provided_installation() {
    let ca = provided_ca_base64();
    let upgraded = helm(&[
        "upgrade",
        "beamstack",
        "charts/beamstack",
        "-n",
        RELEASE_NAMESPACE,
        "--reuse-values",
        "--set",
        "certificates.mode=provided",
        "--set",
        "certificates.secretName=beam-webhook-tls",
        "--set",
        &format!("certificates.caBundle={ca}"),
        "--wait",
        "--timeout",
        "180s",
    ]);
    assert!(upgraded.ok, "restoring the harness's installation: {}", upgraded.stderr);
    // The caBundle the chart sets; a test may have patched it by hand.
    set_ca_bundle(&ca);
}
