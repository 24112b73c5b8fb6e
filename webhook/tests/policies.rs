//! RunnerPolicies and Tenants through the admission router: each action, mutations, tenant budgets against what
//! the tenant already runs, reloads that keep the last good set, the cost limit, and the webhook judging its own kinds.

mod common;

use beamstack::admission::Admission;
use beamstack::config::Config;
use beamstack::kinds::RunnerKind;
use beamstack::policy::demand::demand_of;
use beamstack::policy::engine::Engine;
use beamstack::policy::load::{self, DirectorySource, Reload};
use beamstack::policy::usage::ObjectKey;
use common::*;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use webhook::server::AppState;

fn engine_with(yaml: &str) -> Arc<Engine> {
    let engine = Engine::standard();
    let documents = load::documents(Path::new("inline.yaml"), yaml).unwrap();
    let (set, _, _) = load::build(&documents, engine.runtime()).unwrap_or_else(|errors| panic!("{errors:?}"));
    engine.install(set);
    engine
}

fn state_for(engine: &Arc<Engine>) -> Arc<AppState> {
    AppState::new(Admission::with_engine(Config::default(), Arc::clone(engine)))
}

const FOUR_ACTIONS: &str = r#"
apiVersion: beamstack.dev/v1alpha1
kind: RunnerPolicy
metadata: {name: registry}
spec:
  action: Deny
  validations:
    - expression: "!has(object.spec.image) || object.spec.image.startsWith('apache/')"
      messageExpression: "'image ' + object.spec.image + ' is not from docker.io/apache'"
      fieldPath: spec.image
---
apiVersion: beamstack.dev/v1alpha1
kind: RunnerPolicy
metadata: {name: team-label}
spec:
  action: Warn
  validations:
    - expression: "has(object.metadata.labels) && 'team' in object.metadata.labels"
      message: "add a team label: it will be required from next month"
---
apiVersion: beamstack.dev/v1alpha1
kind: RunnerPolicy
metadata: {name: big-parallelism}
spec:
  action: Audit
  match: {kinds: [FlinkDeployment]}
  validations:
    - expression: "!has(object.spec.job) || object.spec.job.parallelism <= 4"
      message: "parallelism above 4"
---
apiVersion: beamstack.dev/v1alpha1
kind: RunnerPolicy
metadata: {name: spot-nodes}
spec:
  match: {kinds: [FlinkDeployment], operations: [CREATE]}
  mutations:
    - path: spec.podTemplate.spec.nodeSelector
      expression: "{'pool': 'spot'}"
    - path: spec.podTemplate.spec.tolerations
      expression: "[{'key': 'spot', 'operator': 'Exists', 'effect': 'NoSchedule'}]"
"#;

#[tokio::test]
async fn deny_warn_audit_and_mutation_from_runner_policies() {
    let state = state_for(&engine_with(FOUR_ACTIONS));
    let mut object = fixture("flink-pipeline");
    object["spec"]["job"]["parallelism"] = json!(8);

    // Mutation: the policy's values, then the built-in defaults, in one patch; the annotation names the policy.
    let (mutated, _) = mutated(&state, "CREATE", &object).await;
    assert_eq!(
        mutated["spec"]["podTemplate"]["spec"]["nodeSelector"],
        json!({"pool": "spot"})
    );
    assert_eq!(mutated["spec"]["podTemplate"]["spec"]["tolerations"][0]["key"], "spot");
    assert_eq!(
        mutated["spec"]["podTemplate"]["spec"]["containers"][0]["env"][0]["name"], "TZ",
        "kept"
    );
    let note = mutated["metadata"]["annotations"]["beamstack.dev/mutations"]
        .as_str()
        .unwrap();
    assert!(
        note.contains("spec.podTemplate.spec.nodeSelector (policy spot-nodes)"),
        "{note}"
    );
    assert!(note.contains("spec.serviceAccount"), "{note}");
    let again = answer(&state, "/mutate", &review("UPDATE", &mutated, Some(&mutated))).await;
    assert!(
        again.get("patch").is_none(),
        "policy mutations are idempotent too: {again}"
    );

    // Warn and Audit: allowed, with a warning kubectl prints and an audit annotation.
    let response = validated(&state, "CREATE", &mutated, None).await;
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(
        response["warnings"],
        json!(["team-label: add a team label: it will be required from next month"])
    );
    assert_eq!(
        response["auditAnnotations"]["beamstack.dev/big-parallelism"],
        "parallelism above 4"
    );

    // Deny: refused with the policy's message and field, beside any built-in violation.
    let mut bad = mutated.clone();
    bad["spec"]["image"] = json!("quay.io/someone/flink:1.20");
    bad["spec"]["job"]["parallelism"] = json!(0);
    let response = validated(&state, "CREATE", &bad, None).await;
    assert_eq!(response["allowed"], false);
    assert_eq!(denied_fields(&response), ["spec.job.parallelism", "spec.image"]);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("spec.image: [policy registry] image quay.io/someone/flink:1.20 is not from docker.io/apache"),
        "{message}"
    );
    assert!(
        response["warnings"]
            .as_array()
            .is_some_and(|warnings| !warnings.is_empty()),
        "warnings come with denials too"
    );

    let metrics = state.metrics.encode();
    for line in [
        "beamstack_webhook_policy_evaluations_total{policy=\"registry\",outcome=\"denied\"} 1",
        "beamstack_webhook_policy_evaluations_total{policy=\"team-label\",outcome=\"warned\"} 2",
        "beamstack_webhook_policy_evaluations_total{policy=\"spot-nodes\",outcome=\"mutated\"} 1",
        "beamstack_webhook_denials_total{rule=\"policy/registry\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    assert!(
        metrics.contains("beamstack_webhook_policy_duration_seconds_bucket{le=\"0.00005\",policy=\"registry\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn policies_match_only_their_kinds_operations_and_selectors() {
    let engine = engine_with(
        r#"
apiVersion: beamstack.dev/v1alpha1
kind: RunnerPolicy
metadata: {name: spark-only}
spec:
  match:
    kinds: [SparkApplication]
    operations: [UPDATE]
    objectSelector: {matchLabels: {tier: gold}}
  validations:
    - expression: "false"
      message: "never"
"#,
    );
    let state = state_for(&engine);
    let mut spark = mutated(&state, "CREATE", &fixture("spark-plain")).await.0;
    assert_eq!(
        validated(&state, "CREATE", &spark, None).await["allowed"],
        true,
        "CREATE is not matched"
    );
    assert_eq!(
        validated(&state, "UPDATE", &spark, Some(&spark)).await["allowed"],
        true,
        "no gold label"
    );
    spark["metadata"]["labels"] = json!({"tier": "gold"});
    assert_eq!(
        validated(&state, "UPDATE", &spark, Some(&spark)).await["allowed"],
        false
    );
    let flink = mutated(&state, "CREATE", &fixture("flink-plain")).await.0;
    assert_eq!(
        validated(&state, "UPDATE", &flink, Some(&flink)).await["allowed"],
        true,
        "not a SparkApplication"
    );
}

const BUDGET: &str = r#"
apiVersion: beamstack.dev/v1alpha1
kind: Tenant
metadata: {name: team-a}
spec:
  namespaces: [team-a]
  budget: {cpu: "5", memory: 40Gi, jobs: 10}
---
apiVersion: beamstack.dev/v1alpha1
kind: RunnerPolicy
metadata: {name: tenant-budget}
spec:
  matchConditions:
    - name: has-tenant
      expression: "tenant != null"
  validations:
    - expression: "tenant.budget.cpu == null || !usage.cpu.add(demand.cpu).isGreaterThan(tenant.budget.cpu)"
      messageExpression: >-
        'tenant ' + tenant.name + ' would use ' + usage.cpu.add(demand.cpu).asString() + ' cpu: it runs ' +
        usage.cpu.asString() + ', this job asks for ' + demand.cpu.asString() + ', the budget is ' +
        tenant.budget.cpu.asString()
"#;

/// A flink-plain FlinkDeployment named `name`, with `task_managers` TaskManagers, mutated as the API server would.
async fn job(state: &Arc<AppState>, name: &str, task_managers: i64) -> Value {
    let mut object = fixture("flink-plain");
    object["metadata"]["name"] = json!(name);
    object["spec"]["taskManager"] = json!({"replicas": task_managers});
    mutated(state, "CREATE", &object).await.0
}

#[tokio::test]
async fn a_tenant_budget_fills_up_and_then_refuses_with_usage_demand_and_budget() {
    let engine = engine_with(BUDGET);
    let state = state_for(&engine);
    // Each job: 1 JobManager + 1 TaskManager at 1 cpu each = 2 cpu. Budget 5: two fit, the third does not.
    for name in ["job-1", "job-2"] {
        let object = job(&state, name, 1).await;
        let response = validated(&state, "CREATE", &object, None).await;
        assert_eq!(response["allowed"], true, "{name}: {response}");
    }
    let third = job(&state, "job-3", 1).await;
    let response = validated(&state, "CREATE", &third, None).await;
    assert_eq!(
        response["allowed"], false,
        "the reservations of the first two count before any watch sees them"
    );
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("tenant team-a would use 6 cpu: it runs 4, this job asks for 2, the budget is 5"),
        "{message}"
    );

    // The watch reports the two jobs; one is deleted: there is room again.
    let first = job(&state, "job-1", 1).await;
    engine.with_ledger(|ledger| {
        for name in ["job-1", "job-2"] {
            ledger.observe(
                ObjectKey::new(RunnerKind::FlinkDeployment, "team-a", name),
                demand_of(RunnerKind::FlinkDeployment, &first),
            );
        }
        ledger.forget(&ObjectKey::new(RunnerKind::FlinkDeployment, "team-a", "job-2"));
    });
    assert_eq!(validated(&state, "CREATE", &third, None).await["allowed"], true);

    // Other namespaces are not team-a's: no tenant, the policy does not apply.
    let mut elsewhere = job(&state, "job-9", 10).await;
    elsewhere["metadata"]["namespace"] = json!("unowned");
    let mut review = review("CREATE", &elsewhere, None);
    review["request"]["namespace"] = json!("unowned");
    assert_eq!(answer(&state, "/validate", &review).await["allowed"], true);
}

#[tokio::test]
async fn an_update_is_judged_on_the_difference() {
    let engine = engine_with(BUDGET);
    let state = state_for(&engine);
    let small = job(&state, "grows", 1).await; // 2 cpu
    let other = job(&state, "other", 1).await; // 2 cpu
    engine.with_ledger(|ledger| {
        ledger.observe(
            ObjectKey::new(RunnerKind::FlinkDeployment, "team-a", "grows"),
            demand_of(RunnerKind::FlinkDeployment, &small),
        );
        ledger.observe(
            ObjectKey::new(RunnerKind::FlinkDeployment, "team-a", "other"),
            demand_of(RunnerKind::FlinkDeployment, &other),
        );
    });
    // Growing to 2 TaskManagers: 3 cpu. Counted with its old self it would be 2 + 2 + 3 = 7; without, 2 + 3 = 5.
    let mut bigger = small.clone();
    bigger["spec"]["taskManager"]["replicas"] = json!(2);
    let response = validated(&state, "UPDATE", &bigger, Some(&small)).await;
    assert_eq!(response["allowed"], true, "{response}");
    // Growing to 3 TaskManagers: 2 + 4 = 6 > 5.
    bigger["spec"]["taskManager"]["replicas"] = json!(3);
    let response = validated(&state, "UPDATE", &bigger, Some(&small)).await;
    assert_eq!(response["allowed"], false);
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .contains("it runs 2, this job asks for 4"),
        "{response}"
    );
}

#[tokio::test]
async fn a_broken_policy_leaves_the_previous_set_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::standard();
    let source = DirectorySource::new(dir.path());
    let deny_all = r#"apiVersion: beamstack.dev/v1alpha1
kind: RunnerPolicy
metadata: {name: no-spark}
spec:
  match: {kinds: [SparkApplication]}
  validations:
    - expression: "false"
      message: "no Spark here"
"#;
    std::fs::write(dir.path().join("no-spark.yaml"), deny_all).unwrap();
    assert_eq!(
        source.poll(&engine),
        Reload::Installed {
            policies: 1,
            tenants: 0
        }
    );
    assert_eq!(source.poll(&engine), Reload::Unchanged);
    let state = state_for(&engine);
    let spark = mutated(&state, "CREATE", &fixture("spark-plain")).await.0;
    assert_eq!(validated(&state, "CREATE", &spark, None).await["allowed"], false);

    // A second file with a CEL syntax error: rejected with file, line and column; the old set stays.
    let broken = "apiVersion: beamstack.dev/v1alpha1\nkind: RunnerPolicy\nmetadata: {name: broken}\nspec:\n  validations:\n    - expression: \"object.spec.(\"\n";
    std::fs::write(dir.path().join("broken.yaml"), broken).unwrap();
    match source.poll(&engine) {
        Reload::Rejected(errors) => {
            let text = errors[0].to_string();
            assert!(text.contains("broken.yaml:6:"), "{text}");
            assert!(
                text.contains("spec.validations[0].expression: CEL line 1, column"),
                "{text}"
            );
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(engine.policy_set().policies.len(), 1);
    assert_eq!(
        validated(&state, "CREATE", &spark, None).await["allowed"],
        false,
        "the previous set is still in force"
    );

    // Fixed: the new set (both policies) goes in.
    std::fs::write(dir.path().join("broken.yaml"), broken.replace("object.spec.(", "true")).unwrap();
    assert_eq!(
        source.poll(&engine),
        Reload::Installed {
            policies: 2,
            tenants: 0
        }
    );
}

#[tokio::test]
async fn a_runaway_expression_is_cut_off_per_its_failure_policy() {
    let runaway = |failure_policy: &str| {
        format!(
            r#"apiVersion: beamstack.dev/v1alpha1
kind: RunnerPolicy
metadata: {{name: runaway}}
spec:
  failurePolicy: {failure_policy}
  validations:
    - expression: "object.spec.job.args.all(a, object.spec.job.args.all(b, object.spec.job.args.all(c, a + b + c != '')))"
"#
        )
    };
    let mut object = mutated(&state(Config::default()), "CREATE", &fixture("flink-plain"))
        .await
        .0;
    object["spec"]["job"]["args"] = json!((0..300).map(|index| format!("--arg{index}")).collect::<Vec<_>>());

    let state = state_for(&engine_with(&runaway("Fail")));
    let started = std::time::Instant::now();
    let response = validated(&state, "CREATE", &object, None).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("[policy runaway] validations[0] could not be evaluated: "),
        "{message}"
    );
    assert!(message.contains("limit exceeded"), "{message}");
    assert!(
        state
            .metrics
            .encode()
            .contains("policy_evaluations_total{policy=\"runaway\",outcome=\"error\"} 1")
    );

    let state = state_for(&engine_with(&runaway("Ignore")));
    assert_eq!(
        validated(&state, "CREATE", &object, None).await["allowed"],
        true,
        "Ignore lets it through"
    );
}

fn own(kind: &str, body: Value) -> Value {
    let mut object = json!({"apiVersion": "beamstack.dev/v1alpha1", "kind": kind, "metadata": {"name": "p"}});
    object["spec"] = body;
    object
}

#[tokio::test]
async fn the_webhook_refuses_policies_that_do_not_compile_and_bad_tenants() {
    let state = state(Config::default());
    let broken = own(
        "RunnerPolicy",
        json!({"validations": [{"expression": "object.spec.replicas >"}]}),
    );
    let response = validated(&state, "CREATE", &broken, None).await;
    assert_eq!(response["allowed"], false);
    assert_eq!(denied_fields(&response), ["spec.validations[0].expression"]);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(message.contains("CEL line 1, column"), "{message}");

    let typo = own(
        "RunnerPolicy",
        json!({"validations": [{"expression": "objet.spec.x == 1"}]}),
    );
    let message = validated(&state, "CREATE", &typo, None).await["status"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("undeclared reference to `objet`"), "{message}");

    let good = own(
        "RunnerPolicy",
        json!({"validations": [{"expression": "object.spec.job.parallelism <= 10"}]}),
    );
    assert_eq!(validated(&state, "CREATE", &good, None).await["allowed"], true);

    let tenant = own("Tenant", json!({"namespaces": ["a"], "budget": {"cpu": "lots"}}));
    let response = validated(&state, "CREATE", &tenant, None).await;
    assert_eq!(denied_fields(&response), ["spec.budget.cpu"]);
    let tenant = own(
        "Tenant",
        json!({"namespaces": ["a"], "budget": {"cpu": "20", "memory": "64Gi", "jobs": 5}}),
    );
    assert_eq!(validated(&state, "CREATE", &tenant, None).await["allowed"], true);
}

#[test]
fn shipped_policies_and_test_tenants_are_valid_against_our_crds() {
    use beamstack::policy::model::{RunnerPolicy, Tenant};
    use kube::CustomResourceExt;
    let schema = |crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition| {
        let schema = serde_json::to_value(&crd.spec.versions[0].schema.as_ref().unwrap().open_api_v3_schema).unwrap();
        jsonschema::validator_for(&schema).unwrap()
    };
    let (policy_schema, tenant_schema) = (schema(RunnerPolicy::crd()), schema(Tenant::crd()));
    let documents = load::read(&repo_path("policies")).unwrap();
    let mut checked = (0, 0);
    for document in &documents {
        let errors: Vec<String> = match document.value["kind"].as_str() {
            Some("RunnerPolicy") => {
                checked.0 += 1;
                policy_schema
                    .iter_errors(&document.value)
                    .map(|e| format!("{e} at {}", e.instance_path()))
                    .collect()
            }
            Some("PolicyTest") => {
                for tenant in document.value["spec"]["tenants"].as_array().into_iter().flatten() {
                    let mut tenant = tenant.clone();
                    tenant["apiVersion"] = json!("beamstack.dev/v1alpha1");
                    tenant["kind"] = json!("Tenant");
                    checked.1 += 1;
                    let errors: Vec<String> = tenant_schema.iter_errors(&tenant).map(|e| e.to_string()).collect();
                    assert!(
                        errors.is_empty(),
                        "{}:{}: {errors:?}",
                        document.file.display(),
                        document.line
                    );
                }
                Vec::new()
            }
            _ => Vec::new(),
        };
        assert!(
            errors.is_empty(),
            "{}:{}: {errors:?}",
            document.file.display(),
            document.line
        );
    }
    assert_eq!(checked.0, 11, "ten policy files, one with two policies");
    assert_eq!(checked.1, 7, "one tenant in each of seven test files");
    // The check has teeth.
    let bad = json!({"apiVersion": "beamstack.dev/v1alpha1", "kind": "RunnerPolicy", "metadata": {"name": "x"},
        "spec": {"action": "Block", "validations": [{"message": "no expression"}]}});
    assert_eq!(policy_schema.iter_errors(&bad).count(), 2);
}

const NO_JAVA_POOL: &str = r#"
apiVersion: beamstack.dev/v1alpha1
kind: RunnerPolicy
metadata: {name: no-java-pool}
spec:
  validations:
    - expression: "!containers.exists(c, c.container.name == 'beam-java-worker-pool')"
      messageExpression: >-
        images.filter(i, i.image.startsWith('ghcr.io/beamstack/beam-java-transforms:')).map(i, i.path + ' ' + i.image).join(', ')
"#;

#[tokio::test]
async fn the_injected_java_pool_is_seen_by_policies_and_counted_in_demand() {
    let state = state_for(&engine_with(NO_JAVA_POOL));
    let mut python_only = fixture("flink-pipeline");
    python_only["metadata"]["annotations"]["beamstack.dev/beam-version"] = json!("2.62.0");
    let python_only = mutated(&state, "CREATE", &python_only).await.0;
    assert_eq!(validated(&state, "CREATE", &python_only, None).await["allowed"], true);
    let mut object = fixture("flink-pipeline");
    object["metadata"]["annotations"]["beamstack.dev/java-transforms"] = json!("ReadFromPostgres");
    object["metadata"]["annotations"]["beamstack.dev/beam-version"] = json!("2.62.0");
    let with_java = mutated(&state, "CREATE", &object).await.0;
    let response = validated(&state, "CREATE", &with_java, None).await;
    assert_eq!(response["allowed"], false, "{response}");
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "spec.taskManager.podTemplate.spec.containers[2].image ghcr.io/beamstack/beam-java-transforms:2.62.0"
        ),
        "{message}"
    );
    // Each TaskManager pod asks for the pool's requests (500m, 1Gi) on top.
    let before = demand_of(RunnerKind::FlinkDeployment, &python_only);
    let after = demand_of(RunnerKind::FlinkDeployment, &with_java);
    let task_managers = after.workers;
    assert!(task_managers >= 1);
    assert_eq!(after.cpu.0 - before.cpu.0, 500 * task_managers);
    assert_eq!(after.memory.0 - before.memory.0, (1 << 30) * task_managers);
}
