//! The Beam SDK harness (worker pool) containers, shared by the Flink and Spark injections: Beam's Python worker
//! pool, and for pipelines with Java-backed transforms the Java one (images/beam-java-transforms).

use crate::config::{HarnessConfig, JavaHarnessConfig};
use crate::harness::{HarnessSpec, JavaPoolSpec};
use crate::tree;
use serde_json::{Map, Value, json};

/// Makes the container Beamstack owns look as the harness spec says, keeping anything else the user put on it
/// (extra args, env, a resources block of their own). Returns whether it changed anything.
pub(crate) fn reconcile_container(
    container: &mut Map<String, Value>,
    spec: &HarnessSpec,
    config: &HarnessConfig,
) -> bool {
    let mut changed = false;
    if container.get("image").and_then(Value::as_str) != Some(spec.image.as_str()) {
        container.insert("image".into(), Value::from(spec.image.clone()));
        changed = true;
    }
    if let Some(args) = tree::array_in(container, "args")
        && !args.iter().any(|arg| arg == "--worker_pool")
    {
        args.insert(0, Value::from("--worker_pool"));
        changed = true;
    }
    if let Some(ports) = tree::array_in(container, "ports") {
        let has_port = ports
            .iter()
            .any(|port| port.get("containerPort").and_then(Value::as_i64) == Some(i64::from(config.port)));
        if !has_port {
            ports.push(json!({"name": "worker-pool", "containerPort": config.port, "protocol": "TCP"}));
            changed = true;
        }
    }
    let resources = serde_json::to_value(&config.resources).unwrap_or(Value::Null);
    if !matches!(&resources, Value::Object(map) if map.is_empty()) {
        changed |= tree::set_if_unset(container, "resources", resources);
    }
    changed |= ensure_mount(container, config);
    changed
}

/// Mounts the artifact-staging volume into a container unless a mount of that volume exists.
pub(crate) fn ensure_mount(container: &mut Map<String, Value>, config: &HarnessConfig) -> bool {
    let Some(mounts) = tree::array_in(container, "volumeMounts") else {
        return false;
    };
    if mounts
        .iter()
        .any(|mount| mount.get("name").and_then(Value::as_str) == Some(config.artifact_volume.as_str()))
    {
        return false;
    }
    mounts.push(json!({"name": config.artifact_volume, "mountPath": config.artifact_mount_path}));
    true
}

/// Adds the artifact-staging emptyDir to a volume list unless a volume of that name exists.
pub(crate) fn ensure_volume(volumes: &mut Vec<Value>, config: &HarnessConfig) -> bool {
    if volumes
        .iter()
        .any(|volume| volume.get("name").and_then(Value::as_str) == Some(config.artifact_volume.as_str()))
    {
        return false;
    }
    volumes.push(json!({"name": config.artifact_volume, "emptyDir": {}}));
    true
}

/// Makes the Java worker-pool container look as the spec says, keeping what else the user put on it: the image, the
/// image's `worker-pool PORT` role, the port, resources and a liveness check unless it has its own. Returns whether
/// it changed anything.
pub(crate) fn reconcile_java_container(
    container: &mut Map<String, Value>,
    spec: &JavaPoolSpec,
    config: &JavaHarnessConfig,
) -> bool {
    let mut changed = false;
    if container.get("image").and_then(Value::as_str) != Some(spec.image.as_str()) {
        container.insert("image".into(), Value::from(spec.image.clone()));
        changed = true;
    }
    changed |= tree::set_if_unset(container, "args", json!(["worker-pool", config.port.to_string()]));
    if let Some(ports) = tree::array_in(container, "ports") {
        let has_port = ports
            .iter()
            .any(|port| port.get("containerPort").and_then(Value::as_i64) == Some(i64::from(config.port)));
        if !has_port {
            ports.push(json!({"name": "java-pool", "containerPort": config.port, "protocol": "TCP"}));
            changed = true;
        }
    }
    let resources = serde_json::to_value(&config.resources).unwrap_or(Value::Null);
    if !matches!(&resources, Value::Object(map) if map.is_empty()) {
        changed |= tree::set_if_unset(container, "resources", resources);
    }
    // The pool exits at start when the harness cannot load (it then restarts, visibly); a pool that stops answering
    // later would leave the TaskManager waiting for a worker, so the kubelet restarts it. It listens on every
    // interface, where the kubelet's probe dials.
    changed |= tree::set_if_unset(
        container,
        "livenessProbe",
        json!({
            "tcpSocket": {"port": config.port},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "failureThreshold": 3,
        }),
    );
    changed
}
