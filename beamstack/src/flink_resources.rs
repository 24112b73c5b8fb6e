//! What each FlinkDeployment role (JobManager, TaskManagers) runs with, read the way the Flink operator reads it.
//!
//! The operator's FlinkConfigBuilder takes a role's cpu and memory from `resources` (Kubernetes requests and limits,
//! operator 1.16) whenever the role has that field, and then ignores the older `resource` entirely; otherwise from
//! `resource`; and where the spec gives neither, from `flinkConfiguration` (`jobmanager.memory.process.size`,
//! `kubernetes.jobmanager.cpu.amount`, ...), which the spec's values would override. A request counts before its
//! limit, since Kubernetes defaults a missing request to the limit. Defaults, validation and tenant demand all read
//! through here, so each fills, checks and counts the same amounts the operator will use.

use crate::tree::{flatten_keys, get};
use crate::units::{self, Bytes, Millicores};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    JobManager,
    TaskManager,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::JobManager, Role::TaskManager];

    /// The role's field under `spec`.
    pub fn field(self) -> &'static str {
        match self {
            Role::JobManager => "jobManager",
            Role::TaskManager => "taskManager",
        }
    }

    /// Flink's options that size the role's memory without the spec, the total process size first: Flink derives
    /// the rest of its memory model from any one of them (for TaskManagers, task heap goes with managed memory).
    fn memory_keys(self) -> &'static [&'static str] {
        match self {
            Role::JobManager => &[
                "jobmanager.memory.process.size",
                "jobmanager.memory.flink.size",
                "jobmanager.memory.heap.size",
            ],
            Role::TaskManager => &[
                "taskmanager.memory.process.size",
                "taskmanager.memory.flink.size",
                "taskmanager.memory.task.heap.size",
            ],
        }
    }

    /// Flink's options for the role's cores (the `.amount` form since Flink 1.17, the bare one before).
    fn cpu_keys(self) -> &'static [&'static str] {
        match self {
            Role::JobManager => &["kubernetes.jobmanager.cpu.amount", "kubernetes.jobmanager.cpu"],
            Role::TaskManager => &["kubernetes.taskmanager.cpu.amount", "kubernetes.taskmanager.cpu"],
        }
    }
}

/// Which of the two shapes the operator reads for a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `resources`: Kubernetes requests and limits (operator 1.16); `resource` is then ignored.
    Resources,
    /// `resource`: cpu as a number of cores, memory as a Flink memory size.
    Resource,
}

/// The shape the operator reads for `role`: `resources` as soon as the field is there, even without cpu or memory.
pub fn shape(object: &Value, role: Role) -> Shape {
    match get(object, &["spec", role.field(), "resources"]) {
        Some(value) if !value.is_null() => Shape::Resources,
        _ => Shape::Resource,
    }
}

/// Where a role's amount is written, and how to read it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Setting<'a> {
    /// `resources.requests` or `resources.limits`: a Kubernetes quantity (a string or a number).
    Quantity { path: &'static str, value: &'a Value },
    /// `resource.cpu` (cores, a number) or `resource.memory` (a Flink memory size).
    Resource { value: &'a Value },
    /// A `flinkConfiguration` option: a string (or a number).
    Configuration { key: &'static str, value: &'a Value },
}

impl Setting<'_> {
    /// The field it is written in, for messages: `spec.jobManager.resources.requests.memory`.
    pub fn field(&self, role: Role, amount: &str) -> String {
        match self {
            Setting::Quantity { path, .. } => format!("spec.{}.resources.{path}.{amount}", role.field()),
            Setting::Resource { .. } => format!("spec.{}.resource.{amount}", role.field()),
            Setting::Configuration { key, .. } => format!("spec.flinkConfiguration.{key}"),
        }
    }

    /// The value as the object holds it.
    pub fn value(&self) -> &Value {
        match self {
            Setting::Quantity { value, .. } | Setting::Resource { value } | Setting::Configuration { value, .. } => {
                value
            }
        }
    }

    /// The memory it gives, in bytes; `None` when it is not a size Flink or Kubernetes can read. For the
    /// `flink.size` and heap options this is a lower bound of the pod's memory (Flink adds JVM overhead to them).
    pub fn memory(&self) -> Option<Bytes> {
        match self {
            Setting::Quantity { value, .. } => units::quantity_bytes(&text_of(value)?).ok(),
            Setting::Resource { value } | Setting::Configuration { value, .. } => {
                units::flink_memory(&text_of(value)?).ok()
            }
        }
    }

    /// The cpu it gives; `None` when it is not an amount the operator can read.
    pub fn cpu(&self) -> Option<Millicores> {
        match self {
            Setting::Quantity { value, .. } => units::quantity_millicores(&text_of(value)?).ok(),
            Setting::Resource { value } => value.as_f64().and_then(units::cores_to_millicores),
            Setting::Configuration { value, .. } => {
                text_of(value)?.trim().parse().ok().and_then(units::cores_to_millicores)
            }
        }
    }
}

/// Where the operator will take `role`'s memory from, if the object says.
pub fn memory(object: &Value, role: Role) -> Option<Setting<'_>> {
    from_spec(object, role, "memory").or_else(|| from_configuration(object, role.memory_keys()))
}

/// Where the operator will take `role`'s cpu from, if the object says (else Flink's default: one core).
pub fn cpu(object: &Value, role: Role) -> Option<Setting<'_>> {
    from_spec(object, role, "cpu").or_else(|| from_configuration(object, role.cpu_keys()))
}

/// Flink's cores for a role when nothing sets them (`kubernetes.jobmanager.cpu.amount`'s default).
pub const DEFAULT_CPU: Millicores = Millicores(1000);

fn from_spec<'a>(object: &'a Value, role: Role, amount: &str) -> Option<Setting<'a>> {
    let set = |value: Option<&'a Value>| value.filter(|value| !value.is_null());
    match shape(object, role) {
        Shape::Resources => ["requests", "limits"].into_iter().find_map(|path| {
            set(get(object, &["spec", role.field(), "resources", path, amount]))
                .map(|value| Setting::Quantity { path, value })
        }),
        Shape::Resource => {
            set(get(object, &["spec", role.field(), "resource", amount])).map(|value| Setting::Resource { value })
        }
    }
}

fn from_configuration<'a>(object: &'a Value, keys: &[&'static str]) -> Option<Setting<'a>> {
    let configuration = flatten_keys(get(object, &["spec", "flinkConfiguration"])?);
    keys.iter().find_map(|key| {
        configuration
            .iter()
            .find(|(name, value)| name == key && !value.is_null())
            .map(|(_, value)| Setting::Configuration { key, value })
    })
}

/// A quantity or option value as text: strings as they are, numbers printed.
fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}
