//! FlinkDeployment and FlinkSessionJob rules, after the Flink operator's DefaultValidator.

use super::{Subject, Violation};
use crate::config::Config;
use crate::flink_resources::{self, Role, Setting, Shape};
use crate::harness;
use crate::mutate::MERGE_BY_NAME_KEY;
use crate::tree::{self, flatten_keys, get, get_str};
use crate::units;
use crate::versions::FLINK_VERSION_PATTERN;
use regex::Regex;
use serde_json::Value;
use std::sync::LazyLock;

/// The operator's name rule: the name becomes a Deployment, a Service and a Flink cluster id.
static NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z]([-a-z\d]{0,43}[a-z\d])?$").unwrap());

const FORBIDDEN_KEYS: [&str; 3] = [
    "kubernetes.namespace",
    "kubernetes.cluster-id",
    "high-availability.cluster-id",
];
const CHECKPOINT_DIR_KEYS: [&str; 2] = ["execution.checkpointing.dir", "state.checkpoints.dir"];
const SAVEPOINT_DIR_KEYS: [&str; 2] = ["execution.checkpointing.savepoint-dir", "state.savepoints.dir"];

pub fn deployment(subject: &Subject<'_>, config: &Config, out: &mut Vec<Violation>) {
    let object = subject.object;
    check_name(object, out);
    let beam_pipeline = matches!(harness::harness_for(object, &config.harness), Ok(Some(_)));
    check_flink_version(object, beam_pipeline, &config.flink.supported_versions, out);
    if get_str(object, &["spec", "serviceAccount"]).is_none_or(str::is_empty) {
        out.push(Violation::new(
            "service-account",
            "spec.serviceAccount",
            "required: name the service account the Flink pods run as",
        ));
    }
    for role in Role::ALL {
        check_resources(object, role, out);
        let field = role.field();
        if let Some(fault) = get(object, &["spec", field, "replicas"]).and_then(super::count_fault) {
            out.push(Violation::new(
                "flink-replicas",
                format!("spec.{field}.replicas"),
                fault,
            ));
        }
    }
    let configuration = flink_configuration(object);
    let setting = |key: &str| {
        configuration
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| *value)
    };
    let job_manager_replicas = get(object, &["spec", "jobManager", "replicas"]).and_then(Value::as_i64);
    if job_manager_replicas.is_some_and(|count| count > 1) {
        let high_availability = ["high-availability.type", "high-availability"]
            .iter()
            .filter_map(|key| setting(key).and_then(Value::as_str))
            .any(|mode| !mode.eq_ignore_ascii_case("none"));
        if !high_availability {
            out.push(Violation::new(
                "flink-ha",
                "spec.jobManager.replicas",
                "more than one JobManager needs high availability: set flinkConfiguration \
                 high-availability.type (for example `kubernetes`) or use 1 replica",
            ));
        }
    }
    check_forbidden_keys(&configuration, out);
    if let Some(job) = get(object, &["spec", "job"]).filter(|job| !job.is_null()) {
        check_parallelism(job, out);
        let upgrade_mode = job.get("upgradeMode").and_then(Value::as_str).unwrap_or("stateless");
        let has_any = |keys: &[&str]| {
            keys.iter()
                .any(|key| setting(key).is_some_and(|value| !value.is_null()))
        };
        if matches!(upgrade_mode, "last-state" | "savepoint") && !has_any(&CHECKPOINT_DIR_KEYS) {
            out.push(Violation::new(
                "flink-checkpoint-dir",
                "spec.flinkConfiguration",
                format!(
                    "upgradeMode {upgrade_mode} needs a checkpoint directory: set {} or use upgradeMode stateless",
                    CHECKPOINT_DIR_KEYS[0]
                ),
            ));
        }
        if upgrade_mode == "savepoint" && !has_any(&SAVEPOINT_DIR_KEYS) {
            out.push(Violation::new(
                "flink-savepoint-dir",
                "spec.flinkConfiguration",
                format!(
                    "upgradeMode savepoint needs a savepoint directory: set {}",
                    SAVEPOINT_DIR_KEYS[0]
                ),
            ));
        }
    }
    if let Some(old) = subject.old_object {
        check_transition(old, object, out);
        if beam_pipeline {
            check_stateful_rescale(old, object, out);
        }
    }
    if beam_pipeline && let Some(value) = setting(MERGE_BY_NAME_KEY) {
        let merged_by_name = value
            .as_str()
            .map_or(value.as_bool() == Some(true), |text| text == "true");
        if !merged_by_name {
            out.push(Violation::new(
                "harness-merge-by-name",
                format!("spec.flinkConfiguration.{MERGE_BY_NAME_KEY}"),
                "must be \"true\" for a Beam pipeline: merged by position, the worker-pool sidecar \
                     can be folded into another container; remove the key or set it to \"true\"",
            ));
        }
    }
}

pub(crate) fn session_job(subject: &Subject<'_>, out: &mut Vec<Violation>) {
    let object = subject.object;
    if get_str(object, &["spec", "deploymentName"]).is_none_or(str::is_empty) {
        out.push(Violation::new(
            "flink-session-job",
            "spec.deploymentName",
            "required: name the FlinkDeployment (session cluster) this job runs on",
        ));
    }
    match get(object, &["spec", "job"]).filter(|job| !job.is_null()) {
        None => out.push(Violation::new(
            "flink-session-job",
            "spec.job",
            "required: a session job needs a job",
        )),
        Some(job) => {
            if job.get("jarURI").and_then(Value::as_str).is_none_or(str::is_empty) {
                out.push(Violation::new(
                    "flink-session-job",
                    "spec.job.jarURI",
                    "required: a session job must name its jar",
                ));
            }
            check_parallelism(job, out);
        }
    }
    check_forbidden_keys(&flink_configuration(object), out);
    if let Some(old) = subject.old_object {
        let old_target = get_str(old, &["spec", "deploymentName"]);
        if old_target.is_some() && old_target != get_str(object, &["spec", "deploymentName"]) {
            out.push(Violation::new(
                "flink-immutable",
                "spec.deploymentName",
                "cannot move a session job to another cluster: delete it and create it there",
            ));
        }
    }
}

fn flink_configuration(object: &Value) -> Vec<(String, &Value)> {
    get(object, &["spec", "flinkConfiguration"])
        .map(flatten_keys)
        .unwrap_or_default()
}

/// A Beam pipeline needs a Flink minor that Beam publishes a runner for (the configured `supportedVersions`). Any
/// other FlinkDeployment may use what the operator runs: every version from v1_15 on (FlinkVersion.isSupported;
/// v1_15 deprecated but accepted, v1_13 and v1_14 refused), within the CRD's enum.
fn check_flink_version(object: &Value, beam_pipeline: bool, supported: &[String], out: &mut Vec<Violation>) {
    let choices = || {
        if beam_pipeline {
            format!("one of {} (the Flink versions Beam runs on)", supported.join(", "))
        } else {
            format!("{OLDEST_FLINK_VERSION} or newer, the Flink version of the image")
        }
    };
    let problem = match get(object, &["spec", "flinkVersion"]) {
        None | Some(Value::Null) => format!("required: set {}", choices()),
        Some(Value::String(version)) if FLINK_VERSION_PATTERN.is_match(version) => {
            let accepted = if beam_pipeline {
                supported.contains(version)
            } else {
                minor_version(version) >= minor_version(OLDEST_FLINK_VERSION)
            };
            if accepted {
                return;
            }
            let whom = if beam_pipeline {
                "a Beam pipeline"
            } else {
                "the Flink operator"
            };
            format!("`{version}` is not supported by {whom}: use {}", choices())
        }
        Some(other) => {
            let shown = other.as_str().map_or_else(|| other.to_string(), str::to_owned);
            format!("`{shown}` is not a flinkVersion: use {}", choices())
        }
    };
    out.push(Violation::new("flink-version", "spec.flinkVersion", problem));
}

/// The oldest `flinkVersion` the Flink operator runs (FlinkVersion.isSupported).
const OLDEST_FLINK_VERSION: &str = "v1_15";

/// `v1_20` as (1, 20), for ordering; the pattern has been checked.
fn minor_version(version: &str) -> (u32, u32) {
    let (major, minor) = version.trim_start_matches('v').split_once('_').unwrap_or_default();
    (major.parse().unwrap_or(0), minor.parse().unwrap_or(0))
}

fn check_name(object: &Value, out: &mut Vec<Violation>) {
    if let Some(name) = get_str(object, &["metadata", "name"])
        && !NAME.is_match(name)
    {
        out.push(Violation::new(
            "flink-name",
            "metadata.name",
            format!(
                "`{name}` is not a valid FlinkDeployment name: use at most 45 lowercase letters, digits and \
                     '-', starting with a letter and ending with a letter or digit"
            ),
        ));
    }
}

/// A role's cpu and memory as the operator will read them (flink_resources): memory settled somewhere and every
/// amount readable; with `resources`, every quantity readable and no request above its limit, which Kubernetes
/// refuses in a pod and Flink refuses as a limit factor below 1. Cpu may stay unset: Flink then gives one core.
fn check_resources(object: &Value, role: Role, out: &mut Vec<Violation>) {
    let field = role.field();
    let shape = flink_resources::shape(object, role);
    match flink_resources::memory(object, role) {
        None => out.push(Violation::new(
            "flink-resources",
            match shape {
                Shape::Resources => format!("spec.{field}.resources.requests.memory"),
                Shape::Resource => format!("spec.{field}.resource.memory"),
            },
            match shape {
                Shape::Resources => {
                    "required: set a memory request such as 2Gi (with `resources` set, the operator \
                                     ignores `resource`)"
                }
                Shape::Resource => "required: set a memory size such as 2048m or 2Gi",
            },
        )),
        Some(setting) => check_memory(&setting, role, out),
    }
    match shape {
        Shape::Resources => check_requests_and_limits(object, role, out),
        Shape::Resource => {
            if let Some(setting) = flink_resources::cpu(object, role)
                && setting.cpu().is_none_or(|cpu| cpu.0 == 0)
            {
                out.push(Violation::new(
                    "flink-resources",
                    setting.field(role, "cpu"),
                    format!("must be a positive number of cores, got {}", setting.value()),
                ));
            }
        }
    }
}

fn check_memory(setting: &Setting<'_>, role: Role, out: &mut Vec<Violation>) {
    let field = setting.field(role, "memory");
    let problem = match setting {
        Setting::Resource { value } | Setting::Configuration { value, .. } => match value {
            Value::String(memory) => match units::flink_memory(memory) {
                Ok(bytes) if bytes.0 > 0 => None,
                Ok(_) => Some("must be more than 0".to_owned()),
                Err(error) => Some(error.to_string()),
            },
            other => Some(format!("must be a string such as \"2048m\", got {other}")),
        },
        // Quantities are checked with the rest of `resources`.
        Setting::Quantity { .. } => None,
    };
    if let Some(message) = problem {
        out.push(Violation::new("flink-resources", field, message));
    }
}

/// Every quantity in a role's `resources` readable, and no request above its limit.
fn check_requests_and_limits(object: &Value, role: Role, out: &mut Vec<Violation>) {
    let field = format!("spec.{}.resources", role.field());
    let amounts = |path: &str| -> Vec<(String, Option<units::Quantity>)> {
        get(object, &["spec", role.field(), "resources", path])
            .and_then(Value::as_object)
            .map(|map| {
                map.iter()
                    .map(|(name, value)| {
                        let text = match value {
                            Value::String(text) => Some(text.clone()),
                            Value::Number(number) => Some(number.to_string()),
                            _ => None,
                        };
                        (name.clone(), text.and_then(|text| units::Quantity::parse(&text).ok()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let requests = amounts("requests");
    let limits = amounts("limits");
    for (path, list) in [("requests", &requests), ("limits", &limits)] {
        for (name, quantity) in list {
            let readable = quantity
                .as_ref()
                .is_some_and(|quantity| !quantity.value().is_sign_negative());
            if !readable {
                let shown = get(object, &["spec", role.field(), "resources", path, name])
                    .cloned()
                    .unwrap_or_default();
                out.push(Violation::new(
                    "flink-resources",
                    format!("{field}.{path}.{name}"),
                    format!(
                        "`{}` is not a Kubernetes quantity such as 2Gi or 500m",
                        text_or_json(&shown)
                    ),
                ));
            }
        }
    }
    for (name, request) in &requests {
        let limit = limits
            .iter()
            .find(|(limit_name, _)| limit_name == name)
            .and_then(|(_, limit)| limit.as_ref());
        if let (Some(request), Some(limit)) = (request, limit)
            && request > limit
        {
            out.push(Violation::new(
                "flink-resources",
                format!("{field}.requests.{name}"),
                format!(
                    "{request} is above the limit {limit}: Kubernetes refuses a pod whose request exceeds its limit \
                     (and Flink a limit factor below 1); lower the request or raise the limit"
                ),
            ));
        }
    }
}

fn text_or_json(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

fn check_parallelism(job: &Value, out: &mut Vec<Violation>) {
    if let Some(fault) = job
        .get("parallelism")
        .filter(|value| !value.is_null())
        .and_then(super::count_fault)
    {
        out.push(Violation::new("flink-parallelism", "spec.job.parallelism", fault));
    }
}

fn check_forbidden_keys(configuration: &[(String, &Value)], out: &mut Vec<Violation>) {
    for (key, _) in configuration {
        if FORBIDDEN_KEYS.contains(&key.as_str()) {
            out.push(Violation::new(
                "flink-forbidden-config",
                format!("spec.flinkConfiguration.{key}"),
                "is set by the operator from the object's namespace and name: remove it",
            ));
        }
    }
}

/// The operator cannot turn a session cluster into an application cluster (or back), nor change the deployment mode.
fn check_transition(old: &Value, new: &Value, out: &mut Vec<Violation>) {
    let has_job = |object: &Value| !tree::is_unset(object, &["spec", "job"]);
    if has_job(old) != has_job(new) {
        let (from, to) = if has_job(old) {
            ("an application", "a session")
        } else {
            ("a session", "an application")
        };
        out.push(Violation::new(
            "flink-immutable",
            "spec.job",
            format!("cannot turn {from} cluster into {to} cluster: delete the FlinkDeployment and create it anew"),
        ));
    }
    let mode = |object: &Value| get_str(object, &["spec", "mode"]).unwrap_or("native").to_owned();
    if mode(old) != mode(new) {
        out.push(Violation::new(
            "flink-immutable",
            "spec.mode",
            format!(
                "cannot change mode from {} to {} after deployment: delete and recreate",
                mode(old),
                mode(new)
            ),
        ));
    }
}

/// A stateful upgrade of a Beam pipeline may not cross parallelism 1. Beam's Flink runner (2.62) gives its Impulse
/// source, the root of every Python pipeline's reads, no operator uid, so Flink derives the source's operator id
/// from the job graph's shape; at parallelism 1 the source is chained into the next operator, above 1 it is not, and
/// the id changes. The restored job then holds checkpointed state for an operator the new graph lacks, and Flink
/// refuses to start it ("There is no operator for the state ...") until someone intervenes. Between two
/// parallelisms above 1 the ids stay the same (the e2e upgrade scenario restores 2 -> 4).
fn check_stateful_rescale(old: &Value, new: &Value, out: &mut Vec<Violation>) {
    let Some(job) = get(new, &["spec", "job"]).filter(|job| job.is_object()) else {
        return;
    };
    let upgrade_mode = job.get("upgradeMode").and_then(Value::as_str).unwrap_or("stateless");
    let drops_unmatched_state = job.get("allowNonRestoredState").and_then(Value::as_bool) == Some(true);
    if !matches!(upgrade_mode, "last-state" | "savepoint") || drops_unmatched_state {
        return;
    }
    let parallelism = |object: &Value| get(object, &["spec", "job", "parallelism"]).and_then(Value::as_i64);
    let (Some(before), Some(after)) = (parallelism(old), parallelism(new)) else {
        return;
    };
    if (before == 1) != (after == 1) && before >= 1 && after >= 1 {
        out.push(Violation::new(
            "flink-stateful-rescale",
            "spec.job.parallelism",
            format!(
                "a {upgrade_mode} upgrade from parallelism {before} to {after} cannot restore this Beam job's state: \
                 Beam's Flink runner gives its Impulse source no stable operator id, and the id changes when the \
                 parallelism crosses 1; keep the parallelism above 1 (any change between 2 and more restores), use \
                 upgradeMode stateless, or set spec.job.allowNonRestoredState: true (the Impulse then fires again: \
                 the pipeline's sources read once more from their start)"
            ),
        ));
    }
}
