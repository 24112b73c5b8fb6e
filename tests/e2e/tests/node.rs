//! Scenarios only a real node allows: Beamstack installed by `helm install` runs as two pods from the project's own
//! image, in a namespace that enforces the restricted Pod Security Standard; the webhook keeps every admission
//! through a rolling restart and through the loss of a pod (`failurePolicy: Fail`, so a failed call is a failed
//! create); the garbage collector removes a deleted pipeline's ConfigMap through its owner reference; and
//! `kubectl beam logs` reads a real container's log through the API server and the kubelet.

use e2e::*;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

const FLINK_PIPELINE: &str = "policies/tests/resources/flink-pipeline.yaml";
const IMAGE: &str = "ghcr.io/beamstack/beam-webhook:0.1.0";

fn webhook_pod_names() -> BTreeSet<String> {
    ready_webhook_pods().into_iter().map(|(name, _)| name).collect()
}

/// Waits until the Deployment has `replicas` Ready pods and no other (old, terminating) pods are left.
fn wait_for_two_ready_pods(within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (all, ready) = (webhook_pods().len(), ready_webhook_pods());
        if ready.len() == 2 && all == 2 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the webhook never got back to 2 Ready pods alone: {all} pods, Ready {ready:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn beamstack_runs_as_two_ready_pods_from_its_own_image_under_the_restricted_standard() {
    require_cluster!();
    let _webhook = webhook_shared();
    let listed = kubectl(&["get", "pods", "-n", RELEASE_NAMESPACE, "-o", "wide"]);
    assert!(listed.ok, "{}", listed.stderr);
    eprintln!("kubectl get pods -n {RELEASE_NAMESPACE}:\n{}", listed.stdout);

    let pods = webhook_pods();
    assert_eq!(pods.len(), 2, "two replicas");
    for pod in &pods {
        let name = pod["metadata"]["name"].as_str().unwrap();
        assert_eq!(pod["status"]["phase"], "Running", "{name}");
        let status = &pod["status"]["containerStatuses"][0];
        assert_eq!(status["ready"], true, "{name}");
        assert_eq!(status["image"], IMAGE, "{name} runs the project's image");
        assert_eq!(pod["spec"]["nodeName"], "e2e-node", "{name} runs on the node");
        assert!(listed.stdout.contains(name) && listed.stdout.contains("Running"));
    }
    // Admitted under the restricted standard: the namespace enforces it, so these pods meet it.
    let release = get("namespace", "", RELEASE_NAMESPACE);
    assert_eq!(
        release["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    // The API server reaches them through the chart's Service: a create through both webhooks.
    let ns = namespace("e2e-node", &[("team", "a")]);
    let run = apply(&in_namespace(&fixture(FLINK_PIPELINE), &ns));
    assert!(run.ok, "{}", run.stderr);
    let stored = get("flinkdeployment", &ns, "wordcount");
    assert!(
        stored["metadata"]["annotations"]["beamstack.dev/mutated-by"].is_string(),
        "{stored:#}"
    );
}

/// `kubectl rollout restart` of the webhook while the API server keeps sending admissions: the PodDisruptionBudget,
/// maxUnavailable 0 of two replicas, readiness and the pre-stop delay keep it serving.
#[test]
fn rollout_restart_under_load_fails_no_admission() {
    require_cluster!();
    let _webhook = webhook_exclusive();
    let ns = namespace("e2e-restart", &[("team", "a")]);
    let object = in_namespace(&fixture(FLINK_PIPELINE), &ns);
    let before = webhook_pod_names();
    let started = Instant::now();
    let load = AdmissionLoad::start(&object);
    std::thread::sleep(Duration::from_secs(2));
    let restarted = kubectl(&["rollout", "restart", "deployment/beam-webhook", "-n", RELEASE_NAMESPACE]);
    assert!(restarted.ok, "{}", restarted.stderr);
    let rolled = kubectl(&[
        "rollout",
        "status",
        "deployment/beam-webhook",
        "-n",
        RELEASE_NAMESPACE,
        "--timeout",
        "180s",
    ]);
    assert!(rolled.ok, "{}", rolled.stderr);
    wait_for_two_ready_pods(Duration::from_secs(90));
    std::thread::sleep(Duration::from_secs(2));
    let sent = load.finish_without_failures(20);
    let after = webhook_pod_names();
    assert!(
        before.is_disjoint(&after),
        "every pod was replaced: {before:?} -> {after:?}"
    );
    eprintln!(
        "rollout restart: {sent} admissions in {:.1?}, 0 failed",
        started.elapsed()
    );
}

/// One webhook pod deleted (as a node drain or an eviction does) while admissions flow: the other replica serves
/// them all, and the Deployment brings the second one back.
#[test]
fn a_webhook_pod_deleted_under_load_fails_no_admission() {
    require_cluster!();
    let _webhook = webhook_exclusive();
    let ns = namespace("e2e-kill", &[("team", "a")]);
    let object = in_namespace(&fixture(FLINK_PIPELINE), &ns);
    let before = webhook_pod_names();
    let victim = before.iter().next().unwrap().clone();
    let started = Instant::now();
    let load = AdmissionLoad::start(&object);
    std::thread::sleep(Duration::from_secs(2));
    let deleted = kubectl(&["delete", "pod", &victim, "-n", RELEASE_NAMESPACE, "--wait=false"]);
    assert!(deleted.ok, "{}", deleted.stderr);
    wait_for_two_ready_pods(Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(2));
    let sent = load.finish_without_failures(20);
    assert!(!webhook_pod_names().contains(&victim));
    eprintln!(
        "webhook pod {victim} deleted: {sent} admissions in {:.1?}, 0 failed",
        started.elapsed()
    );
}

/// The pipeline's ConfigMap names its runner object as owner: deleting the FlinkDeployment lets the garbage
/// collector (kube-controller-manager) remove the ConfigMap.
#[test]
fn deleting_a_pipeline_garbage_collects_its_config_map() {
    require_cluster!();
    let _webhook = webhook_shared();
    let ns = namespace("e2e-gc", &[]);
    let run = beam(&["run", "examples/beam/wordcount_minimal.yaml", "-n", &ns, "-l", "team=a"]);
    assert!(run.ok, "{}", run.stderr);
    let config_map = get("configmap", &ns, "wordcount-minimal-pipeline");
    assert_eq!(config_map["metadata"]["ownerReferences"][0]["kind"], "FlinkDeployment");
    // Background propagation, kubectl's default: the owner goes at once, the collector follows.
    let deleted = kubectl(&["delete", "flinkdeployment", "wordcount-minimal", "-n", &ns]);
    assert!(deleted.ok, "{}", deleted.stderr);
    let deadline = Instant::now() + Duration::from_secs(60);
    while kubectl(&["get", "configmap", "wordcount-minimal-pipeline", "-n", &ns]).ok {
        assert!(
            Instant::now() < deadline,
            "the garbage collector left the ConfigMap of a deleted pipeline"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `kubectl beam logs` of a pipeline reads its JobManager's container log, streamed by the kubelet through the API
/// server. The pod stands in for the one the Flink operator creates (same labels; no operator runs here yet): a
/// Debian container that writes lines and keeps running.
#[test]
fn beam_logs_reads_a_real_containers_log() {
    require_cluster!();
    let _webhook = webhook_shared();
    let ns = namespace("e2e-logs", &[]);
    let run = beam(&[
        "run",
        "examples/beam/wordcount_minimal.yaml",
        "-n",
        &ns,
        "--name",
        "logged",
        "-l",
        "team=a",
    ]);
    assert!(run.ok, "{}", run.stderr);
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: logged-jobmanager\n  namespace: {ns}\n  labels: {{app: logged, component: jobmanager, type: flink-native-kubernetes}}\n\
         spec:\n  automountServiceAccountToken: false\n  terminationGracePeriodSeconds: 1\n  containers:\n    - name: flink-main-container\n      image: docker.io/library/debian:bookworm-slim\n      imagePullPolicy: Never\n\
         \x20     command: [sh, -c, 'for i in 1 2 3; do echo \"jobmanager line $i from $(hostname)\"; done; while sleep 1; do echo tick; done']\n"
    );
    // The namespace's default ServiceAccount comes from the controller-manager a moment after the namespace.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let created = apply(&pod);
        if created.ok {
            break;
        }
        assert!(Instant::now() < deadline, "{}", created.stderr);
        std::thread::sleep(Duration::from_millis(500));
    }
    let ready = kubectl(&[
        "wait",
        "--for",
        "condition=Ready",
        "pod/logged-jobmanager",
        "-n",
        &ns,
        "--timeout",
        "90s",
    ]);
    assert!(ready.ok, "{} {}", ready.stdout, ready.stderr);

    let logs = beam(&["logs", "logged", "-n", &ns]);
    assert!(logs.ok, "{}", logs.stderr);
    for line in 1..=3 {
        assert!(
            logs.stdout
                .contains(&format!("jobmanager line {line} from logged-jobmanager")),
            "{}",
            logs.stdout
        );
    }
    let tail = beam(&["logs", "logged", "-n", &ns, "--role", "jobmanager", "--tail", "1"]);
    assert!(tail.ok, "{}", tail.stderr);
    assert_eq!(
        tail.stdout.lines().filter(|line| !line.trim().is_empty()).count(),
        1,
        "{}",
        tail.stdout
    );

    // -f follows the stream: lines written after it started arrive.
    let mut follower = beam_spawn(&["logs", "logged", "-n", &ns, "-f", "--tail", "1"]);
    let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    let mut ticks = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while ticks < 3 {
        let line = lines.next().expect("the stream ended").unwrap();
        if line.contains("tick") {
            ticks += 1;
        }
        assert!(Instant::now() < deadline, "no new lines followed");
    }
    follower.kill().unwrap();
    let _ = follower.wait();
    let _ = kubectl(&["delete", "pod", "logged-jobmanager", "-n", &ns, "--wait=false"]);
}

/// One webhook container killed outright (SIGKILL, as a crash or an out-of-memory kill does) while admissions flow.
/// The API server does not retry a webhook call, so a call in flight on the killed process, or a connection routed
/// to its address before the kubelet marks it not Ready and kube-proxy drops it (about a second), fails; the other
/// replica serves everything else, and the container restarts and is Ready again. Measured, and bounded: failures
/// only in the few seconds after the kill, each a refused or reset connection (never a timeout, never a wrong
/// verdict), and none once the pod is back.
#[test]
fn a_webhook_container_killed_under_load_loses_only_the_calls_it_was_reached_by() {
    require_cluster!();
    let _webhook = webhook_exclusive();
    let ns = namespace("e2e-crash", &[("team", "a")]);
    let object = in_namespace(&fixture(FLINK_PIPELINE), &ns);
    let (victim, _) = ready_webhook_pods().into_iter().next().unwrap();
    let pod = get("pod", RELEASE_NAMESPACE, &victim);
    let container = pod["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap()
        .trim_start_matches("containerd://")
        .to_owned();
    let restarts = pod["status"]["containerStatuses"][0]["restartCount"].as_u64().unwrap();
    let load = AdmissionLoad::start(&object);
    std::thread::sleep(Duration::from_secs(3));
    // The node's containerd, as the kernel's OOM killer or a crash would end the process.
    let killed_at = Instant::now();
    let killed = std::process::Command::new("ctr")
        .args([
            "--address",
            root().join(".e2e/node/containerd/containerd.sock").to_str().unwrap(),
        ])
        .args(["-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", &container])
        .output()
        .unwrap();
    assert!(killed.status.success(), "{}", String::from_utf8_lossy(&killed.stderr));
    // Back: restarted by the kubelet, Ready, and serving through the Service again.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let now = get("pod", RELEASE_NAMESPACE, &victim);
        let status = &now["status"]["containerStatuses"][0];
        if status["restartCount"].as_u64().unwrap() > restarts && status["ready"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the killed container never came back: {status}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let back_at = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let (sent, failures) = load.finish();
    assert!(sent >= 20, "only {sent} admissions were sent");
    for failure in &failures {
        let after = failure.at.duration_since(killed_at);
        assert!(
            after < Duration::from_secs(5),
            "a failure {after:?} after the kill: {}",
            failure.stderr
        );
        assert!(
            failure.stderr.contains("connection refused") || failure.stderr.contains("connection reset"),
            "{}",
            failure.stderr
        );
        assert!(
            failure.at < back_at,
            "a failure after the pod was back: {}",
            failure.stderr
        );
    }
    eprintln!(
        "webhook container killed: {sent} admissions, {} failed, all within {:?} of the kill; back after {:.1?}",
        failures.len(),
        failures.last().map(|f| f.at.duration_since(killed_at)),
        back_at.duration_since(killed_at)
    );
}
