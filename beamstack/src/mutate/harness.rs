//! The Beam SDK harness (worker pool) containers, shared by the Flink and Spark injections: Beam's Python worker
//! pool, and for pipelines with Java-backed transforms the Java one (images/beam-java-transforms).

use crate::config::{HarnessConfig, JavaHarnessConfig};
use crate::harness::{HarnessSpec, JavaPoolSpec};
use crate::tree;
use k8s_openapi::api::core::v1::ResourceRequirements;
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
    changed |= ensure_port(container, "worker-pool", config.port);
    changed |= default_resources(container, &config.resources);
    changed |= ensure_mount(container, config);
    changed
}

/// Adds a TCP container port unless the container has one of that number.
fn ensure_port(container: &mut Map<String, Value>, name: &str, port: i32) -> bool {
    let Some(ports) = tree::array_in(container, "ports") else {
        return false;
    };
    let has_port = ports
        .iter()
        .any(|existing| existing.get("containerPort").and_then(Value::as_i64) == Some(i64::from(port)));
    if !has_port {
        ports.push(json!({"name": name, "containerPort": port, "protocol": "TCP"}));
    }
    !has_port
}

/// The configured resources, unless the container has its own (or the configuration none).
fn default_resources(container: &mut Map<String, Value>, resources: &ResourceRequirements) -> bool {
    let resources = serde_json::to_value(resources).unwrap_or(Value::Null);
    !matches!(&resources, Value::Object(map) if map.is_empty()) && tree::set_if_unset(container, "resources", resources)
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
    changed |= ensure_port(container, "java-pool", config.port);
    changed |= default_resources(container, &config.resources);
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
