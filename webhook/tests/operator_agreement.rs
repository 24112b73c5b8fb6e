//! The webhook agrees with the operators on what an object already says, through the router: the Flink operator's
//! health-check canary is left alone, plain FlinkDeployments may use every Flink version the operator runs, no
//! default overrides what a pod template, `sparkConf` or `flinkConfiguration` settles, and operator 1.16's
//! `resources` (Kubernetes requests and limits) are read, defaulted and checked in place of `resource`.

mod common;

use beamstack::config::Config;
use beamstack::kinds::RunnerKind;
use beamstack::policy::demand::demand_of;
use beamstack::units::{Bytes, Millicores};
use common::*;
use serde_json::{Value, json};

const GIB: u64 = 1 << 30;

fn changed_paths(patch: &json_patch::Patch) -> Vec<String> {
    serde_json::to_value(patch)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["path"].as_str().unwrap().to_owned())
        .collect()
}

/// Mutates, checks that a second pass changes nothing, and returns the result.
async fn settled(object: &Value) -> (Value, json_patch::Patch) {
    let state = state(Config::default());
    let (patched, patch) = mutated(&state, "CREATE", object).await;
    let (_, again) = mutated(&state, "CREATE", &patched).await;
    assert!(again.0.is_empty(), "a second pass must not patch: {again:?}");
    (patched, patch)
}

async fn verdict(object: &Value) -> Value {
    validated(&state(Config::default()), "CREATE", object, None).await
}

#[tokio::test]
async fn the_flink_operators_canary_is_left_alone() {
    // The operator's own canary (examples/canary.yaml): no spec at all, which its validator skips on purpose.
    let canary = json!({
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkDeployment",
        "metadata": {"name": "canary", "namespace": "team-a", "labels": {"flink.apache.org/canary": "true"}}
    });
    let state = state(Config::default());
    let response = answer(&state, "/mutate", &review("CREATE", &canary, None)).await;
    assert_eq!(response["allowed"], true);
    assert!(
        response.get("patch").is_none(),
        "no spec, no annotation added: {response}"
    );
    assert_eq!(verdict(&canary).await["allowed"], true);
    // The operator compares the label's value ignoring case; a session-job canary is the operator's too.
    let mut session_job = fixture("flink-session-job");
    session_job["metadata"]["labels"] = json!({"flink.apache.org/canary": "TRUE"});
    session_job["spec"] = json!({});
    assert_eq!(verdict(&session_job).await["allowed"], true);
    assert_eq!(demand_of(RunnerKind::FlinkDeployment, &canary), Default::default());
    // Any other value of the label makes an ordinary object, judged as such.
    let mut ordinary = canary.clone();
    ordinary["metadata"]["labels"]["flink.apache.org/canary"] = json!("false");
    let response = verdict(&ordinary).await;
    assert_eq!(response["allowed"], false);
    assert!(
        denied_fields(&response).contains(&"spec.flinkVersion".to_owned()),
        "{response}"
    );
}

#[tokio::test]
async fn plain_flink_deployments_may_use_every_version_the_operator_runs() {
    for (version, allowed) in [
        ("v1_15", true),
        ("v1_16", true),
        ("v1_18", true),
        ("v2_2", true),
        ("v1_14", false),
    ] {
        let mut plain = fixture("flink-plain");
        plain["spec"]["flinkVersion"] = json!(version);
        let (patched, _) = settled(&plain).await;
        let response = verdict(&patched).await;
        assert_eq!(response["allowed"], allowed, "{version}: {response}");
        if !allowed {
            let message = response["status"]["message"].as_str().unwrap();
            assert!(
                message.contains("not supported by the Flink operator: use v1_15 or newer"),
                "{message}"
            );
        }
    }
    // A Beam pipeline needs a Flink version Beam publishes a runner for: the configured set.
    let mut pipeline = fixture("flink-pipeline");
    pipeline["spec"]["flinkVersion"] = json!("v1_16");
    let (patched, _) = settled(&pipeline).await;
    let response = verdict(&patched).await;
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("`v1_16` is not supported by a Beam pipeline: use one of v1_19"),
        "{message}"
    );
}

#[tokio::test]
async fn a_spark_driver_template_keeps_its_service_account() {
    for key in ["serviceAccountName", "serviceAccount"] {
        let mut spark = fixture("spark-plain");
        spark["spec"]["driver"]["template"] = json!({"spec": {key: "etl-runner"}});
        let (patched, patch) = settled(&spark).await;
        // spark-submit would give the driver spark.kubernetes.authenticate.driver.serviceAccountName over the template.
        assert!(
            patched["spec"]["driver"].get("serviceAccount").is_none(),
            "{key}: {patch:?}"
        );
        assert_eq!(patched["spec"]["driver"]["template"]["spec"][key], "etl-runner");
        assert_valid_against_crd(&patched);
        assert_eq!(verdict(&patched).await["allowed"], true);
    }
    let (patched, _) = settled(&fixture("spark-plain")).await;
    assert_eq!(
        patched["spec"]["driver"]["serviceAccount"], "spark-operator-spark",
        "without a template account the default fills it"
    );
}

#[tokio::test]
async fn spark_conf_settles_cores_memory_and_executors() {
    let mut spark = fixture("spark-plain");
    spark["spec"]["sparkConf"] = json!({
        "spark.driver.cores": "2",
        "spark.driver.memory": "3g",
        "spark.executor.memory": "4g",
        "spark.executor.instances": "5"
    });
    let (patched, patch) = settled(&spark).await;
    let paths = changed_paths(&patch);
    for unset in [
        "/spec/driver/cores",
        "/spec/driver/memory",
        "/spec/executor/memory",
        "/spec/executor/instances",
    ] {
        assert!(
            !paths.contains(&unset.to_owned()),
            "{unset} is settled by sparkConf: {paths:?}"
        );
    }
    assert_eq!(
        patched["spec"]["executor"]["cores"], 1,
        "what sparkConf leaves open still gets its default"
    );
    assert_eq!(verdict(&patched).await["allowed"], true);
    // Tenant demand reads what Spark will use: 2 cores and 3g for the driver, five executors of 4g.
    let demand = demand_of(RunnerKind::SparkApplication, &patched);
    assert_eq!(demand.workers, 5);
    assert_eq!(demand.cpu, Millicores(2000 + 5 * 1000));
    // Scala: overhead max(10%, rounded up; 384Mi) on each pod.
    let pod = |gib: u64| gib * GIB + (gib * GIB).div_ceil(10).max(384 << 20);
    assert_eq!(demand.memory, Bytes(pod(3) + 5 * pod(4)));

    // Dynamic allocation turned on in sparkConf: no fixed executor count.
    let mut dynamic = fixture("spark-plain");
    dynamic["spec"]["sparkConf"] =
        json!({"spark.dynamicAllocation.enabled": "true", "spark.dynamicAllocation.maxExecutors": "3"});
    let (patched, _) = settled(&dynamic).await;
    assert!(patched["spec"]["executor"].get("instances").is_none());
    assert_eq!(demand_of(RunnerKind::SparkApplication, &patched).workers, 3);
}

#[tokio::test]
async fn flink_configuration_settles_the_account_memory_and_cores() {
    let mut flink = fixture("flink-plain");
    flink["spec"]["flinkConfiguration"] = json!({
        "taskmanager.numberOfTaskSlots": "2",
        "kubernetes.service-account": "stream-jobs",
        "jobmanager.memory.process.size": "1600m",
        "kubernetes.jobmanager.cpu.amount": "0.5",
        "taskmanager.memory.process.size": "3g",
        "kubernetes.taskmanager.cpu": "2"
    });
    let (patched, patch) = settled(&flink).await;
    // The operator requires spec.serviceAccount and lets it override kubernetes.service-account: it gets the same.
    assert_eq!(patched["spec"]["serviceAccount"], "stream-jobs");
    for role in ["jobManager", "taskManager"] {
        assert!(
            patched["spec"]
                .get(role)
                .is_none_or(|spec| spec.get("resource").is_none()),
            "{role}: {patch:?}"
        );
    }
    assert_eq!(verdict(&patched).await["allowed"], true);
    // One JobManager of 1600m and half a core, one TaskManager (parallelism 2, two slots) of 3g and two cores.
    let demand = demand_of(RunnerKind::FlinkDeployment, &patched);
    assert_eq!(demand.memory, Bytes((1600 << 20) + 3 * GIB));
    assert_eq!(demand.cpu, Millicores(500 + 2000));

    // Memory set nowhere is refused, naming where to set it.
    let mut flink = fixture("flink-plain");
    flink["spec"]["serviceAccount"] = json!("flink");
    flink["spec"]["jobManager"] = json!({"resource": {"cpu": 1}});
    flink["spec"]["taskManager"] = json!({"resource": {"cpu": 1, "memory": "2g"}});
    let response = verdict(&flink).await;
    assert_eq!(
        denied_fields(&response),
        ["spec.jobManager.resource.memory"],
        "{response}"
    );
}

#[tokio::test]
async fn flink_resources_are_read_defaulted_and_checked_in_place_of_resource() {
    let mut flink = fixture("flink-plain");
    flink["spec"]["jobManager"] =
        json!({"resources": {"requests": {"cpu": "500m"}, "limits": {"memory": "2Gi", "cpu": 1}}});
    flink["spec"]["taskManager"] = json!({"resources": {"requests": {"ephemeral-storage": "1Gi"}}});
    let (patched, patch) = settled(&flink).await;
    let paths = changed_paths(&patch);
    assert!(
        !paths
            .iter()
            .any(|path| path.contains("/resource/") || path.ends_with("/resource")),
        "{paths:?}"
    );
    // The JobManager's memory is its limit (Kubernetes makes that the request): nothing to fill.
    assert_eq!(
        patched["spec"]["jobManager"]["resources"],
        flink["spec"]["jobManager"]["resources"]
    );
    // The TaskManager had neither: the defaults go into its requests, as Kubernetes quantities.
    assert_eq!(
        patched["spec"]["taskManager"]["resources"]["requests"],
        json!({"ephemeral-storage": "1Gi", "memory": "2Gi", "cpu": "1"})
    );
    let errors = schema_errors(&flink_main_crd_validator(), &patched);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(verdict(&patched).await["allowed"], true);
    let demand = demand_of(RunnerKind::FlinkDeployment, &patched);
    assert_eq!(demand.memory, Bytes(2 * GIB + 2 * GIB));
    assert_eq!(demand.cpu, Millicores(500 + 1000));

    // A request above its limit is refused (Kubernetes refuses such a pod; Flink a limit factor below 1), and so is
    // a quantity neither can read; `resource` beside `resources` is ignored by the operator, and by the checks.
    let mut flink = fixture("flink-plain");
    flink["spec"]["serviceAccount"] = json!("flink");
    flink["spec"]["jobManager"] = json!({"resources": {"requests": {"memory": "3Gi"}, "limits": {"memory": "2Gi"}}});
    flink["spec"]["taskManager"] = json!({
        "resource": {"memory": "lots", "cpu": -1},
        "resources": {"requests": {"memory": "1Gi", "cpu": "half"}}
    });
    let response = verdict(&flink).await;
    assert_eq!(response["allowed"], false);
    assert_eq!(
        denied_fields(&response),
        [
            "spec.jobManager.resources.requests.memory",
            "spec.taskManager.resources.requests.cpu"
        ],
        "{response}"
    );
    let message = response["status"]["message"].as_str().unwrap();
    assert!(message.contains("3Gi is above the limit 2Gi"), "{message}");
}
