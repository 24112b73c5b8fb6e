//! SparkApplication rules (and a ScheduledSparkApplication's template), after the Spark operator's webhook.

use super::{Subject, Violation, field};
use crate::tree::{get, get_str};
use crate::units;
use regex::Regex;
use serde_json::Value;
use std::sync::LazyLock;

/// DNS-1035 label: the operator derives pod and service names from it.
static DNS_1035: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$").unwrap());
/// sparkConf keys the operator sets itself from the spec; a value here would fight it.
static DENIED_CONF: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(spark\.master|spark\.kubernetes\.authenticate\.[^.]+\.serviceAccountName|spark\.kubernetes\.([^.]+\.)?container\.image)$")
        .unwrap()
});

pub fn application(subject: &Subject<'_>, out: &mut Vec<Violation>) {
    let object = subject.object;
    let path = subject.kind.spec_path();
    if let Some(name) = get_str(object, &["metadata", "name"])
        && !DNS_1035.is_match(name)
    {
        out.push(Violation::new(
            "spark-name",
            "metadata.name",
            format!(
                "`{name}` is not a DNS-1035 label: use at most 63 lowercase letters, digits and '-', \
                     starting with a letter and ending with a letter or digit"
            ),
        ));
    }
    let Some(spec) = get(object, path).filter(|spec| spec.is_object()) else {
        out.push(Violation::new(
            "spark-spec",
            path.join("."),
            "required: the application spec is missing",
        ));
        return;
    };
    let has_selector = |at: &[&str]| {
        get(spec, at)
            .and_then(Value::as_object)
            .is_some_and(|map| !map.is_empty())
    };
    if has_selector(&["nodeSelector"]) {
        for role in ["driver", "executor"] {
            if has_selector(&[role, "nodeSelector"]) {
                out.push(Violation::new(
                    "spark-node-selector",
                    field(path, &format!("{role}.nodeSelector")),
                    "cannot be used together with the application-level nodeSelector: keep one of the two",
                ));
            }
        }
    }
    if let Some(conf) = get(spec, &["sparkConf"]).and_then(Value::as_object) {
        for (key, value) in conf {
            if DENIED_CONF.is_match(key) {
                out.push(Violation::new(
                    "spark-conf",
                    field(path, &format!("sparkConf.{key}")),
                    "is set by the Spark operator from the spec: use the spec's own field (image, serviceAccount, \
                     mode) instead",
                ));
            } else if key == "spark.kubernetes.namespace" {
                let namespace = subject.namespace.unwrap_or_default();
                if value.as_str() != Some(namespace) {
                    out.push(Violation::new(
                        "spark-conf",
                        field(path, &format!("sparkConf.{key}")),
                        format!("must be the application's own namespace `{namespace}` or be removed"),
                    ));
                }
            }
        }
    }
    for role in ["driver", "executor"] {
        check_role(spec, path, role, out);
    }
    if let Some(allocation) = get(spec, &["dynamicAllocation"]).and_then(Value::as_object) {
        let bound = |key: &str| allocation.get(key).and_then(Value::as_i64);
        if let (Some(min), Some(max)) = (bound("minExecutors"), bound("maxExecutors"))
            && min > max
        {
            out.push(Violation::new(
                "spark-resources",
                field(path, "dynamicAllocation.minExecutors"),
                format!("{min} is more than maxExecutors {max}"),
            ));
        }
    }
}

fn check_role(spec: &Value, path: &[&str], role: &str, out: &mut Vec<Violation>) {
    let Some(role_spec) = get(spec, &[role]) else {
        out.push(Violation::new(
            "spark-resources",
            field(path, role),
            "required by the SparkApplication CRD",
        ));
        return;
    };
    if let Some(cores) = role_spec.get("cores").filter(|value| !value.is_null())
        && cores.as_i64().is_none_or(|count| count < 1)
    {
        out.push(Violation::new(
            "spark-resources",
            field(path, &format!("{role}.cores")),
            format!("must be a whole number of at least 1, got {cores}"),
        ));
    }
    for key in ["memory", "memoryOverhead"] {
        if let Some(memory) = role_spec.get(key).filter(|value| !value.is_null()) {
            let problem = match memory.as_str().map(units::spark_memory) {
                Some(Ok(bytes)) if bytes.0 > 0 || key == "memoryOverhead" => None,
                Some(Ok(_)) => Some("must be more than 0".to_owned()),
                Some(Err(error)) => Some(error.to_string()),
                None => Some(format!("must be a string such as \"1g\", got {memory}")),
            };
            if let Some(message) = problem {
                out.push(Violation::new(
                    "spark-resources",
                    field(path, &format!("{role}.{key}")),
                    message,
                ));
            }
        }
    }
    for key in ["coreRequest", "coreLimit"] {
        if let Some(cpu) = role_spec.get(key).and_then(Value::as_str)
            && let Err(error) = units::quantity_millicores(cpu)
        {
            out.push(Violation::new(
                "spark-resources",
                field(path, &format!("{role}.{key}")),
                error.to_string(),
            ));
        }
    }
    if role == "executor"
        && let Some(fault) = role_spec
            .get("instances")
            .filter(|value| !value.is_null())
            .and_then(super::count_fault)
    {
        out.push(Violation::new(
            "spark-resources",
            field(path, "executor.instances"),
            fault,
        ));
    }
}
