//! `/mutate` through the router: each default, the harness for each runner, idempotence, and what must never change.

mod common;

use beamstack::config::{Config, Placement};
use common::*;
use k8s_openapi::api::core::v1::Toleration;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const FIXTURES: [&str; 6] = [
    "flink-pipeline",
    "flink-plain",
    "flink-session-job",
    "spark-pipeline",
    "spark-plain",
    "scheduled-spark",
];

fn containers(pod_spec: &Value) -> Vec<&str> {
    pod_spec["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

fn placement() -> Placement {
    Placement {
        tolerations: vec![Toleration {
            key: Some("dedicated".into()),
            operator: Some("Equal".into()),
            value: Some("beam".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        }],
        node_selector: BTreeMap::from([("pool".into(), "beam".into()), ("zone".into(), "a".into())]),
        priority_class_name: Some("batch-low".into()),
    }
}

#[tokio::test]
async fn fixtures_are_valid_against_the_operator_crds() {
    for name in FIXTURES {
        assert_valid_against_crd(&fixture(name));
    }
    // The check has teeth: a wrong type anywhere is caught.
    let mut broken = fixture("flink-plain");
    broken["spec"]["jobManager"] = json!({"resource": {"cpu": "one"}, "replicas": "two"});
    assert_eq!(crd_validator("FlinkDeployment").iter_errors(&broken).count(), 2);
    let mut broken = fixture("spark-plain");
    broken["spec"]["executor"]["instances"] = json!(0);
    assert!(
        !crd_validator("SparkApplication").is_valid(&broken),
        "minimum: 1 is enforced"
    );
}

#[tokio::test]
async fn flink_resources_and_service_account_default_only_where_absent() {
    let state = state(Config::default());
    let (object, _) = mutated(&state, "CREATE", &fixture("flink-pipeline")).await;
    let spec = &object["spec"];
    assert_eq!(spec["serviceAccount"], "flink");
    assert_eq!(spec["jobManager"]["resource"]["memory"], "2048m", "user value kept");
    assert_eq!(spec["jobManager"]["resource"]["cpu"], 1);
    assert_eq!(spec["taskManager"]["resource"]["cpu"], 2, "user value kept");
    assert_eq!(spec["taskManager"]["resource"]["memory"], "2048m", "default filled");

    let (plain, _) = mutated(&state, "CREATE", &fixture("flink-plain")).await;
    for role in ["jobManager", "taskManager"] {
        assert_eq!(plain["spec"][role]["resource"], json!({"cpu": 1.0, "memory": "2048m"}));
    }
    assert_eq!(plain["spec"]["serviceAccount"], "flink");
    assert!(
        plain["spec"]["taskManager"].get("podTemplate").is_none(),
        "no harness without the Beam annotation"
    );
}

#[tokio::test]
async fn configured_defaults_replace_built_in_ones() {
    let mut config = Config::default();
    config.flink.service_account = "beam-runner".into();
    config.flink.task_manager.memory = "4g".into();
    config.spark.service_account = "spark-runner".into();
    config.spark.executor.memory = "3g".into();
    config.spark.executor_instances = 3;
    let state = state(config);
    let (flink, _) = mutated(&state, "CREATE", &fixture("flink-plain")).await;
    assert_eq!(flink["spec"]["serviceAccount"], "beam-runner");
    assert_eq!(flink["spec"]["taskManager"]["resource"]["memory"], "4g");
    let (spark, _) = mutated(&state, "CREATE", &fixture("spark-plain")).await;
    assert_eq!(spark["spec"]["driver"]["serviceAccount"], "spark-runner");
    assert_eq!(spark["spec"]["executor"]["memory"], "3g");
    assert_eq!(spark["spec"]["executor"]["instances"], 3);
}

#[tokio::test]
async fn flink_prometheus_reporter_and_configuration_defaults_fill_absent_keys_in_either_form() {
    let built_in = state(Config::default());
    let reporter = "org.apache.flink.metrics.prometheus.PrometheusReporterFactory";
    let metrics_port = json!({"name": "metrics", "containerPort": 9249, "protocol": "TCP"});
    // Built in: Flink's Prometheus reporter, which kubectl beam status and the dashboard read, and the named port a
    // PodMonitor selects.
    let (plain, _) = mutated(&built_in, "CREATE", &fixture("flink-plain")).await;
    let configuration = &plain["spec"]["flinkConfiguration"];
    assert_eq!(configuration["metrics.reporter.prom.factory.class"], reporter);
    assert_eq!(configuration["metrics.reporter.prom.port"], "9249");
    let main = &plain["spec"]["podTemplate"]["spec"]["containers"][0];
    assert_eq!(main["name"], "flink-main-container");
    assert_eq!(main["ports"], json!([metrics_port]));

    // The user's value wins, flat or nested (operator 1.10 accepts nested maps), and the named port follows it.
    let mut nested = fixture("flink-plain");
    nested["spec"]["flinkConfiguration"] = json!({"metrics": {"reporter": {"prom": {"port": "9999"}}}});
    let (object, _) = mutated(&built_in, "CREATE", &nested).await;
    let configuration = &object["spec"]["flinkConfiguration"];
    assert_eq!(configuration["metrics"]["reporter"]["prom"]["port"], "9999");
    assert!(
        configuration.get("metrics.reporter.prom.port").is_none(),
        "{configuration}"
    );
    assert_eq!(configuration["metrics.reporter.prom.factory.class"], reporter);
    assert_eq!(
        object["spec"]["podTemplate"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        9999
    );
    // A port the user named already is kept as it is; a range gets no named port.
    let mut own_port = fixture("flink-plain");
    own_port["spec"]["podTemplate"] = json!({"spec": {"containers": [
        {"name": "log-shipper", "image": "fluent-bit"},
        {"name": "flink-main-container", "ports": [{"name": "metrics", "containerPort": 9249}]},
    ]}});
    let (object, _) = mutated(&built_in, "CREATE", &own_port).await;
    assert_eq!(
        object["spec"]["podTemplate"], own_port["spec"]["podTemplate"],
        "nothing added, nothing moved"
    );
    let mut range = fixture("flink-plain");
    range["spec"]["flinkConfiguration"] = json!({"metrics.reporter.prom.port": "9250-9260"});
    let (object, _) = mutated(&built_in, "CREATE", &range).await;
    assert_eq!(
        object["spec"]["flinkConfiguration"]["metrics.reporter.prom.port"],
        "9250-9260"
    );
    assert!(object["spec"].get("podTemplate").is_none(), "{}", object["spec"]);

    // A platform's own entries come on top; metricsPort 0 leaves the reporter alone.
    let mut config = Config::default();
    config.flink.metrics_port = 0;
    config.flink.configuration = BTreeMap::from([("state.backend.type".into(), "rocksdb".into())]);
    let (object, _) = mutated(&state(config), "CREATE", &fixture("flink-plain")).await;
    assert_eq!(
        object["spec"]["flinkConfiguration"],
        json!({"taskmanager.numberOfTaskSlots": "2", "state.backend.type": "rocksdb"})
    );
    assert!(object["spec"].get("podTemplate").is_none(), "{}", object["spec"]);
}

#[tokio::test]
async fn flink_placement_merges_into_the_pod_template() {
    let mut config = Config::default();
    config.flink.placement = placement();
    let state = state(config);
    let mut object = fixture("flink-plain");
    object["spec"]["podTemplate"] = json!({"spec": {
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "beam", "effect": "NoSchedule"}],
        "nodeSelector": {"pool": "users-choice"},
    }});
    let (object, _) = mutated(&state, "CREATE", &object).await;
    let pod = &object["spec"]["podTemplate"]["spec"];
    assert_eq!(
        pod["tolerations"].as_array().unwrap().len(),
        1,
        "an equal toleration is not duplicated"
    );
    assert_eq!(
        pod["nodeSelector"],
        json!({"pool": "users-choice", "zone": "a"}),
        "the object's key wins"
    );
    assert_eq!(pod["priorityClassName"], "batch-low");

    let (fresh, _) = mutated(&state, "CREATE", &fixture("flink-plain")).await;
    let pod = &fresh["spec"]["podTemplate"]["spec"];
    assert_eq!(pod["tolerations"][0]["key"], "dedicated");
    assert_eq!(pod["nodeSelector"], json!({"pool": "beam", "zone": "a"}));
}

#[tokio::test]
async fn flink_pipeline_gets_the_worker_pool_beside_the_main_container() {
    let state = state(Config::default());
    let (object, _) = mutated(&state, "CREATE", &fixture("flink-pipeline")).await;
    let spec = &object["spec"];
    assert_eq!(spec["flinkConfiguration"][beamstack::MERGE_BY_NAME_KEY], "true");
    let pod = &spec["taskManager"]["podTemplate"]["spec"];
    assert_eq!(
        containers(pod),
        ["flink-main-container", "beam-worker-pool"],
        "main container first, sidecar after"
    );
    let sidecar = &pod["containers"][1];
    assert_eq!(sidecar["image"], "apache/beam_python3.11_sdk:2.77.0");
    assert_eq!(sidecar["args"], json!(["--worker_pool"]));
    assert_eq!(
        sidecar["ports"],
        json!([{"name": "worker-pool", "containerPort": 50000, "protocol": "TCP"}])
    );
    assert_eq!(sidecar["resources"]["requests"]["memory"], "1Gi");
    let mount = json!([{"name": "beam-artifact-staging", "mountPath": "/tmp/beam-artifact-staging"}]);
    assert_eq!(sidecar["volumeMounts"], mount);
    assert_eq!(
        pod["containers"][0]["volumeMounts"], mount,
        "the main container shares the staging volume"
    );
    assert_eq!(
        pod["volumes"],
        json!([{"name": "beam-artifact-staging", "emptyDir": {}}])
    );
    // The top-level template the user wrote is untouched.
    assert_eq!(spec["podTemplate"]["spec"]["containers"][0]["env"][0]["name"], "TZ");
}

#[tokio::test]
async fn an_existing_harness_container_is_reconciled_not_duplicated() {
    let state = state(Config::default());
    let mut object = fixture("flink-pipeline");
    object["spec"]["taskManager"]["podTemplate"] = json!({"spec": {"containers": [
        {"name": "beam-worker-pool", "image": "apache/beam_python3.11_sdk:2.76.0", "args": ["--logging_level=DEBUG"],
         "env": [{"name": "KEEP", "value": "me"}], "resources": {"limits": {"memory": "4Gi"}}},
        {"name": "flink-main-container"}
    ]}});
    let (object, _) = mutated(&state, "CREATE", &object).await;
    let pod = &object["spec"]["taskManager"]["podTemplate"]["spec"];
    assert_eq!(containers(pod), ["beam-worker-pool", "flink-main-container"]);
    let sidecar = &pod["containers"][0];
    assert_eq!(
        sidecar["image"], "apache/beam_python3.11_sdk:2.77.0",
        "Beamstack owns the image"
    );
    assert_eq!(sidecar["args"], json!(["--worker_pool", "--logging_level=DEBUG"]));
    assert_eq!(sidecar["env"][0]["value"], "me");
    assert_eq!(
        sidecar["resources"],
        json!({"limits": {"memory": "4Gi"}}),
        "the user's resources are kept"
    );
}

#[tokio::test]
async fn the_image_annotation_overrides_the_derived_image() {
    let state = state(Config::default());
    let mut object = fixture("flink-pipeline");
    object["metadata"]["annotations"]["beamstack.dev/harness-image"] =
        json!("registry.acme.io/beam/python:2.77.0-custom");
    let (object, _) = mutated(&state, "CREATE", &object).await;
    assert_eq!(
        object["spec"]["taskManager"]["podTemplate"]["spec"]["containers"][1]["image"],
        "registry.acme.io/beam/python:2.77.0-custom"
    );
}

#[tokio::test]
async fn spark_defaults_respect_dynamic_allocation() {
    let state = state(Config::default());
    let (object, _) = mutated(&state, "CREATE", &fixture("spark-plain")).await;
    let spec = &object["spec"];
    assert_eq!(spec["driver"]["cores"], 1);
    assert_eq!(spec["driver"]["memory"], "1g");
    assert_eq!(spec["driver"]["serviceAccount"], "spark-operator-spark");
    assert_eq!(spec["executor"]["cores"], 1);
    assert_eq!(spec["executor"]["memory"], "1g");
    assert_eq!(spec["executor"]["instances"], 1);

    let mut dynamic = fixture("spark-plain");
    dynamic["spec"]["dynamicAllocation"] = json!({"enabled": true, "minExecutors": 1, "maxExecutors": 5});
    let (dynamic, _) = mutated(&state, "CREATE", &dynamic).await;
    assert!(
        dynamic["spec"]["executor"].get("instances").is_none(),
        "dynamic allocation decides the count"
    );
}

#[tokio::test]
async fn spark_placement_goes_where_the_selectors_live() {
    let mut config = Config::default();
    config.spark.placement = placement();
    let state = state(config);
    let (object, _) = mutated(&state, "CREATE", &fixture("spark-plain")).await;
    let spec = &object["spec"];
    assert_eq!(spec["nodeSelector"], json!({"pool": "beam", "zone": "a"}));
    for role in ["driver", "executor"] {
        assert_eq!(spec[role]["tolerations"][0]["key"], "dedicated");
        assert_eq!(spec[role]["priorityClassName"], "batch-low");
        assert!(spec[role].get("nodeSelector").is_none());
    }
    let mut role_level = fixture("spark-plain");
    role_level["spec"]["executor"]["nodeSelector"] = json!({"gpu": "true"});
    let (role_level, _) = mutated(&state, "CREATE", &role_level).await;
    assert!(
        role_level["spec"].get("nodeSelector").is_none(),
        "the operator refuses both levels at once"
    );
    assert_eq!(
        role_level["spec"]["executor"]["nodeSelector"],
        json!({"gpu": "true", "pool": "beam", "zone": "a"})
    );
    assert_eq!(
        role_level["spec"]["driver"]["nodeSelector"],
        json!({"pool": "beam", "zone": "a"})
    );
}

#[tokio::test]
async fn spark_volcano_queue_when_configured() {
    let mut config = Config::default();
    config.spark.volcano_queue = Some("analytics".into());
    let state = state(config);
    let (object, _) = mutated(&state, "CREATE", &fixture("spark-plain")).await;
    assert_eq!(object["spec"]["batchScheduler"], "volcano");
    assert_eq!(object["spec"]["batchSchedulerOptions"]["queue"], "analytics");

    let mut yunikorn = fixture("spark-plain");
    yunikorn["spec"]["batchScheduler"] = json!("yunikorn");
    let (yunikorn, _) = mutated(&state, "CREATE", &yunikorn).await;
    assert_eq!(yunikorn["spec"]["batchScheduler"], "yunikorn");
    assert!(
        yunikorn["spec"].get("batchSchedulerOptions").is_none(),
        "a queue means nothing to another scheduler"
    );

    let unset = state_default_has_no_queue().await;
    assert!(unset.get("batchScheduler").is_none());
}

async fn state_default_has_no_queue() -> Value {
    let (object, _) = mutated(&state(Config::default()), "CREATE", &fixture("spark-plain")).await;
    object["spec"].clone()
}

#[tokio::test]
async fn spark_pipeline_gets_the_worker_pool_as_an_executor_sidecar() {
    let state = state(Config::default());
    let (object, _) = mutated(&state, "CREATE", &fixture("spark-pipeline")).await;
    let spec = &object["spec"];
    let sidecars = spec["executor"]["sidecars"].as_array().unwrap();
    assert_eq!(sidecars.len(), 1);
    assert_eq!(sidecars[0]["name"], "beam-worker-pool");
    assert_eq!(sidecars[0]["image"], "apache/beam_python3.11_sdk:2.77.0");
    assert_eq!(spec["volumes"][0]["name"], "scratch", "the user's volume stays first");
    assert_eq!(
        spec["volumes"][1],
        json!({"name": "beam-artifact-staging", "emptyDir": {}})
    );
    let mounts: Vec<&str> = spec["executor"]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(mounts, ["scratch", "beam-artifact-staging"]);
    assert!(
        spec["driver"].get("sidecars").is_none(),
        "the driver runs no Beam workers"
    );
}

#[tokio::test]
async fn scheduled_spark_is_mutated_in_its_template() {
    let state = state(Config::default());
    let (object, patch) = mutated(&state, "CREATE", &fixture("scheduled-spark")).await;
    let template = &object["spec"]["template"];
    assert_eq!(template["driver"]["memory"], "512m", "user value kept");
    assert_eq!(template["driver"]["cores"], 1);
    assert_eq!(template["executor"]["instances"], 2, "user value kept");
    assert_eq!(template["executor"]["memory"], "1g");
    assert!(object["spec"].get("driver").is_none());
    for operation in &patch.0 {
        let path = operation.path().to_string();
        assert!(
            path.starts_with("/spec/template") || path.starts_with("/metadata/annotations"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn session_jobs_and_other_kinds_and_operations_are_left_alone() {
    let state = state(Config::default());
    let response = answer(
        &state,
        "/mutate",
        &review("CREATE", &fixture("flink-session-job"), None),
    )
    .await;
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none());

    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "x"}, "spec": {}});
    let response = answer(&state, "/mutate", &review("CREATE", &pod, None)).await;
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none());

    let object = fixture("flink-plain");
    let response = answer(&state, "/mutate", &review("DELETE", &object, None)).await;
    assert!(response.get("patch").is_none());
    let mut status_update = review("UPDATE", &object, Some(&object));
    status_update["request"]["subResource"] = json!("status");
    let response = answer(&state, "/mutate", &status_update).await;
    assert!(response.get("patch").is_none(), "status updates are never mutated");
}

#[tokio::test]
async fn mutation_is_idempotent_and_recorded() {
    let state = state(Config::default());
    for name in FIXTURES {
        let original = fixture(name);
        let (once, patch) = mutated(&state, "CREATE", &original).await;
        if name == "flink-session-job" {
            assert!(patch.0.is_empty());
            continue;
        }
        assert!(!patch.0.is_empty(), "{name} should get defaults");
        let annotations = &once["metadata"]["annotations"];
        assert_eq!(
            annotations["beamstack.dev/mutated-by"],
            format!("beam-webhook {}", beamstack::VERSION)
        );
        assert!(
            annotations["beamstack.dev/mutations"]
                .as_str()
                .unwrap()
                .contains("serviceAccount"),
            "{name}"
        );
        let response = answer(&state, "/mutate", &review("UPDATE", &once, Some(&once))).await;
        assert!(
            response.get("patch").is_none(),
            "{name}: a second pass must not patch, got {response}"
        );
    }
}

#[tokio::test]
async fn mutation_keeps_unknown_fields_and_never_touches_status() {
    let state = state(Config::default());
    let mut original = fixture("flink-pipeline");
    original["status"] = json!({"lifecycleState": "STABLE", "jobStatus": {"state": "RUNNING"}});
    original["spec"]["futureField"] = json!({"nested": [1, 2, 3]});
    let (object, patch) = mutated(&state, "UPDATE", &original).await;
    assert_eq!(object["status"], original["status"]);
    assert_eq!(object["spec"]["futureField"], original["spec"]["futureField"]);
    assert_eq!(object["spec"]["ingress"], original["spec"]["ingress"]);
    assert_eq!(object["spec"]["logConfiguration"], original["spec"]["logConfiguration"]);
    assert_eq!(object["metadata"]["labels"], original["metadata"]["labels"]);
    assert_eq!(object["metadata"]["annotations"]["example.com/owner"], "data-team");
    for operation in &patch.0 {
        assert!(!operation.path().to_string().starts_with("/status"), "{operation:?}");
    }
}

/// Found by the `admission_mutate` fuzz target (fuzz/regressions/admission_mutate-merge-key-object.bin): a value of
/// the wrong type under the merge-by-name key was replaced, and the unknown fields inside it lost. The user's value
/// stays, whatever it is; the API server's schema check refuses a non-string.
#[tokio::test]
async fn a_malformed_merge_key_value_is_left_as_it_is() {
    let state = state(Config::default());
    for value in [json!({"x-fuzz-1": null}), json!({}), json!(false)] {
        let mut original = fixture("flink-pipeline");
        original["spec"]["flinkConfiguration"][beamstack::MERGE_BY_NAME_KEY] = value.clone();
        let (object, _) = mutated(&state, "CREATE", &original).await;
        assert_eq!(
            object["spec"]["flinkConfiguration"][beamstack::MERGE_BY_NAME_KEY],
            value
        );
    }
}

#[tokio::test]
async fn mutated_objects_stay_valid_against_the_operator_crds() {
    let mut config = Config::default();
    config.flink.placement = placement();
    config.spark.placement = placement();
    config.spark.volcano_queue = Some("q".into());
    let state = state(config);
    for name in FIXTURES {
        let (object, _) = mutated(&state, "CREATE", &fixture(name)).await;
        assert_valid_against_crd(&object);
    }
}

#[tokio::test]
async fn review_fixtures_carry_the_object_fixtures() {
    // The JSON reviews the demo sends must not drift from the YAML objects the tests use.
    for name in ["flink-pipeline", "spark-pipeline"] {
        let path = repo_path(&format!("testdata/fixtures/reviews/{name}-create.json"));
        let review: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(review["request"]["object"], fixture(name), "{name}");
        let response = answer(&state(Config::default()), "/mutate", &review).await;
        assert!(response.get("patch").is_some(), "{name}");
    }
}

/// A pipeline with Java-backed transforms, as `kubectl beam run` annotates it.
fn with_java_transforms(mut object: Value) -> Value {
    let annotations = object["metadata"]["annotations"].as_object_mut().unwrap();
    annotations.insert("beamstack.dev/beam-version".into(), json!("2.62.0"));
    annotations.insert(
        "beamstack.dev/java-transforms".into(),
        json!("ReadFromPostgres,WriteToPostgres"),
    );
    object
}

#[tokio::test]
async fn java_transforms_get_the_java_pool_beside_the_python_one_on_every_taskmanager() {
    let state = state(Config::default());
    let (object, _) = mutated(&state, "CREATE", &with_java_transforms(fixture("flink-pipeline"))).await;
    let pod = &object["spec"]["taskManager"]["podTemplate"]["spec"];
    assert_eq!(
        containers(pod),
        ["flink-main-container", "beam-worker-pool", "beam-java-worker-pool"]
    );
    let pool = &pod["containers"][2];
    assert_eq!(
        pool["image"], "ghcr.io/beamstack/beam-java-transforms:2.62.0",
        "the pipeline's Beam release"
    );
    assert_eq!(pod["containers"][1]["image"], "apache/beam_python3.11_sdk:2.62.0");
    assert_eq!(pool["args"], json!(["worker-pool", "50001"]));
    assert_eq!(
        pool["ports"],
        json!([{"name": "java-pool", "containerPort": 50001, "protocol": "TCP"}])
    );
    assert_eq!(pool["livenessProbe"]["tcpSocket"]["port"], 50001);
    assert_eq!(pool["resources"]["limits"]["memory"], "1Gi");
    assert!(
        object["metadata"]["annotations"]["beamstack.dev/mutations"]
            .as_str()
            .unwrap()
            .contains("Java harness beam-java-worker-pool (ghcr.io/beamstack/beam-java-transforms:2.62.0)")
    );
    assert_valid_against_crd(&object);
    // A second pass changes nothing.
    let response = answer(&state, "/mutate", &review("UPDATE", &object, Some(&object))).await;
    assert!(response.get("patch").is_none(), "{response}");
}

#[tokio::test]
async fn the_java_pool_is_reconciled_keeping_what_the_user_set_and_configurable() {
    let mut config = Config::default();
    config.harness.java.image_repository = "registry.acme.io/beam/java".into();
    config.harness.java.port = 50101;
    let state = state(config);
    let mut object = with_java_transforms(fixture("flink-pipeline"));
    object["spec"]["taskManager"]["podTemplate"] = json!({"spec": {"containers": [
        {"name": "flink-main-container"},
        {"name": "beam-java-worker-pool", "image": "old:1", "env": [{"name": "JAVA_OPTS", "value": "-Xmx3g"}],
         "resources": {"limits": {"memory": "4Gi"}}}
    ]}});
    let (object, _) = mutated(&state, "CREATE", &object).await;
    let pod = &object["spec"]["taskManager"]["podTemplate"]["spec"];
    assert_eq!(
        containers(pod),
        ["flink-main-container", "beam-java-worker-pool", "beam-worker-pool"],
        "merged by name, not duplicated"
    );
    let pool = &pod["containers"][1];
    assert_eq!(
        pool["image"], "registry.acme.io/beam/java:2.62.0",
        "Beamstack owns the image"
    );
    assert_eq!(pool["args"], json!(["worker-pool", "50101"]));
    assert_eq!(pool["env"][0]["value"], "-Xmx3g");
    assert_eq!(
        pool["resources"],
        json!({"limits": {"memory": "4Gi"}}),
        "the user's resources are kept"
    );
}

#[tokio::test]
async fn spark_executors_get_the_java_pool_as_a_sidecar() {
    let state = state(Config::default());
    let (object, _) = mutated(&state, "CREATE", &with_java_transforms(fixture("spark-pipeline"))).await;
    let sidecars: Vec<&str> = object["spec"]["executor"]["sidecars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sidecar| sidecar["name"].as_str().unwrap())
        .collect();
    assert_eq!(sidecars, ["beam-worker-pool", "beam-java-worker-pool"]);
    assert_eq!(
        object["spec"]["executor"]["sidecars"][1]["image"],
        "ghcr.io/beamstack/beam-java-transforms:2.62.0"
    );
    assert!(object["spec"]["driver"].get("sidecars").is_none());
    assert_valid_against_crd(&object);
}
