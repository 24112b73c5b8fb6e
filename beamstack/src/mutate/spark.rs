//! SparkApplication defaults and harness injection (also applied to a ScheduledSparkApplication's `spec.template`).

use super::{Changes, harness};
use crate::config::{HarnessConfig, SparkConfig};
use crate::harness::HarnessSpec;
use crate::tree;
use crate::tree::dotted;
use serde_json::Value;

const ROLES: [&str; 2] = ["driver", "executor"];

pub(crate) fn apply_defaults(object: &mut Value, spec_path: &[&str], config: &SparkConfig, changes: &mut Changes) {
    let Some(spec) = spec_value(object, spec_path) else {
        return;
    };
    let field = |rest: &str| dotted(spec_path, rest);
    // The operator passes `sparkConf` to spark-submit before its own fields, so a field we fill would override the
    // object's `spark.driver.cores` and the like: those settle the field (the operator's own defaulter agrees).
    let conf_sets =
        |spec: &Value, key: &str| tree::get(spec, &["sparkConf", key]).is_some_and(|value| !value.is_null());
    for (role, defaults) in [("driver", &config.driver), ("executor", &config.executor)] {
        let settled = |amount: &str| conf_sets(spec, &format!("spark.{role}.{amount}"));
        let (cores_settled, memory_settled) = (settled("cores"), settled("memory"));
        let Some(role_spec) = tree::object_at(spec, &[role]) else {
            continue;
        };
        if !cores_settled && tree::set_if_unset(role_spec, "cores", Value::from(defaults.cores)) {
            changes.note(field(&format!("{role}.cores")));
        }
        if !memory_settled && tree::set_if_unset(role_spec, "memory", Value::from(defaults.memory.clone())) {
            changes.note(field(&format!("{role}.memory")));
        }
    }
    let dynamic_allocation = tree::get(spec, &["dynamicAllocation", "enabled"]).and_then(Value::as_bool) == Some(true)
        || tree::get_str(spec, &["sparkConf", "spark.dynamicAllocation.enabled"])
            .is_some_and(|on| on.trim().eq_ignore_ascii_case("true"));
    let instances_settled = dynamic_allocation || conf_sets(spec, "spark.executor.instances");
    if !instances_settled
        && let Some(executor) = tree::object_at(spec, &["executor"])
        && tree::set_if_unset(executor, "instances", Value::from(config.executor_instances))
    {
        changes.note(field("executor.instances"));
    }
    // Spark gives the driver spark.kubernetes.authenticate.driver.serviceAccountName over its pod template's account:
    // a template that names one keeps it.
    let template_account = ["serviceAccountName", "serviceAccount"].iter().any(|key| {
        tree::get_str(spec, &["driver", "template", "spec", key]).is_some_and(|account| !account.is_empty())
    });
    if !template_account
        && let Some(driver) = tree::object_at(spec, &["driver"])
        && tree::set_if_unset(driver, "serviceAccount", Value::from(config.service_account.clone()))
    {
        changes.note(field("driver.serviceAccount"));
    }
    place_pods(spec, spec_path, config, changes);
    if let Some(queue) = &config.volcano_queue {
        if let Some(spec_map) = spec.as_object_mut()
            && tree::set_if_unset(spec_map, "batchScheduler", Value::from("volcano"))
        {
            changes.note(field("batchScheduler"));
        }
        if tree::get_str(spec, &["batchScheduler"]) == Some("volcano")
            && let Some(options) = tree::object_at(spec, &["batchSchedulerOptions"])
            && tree::set_if_unset(options, "queue", Value::from(queue.clone()))
        {
            changes.note(field("batchSchedulerOptions.queue"));
        }
    }
}

/// The SparkApplication spec at `spec_path`, if it is an object (or absent, then created).
fn spec_value<'a>(object: &'a mut Value, spec_path: &[&str]) -> Option<&'a mut Value> {
    tree::object_at(object, spec_path)?;
    spec_path.iter().try_fold(object, |node, key| node.get_mut(*key))
}

fn place_pods(spec: &mut Value, spec_path: &[&str], config: &SparkConfig, changes: &mut Changes) {
    let placement = &config.placement;
    let field = |rest: &str| dotted(spec_path, rest);
    if !placement.tolerations.is_empty() {
        let wanted = placement.toleration_values();
        for role in ROLES {
            let Some(role_spec) = tree::object_at(spec, &[role]) else {
                continue;
            };
            if let Some(tolerations) = tree::array_in(role_spec, "tolerations")
                && tree::append_missing(tolerations, &wanted) > 0
            {
                changes.note(field(&format!("{role}.tolerations")));
            }
        }
    }
    if let Some(priority_class) = &placement.priority_class_name {
        for role in ROLES {
            let Some(role_spec) = tree::object_at(spec, &[role]) else {
                continue;
            };
            if tree::set_if_unset(role_spec, "priorityClassName", Value::from(priority_class.clone())) {
                changes.note(field(&format!("{role}.priorityClassName")));
            }
        }
    }
    if !placement.node_selector.is_empty() {
        // The Spark operator refuses an app-level nodeSelector next to role-level ones, so defaults go wherever the
        // object already keeps its selectors.
        let role_level = ROLES.iter().any(|role| {
            tree::get(spec, &[role, "nodeSelector"])
                .and_then(Value::as_object)
                .is_some_and(|selector| !selector.is_empty())
        });
        let targets: Vec<Vec<&str>> = if role_level {
            ROLES.iter().map(|role| vec![*role, "nodeSelector"]).collect()
        } else {
            vec![vec!["nodeSelector"]]
        };
        for target in targets {
            if let Some(selector) = tree::object_at(spec, &target)
                && tree::add_missing_entries(selector, &placement.node_selector)
            {
                changes.note(field(&target.join(".")));
            }
        }
    }
}

/// Adds the worker pool as an executor sidecar, with the artifact volume shared with the executor container.
pub(crate) fn inject_harness(
    object: &mut Value,
    spec_path: &[&str],
    harness_spec: &HarnessSpec,
    config: &HarnessConfig,
    changes: &mut Changes,
) {
    let Some(spec) = spec_value(object, spec_path) else {
        return;
    };
    let mut changed = false;
    if let Some(spec_map) = spec.as_object_mut()
        && let Some(volumes) = tree::array_in(spec_map, "volumes")
    {
        changed |= harness::ensure_volume(volumes, config);
    }
    let Some(executor) = tree::object_at(spec, &["executor"]) else {
        return;
    };
    changed |= harness::ensure_mount(executor, config);
    if let Some(sidecars) = tree::array_in(executor, "sidecars")
        && let Some(sidecar) = tree::named_entry(sidecars, &config.container_name)
    {
        changed |= harness::reconcile_container(sidecar, harness_spec, config);
    }
    if changed {
        changes.note(format!(
            "{}: harness {} ({})",
            dotted(spec_path, "executor.sidecars"),
            config.container_name,
            harness_spec.image
        ));
    }
    if let Some(java) = &harness_spec.java
        && let Some(sidecars) = tree::array_in(executor, "sidecars")
        && let Some(pool) = tree::named_entry(sidecars, &config.java.container_name)
        && harness::reconcile_java_container(pool, java, &config.java)
    {
        changes.note(format!(
            "{}: Java harness {} ({})",
            dotted(spec_path, "executor.sidecars"),
            config.java.container_name,
            java.image
        ));
    }
}
