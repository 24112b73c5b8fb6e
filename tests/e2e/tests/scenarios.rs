//! The end-to-end scenarios: real kubectl and the real plugin against a real single-node Kubernetes, whose API server
//! calls the two beam-webhook pods that `helm install` started from the project's image, through the chart's Service
//! and webhook configurations (scripts/e2e-cluster.sh).
//!
//! What is played: no Flink or Spark operator runs yet, so the operators' status changes are written by the test
//! through the status subresource, in the order the operators write them, and the operators' pods of the status scenario are
//! objects the test makes, held back from the scheduler by a scheduling gate so that their status is the test's.

use e2e::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

const FLINK_PIPELINE: &str = "policies/tests/resources/flink-pipeline.yaml";
const SPARK_PIPELINE: &str = "policies/tests/resources/spark-pipeline.yaml";

/// Plain `kubectl apply`: the stored objects carry the defaults and the harness; applying again changes nothing.
#[test]
fn apply_stores_defaults_and_the_harness_and_is_idempotent() {
    require_cluster!();
    let _webhook = webhook_shared();
    let ns = namespace("e2e-apply", &[("team", "a")]);
    for (file, kind, name) in [
        (FLINK_PIPELINE, "flinkdeployment", "wordcount"),
        (SPARK_PIPELINE, "sparkapplication", "wordcount-spark"),
    ] {
        let run = apply(&in_namespace(&fixture(file), &ns));
        assert!(run.ok, "{file}: {}", run.stderr);
        let stored = get(kind, &ns, name);
        let annotations = &stored["metadata"]["annotations"];
        assert!(annotations["beamstack.dev/mutated-by"].is_string(), "{stored:#}");
        let containers = match kind {
            "flinkdeployment" => stored.pointer("/spec/taskManager/podTemplate/spec/containers").cloned(),
            _ => stored.pointer("/spec/executor/sidecars").cloned(),
        };
        let names: Vec<String> = containers
            .and_then(|c| c.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect();
        assert!(
            names.iter().any(|n| n == "beam-worker-pool"),
            "{kind}: no harness in {names:?}"
        );
        let version = stored["metadata"]["resourceVersion"].clone();

        let again = apply(&in_namespace(&fixture(file), &ns));
        assert!(again.ok, "{}", again.stderr);
        assert!(again.stdout.contains("unchanged"), "second apply: {}", again.stdout);
        assert_eq!(
            get(kind, &ns, name)["metadata"]["resourceVersion"],
            version,
            "{kind} was rewritten"
        );
    }
    // Defaults only (no Beam annotation): the operator's basic example gets the service account, no sidecar.
    let run = apply(&in_namespace(
        &fixture("testdata/fixtures/objects/flink-plain.yaml")
            .replace("  namespace: team-a", "  namespace: team-a\n  labels: {team: a}"),
        &ns,
    ));
    assert!(run.ok, "{}", run.stderr);
    let plain = get("flinkdeployment", &ns, "basic-example");
    assert_eq!(plain["spec"]["serviceAccount"], "flink");
    assert!(plain.pointer("/spec/taskManager/podTemplate").is_none(), "{plain:#}");
}

/// Built-in rules and policies together: one denial listing every violation.
#[test]
fn one_denial_lists_every_violation() {
    require_cluster!();
    let _webhook = webhook_shared();
    let ns = namespace("e2e-deny", &[]);
    // No team label (policy), upgradeMode savepoint without directories (built-in), zero TaskManagers (built-in).
    let broken = in_namespace(&fixture(FLINK_PIPELINE), &ns)
        .replace("  labels:\n    team: a\n", "")
        .replace("upgradeMode: stateless", "upgradeMode: savepoint")
        .replace("    replicas: 2\n", "    replicas: 0\n");
    let run = apply(&broken);
    assert!(!run.ok, "{}", run.stdout);
    let message = &run.stderr;
    assert!(message.contains("denied the request"), "{message}");
    assert!(
        message.contains("metadata.labels"),
        "policy violation missing: {message}"
    );
    assert!(
        message.contains("savepoint"),
        "upgrade-mode violation missing: {message}"
    );
    assert!(message.contains("replicas"), "replicas violation missing: {message}");
    assert!(
        !kubectl(&["get", "flinkdeployment", "wordcount", "-n", &ns]).ok,
        "a denied object was stored"
    );
}

/// A Warn policy (made in the cluster, picked up by the webhook's watch): kubectl prints it, the object is stored.
#[test]
fn a_warn_policy_warns_and_stores() {
    require_cluster!();
    let _webhook = webhook_shared();
    let ns = namespace("e2e-warn", &[("e2e-warn", "yes")]);
    let policy = r#"
apiVersion: beamstack.dev/v1alpha1
kind: RunnerPolicy
metadata:
  name: e2e-parallelism-warning
spec:
  action: Warn
  match:
    namespaceSelector:
      matchLabels: {e2e-warn: "yes"}
  validations:
    - expression: "object.spec.job.parallelism <= 1"
      message: parallelism above 1 costs more slots
"#;
    let run = apply(policy);
    assert!(run.ok, "{}", run.stderr);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let run = apply(&in_namespace(&fixture(FLINK_PIPELINE), &ns));
        assert!(run.ok, "{}", run.stderr);
        if run
            .stderr
            .contains("Warning: e2e-parallelism-warning: parallelism above 1 costs more slots")
        {
            break;
        }
        // The webhook learns of the new policy through its watch: give it a moment.
        assert!(Instant::now() < deadline, "no warning printed: {}", run.stderr);
        let _ = kubectl(&["delete", "flinkdeployment", "wordcount", "-n", &ns]);
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(kubectl(&["get", "flinkdeployment", "wordcount", "-n", &ns]).ok);
    let _ = kubectl(&["delete", "runnerpolicy", "e2e-parallelism-warning"]);
}

/// A tenant budget: jobs until it is full, then a refusal with usage, demand and budget; deleting frees room; an
/// UPDATE that grows a job is judged on the difference.
#[test]
fn tenant_budget_fills_refuses_and_frees() {
    require_cluster!();
    let _webhook = webhook_shared();
    let ns = namespace("e2e-tenant", &[]);
    assert!(apply(&tenant("e2e-team", &ns, r#"cpu: "9""#)).ok);
    // Each job asks for 4 cpu (1 JobManager + 2 TaskManagers with the harness, see the fixture).
    let job = |name: &str| {
        in_namespace(&fixture(FLINK_PIPELINE), &ns).replace("name: wordcount\n", &format!("name: {name}\n"))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    // The webhook sees the new Tenant through its watch; until then the namespace has no tenant.
    loop {
        assert!(apply(&job("job-1")).ok);
        let run = apply(&job("job-probe").replace("replicas: 2", "replicas: 8"));
        if !run.ok && run.stderr.contains("tenant e2e-team") {
            break;
        }
        let _ = kubectl(&["delete", "flinkdeployment", "job-probe", "-n", &ns]);
        assert!(Instant::now() < deadline, "the tenant never applied: {}", run.stderr);
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(apply(&job("job-2")).ok, "8 of 9 cpu should fit");
    let refused = apply(&job("job-3"));
    assert!(!refused.ok);
    assert!(
        refused
            .stderr
            .contains("tenant e2e-team would use 12 cpu: it runs 8, this job asks for 4, the budget is 9"),
        "{}",
        refused.stderr
    );
    assert!(kubectl(&["delete", "flinkdeployment", "job-2", "-n", &ns]).ok);
    // The webhook's ledger follows the delete through its watch.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !apply(&job("job-3")).ok {
        assert!(Instant::now() < deadline, "deleting job-2 freed no room");
        std::thread::sleep(Duration::from_millis(300));
    }
    // 8 of 9 used: growing job-3 by one TaskManager (+1.5 cpu) is judged on the difference and refused...
    let grown = apply(&job("job-3").replace("replicas: 2", "replicas: 3"));
    assert!(!grown.ok);
    // Kubernetes' canonical form of 9.5 cpu is 9500m; the old job's 4 cpu are counted out.
    assert!(
        grown
            .stderr
            .contains("would use 9500m cpu: it runs 4, this job asks for 5500m"),
        "{}",
        grown.stderr
    );
    // ...while an update that changes no demand passes.
    assert!(apply(&job("job-3").replace("parallelism: 2", "parallelism: 1")).ok);
    let _ = kubectl(&["delete", "tenant", "e2e-team"]);
}

/// `kubectl beam run`: ConfigMap and runner CR created, the harness injected by the webhook; a second run
/// updates; `--dry-run=server` stores nothing.
#[test]
fn beam_run_creates_updates_and_server_dry_runs() {
    require_cluster!();
    let _webhook = webhook_shared();
    let ns = namespace("e2e-run", &[]);
    let pipeline = "examples/beam/wordcount_minimal.yaml";
    let dry = beam(&["run", pipeline, "-n", &ns, "-l", "team=a", "--dry-run=server"]);
    assert!(dry.ok, "{}", dry.stderr);
    assert!(dry.stdout.contains("(server dry run)"), "{}", dry.stdout);
    assert!(
        !kubectl(&["get", "flinkdeployment", "wordcount-minimal", "-n", &ns]).ok,
        "dry run stored it"
    );

    let run = beam(&["run", pipeline, "-n", &ns, "-l", "team=a"]);
    assert!(run.ok, "{}", run.stderr);
    let deployment = get("flinkdeployment", &ns, "wordcount-minimal");
    let config_map = get("configmap", &ns, "wordcount-minimal-pipeline");
    assert!(
        config_map["data"]["pipeline.yaml"]
            .as_str()
            .unwrap()
            .contains("ReadFromText")
    );
    assert_eq!(
        config_map["metadata"]["ownerReferences"][0]["name"],
        "wordcount-minimal"
    );
    let containers = deployment
        .pointer("/spec/taskManager/podTemplate/spec/containers")
        .unwrap();
    assert!(
        containers
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "beam-worker-pool"),
        "{deployment:#}"
    );
    assert_eq!(
        deployment["metadata"]["labels"]["beamstack.dev/pipeline"],
        "wordcount-minimal"
    );

    let again = beam(&["run", pipeline, "-n", &ns, "-l", "team=a", "--parallelism", "3"]);
    assert!(again.ok, "{}", again.stderr);
    let updated = get("flinkdeployment", &ns, "wordcount-minimal");
    assert_eq!(
        updated["metadata"]["uid"], deployment["metadata"]["uid"],
        "a second run must update, not recreate"
    );
    assert_eq!(updated["spec"]["job"]["parallelism"], 3);
    let listed = kubectl(&["get", "flinkdeployments", "-n", &ns, "-o", "name"]);
    assert_eq!(listed.stdout.lines().count(), 1, "{}", listed.stdout);
}

/// `kubectl beam run` of the minimal wordcount example as pipeline "wc" (the name the static Flink exporter uses).
fn run_wordcount_as_wc(ns: &str) {
    let run = beam(&[
        "run",
        "examples/beam/wordcount_minimal.yaml",
        "-n",
        ns,
        "--name",
        "wc",
        "-l",
        "team=a",
    ]);
    assert!(run.ok, "{}", run.stderr);
}

fn patch_status(ns: &str, kind: &str, name: &str, status: &str) {
    let run = kubectl(&[
        "patch",
        kind,
        name,
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        &format!("{{\"status\": {status}}}"),
    ]);
    assert!(run.ok, "status patch: {}", run.stderr);
}

/// Status: the test plays the Flink operator; `status -w` shows each phase and exits at the end; `list`,
/// `events`, `delete --wait` work.
#[test]
fn status_follows_the_operator_and_list_events_delete_work() {
    require_cluster!();
    let _webhook = webhook_shared();
    let ns = namespace("e2e-status", &[]);
    run_wordcount_as_wc(&ns);

    let mut watcher = beam_spawn(&["status", "wc", "-n", &ns, "-w", "-o", "json"]);
    let stdout = watcher.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(report) = serde_json::from_str(&line) {
                let _ = sender.send(report);
            }
        }
    });
    let next = || {
        receiver
            .recv_timeout(Duration::from_secs(15))
            .expect("status -w printed nothing new")
    };
    assert_eq!(next()["phase"], "Pending");
    // The operator's sequence for an application cluster, then a failure with its message.
    patch_status(
        &ns,
        "flinkdeployment",
        "wc",
        r#"{"lifecycleState": "DEPLOYED", "jobManagerDeploymentStatus": "DEPLOYING", "jobStatus": {"state": "CREATED"}}"#,
    );
    assert_eq!(next()["phase"], "Submitting");
    patch_status(
        &ns,
        "flinkdeployment",
        "wc",
        r#"{"lifecycleState": "STABLE", "jobManagerDeploymentStatus": "READY", "jobStatus": {"state": "RUNNING"}}"#,
    );
    let running = next();
    assert_eq!(running["phase"], "Running");
    assert_eq!(running["ui"], format!("http://wc-rest.{ns}.svc:8081"));

    // The operator's pods, as stored objects: a scheduling gate keeps them off the node (their images exist nowhere
    // here), and their readiness is written through the status subresource.
    assert!(
        apply(&format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: default, namespace: {ns}}}\n"
        ))
        .ok
    );
    for (pod, component, ready) in [
        ("wc-jm", "jobmanager", true),
        ("wc-tm-1", "taskmanager", true),
        ("wc-tm-2", "taskmanager", false),
    ] {
        let harness = if component == "taskmanager" {
            ", {name: beam-worker-pool, image: apache/beam_python3.11_sdk:2.77.0}"
        } else {
            ""
        };
        let created = apply(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, namespace: {ns}, labels: {{app: wc, component: {component}}}}}\n\
             spec: {{automountServiceAccountToken: false, schedulingGates: [{{name: beamstack.dev/played}}], containers: [{{name: flink-main-container, image: flink:1.20}}{harness}]}}\n"
        ));
        assert!(created.ok, "{}", created.stderr);
        let flag = if ready { "True" } else { "False" };
        let mut statuses = vec![format!(
            "{{\"name\": \"flink-main-container\", \"ready\": {ready}, \"restartCount\": 0, \"image\": \"flink:1.20\", \"imageID\": \"\"}}"
        )];
        if component == "taskmanager" {
            statuses.push(format!("{{\"name\": \"beam-worker-pool\", \"ready\": {ready}, \"restartCount\": 0, \"image\": \"beam\", \"imageID\": \"\"}}"));
        }
        patch_status(
            &ns,
            "pod",
            pod,
            &format!(
                "{{\"phase\": \"Running\", \"conditions\": [{{\"type\": \"Ready\", \"status\": \"{flag}\"}}], \"containerStatuses\": [{}]}}",
                statuses.join(", ")
            ),
        );
    }
    let report: Value = serde_json::from_str(&beam(&["status", "wc", "-n", &ns, "-o", "json"]).stdout).unwrap();
    let counts: Vec<(String, u64, u64)> = report["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["role"].as_str().unwrap().to_owned(),
                r["ready"].as_u64().unwrap(),
                r["total"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("jobmanager".into(), 1, 1),
            ("taskmanager".into(), 1, 2),
            ("harness".into(), 1, 2)
        ],
        "{report:#}"
    );
    // Logs come from the kubelet, which does not run here: these pods have no node (the API server answers 204),
    // and the plugin says so rather than print nothing.
    let logs = beam(&["logs", "wc", "-n", &ns]);
    assert!(!logs.ok);
    assert!(
        logs.stderr
            .contains("wc-jm not on a node yet, so there are no logs to show"),
        "{}",
        logs.stderr
    );
    let no_role = beam(&["logs", "wc", "-n", &ns, "--role", "driver"]);
    assert!(
        no_role
            .stderr
            .contains("has no driver pods: its roles are jobmanager, taskmanager, harness"),
        "{}",
        no_role.stderr
    );

    // A Warning event about the job, as the operator would record it.
    let event = format!(
        r#"
apiVersion: v1
kind: Event
metadata: {{name: wc.e2e, namespace: {ns}}}
involvedObject: {{apiVersion: flink.apache.org/v1beta1, kind: FlinkDeployment, name: wc, namespace: {ns}}}
reason: JobException
message: "java.lang.OutOfMemoryError: Java heap space"
type: Warning
count: 2
firstTimestamp: "2026-01-01T00:00:00Z"
lastTimestamp: "2026-01-01T00:00:00Z"
source: {{component: flink-kubernetes-operator}}
"#
    );
    let created = apply(&event);
    assert!(created.ok, "{}", created.stderr);
    patch_status(
        &ns,
        "flinkdeployment",
        "wc",
        r#"{"lifecycleState": "FAILED", "jobManagerDeploymentStatus": "ERROR", "jobStatus": {"state": "FAILED"}, "error": "java.lang.OutOfMemoryError: Java heap space"}"#,
    );
    let failed = next();
    assert_eq!(failed["phase"], "Failed");
    assert_eq!(failed["message"], "java.lang.OutOfMemoryError: Java heap space");
    assert_eq!(failed["warnings"][0]["reason"], "JobException", "{failed:#}");
    let status = watcher.wait().unwrap();
    assert_eq!(status.code(), Some(1), "status -w exits 1 on a failed job");

    let text = beam(&["status", "wc", "-n", &ns]);
    assert!(text.stdout.contains("Phase:        Failed"), "{}", text.stdout);
    assert!(text.stdout.contains("JobException"), "{}", text.stdout);

    let list = beam(&["list", "-n", &ns]);
    assert!(list.ok, "{}", list.stderr);
    let row = list
        .stdout
        .lines()
        .find(|line| line.trim_start().starts_with("wc "))
        .unwrap_or_else(|| panic!("{}", list.stdout));
    assert!(row.contains("flink") && row.contains("Failed"), "{row}");

    let events = beam(&["events", "wc", "-n", &ns]);
    assert!(events.ok, "{}", events.stderr);
    assert!(events.stdout.contains("OutOfMemoryError"), "{}", events.stdout);

    let selected = beam(&["list", "-n", &ns, "-l", "team=b", "-o", "name"]);
    assert!(selected.ok && selected.stdout.trim().is_empty(), "{selected:?}");
    let selected = beam(&["list", "-n", &ns, "-l", "team=a", "-o", "name"]);
    assert_eq!(selected.stdout.trim(), "wc", "{selected:?}");

    let delete = beam(&["delete", "wc", "-n", &ns, "--wait"]);
    assert!(delete.ok, "{}", delete.stderr);
    assert!(!kubectl(&["get", "flinkdeployment", "wc", "-n", &ns]).ok);
    let gone = beam(&["status", "wc", "-n", &ns]);
    assert!(
        !gone.ok && gone.stderr.contains("no pipeline \"wc\""),
        "{}",
        gone.stderr
    );
}

/// A RunnerPolicy with a CEL syntax error is refused by the API server, through our webhook, with the position.
#[test]
fn a_broken_policy_is_refused_with_its_position() {
    require_cluster!();
    let _webhook = webhook_shared();
    let policy = r#"
apiVersion: beamstack.dev/v1alpha1
kind: RunnerPolicy
metadata:
  name: e2e-broken
spec:
  validations:
    - expression: "object.spec.job.parallelism <= "
      message: broken
"#;
    let run = apply(policy);
    assert!(!run.ok, "{}", run.stdout);
    assert!(run.stderr.contains("denied the request"), "{}", run.stderr);
    assert!(run.stderr.contains("spec.validations[0].expression"), "{}", run.stderr);
    assert!(run.stderr.contains("column"), "no position: {}", run.stderr);
}

/// With the webhook stopped, failurePolicy Fail refuses runner CRs with a clear message, other kinds are
/// unaffected, excluded namespaces are never blocked, and `kubectl beam doctor` names the fault; healthy, it passes;
/// with a wrong caBundle, it says so.
#[test]
fn webhook_down_and_doctor() {
    require_cluster!();
    let _webhook = webhook_exclusive();
    let ns = namespace("e2e-down", &[("team", "a")]);
    let doctor = beam(&["doctor", "-n", &ns, "--prometheus", "http://127.0.0.1:1"]);
    // Healthy except the Prometheus we pointed nowhere (the monitoring scenario checks a real one).
    assert!(doctor.stdout.contains("API server"), "{}", doctor.stdout);
    let failing: Vec<&str> = doctor.stdout.lines().filter(|line| line.contains("FAIL")).collect();
    assert!(
        failing.iter().all(|line| line.contains("Prometheus")),
        "unexpected failures:\n{}",
        doctor.stdout
    );
    assert!(doctor.stdout.contains("2 ready endpoints"), "{}", doctor.stdout);
    assert!(
        doctor.stdout.contains("passed admission") || doctor.stdout.contains("the webhook answered"),
        "{}",
        doctor.stdout
    );

    let stopped = script(&["scripts/e2e-cluster.sh", "webhook-stop"]);
    assert!(stopped.ok, "{}", stopped.stderr);
    let refused = apply(&in_namespace(&fixture(FLINK_PIPELINE), &ns));
    assert!(!refused.ok, "a runner CR got through with the webhook down");
    assert!(
        refused
            .stderr
            .contains("failed calling webhook \"runners.mutate.beamstack.dev\""),
        "{}",
        refused.stderr
    );
    // The API server dials the Service's ClusterIP; with no endpoints, kube-proxy's rule rejects the connection.
    assert!(refused.stderr.contains("connection refused"), "{}", refused.stderr);
    let config_map = kubectl(&["create", "configmap", "unaffected", "-n", &ns, "--from-literal=a=b"]);
    assert!(
        config_map.ok,
        "other kinds must not depend on the webhook: {}",
        config_map.stderr
    );
    // kube-system and the webhook's own namespace are excluded by the chart's namespaceSelector.
    for excluded in ["kube-system", "beamstack"] {
        let run = apply(&in_namespace(&fixture(FLINK_PIPELINE), excluded));
        assert!(run.ok, "{excluded} was blocked: {}", run.stderr);
        let _ = kubectl(&["delete", "flinkdeployment", "wordcount", "-n", excluded]);
    }
    let doctor = beam(&["doctor", "-n", &ns]);
    assert!(!doctor.ok);
    assert!(
        doctor.stdout.contains("the service has no ready endpoints"),
        "{}",
        doctor.stdout
    );
    assert!(
        doctor.stdout.contains("the API server could not call the webhook"),
        "{}",
        doctor.stdout
    );

    let started = script(&["scripts/e2e-cluster.sh", "webhook-start"]);
    assert!(started.ok, "{}", started.stderr);
    assert!(apply(&in_namespace(&fixture(FLINK_PIPELINE), &ns)).ok);

    // A caBundle from another CA: the API server cannot trust the webhook, and doctor says which check broke.
    let other_ca = other_ca_base64();
    let original = kubectl(&[
        "get",
        "validatingwebhookconfiguration",
        "beamstack",
        "-o",
        "jsonpath={.webhooks[0].clientConfig.caBundle}",
    ])
    .stdout;
    let patch = |bundle: &str| {
        kubectl(&[
            "patch",
            "validatingwebhookconfiguration",
            "beamstack",
            "--type=json",
            "-p",
            &format!(
                "[{{\"op\": \"replace\", \"path\": \"/webhooks/0/clientConfig/caBundle\", \"value\": \"{bundle}\"}}]"
            ),
        ])
    };
    assert!(patch(&other_ca).ok);
    let doctor = beam(&["doctor", "-n", &ns]);
    assert!(!doctor.ok);
    assert!(doctor.stdout.contains("x509"), "{}", doctor.stdout);
    assert!(
        doctor.stdout.contains("the caBundle is not the CA"),
        "{}",
        doctor.stdout
    );
    assert!(patch(&original).ok);
}

/// Certificates rotated to a new CA while the API server keeps sending requests, the way certs/README.md
/// says to in provided mode: trust both CAs, replace the Secret the pods mount (the kubelet updates their volume, the
/// webhook re-reads its files), wait until both pods serve the new certificate, then trust only the new CA. Not one
/// admission may fail.
#[test]
fn certificate_rotation_under_load_fails_no_admission() {
    require_cluster!();
    let _webhook = webhook_exclusive();
    let ns = namespace("e2e-rotate", &[("team", "a")]);
    let object = in_namespace(&fixture(FLINK_PIPELINE), &ns);
    let reloads_before = webhook_metric_sum("beamstack_webhook_certificate_reloads_total{result=\"loaded\"}");
    let load = AdmissionLoad::start(&object);
    let mut current_ca = base64_decode(&provided_ca_base64());
    let started = Instant::now();
    for round in 0..3 {
        let next = root().join(format!(".e2e/rotation-{round}"));
        new_webhook_certificates(&next);
        let new_ca = std::fs::read(next.join("ca.crt")).unwrap();
        set_ca_bundle(&base64_of(&[current_ca.as_slice(), new_ca.as_slice()].concat()));
        std::thread::sleep(Duration::from_secs(1));
        replace_webhook_secret(&next);
        wait_until_pods_serve(&new_ca, 2, Duration::from_secs(90));
        set_ca_bundle(&base64_of(&new_ca));
        std::thread::sleep(Duration::from_secs(1));
        current_ca = new_ca;
    }
    let sent = load.finish_without_failures(20);
    let reloads = webhook_metric_sum("beamstack_webhook_certificate_reloads_total{result=\"loaded\"}");
    assert!(
        reloads >= reloads_before + 6.0,
        "{reloads_before} -> {reloads} reloads over 2 pods and 3 rotations"
    );
    eprintln!(
        "certificate rotation: {sent} admissions during 3 CA rotations through the Secret in {:.0?}, 0 failed",
        started.elapsed()
    );
}

const PROMETHEUS: &str = "http://127.0.0.1:29090";

/// An instant query against the harness's Prometheus.
fn prometheus_query(expr: &str) -> Value {
    let output = std::process::Command::new("curl")
        .args(["-fsS", "-G", &format!("{PROMETHEUS}/api/v1/query"), "--data-urlencode"])
        .arg(format!("query={expr}"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{expr}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Scenario (monitoring): a real Prometheus scrapes the webhook; every panel query of the shipped Grafana dashboard
/// returns data from it; `kubectl beam status` reads the pipeline's figures from it
/// (scripts/flink-reporter-standin.py plays Flink's reporter) with the Prometheus URL from the chart's plugin defaults.
#[test]
fn prometheus_answers_every_dashboard_panel_and_status_reads_it() {
    require_cluster!();
    let _webhook = webhook_shared();
    let ns = namespace("e2e-monitoring", &[("team", "a")]);
    assert!(apply(&tenant("e2e-monitored", &ns, r#"cpu: "20", jobs: 5"#)).ok);
    // Admissions of every outcome: a patched job, and a denial (no team label).
    assert!(apply(&in_namespace(&fixture(FLINK_PIPELINE), &ns)).ok);
    let unlabelled = in_namespace(&fixture(FLINK_PIPELINE), &ns).replace("  labels:\n    team: a\n", "");
    assert!(!apply(&unlabelled.replace("name: wordcount\n", "name: unlabelled\n")).ok);

    let dashboard: Value = serde_json::from_str(&fixture("charts/beamstack/dashboards/beamstack.json")).unwrap();
    let queries: Vec<(String, String)> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| {
            let title = panel["title"].as_str().unwrap().to_owned();
            panel["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |target| (title.clone(), target["expr"].as_str().unwrap().to_owned()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(queries.len() >= 10, "{queries:?}");
    // Scrapes run every second; rates need two samples of a series.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (title, expr) in &queries {
        loop {
            let answer = prometheus_query(expr);
            assert_eq!(answer["status"], "success", "{title}: {expr}: {answer}");
            if answer["data"]["result"]
                .as_array()
                .is_some_and(|result| !result.is_empty())
            {
                break;
            }
            assert!(Instant::now() < deadline, "panel {title:?} has no data: {expr}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let budget = prometheus_query(r#"beamstack_webhook_tenant_budget{tenant="e2e-monitored",resource="cpu"}"#);
    assert_eq!(budget["data"]["result"][0]["value"][1], "20", "{budget}");

    run_wordcount_as_wc(&ns);
    let status = beam(&["status", "wc", "-n", &ns, "-o", "json"]);
    assert!(status.ok, "{}", status.stderr);
    let report: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(report["metrics"]["recordsPerSecond"], 1500.5, "{report:#}");
    assert_eq!(report["metrics"]["backpressure"], 0.25, "{report:#}");
    let age = report["metrics"]["checkpointAgeSeconds"].as_f64().unwrap();
    assert!((0.0..30.0).contains(&age), "a checkpoint every 2 s: {age}");
    assert_eq!(report["tenant"], Value::Null, "no beamstack.dev/tenant label was set");
    let text = beam(&["status", "wc", "-n", &ns]);
    assert!(
        text.stdout.contains("Throughput:   1500.5 records/s"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("Backpressure: 25.0 %"), "{}", text.stdout);
    let doctor = beam(&["doctor", "-n", &ns, "-o", "json"]);
    let checks: Value = serde_json::from_str(&doctor.stdout).unwrap();
    let prometheus = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Prometheus")
        .unwrap();
    assert_eq!(prometheus["verdict"], "pass", "{prometheus}");
    let _ = kubectl(&["delete", "tenant", "e2e-monitored"]);
}

/// Session clusters: `cluster create` through the webhook (the worker pool injected), `cluster list`, `cluster
/// delete`; and `version` names the API server and the chart's webhook Deployment.
#[test]
fn session_clusters_and_versions() {
    require_cluster!();
    let _webhook = webhook_shared();
    let ns = namespace("e2e-cluster", &[]);
    let created = beam(&[
        "cluster",
        "create",
        "shared",
        "-n",
        &ns,
        "-l",
        "team=a",
        "--task-managers",
        "3",
    ]);
    assert!(created.ok, "{}", created.stderr);
    let stored = get("flinkdeployment", &ns, "shared");
    assert_eq!(stored["spec"]["taskManager"]["replicas"], 3);
    let containers = stored.pointer("/spec/taskManager/podTemplate/spec/containers").unwrap();
    assert!(
        containers
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "beam-worker-pool"),
        "{stored:#}"
    );
    let listed = beam(&["cluster", "list", "-n", &ns]);
    assert!(listed.ok && listed.stdout.contains("shared"), "{listed:?}");
    let session = beam(&[
        "run",
        "examples/beam/wordcount_minimal.yaml",
        "-n",
        &ns,
        "-l",
        "team=a",
        "--session",
        "shared",
    ]);
    assert!(session.ok, "{}", session.stderr);
    let launcher = get("job", &ns, "wordcount-minimal");
    assert_eq!(
        launcher["metadata"]["annotations"]["beamstack.dev/session-cluster"],
        "shared"
    );
    let deleted = beam(&["cluster", "delete", "shared", "-n", &ns]);
    assert!(deleted.ok, "{}", deleted.stderr);
    assert!(!kubectl(&["get", "flinkdeployment", "shared", "-n", &ns]).ok);

    let versions: Value = serde_json::from_str(&beam(&["version", "-o", "json"]).stdout).unwrap();
    assert_eq!(versions["server"], "v1.34.4", "{versions}");
    assert_eq!(versions["webhook"][0]["namespace"], "beamstack", "{versions}");
    assert_eq!(versions["webhook"][0]["version"], "0.1.0", "{versions}");
}
