//! FlinkDeployment defaults and harness injection.

use super::{Changes, harness};
use crate::config::{FlinkConfig, FlinkResource, HarnessConfig, Placement};
use crate::flink_resources::{self, Role, Shape};
use crate::harness::HarnessSpec;
use crate::tree;
use crate::units;
use serde_json::Value;
use std::collections::BTreeMap;

use crate::contract::FLINK_MAIN_CONTAINER as MAIN_CONTAINER;
/// Without it the operator merges pod-template arrays by position, and a sidecar in the TaskManager template can
/// be folded into whatever container stands at the same index of the top-level template.
pub const MERGE_BY_NAME_KEY: &str = "kubernetes.operator.pod-template.merge-arrays-by-name";

pub(crate) fn apply_defaults(object: &mut Value, config: &FlinkConfig, changes: &mut Changes) {
    // The operator requires spec.serviceAccount and lets it override `kubernetes.service-account`: an object that
    // names its account there keeps it.
    let service_account = configured(object, "kubernetes.service-account")
        .and_then(Value::as_str)
        .filter(|account| !account.is_empty())
        .unwrap_or(&config.service_account)
        .to_owned();
    if let Some(spec) = tree::object_at(object, &["spec"])
        && tree::set_if_unset(spec, "serviceAccount", Value::from(service_account))
    {
        changes.note("spec.serviceAccount");
    }
    for role in Role::ALL {
        let defaults = match role {
            Role::JobManager => &config.job_manager,
            Role::TaskManager => &config.task_manager,
        };
        default_resources(object, role, defaults, changes);
    }
    if !config.placement.is_empty() {
        place_pods(object, &["spec", "podTemplate", "spec"], &config.placement, changes);
    }
    let mut configuration = config.configuration.clone();
    if config.metrics_port != 0 {
        configuration.extend(prometheus_reporter(config.metrics_port));
        // The port the reporter will listen on: the object's own setting wins over ours (a range: no named port).
        let port = match configured(object, "metrics.reporter.prom.port") {
            None => Some(config.metrics_port),
            Some(Value::String(text)) => text.trim().parse().ok(),
            Some(value) => value.as_u64().and_then(|port| u16::try_from(port).ok()),
        };
        if let Some(port) = port.filter(|port| *port != 0) {
            expose_metrics_port(object, port, changes);
        }
    }
    if !configuration.is_empty() {
        default_configuration(object, &configuration, changes);
    }
}

/// A role's cpu and memory where the object leaves them to the operator's defaults, in the shape the operator will
/// read (`resources` requests when the role uses that field, else `resource`): never where `resources`,
/// `resource` or a `flinkConfiguration` option already settles them, which the filled value would override.
fn default_resources(object: &mut Value, role: Role, defaults: &FlinkResource, changes: &mut Changes) {
    let memory_unset = flink_resources::memory(object, role).is_none();
    let cpu_unset = flink_resources::cpu(object, role).is_none();
    if !memory_unset && !cpu_unset {
        return;
    }
    let field = role.field();
    let (path, memory, cpu) = match flink_resources::shape(object, role) {
        // Kubernetes quantities; the configuration was checked at start-up, so both amounts read.
        Shape::Resources => (
            vec!["spec", field, "resources", "requests"],
            Value::from(units::flink_memory(&defaults.memory).unwrap_or_default().to_string()),
            Value::from(units::cores_to_millicores(defaults.cpu).unwrap_or_default().to_string()),
        ),
        Shape::Resource => (
            vec!["spec", field, "resource"],
            Value::from(defaults.memory.clone()),
            Value::from(defaults.cpu),
        ),
    };
    let Some(target) = tree::object_at(object, &path) else {
        return;
    };
    let written = path.join(".");
    if memory_unset && tree::set_if_unset(target, "memory", memory) {
        changes.note(format!("{written}.memory"));
    }
    if cpu_unset && tree::set_if_unset(target, "cpu", cpu) {
        changes.note(format!("{written}.cpu"));
    }
}

/// The object's value for a Flink configuration key, flat or nested.
fn configured<'a>(object: &'a Value, key: &str) -> Option<&'a Value> {
    let configuration = tree::get(object, &["spec", "flinkConfiguration"])?;
    tree::flatten_keys(configuration)
        .into_iter()
        .find(|(name, value)| name == key && !value.is_null())
        .map(|(_, value)| value)
}

/// Flink's Prometheus reporter (its plugin ships in Flink's image) on `port`.
fn prometheus_reporter(port: u16) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "metrics.reporter.prom.factory.class".to_owned(),
            "org.apache.flink.metrics.prometheus.PrometheusReporterFactory".to_owned(),
        ),
        ("metrics.reporter.prom.port".to_owned(), port.to_string()),
    ])
}

/// A container port named `metrics` on Flink's main container in `spec.podTemplate` (JobManager and TaskManagers),
/// which a PodMonitor selects, unless the container has a port of that name or number already.
fn expose_metrics_port(object: &mut Value, port: u16, changes: &mut Changes) {
    let Some(pod_spec) = tree::object_at(object, &["spec", "podTemplate", "spec"]) else {
        return;
    };
    let Some(containers) = tree::array_in(pod_spec, "containers") else {
        return;
    };
    main_container_first(containers);
    let Some(main) = tree::named_entry(containers, MAIN_CONTAINER) else {
        return;
    };
    let Some(ports) = tree::array_in(main, "ports") else {
        return;
    };
    let taken = ports.iter().any(|existing| {
        existing.get("name").and_then(Value::as_str) == Some("metrics")
            || existing.get("containerPort").and_then(Value::as_i64) == Some(i64::from(port))
    });
    if !taken {
        ports.push(serde_json::json!({"name": "metrics", "containerPort": port, "protocol": "TCP"}));
        changes.note("spec.podTemplate: container port metrics");
    }
}

/// Sets each entry of `defaults` in `spec.flinkConfiguration` whose key the object does not hold, in the flat form
/// (`a.b.c`) or the nested one operator 1.10 accepts (`a: {b: {c: ...}}`): the user's value always wins.
fn default_configuration(object: &mut Value, defaults: &BTreeMap<String, String>, changes: &mut Changes) {
    let present: Vec<String> = tree::get(object, &["spec", "flinkConfiguration"])
        .map(|configuration| {
            tree::flatten_keys(configuration)
                .into_iter()
                .filter(|(_, value)| !value.is_null())
                .map(|(key, _)| key)
                .collect()
        })
        .unwrap_or_default();
    let Some(configuration) = tree::object_at(object, &["spec", "flinkConfiguration"]) else {
        return; // not an object: validation names it
    };
    for (key, value) in defaults {
        if !present.contains(key) && tree::set_if_unset(configuration, key, Value::from(value.clone())) {
            changes.note(format!("spec.flinkConfiguration.{key}"));
        }
    }
}

/// Merges tolerations, nodeSelector and priorityClassName into a pod spec, keeping what it has.
pub(crate) fn place_pods(object: &mut Value, pod_spec_path: &[&str], placement: &Placement, changes: &mut Changes) {
    let Some(pod_spec) = tree::object_at(object, pod_spec_path) else {
        return;
    };
    let path = pod_spec_path.join(".");
    if !placement.tolerations.is_empty() {
        let wanted = placement.toleration_values();
        if let Some(tolerations) = tree::array_in(pod_spec, "tolerations")
            && tree::append_missing(tolerations, &wanted) > 0
        {
            changes.note(format!("{path}.tolerations"));
        }
    }
    if !placement.node_selector.is_empty()
        && let Some(selector) = tree::object_in(pod_spec, "nodeSelector")
        && tree::add_missing_entries(selector, &placement.node_selector)
    {
        changes.note(format!("{path}.nodeSelector"));
    }
    if let Some(priority_class) = &placement.priority_class_name
        && tree::set_if_unset(pod_spec, "priorityClassName", Value::from(priority_class.clone()))
    {
        changes.note(format!("{path}.priorityClassName"));
    }
}

/// Adds Flink's main container to a pod template's containers, first, when it is missing (true when added): should
/// the operator merge templates by position after all, index 0 meets the other template's main container rather
/// than a sidecar.
fn main_container_first(containers: &mut Vec<Value>) -> bool {
    let present = containers
        .iter()
        .any(|container| container.get("name").and_then(Value::as_str) == Some(MAIN_CONTAINER));
    if !present {
        containers.insert(0, serde_json::json!({"name": MAIN_CONTAINER}));
    }
    !present
}

/// Puts the worker pool beside `flink-main-container` in every TaskManager pod, with a shared artifact volume.
pub(crate) fn inject_harness(object: &mut Value, spec: &HarnessSpec, config: &HarnessConfig, changes: &mut Changes) {
    // Merge by name, unless the user decided otherwise (validation then explains why that breaks the harness). A
    // value that is there in any form, even a malformed one, is the user's: never replaced (the fuzzer found an
    // object under the key, which was overwritten with its unknown fields).
    let nested = format!("{MERGE_BY_NAME_KEY}.");
    let has_merge_key = tree::get(object, &["spec", "flinkConfiguration"])
        .map(|configuration| {
            configuration.get(MERGE_BY_NAME_KEY).is_some()
                || tree::flatten_keys(configuration)
                    .iter()
                    .any(|(key, _)| key == MERGE_BY_NAME_KEY || key.starts_with(&nested))
        })
        .unwrap_or(false);
    if !has_merge_key && let Some(configuration) = tree::object_at(object, &["spec", "flinkConfiguration"]) {
        configuration.insert(MERGE_BY_NAME_KEY.to_owned(), Value::from("true"));
        changes.note(format!("spec.flinkConfiguration.{MERGE_BY_NAME_KEY}"));
    }
    let Some(pod_spec) = tree::object_at(object, &["spec", "taskManager", "podTemplate", "spec"]) else {
        return;
    };
    let mut changed = false;
    if let Some(volumes) = tree::array_in(pod_spec, "volumes") {
        changed |= harness::ensure_volume(volumes, config);
    }
    let Some(containers) = tree::array_in(pod_spec, "containers") else {
        return;
    };
    changed |= main_container_first(containers);
    if let Some(main) = tree::named_entry(containers, MAIN_CONTAINER) {
        changed |= harness::ensure_mount(main, config);
    }
    if let Some(sidecar) = tree::named_entry(containers, &config.container_name) {
        changed |= harness::reconcile_container(sidecar, spec, config);
    }
    if changed {
        changes.note(format!(
            "spec.taskManager.podTemplate: harness {} ({})",
            config.container_name, spec.image
        ));
    }
    if let Some(java) = &spec.java
        && let Some(pool) = tree::named_entry(containers, &config.java.container_name)
        && harness::reconcile_java_container(pool, java, &config.java)
    {
        changes.note(format!(
            "spec.taskManager.podTemplate: Java harness {} ({})",
            config.java.container_name, java.image
        ));
    }
}
