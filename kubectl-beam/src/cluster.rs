//! Talking to the cluster: server-side apply of a run's objects, and reading back the runner objects of pipelines.
//!
//! Written against a real API server; the end-to-end suite (a real kube-apiserver on loopback) exercises it.

use crate::convert::{FIELD_MANAGER, LABEL_PIPELINE};
use crate::status::{self, JobStatus};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use serde_json::{Value, json};
use std::path::Path;

/// A client for `--kubeconfig` and `--context` (else the usual inference: $KUBECONFIG, ~/.kube/config, in-cluster).
pub async fn client(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Client, String> {
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path).map_err(|error| format!("{}: {error}", path.display()))?;
            Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|error| error.to_string())?
        }
        None if context.is_some() => Config::from_kubeconfig(&options)
            .await
            .map_err(|error| error.to_string())?,
        None => Config::infer().await.map_err(|error| {
            format!("no cluster configured ({error}): pass --kubeconfig, set KUBECONFIG, or use --dry-run=client")
        })?,
    };
    Client::try_from(config).map_err(|error| error.to_string())
}

/// The runner kinds kubectl beam creates and reads.
pub fn runner_resources() -> Vec<ApiResource> {
    [
        ("flink.apache.org", "v1beta1", "FlinkDeployment", "flinkdeployments"),
        (
            "sparkoperator.k8s.io",
            "v1beta2",
            "SparkApplication",
            "sparkapplications",
        ),
        ("batch", "v1", "Job", "jobs"),
    ]
    .into_iter()
    .map(|(group, version, kind, plural)| {
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
    })
    .collect()
}

fn resource_of(object: &Value) -> Result<ApiResource, String> {
    let api_version = object["apiVersion"].as_str().unwrap_or("");
    let kind = object["kind"].as_str().unwrap_or("");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let plural = match kind {
        "ConfigMap" => "configmaps",
        "FlinkDeployment" => "flinkdeployments",
        "SparkApplication" => "sparkapplications",
        "Job" => "jobs",
        other => return Err(format!("kubectl beam does not apply {other} objects")),
    };
    Ok(ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind),
        plural,
    ))
}

/// Applies a run's objects with server-side apply (running the same file again updates, never duplicates). The
/// runner object goes first; the ConfigMap then names it as its owner, so deleting the job deletes its pipeline.
/// With `dry_run`, the API server and its admission webhooks judge the objects and nothing is stored.
pub async fn apply(client: &Client, namespace: &str, objects: &[Value], dry_run: bool) -> Result<Vec<Value>, String> {
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    params.dry_run = dry_run;
    let (config_maps, runners): (Vec<&Value>, Vec<&Value>) =
        objects.iter().partition(|object| object["kind"] == "ConfigMap");
    let mut applied = Vec::new();
    let mut owner: Option<Value> = None;
    for object in runners.into_iter().chain(config_maps) {
        let mut object = object.clone();
        if object["kind"] == "ConfigMap"
            && let Some(owner) = &owner
        {
            object["metadata"]["ownerReferences"] = json!([owner]);
        }
        let resource = resource_of(&object)?;
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let result = api
            .patch(&name, &params, &Patch::Apply(&object))
            .await
            .map_err(|error| format!("{} {name}: {}", resource.kind, describe(&error)))?;
        if object["kind"] != "ConfigMap"
            && owner.is_none()
            && let Some(uid) = result.uid()
        {
            owner = Some(json!({
                "apiVersion": object["apiVersion"], "kind": object["kind"], "name": name, "uid": uid,
                "controller": true, "blockOwnerDeletion": false,
            }));
        }
        applied.push(serde_json::to_value(&result).map_err(|error| error.to_string())?);
    }
    Ok(applied)
}

/// API errors as the API server phrased them (admission denials included).
pub fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.reason),
        other => other.to_string(),
    }
}

/// The runner object of a pipeline (by its `beamstack.dev/pipeline` label), with its phase.
pub async fn find(
    client: &Client,
    namespace: Option<&str>,
    pipeline: Option<&str>,
) -> Result<Vec<(Value, JobStatus)>, String> {
    let selector = match pipeline {
        Some(name) => format!("{LABEL_PIPELINE}={name}"),
        None => format!("app.kubernetes.io/managed-by={FIELD_MANAGER}"),
    };
    let mut found = Vec::new();
    for resource in runner_resources() {
        let api: Api<DynamicObject> = match namespace {
            Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        match api.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => {
                for object in list.items {
                    let value = serde_json::to_value(&object).map_err(|error| error.to_string())?;
                    let phase = status::phase_of(&value);
                    found.push((value, phase));
                }
            }
            // An operator that is not installed has no objects to show.
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(format!("listing {}: {}", resource.plural, describe(&error))),
        }
    }
    Ok(found)
}

/// Deletes a pipeline's runner object (its ConfigMap goes with it, through the owner reference).
pub async fn delete(client: &Client, namespace: &str, pipeline: &str) -> Result<Vec<String>, String> {
    let mut deleted = Vec::new();
    for (object, _) in find(client, Some(namespace), Some(pipeline)).await? {
        let resource = resource_of(&object)?;
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        api.delete(&name, &DeleteParams::foreground())
            .await
            .map_err(|error| describe(&error))?;
        deleted.push(format!("{}/{name}", resource.kind.to_lowercase()));
    }
    Ok(deleted)
}

/// Session clusters kubectl beam created (label beamstack.dev/session-cluster), with their phase.
pub async fn session_clusters(client: &Client, namespace: Option<&str>) -> Result<Vec<(Value, JobStatus)>, String> {
    let resource = runner_resources().remove(0);
    let api: Api<DynamicObject> = match namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let list = api
        .list(&ListParams::default().labels(crate::convert::LABEL_SESSION_CLUSTER))
        .await
        .map_err(|error| describe(&error))?;
    list.items
        .into_iter()
        .map(|object| {
            let value = serde_json::to_value(&object).map_err(|error| error.to_string())?;
            let phase = status::phase_of(&value);
            Ok((value, phase))
        })
        .collect()
}

pub async fn delete_session_cluster(client: &Client, namespace: &str, name: &str) -> Result<(), String> {
    let resource = runner_resources().remove(0);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    api.delete(name, &DeleteParams::foreground())
        .await
        .map(|_| ())
        .map_err(|error| describe(&error))
}
