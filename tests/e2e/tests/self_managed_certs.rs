//! The chart's selfManaged certificate mode against the real API server: the chart rendered in that mode is
//! installed (RBAC, webhook configurations without a caBundle), two beam-webhook replicas run with the flags the
//! chart's Deployment gives them and the chart's ServiceAccount's rights (impersonated: no pod runs here, so the
//! processes run on loopback), and they create the CA and serving certificate, set the caBundles, renew the
//! serving certificate and rotate the CA while the API server keeps sending admissions, and repair a caBundle reset
//! by hand. Lifetimes are seconds instead of days so that renewals happen within the test.

use e2e::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FLINK_PIPELINE: &str = "policies/tests/resources/flink-pipeline.yaml";
const SECRET: &str = "beam-webhook-tls";

/// Puts the shared harness back however the test ends: the harness's webhook configurations and caBundle, and its
/// webhook process.
struct RestoreHarness {
    replicas: Vec<Child>,
}

impl Drop for RestoreHarness {
    fn drop(&mut self) {
        for replica in &mut self.replicas {
            let _ = replica.kill();
            let _ = replica.wait();
        }
        let _ = kubectl(&[
            "delete",
            "mutatingwebhookconfiguration,validatingwebhookconfiguration",
            "beamstack",
            "--ignore-not-found",
        ]);
        let reapplied = kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            root().join(".e2e/chart.yaml").to_str().unwrap(),
        ]);
        assert!(reapplied.ok, "restoring the harness's chart: {}", reapplied.stderr);
        // Scenario 9 may have rotated the harness's CA since the chart was rendered.
        let ca = std::fs::read(root().join(".e2e/webhook-certs/ca.crt")).unwrap();
        set_ca_bundle(&base64_of(&ca));
        let started = script(&["scripts/e2e-cluster.sh", "webhook-start"]);
        assert!(started.ok, "restarting the harness's webhook: {}", started.stderr);
    }
}

/// A kubeconfig that acts as the chart's ServiceAccount, so the replicas have the chart's RBAC and nothing more.
fn service_account_kubeconfig(namespace: &str) -> std::path::PathBuf {
    let admin = std::fs::read_to_string(kubeconfig()).unwrap();
    let token_line = admin
        .lines()
        .find(|line| line.trim_start().starts_with("token:"))
        .unwrap();
    let indent = &token_line[..token_line.len() - token_line.trim_start().len()];
    let impersonating = admin.replace(
        token_line,
        &format!("{token_line}\n{indent}as: system:serviceaccount:{namespace}:beam-webhook"),
    );
    let path = root().join(format!(".e2e/kubeconfig-{namespace}"));
    std::fs::write(&path, impersonating).unwrap();
    path
}

/// A replica started with the flags of the chart's Deployment in selfManaged mode, lifetimes in seconds.
fn start_replica(release: &str, kubeconfig: &std::path::Path, index: u16) -> Child {
    let dir = root().join(format!(".e2e/self-managed-{index}"));
    let log = std::fs::File::create(root().join(format!(".e2e/self-managed-{index}.log"))).unwrap();
    Command::new(root().join("target/debug/beam-webhook"))
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{}", 29443 + index)])
        .args(["--admin-listen", &format!("127.0.0.1:{}", 29080 + 2 * index)])
        .args(["--tls-cert", dir.join("tls.crt").to_str().unwrap()])
        .args(["--tls-key", dir.join("tls.key").to_str().unwrap()])
        .args(["--tls-reload-interval", "1s"])
        .args(["--policies", root().join(".e2e/policies").to_str().unwrap()])
        .arg("--self-managed-certs")
        .args(["--cert-secret", &format!("{release}/{SECRET}")])
        .args(["--webhook-configuration", "beamstack", "--cert-service", "beam-webhook"])
        .args(["--cert-name", "127.0.0.1", "--cert-name", "localhost"])
        // Serving certificates live 20 s and are renewed with 12 s left (every ~8 s); a CA lives 50 s and is
        // replaced with 32 s left (20 + 12), so within the test it is rotated at least once.
        .args([
            "--cert-validity",
            "20s",
            "--cert-renew-before",
            "12s",
            "--ca-validity",
            "50s",
        ])
        .args(["--cert-check-interval", "1s", "--log-format", "json"])
        .env("KUBECONFIG", kubeconfig)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn wait_ready(admin_port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = Command::new("curl")
            .args(["-fsS", &format!("http://127.0.0.1:{admin_port}/readyz")])
            .output()
            .unwrap();
        if ready.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replica on admin port {admin_port} never got ready"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The Secret's data (base64 values, as the API returns them).
fn secret_data(namespace: &str) -> Option<Value> {
    let run = kubectl(&["get", "secret", SECRET, "-n", namespace, "-o", "json"]);
    run.ok.then(|| serde_json::from_str::<Value>(&run.stdout).unwrap())
}

/// Every caBundle of both configurations (base64, as the API returns them).
fn ca_bundles() -> Vec<Option<String>> {
    let mut bundles = Vec::new();
    for kind in ["mutatingwebhookconfiguration", "validatingwebhookconfiguration"] {
        let configuration = get(kind, "", "beamstack");
        for webhook in configuration["webhooks"].as_array().unwrap() {
            bundles.push(webhook["clientConfig"]["caBundle"].as_str().map(str::to_string));
        }
    }
    bundles
}

/// Does the replica on this port serve a certificate the bundle trusts?
fn trusted_by(bundle_base64: &str, port: u16) -> bool {
    let file = root().join(".e2e/self-managed-bundle.pem");
    let decoded = Command::new("base64")
        .args(["-d"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let mut decoded = decoded.unwrap();
    std::io::Write::write_all(&mut decoded.stdin.take().unwrap(), bundle_base64.as_bytes()).unwrap();
    std::fs::write(&file, decoded.wait_with_output().unwrap().stdout).unwrap();
    Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "--cacert", file.to_str().unwrap()])
        .arg(format!("https://127.0.0.1:{port}/"))
        .status()
        .unwrap()
        .success()
}

#[test]
fn self_managed_certificates_are_made_trusted_renewed_and_repaired_under_load() {
    require_cluster!();
    let _webhook = webhook_exclusive();
    // The release namespace is excluded by the chart's namespaceSelector, so the load goes to another one.
    let release = namespace("e2e-sm-release", &[]);
    let workloads = namespace("e2e-sm", &[("team", "a")]);

    // The chart in selfManaged mode, installed as `helm install -n <release>` would: the webhook configurations are
    // created without a caBundle, which only the webhook can fill in.
    let rendered = Command::new(root().join(".tools/bin/helm"))
        .args([
            "template",
            "beamstack",
            "charts/beamstack",
            "-n",
            &release,
            "--kube-version",
            "1.34.4",
        ])
        .args([
            "--set",
            "certificates.mode=selfManaged",
            "--set",
            "webhook.url=https://127.0.0.1:29443",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let rendered = String::from_utf8(rendered.stdout).unwrap();
    assert!(
        rendered.contains("- --self-managed-certs"),
        "the Deployment runs the mode"
    );
    assert!(
        !rendered.contains("caBundle: "),
        "nothing to trust before the webhook made its CA"
    );
    let mut guard = RestoreHarness { replicas: Vec::new() };
    let stopped = script(&["scripts/e2e-cluster.sh", "webhook-stop"]);
    assert!(stopped.ok, "{}", stopped.stderr);
    let deleted = kubectl(&[
        "delete",
        "mutatingwebhookconfiguration,validatingwebhookconfiguration",
        "beamstack",
    ]);
    assert!(deleted.ok, "{}", deleted.stderr);
    let installed = kubectl_stdin(&["apply", "--server-side", "--force-conflicts", "-f", "-"], &rendered);
    assert!(installed.ok, "{}", installed.stderr);
    assert!(ca_bundles().iter().all(Option::is_none));
    assert!(secret_data(&release).is_none());

    let as_service_account = service_account_kubeconfig(&release);
    guard.replicas.push(start_replica(&release, &as_service_account, 0));
    guard.replicas.push(start_replica(&release, &as_service_account, 1));
    wait_ready(29080);
    wait_ready(29082);

    // Created and trusted: the Secret holds a CA and serving pair; every caBundle is its CA.
    let secret = secret_data(&release).expect("the webhook created its Secret");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    for key in ["ca.crt", "ca.key", "tls.crt", "tls.key"] {
        assert!(
            secret["data"][key].as_str().is_some_and(|value| !value.is_empty()),
            "{key}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while ca_bundles()
        .iter()
        .any(|bundle| bundle.as_deref() != secret_data(&release).unwrap()["data"]["ca.crt"].as_str())
    {
        assert!(
            Instant::now() < deadline,
            "caBundles never matched the Secret: {:?}",
            ca_bundles()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let object = in_namespace(&fixture(FLINK_PIPELINE), &workloads);
    let created = apply(&object);
    assert!(created.ok, "{}", created.stderr);
    let stored = get("flinkdeployment", &workloads, "wordcount");
    let containers = stored["spec"]["taskManager"]["podTemplate"]["spec"]["containers"].to_string();
    assert!(
        containers.contains("beam-worker-pool"),
        "the webhook mutated it: {containers}"
    );

    // Renewals and a CA rotation while the API server keeps calling.
    let load = AdmissionLoad::start(&object);
    let (mut serving, mut bundles) = (BTreeSet::new(), BTreeSet::new());
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(30) {
        if let Some(secret) = secret_data(&release) {
            serving.insert(secret["data"]["tls.crt"].as_str().unwrap().to_string());
            bundles.insert(secret["data"]["ca.crt"].as_str().unwrap().to_string());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let sent = load.finish_without_failures(20);
    assert!(
        serving.len() >= 3,
        "the serving certificate was renewed {} times",
        serving.len() - 1
    );
    assert!(bundles.len() >= 2, "the CA was never rotated");

    // Both replicas serve what the API server trusts.
    let bundle = secret_data(&release).unwrap()["data"]["ca.crt"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(trusted_by(&bundle, 29443));
    assert!(trusted_by(&bundle, 29444));

    // Drift: a caBundle reset by hand is set back at the next check.
    set_ca_bundle(&other_ca_base64());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let current = secret_data(&release).unwrap()["data"]["ca.crt"]
            .as_str()
            .unwrap()
            .to_string();
        if ca_bundles()
            .iter()
            .all(|bundle| bundle.as_deref() == Some(current.as_str()))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the caBundle was not repaired: {:?}",
            ca_bundles()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "self-managed certificates: {sent} admissions, 0 failed, {} serving certificates, {} CA bundles in 30 s",
        serving.len(),
        bundles.len()
    );
}
