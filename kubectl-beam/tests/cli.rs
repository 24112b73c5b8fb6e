//! The plugin binary as kubectl runs it.

use std::path::PathBuf;
use std::process::{Command, Output};

fn beam(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-beam"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn version_names_the_release() {
    let output = beam(&["version", "--client"]);
    assert!(output.status.success());
    assert_eq!(
        text(&output.stdout).trim(),
        format!("Plugin:  kubectl-beam {}", env!("CARGO_PKG_VERSION"))
    );
    // With no cluster, the server's and webhook's versions are unknown, and the command still succeeds.
    let output = Command::new(env!("CARGO_BIN_EXE_kubectl-beam"))
        .args(["version", "-o", "json"])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .unwrap();
    assert!(output.status.success());
    let versions: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(versions["plugin"], env!("CARGO_PKG_VERSION"));
    assert!(
        versions["server"].as_str().unwrap().starts_with("unknown ("),
        "{versions}"
    );
}

#[test]
fn completion_speaks_kubectls_plugin_protocol() {
    let output = beam(&["__complete", "st"]);
    let stdout = text(&output.stdout);
    assert!(output.status.success());
    assert!(stdout.lines().any(|line| line.starts_with("status\t")), "{stdout}");
    assert_eq!(stdout.lines().last(), Some(":4"));
    // The helper kubectl runs for `kubectl beam <TAB>` hands its words to the plugin.
    let helper = std::fs::read_to_string(repo().join("plugins/kubectl_complete-beam")).unwrap();
    assert!(helper.contains("kubectl-beam __complete \"$@\""), "{helper}");
}

#[test]
fn the_shipped_policies_pass_their_own_tests() {
    let output = beam(&["policy", "test", "policies/"]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", text(&output.stderr));
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    for policy in [
        "tenant-budget",
        "per-job-caps",
        "image-registries",
        "flink-versions",
        "upgrade-mode-dirs",
        "harness-versions",
        "required-labels",
        "no-privileged-sidecars",
        "spark-dynamic-allocation",
        "tenant-defaults",
    ] {
        assert!(stdout.contains(policy), "no test cases for {policy}:\n{stdout}");
    }
}

#[test]
fn a_wrong_expectation_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("policy.yaml"),
        "apiVersion: beamstack.dev/v1alpha1\nkind: RunnerPolicy\nmetadata: {name: small}\nspec:\n  validations:\n    - expression: \"object.spec.job.parallelism <= 2\"\n      message: too parallel\n",
    )
    .unwrap();
    let resource = repo().join("policies/tests/resources/flink-pipeline.yaml");
    std::fs::write(
        dir.path().join("small.test.yaml"),
        format!(
            "apiVersion: beamstack.dev/v1alpha1\nkind: PolicyTest\nmetadata: {{name: small}}\nspec:\n  policies: [policy.yaml]\n  cases:\n    - name: claims 8 is fine\n      resource: {}\n      set: {{spec.job.parallelism: 8}}\n      expect: allow\n",
            resource.display()
        ),
    )
    .unwrap();
    let output = beam(&["policy", "test", dir.path().to_str().unwrap()]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL small / claims 8 is fine") && stdout.contains("too parallel"),
        "{stdout}"
    );
    assert!(stdout.contains("0 passed, 1 failed"), "{stdout}");
    let json = beam(&["policy", "test", dir.path().to_str().unwrap(), "-o", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["failed"], 1);
    assert_eq!(report["cases"][0]["got"], "deny");
}

#[test]
fn a_broken_policy_file_is_named_with_line_and_cel_position() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.yaml"),
        "# a comment\napiVersion: beamstack.dev/v1alpha1\nkind: RunnerPolicy\nmetadata: {name: broken}\nspec:\n  validations:\n    - expression: \"object.spec.job.parallelism <=\"\n",
    )
    .unwrap();
    let output = beam(&[
        "policy",
        "eval",
        "--policies",
        dir.path().to_str().unwrap(),
        "policies/tests/resources/flink-pipeline.yaml",
    ]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("broken.yaml:7:"), "{stderr}");
    assert!(
        stderr.contains("spec.validations[0].expression: CEL line 1, column"),
        "{stderr}"
    );
}

#[test]
fn eval_prints_the_verdict_and_the_patch() {
    let usage = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(usage.path(), "team-a: {cpu: \"9\", memory: 10Gi, jobs: 1}\n").unwrap();
    let tenants = tempfile::tempdir().unwrap();
    for file in ["tenant-budget.yaml", "tenant-defaults.yaml"] {
        std::fs::copy(repo().join("policies").join(file), tenants.path().join(file)).unwrap();
    }
    std::fs::write(
        tenants.path().join("team-a.yaml"),
        "apiVersion: beamstack.dev/v1alpha1\nkind: Tenant\nmetadata: {name: team-a}\nspec:\n  namespaces: [team-a]\n  budget: {cpu: \"10\"}\n  defaults: {nodeSelector: {pool: team-a}}\n",
    )
    .unwrap();
    let output = beam(&[
        "policy",
        "eval",
        "--policies",
        tenants.path().to_str().unwrap(),
        "--usage",
        usage.path().to_str().unwrap(),
        "policies/tests/resources/flink-pipeline.yaml",
    ]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "denied objects exit 1: {stdout}");
    assert!(stdout.contains("FlinkDeployment team-a/wordcount"), "{stdout}");
    assert!(stdout.contains("DENIED"), "{stdout}");
    assert!(
        stdout.contains("tenant team-a would use 13 cpu: it runs 9, this job asks for 4, the budget is 10"),
        "{stdout}"
    );
    assert!(stdout.contains("/spec/podTemplate"), "the patch is shown: {stdout}");
}

/// The exit statuses `--help` documents: 1 when the answer is no, 2 when the command could not run.
#[test]
fn exit_status_says_no_with_1_and_could_not_run_with_2() {
    let help = text(&beam(&["--help"]).stdout);
    assert!(
        help.contains("Exit status") && help.contains("2  the command could not run"),
        "{help}"
    );

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "pipeline:\n  transforms:\n    - type: NoSuchTransform\n").unwrap();
    let invalid = beam(&["validate", broken.to_str().unwrap()]);
    let stderr = text(&invalid.stderr);
    assert_eq!(invalid.status.code(), Some(1), "problems in the pipeline: {stderr}");
    assert!(stderr.contains("NoSuchTransform"), "{stderr}");

    let unreadable_option = beam(&["validate", broken.to_str().unwrap(), "--set", "no-equals-sign"]);
    assert_eq!(
        unreadable_option.status.code(),
        Some(2),
        "an option it cannot read: {}",
        text(&unreadable_option.stderr)
    );

    let no_cluster = Command::new(env!("CARGO_BIN_EXE_kubectl-beam"))
        .args(["status", "orders", "-n", "data"])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .unwrap();
    assert_eq!(
        no_cluster.status.code(),
        Some(2),
        "no cluster to ask: {}",
        text(&no_cluster.stderr)
    );

    let usage = beam(&["run"]);
    assert_eq!(usage.status.code(), Some(2), "a usage error");
}
