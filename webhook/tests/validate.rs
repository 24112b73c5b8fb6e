//! `/validate` through the router: one case per built-in rule, all violations in one denial, transitions on UPDATE.
//!
//! Objects are mutated first, as the API server does (mutating webhooks run before validating ones), then broken in
//! exactly one way, so each case shows one rule firing alone.

mod common;

use beamstack::config::Config;
use common::*;
use serde_json::{Value, json};

async fn ready(name: &str) -> Value {
    mutated(&state(Config::default()), "CREATE", &fixture(name)).await.0
}

/// Asserts that `/validate` denies `object` naming exactly `field`, with a message containing `words`.
async fn assert_denied(config: &Config, object: &Value, field: &str, words: &str) {
    let response = validated(&state(config.clone()), "CREATE", object, None).await;
    assert_eq!(
        response["allowed"], false,
        "expected a denial on {field}, got {response}"
    );
    assert_eq!(denied_fields(&response), [field], "{response}");
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains(field) && message.contains(words),
        "{field}: {words:?} not in {message:?}"
    );
    assert_eq!(response["status"]["code"], 403);
}

type Breaker = fn(&mut Value);

#[tokio::test]
async fn clean_objects_are_admitted() {
    let state = state(Config::default());
    for name in [
        "flink-pipeline",
        "flink-plain",
        "flink-session-job",
        "spark-pipeline",
        "spark-plain",
        "scheduled-spark",
    ] {
        let response = validated(&state, "CREATE", &ready(name).await, None).await;
        assert_eq!(response["allowed"], true, "{name}: {response}");
    }
}

#[tokio::test]
async fn each_flink_rule_names_its_field() {
    let config = Config::default();
    let cases: Vec<(&str, Breaker, &str, &str)> = vec![
        (
            "name",
            |o| o["metadata"]["name"] = json!("Word_Count"),
            "metadata.name",
            "45 lowercase",
        ),
        (
            "long name",
            |o| o["metadata"]["name"] = json!("a".repeat(46)),
            "metadata.name",
            "at most 45",
        ),
        (
            "version missing",
            |o| {
                o["spec"].as_object_mut().unwrap().remove("flinkVersion");
            },
            "spec.flinkVersion",
            "required",
        ),
        (
            "version the operator no longer runs",
            |o| o["spec"]["flinkVersion"] = json!("v1_14"),
            "spec.flinkVersion",
            "not supported by the Flink operator",
        ),
        (
            "version garbage",
            |o| o["spec"]["flinkVersion"] = json!("1.20"),
            "spec.flinkVersion",
            "not a flinkVersion",
        ),
        (
            "service account",
            |o| o["spec"]["serviceAccount"] = json!(""),
            "spec.serviceAccount",
            "required",
        ),
        (
            "jm memory missing",
            |o| {
                o["spec"]["jobManager"]["resource"]
                    .as_object_mut()
                    .unwrap()
                    .remove("memory");
            },
            "spec.jobManager.resource.memory",
            "required",
        ),
        (
            "tm memory garbage",
            |o| o["spec"]["taskManager"]["resource"]["memory"] = json!("lots"),
            "spec.taskManager.resource.memory",
            "not a Flink memory size",
        ),
        (
            "tm memory zero",
            |o| o["spec"]["taskManager"]["resource"]["memory"] = json!("0m"),
            "spec.taskManager.resource.memory",
            "more than 0",
        ),
        (
            "jm memory from a configuration that does not read",
            |o| {
                o["spec"]["jobManager"]["resource"]
                    .as_object_mut()
                    .unwrap()
                    .remove("memory");
                o["spec"]["flinkConfiguration"]["jobmanager.memory.process.size"] = json!("lots");
            },
            "spec.flinkConfiguration.jobmanager.memory.process.size",
            "not a Flink memory size",
        ),
        (
            "tm cpu negative",
            |o| o["spec"]["taskManager"]["resource"]["cpu"] = json!(-1),
            "spec.taskManager.resource.cpu",
            "positive",
        ),
        (
            "replicas",
            |o| o["spec"]["taskManager"]["replicas"] = json!(0),
            "spec.taskManager.replicas",
            "whole number from 1 to 2147483647",
        ),
        (
            "ha",
            |o| o["spec"]["jobManager"]["replicas"] = json!(2),
            "spec.jobManager.replicas",
            "high availability",
        ),
        (
            "parallelism",
            |o| o["spec"]["job"]["parallelism"] = json!(0),
            "spec.job.parallelism",
            "whole number from 1 to 2147483647",
        ),
        (
            "forbidden key",
            |o| o["spec"]["flinkConfiguration"]["kubernetes.cluster-id"] = json!("x"),
            "spec.flinkConfiguration.kubernetes.cluster-id",
            "remove it",
        ),
        (
            "forbidden nested key",
            |o| o["spec"]["flinkConfiguration"]["kubernetes"] = json!({"namespace": "other"}),
            "spec.flinkConfiguration.kubernetes.namespace",
            "remove it",
        ),
        (
            "ha cluster id",
            |o| o["spec"]["flinkConfiguration"]["high-availability.cluster-id"] = json!("x"),
            "spec.flinkConfiguration.high-availability.cluster-id",
            "remove it",
        ),
        (
            "checkpoint dir",
            |o| o["spec"]["job"]["upgradeMode"] = json!("last-state"),
            "spec.flinkConfiguration",
            "checkpoint directory",
        ),
    ];
    for (case, breaker, field, words) in cases {
        let mut object = ready("flink-plain").await;
        breaker(&mut object);
        eprintln!("case: {case}");
        assert_denied(&config, &object, field, words).await;
    }
}

#[tokio::test]
async fn savepoint_mode_needs_both_directories() {
    let mut object = ready("flink-pipeline").await;
    object["spec"]["job"]["upgradeMode"] = json!("savepoint");
    assert_denied(
        &Config::default(),
        &object,
        "spec.flinkConfiguration",
        "savepoint directory",
    )
    .await;
    object["spec"]["flinkConfiguration"]["execution.checkpointing.savepoint-dir"] = json!("s3://bucket/savepoints");
    let response = validated(&state(Config::default()), "CREATE", &object, None).await;
    assert_eq!(response["allowed"], true, "{response}");
}

#[tokio::test]
async fn a_pipeline_must_merge_pod_templates_by_name() {
    let mut object = ready("flink-pipeline").await;
    object["spec"]["flinkConfiguration"][beamstack::MERGE_BY_NAME_KEY] = json!("false");
    let field = format!("spec.flinkConfiguration.{}", beamstack::MERGE_BY_NAME_KEY);
    assert_denied(&Config::default(), &object, &field, "folded into another container").await;
}

#[tokio::test]
async fn flink_updates_cannot_switch_cluster_kind_or_mode() {
    let state = state(Config::default());
    let old = ready("flink-plain").await;
    let mut session = old.clone();
    session["spec"].as_object_mut().unwrap().remove("job");
    let response = validated(&state, "UPDATE", &session, Some(&old)).await;
    assert_eq!(denied_fields(&response), ["spec.job"]);
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .contains("an application cluster into a session cluster")
    );
    // The same object as a CREATE is a valid session cluster: the rule reads oldObject.
    assert_eq!(validated(&state, "CREATE", &session, None).await["allowed"], true);

    let mut standalone = old.clone();
    standalone["spec"]["mode"] = json!("standalone");
    let response = validated(&state, "UPDATE", &standalone, Some(&old)).await;
    assert_eq!(denied_fields(&response), ["spec.mode"]);
}

/// A fixture's application job with this upgrade mode and parallelism, with checkpoint and savepoint directories.
async fn job_with(name: &str, mode: &str, parallelism: i64) -> Value {
    let mut object = ready(name).await;
    object["spec"]["job"]["upgradeMode"] = json!(mode);
    object["spec"]["job"]["parallelism"] = json!(parallelism);
    let configuration = &mut object["spec"]["flinkConfiguration"];
    configuration["execution.checkpointing.dir"] = json!("s3://bucket/checkpoints");
    configuration["execution.checkpointing.savepoint-dir"] = json!("s3://bucket/savepoints");
    object
}

/// A stateful upgrade of a Beam pipeline may not cross parallelism 1 (Beam's Impulse source has no operator uid, see
/// the rule); between parallelisms above 1, in stateless mode, with allowNonRestoredState, and for a Flink job that
/// is not a Beam pipeline, the change is admitted.
#[tokio::test]
async fn a_stateful_beam_upgrade_may_not_cross_parallelism_1() {
    let state = state(Config::default());
    for (from, to) in [(1, 2), (4, 1)] {
        let old = job_with("flink-pipeline", "last-state", from).await;
        let new = job_with("flink-pipeline", "last-state", to).await;
        let response = validated(&state, "UPDATE", &new, Some(&old)).await;
        assert_eq!(
            denied_fields(&response),
            ["spec.job.parallelism"],
            "{from} -> {to}: {response}"
        );
        let message = response["status"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("from parallelism {from} to {to}")) && message.contains("allowNonRestoredState"),
            "{message}"
        );
        // The same object as a CREATE starts a new job: nothing to restore.
        assert_eq!(validated(&state, "CREATE", &new, None).await["allowed"], true);

        let mut dropping = new.clone();
        dropping["spec"]["job"]["allowNonRestoredState"] = json!(true);
        let response = validated(&state, "UPDATE", &dropping, Some(&old)).await;
        assert_eq!(response["allowed"], true, "allowNonRestoredState: {response}");
    }
    let admitted = [
        ("flink-pipeline", "last-state", 2, 4),
        ("flink-pipeline", "savepoint", 4, 2),
        ("flink-pipeline", "stateless", 1, 2),
        ("flink-plain", "last-state", 1, 2),
    ];
    for (name, mode, from, to) in admitted {
        let old = job_with(name, mode, from).await;
        let new = job_with(name, mode, to).await;
        let response = validated(&state, "UPDATE", &new, Some(&old)).await;
        assert_eq!(response["allowed"], true, "{name} {mode} {from} -> {to}: {response}");
    }
}

#[tokio::test]
async fn session_job_rules() {
    let config = Config::default();
    let cases: Vec<(Breaker, &str, &str)> = vec![
        (
            |o| {
                o["spec"].as_object_mut().unwrap().remove("deploymentName");
            },
            "spec.deploymentName",
            "required",
        ),
        (
            |o| {
                o["spec"]["job"].as_object_mut().unwrap().remove("jarURI");
            },
            "spec.job.jarURI",
            "jar",
        ),
        (
            |o| {
                o["spec"].as_object_mut().unwrap().remove("job");
            },
            "spec.job",
            "needs a job",
        ),
        (
            |o| o["spec"]["job"]["parallelism"] = json!(-2),
            "spec.job.parallelism",
            "whole number from 1 to 2147483647",
        ),
        (
            |o| o["spec"]["flinkConfiguration"] = json!({"kubernetes.namespace": "x"}),
            "spec.flinkConfiguration.kubernetes.namespace",
            "remove",
        ),
    ];
    for (breaker, field, words) in cases {
        let mut object = fixture("flink-session-job");
        breaker(&mut object);
        assert_denied(&config, &object, field, words).await;
    }
    let old = fixture("flink-session-job");
    let mut moved = old.clone();
    moved["spec"]["deploymentName"] = json!("another-cluster");
    let response = validated(&state(config), "UPDATE", &moved, Some(&old)).await;
    assert_eq!(denied_fields(&response), ["spec.deploymentName"]);
}

#[tokio::test]
async fn each_spark_rule_names_its_field() {
    let config = Config::default();
    let cases: Vec<(Breaker, &str, &str)> = vec![
        (
            |o| o["metadata"]["name"] = json!("Spark.Pi"),
            "metadata.name",
            "DNS-1035",
        ),
        (|o| o["metadata"]["name"] = json!("1pi"), "metadata.name", "DNS-1035"),
        (
            |o| {
                o["spec"]["nodeSelector"] = json!({"a": "b"});
                o["spec"]["driver"]["nodeSelector"] = json!({"c": "d"});
            },
            "spec.driver.nodeSelector",
            "application-level nodeSelector",
        ),
        (
            |o| o["spec"]["sparkConf"] = json!({"spark.master": "local[*]"}),
            "spec.sparkConf.spark.master",
            "set by the Spark operator",
        ),
        (
            |o| o["spec"]["sparkConf"] = json!({"spark.kubernetes.container.image": "x"}),
            "spec.sparkConf.spark.kubernetes.container.image",
            "set by the Spark operator",
        ),
        (
            |o| o["spec"]["sparkConf"] = json!({"spark.kubernetes.executor.container.image": "x"}),
            "spec.sparkConf.spark.kubernetes.executor.container.image",
            "set by the Spark operator",
        ),
        (
            |o| o["spec"]["sparkConf"] = json!({"spark.kubernetes.authenticate.driver.serviceAccountName": "root"}),
            "spec.sparkConf.spark.kubernetes.authenticate.driver.serviceAccountName",
            "set by the Spark operator",
        ),
        (
            |o| o["spec"]["sparkConf"] = json!({"spark.kubernetes.namespace": "other"}),
            "spec.sparkConf.spark.kubernetes.namespace",
            "own namespace `team-a`",
        ),
        (
            |o| o["spec"]["driver"]["memory"] = json!("1Gi"),
            "spec.driver.memory",
            "not a Spark memory string",
        ),
        (
            |o| o["spec"]["executor"]["memoryOverhead"] = json!("lots"),
            "spec.executor.memoryOverhead",
            "not a Spark memory",
        ),
        (
            |o| o["spec"]["executor"]["cores"] = json!(0),
            "spec.executor.cores",
            "at least 1",
        ),
        (
            |o| o["spec"]["driver"]["coreRequest"] = json!("half"),
            "spec.driver.coreRequest",
            "Kubernetes quantity",
        ),
        (
            |o| o["spec"]["executor"]["instances"] = json!(0),
            "spec.executor.instances",
            "whole number from 1 to 2147483647",
        ),
        (
            |o| o["spec"]["dynamicAllocation"] = json!({"enabled": true, "minExecutors": 5, "maxExecutors": 2}),
            "spec.dynamicAllocation.minExecutors",
            "more than maxExecutors",
        ),
    ];
    for (breaker, field, words) in cases {
        let mut object = ready("spark-plain").await;
        breaker(&mut object);
        assert_denied(&config, &object, field, words).await;
    }
    let mut same_namespace = ready("spark-plain").await;
    same_namespace["spec"]["sparkConf"] = json!({"spark.kubernetes.namespace": "team-a"});
    assert_eq!(
        validated(&state(config), "CREATE", &same_namespace, None).await["allowed"],
        true
    );
}

#[tokio::test]
async fn scheduled_spark_rules_point_into_the_template() {
    let mut object = ready("scheduled-spark").await;
    object["spec"]["template"]["sparkConf"] = json!({"spark.master": "local"});
    assert_denied(
        &Config::default(),
        &object,
        "spec.template.sparkConf.spark.master",
        "Spark operator",
    )
    .await;
}

#[tokio::test]
async fn images_must_come_from_allowed_registries() {
    let mut config = Config::default();
    config.validation.allowed_registries = vec!["docker.io/apache".into(), "ghcr.io/acme".into()];
    let state = state(config.clone());
    // apache/flink and the injected apache/beam_python harness are allowed.
    let pipeline = mutated(&state, "CREATE", &fixture("flink-pipeline")).await.0;
    assert_eq!(validated(&state, "CREATE", &pipeline, None).await["allowed"], true);
    let mut object = pipeline.clone();
    object["spec"]["image"] = json!("flink:1.20");
    assert_denied(&config, &object, "spec.image", "not from an allowed registry").await;
    let mut object = pipeline;
    object["spec"]["taskManager"]["podTemplate"]["spec"]["initContainers"] =
        json!([{"name": "fetch", "image": "evil.io/fetch:1"}]);
    assert_denied(
        &config,
        &object,
        "spec.taskManager.podTemplate.spec.initContainers[0].image",
        "evil.io/fetch:1",
    )
    .await;
    let mut spark = mutated(&state, "CREATE", &fixture("spark-pipeline")).await.0;
    spark["spec"]["executor"]["sidecars"][0]["image"] = json!("ghcr.io/acme/beam_python3.11_sdk:2.77.0");
    assert_eq!(
        validated(&state, "CREATE", &spark, None).await["allowed"],
        true,
        "apache/spark and ghcr.io/acme are allowed"
    );
    spark["spec"]["executor"]["sidecars"][0]["image"] = json!("quay.io/other/beam_python3.11_sdk:2.77.0");
    assert_denied(
        &config,
        &spark,
        "spec.executor.sidecars[0].image",
        "not from an allowed registry",
    )
    .await;
}

#[tokio::test]
async fn harness_images_must_match_the_pipeline_versions() {
    let config = Config::default();
    let mut object = ready("flink-pipeline").await;
    object["spec"]["podTemplate"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "extra-pool", "image": "apache/beam_python3.10_sdk:2.76.0"}));
    let response = validated(&state(config.clone()), "CREATE", &object, None).await;
    assert_eq!(denied_fields(&response), ["spec.podTemplate.spec.containers[1].image"]);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("Python 3.10 but the pipeline runs Python 3.11"),
        "{message}"
    );
    assert!(
        message.contains("Beam 2.76.0 but the pipeline runs Beam 2.77.0"),
        "{message}"
    );

    let mut override_image = ready("flink-pipeline").await;
    override_image["metadata"]["annotations"]["beamstack.dev/harness-image"] =
        json!("apache/beam_python3.12_sdk:2.77.0");
    let response = validated(&state(config.clone()), "CREATE", &override_image, None).await;
    assert!(
        denied_fields(&response).contains(&"metadata.annotations[beamstack.dev/harness-image]".to_owned()),
        "{response}"
    );

    let mut bad = ready("flink-pipeline").await;
    bad["metadata"]["annotations"]["beamstack.dev/python-version"] = json!("python3");
    assert_denied(
        &config,
        &bad,
        "metadata.annotations[beamstack.dev/python-version]",
        "not a Python minor",
    )
    .await;
}

#[tokio::test]
async fn every_violation_is_reported_in_one_denial() {
    let mut object = ready("flink-plain").await;
    object["metadata"]["name"] = json!("Bad_Name");
    object["spec"]["flinkVersion"] = json!("v1_13");
    object["spec"]["jobManager"]["resource"]["memory"] = json!("plenty");
    object["spec"]["job"]["parallelism"] = json!(0);
    object["spec"]["flinkConfiguration"]["kubernetes.namespace"] = json!("elsewhere");
    let response = validated(&state(Config::default()), "CREATE", &object, None).await;
    assert_eq!(
        denied_fields(&response),
        [
            "metadata.name",
            "spec.flinkVersion",
            "spec.jobManager.resource.memory",
            "spec.flinkConfiguration.kubernetes.namespace",
            "spec.job.parallelism"
        ]
    );
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("FlinkDeployment \"Bad_Name\" has 5 problems:"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 6, "{message}");
}

#[tokio::test]
async fn bad_objects_inside_a_good_review_are_denied_with_the_field() {
    let state = state(Config::default());
    let mut review = review("CREATE", &fixture("flink-plain"), None);
    review["request"]["object"] = json!(["not", "an", "object"]);
    for path in ["/mutate", "/validate"] {
        let response = answer(&state, path, &review).await;
        assert_eq!(response["allowed"], false);
        assert_eq!(response["status"]["code"], 400);
        assert!(
            response["status"]["message"]
                .as_str()
                .unwrap()
                .starts_with("request.object: must be a JSON object")
        );
    }
    review["request"].as_object_mut().unwrap().remove("object");
    let response = answer(&state, "/validate", &review).await;
    assert_eq!(response["status"]["message"], "request.object: required for CREATE");
}
