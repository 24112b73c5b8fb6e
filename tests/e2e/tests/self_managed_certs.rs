//! The chart's selfManaged certificate mode on the real node: `helm upgrade` of the harness's installation to
//! selfManaged (a Secret of its own, lifetimes in seconds so that renewals happen within the test), and the two
//! webhook pods, with the chart's ServiceAccount and RBAC, create the CA and serving certificate, set the caBundles,
//! renew the serving certificate and rotate the CA while the API server keeps sending admissions, and repair a
//! caBundle reset by hand. The installation is put back in provided mode afterwards, however the test ends.

use e2e::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

const FLINK_PIPELINE: &str = "policies/tests/resources/flink-pipeline.yaml";
const SECRET: &str = "beam-webhook-self-managed";
const NAMESPACE: &str = RELEASE_NAMESPACE;

/// Puts the shared installation back in provided mode, and removes the Secret this mode made.
struct RestoreHarness;

impl Drop for RestoreHarness {
    fn drop(&mut self) {
        restore_provided_installation();
        let _ = kubectl(&["delete", "secret", SECRET, "-n", NAMESPACE, "--ignore-not-found"]);
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

#[test]
fn self_managed_certificates_are_made_trusted_renewed_and_repaired_under_load() {
    require_cluster!();
    let _webhook = webhook_exclusive();
    let release = NAMESPACE;
    let workloads = namespace("e2e-sm", &[("team", "a")]);

    // A fresh install in selfManaged mode creates the webhook configurations without a caBundle, which only the
    // webhook can fill in.
    let rendered = Command::new(root().join(".tools/bin/helm"))
        .args([
            "template",
            "beamstack",
            "charts/beamstack",
            "-n",
            release,
            "--kube-version",
            "1.34.4",
        ])
        .args(["--set", "certificates.mode=selfManaged"])
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
    let _restore = RestoreHarness;
    let _ = kubectl(&["delete", "secret", SECRET, "-n", release, "--ignore-not-found"]);
    assert!(secret_data(release).is_none());

    // The harness's installation switched to selfManaged with a Secret of its own, as a platform team would with
    // `helm upgrade`. Serving certificates live 20 s and are renewed with 12 s left (every ~8 s); a CA lives 50 s and
    // is replaced with 32 s left (20 + 12), so within the test it is rotated at least once. `--wait`: the pods are
    // Ready only once they made or adopted the Secret and set the caBundles.
    let upgraded = helm(&[
        "upgrade",
        "beamstack",
        "charts/beamstack",
        "-n",
        release,
        "--reuse-values",
        "--set",
        "certificates.mode=selfManaged",
        "--set",
        &format!("certificates.secretName={SECRET}"),
        "--set",
        "certificates.selfManaged.validity=20s",
        "--set",
        "certificates.selfManaged.renewBefore=12s",
        "--set",
        "certificates.selfManaged.caValidity=50s",
        "--set",
        "certificates.selfManaged.checkInterval=1s",
        "--set",
        "webhook.tlsReloadInterval=1s",
        "--wait",
        "--timeout",
        "180s",
    ]);
    assert!(upgraded.ok, "{}", upgraded.stderr);
    let pods = ready_webhook_pods();
    assert_eq!(pods.len(), 2, "{pods:?}");

    // Created and trusted: the Secret holds a CA and serving pair; every caBundle is its CA.
    let secret = secret_data(release).expect("the webhook created its Secret");
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
        .any(|bundle| bundle.as_deref() != secret_data(release).unwrap()["data"]["ca.crt"].as_str())
    {
        assert!(
            Instant::now() < deadline,
            "caBundles never matched the Secret: {:?}",
            ca_bundles()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The caBundles name the new CA as soon as a pod has made it, but each pod serves the new certificate only once
    // it reads the Secret (a CI run's first create, right after the caBundles matched, met a pod still serving the
    // provided-mode certificate: "x509: certificate signed by unknown authority"). Until both do, an admission may
    // fail; the renewals and the rotation below are then checked under load with no failure allowed.
    let object = in_namespace(&fixture(FLINK_PIPELINE), &workloads);
    let started = Instant::now();
    let mut admitted_in_a_row = 0;
    while admitted_in_a_row < 10 {
        let dry_run = kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &object);
        admitted_in_a_row = if dry_run.ok { admitted_in_a_row + 1 } else { 0 };
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the webhook pods never all served the new CA's certificate: {}",
            dry_run.stderr
        );
    }
    eprintln!(
        "both pods served the self-managed certificate {:?} after the caBundles matched",
        started.elapsed()
    );
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
        if let Some(secret) = secret_data(release) {
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

    // Both pods serve what the API server trusts: the caBundle it holds. With lifetimes of seconds a rotation may
    // happen between reading the bundle and dialling the pods (the next pass follows a second after the CA is added),
    // so the two are read again until they were seen together.
    let pods = ready_webhook_pods();
    assert_eq!(pods.len(), 2, "{pods:?}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let bundle = ca_bundles()[0].clone().expect("a caBundle");
        let untrusted: Vec<&String> = pods
            .iter()
            .filter(|(_, ip)| !pod_serves_trusted(&base64_decode(&bundle), ip))
            .map(|(pod, _)| pod)
            .collect();
        if untrusted.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{untrusted:?} serve certificates the API server's caBundle does not trust"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // Drift: a caBundle reset by hand is set back at the next check.
    set_ca_bundle(&other_ca_base64());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let current = secret_data(release).unwrap()["data"]["ca.crt"]
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
