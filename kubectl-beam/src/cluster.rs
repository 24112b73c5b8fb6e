//! Talking to the cluster: server-side apply of a run's objects, and reading back the runner objects of pipelines.
//!
//! Written against a real API server; the end-to-end suite (a real kube-apiserver on loopback) exercises it.

use crate::convert::FIELD_MANAGER;
use crate::status::{self, JobStatus};
use beamstack::contract::{FLINK_GROUP, FLINK_VERSION, LABEL_PIPELINE, SESSION_CLUSTER, SPARK_GROUP, SPARK_VERSION};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
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
        (FLINK_GROUP, FLINK_VERSION, "FlinkDeployment", "flinkdeployments"),
        (SPARK_GROUP, SPARK_VERSION, "SparkApplication", "sparkapplications"),
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
    find_selected(client, namespace, pipeline, None).await
}

/// As `find`, narrowed further by a user's label selector (`list -l team=a`).
pub async fn find_selected(
    client: &Client,
    namespace: Option<&str>,
    pipeline: Option<&str>,
    user_selector: Option<&str>,
) -> Result<Vec<(Value, JobStatus)>, String> {
    let mut selector = match pipeline {
        Some(name) => format!("{LABEL_PIPELINE}={name}"),
        None => format!("app.kubernetes.io/managed-by={FIELD_MANAGER}"),
    };
    if let Some(user) = user_selector.filter(|user| !user.trim().is_empty()) {
        selector = format!("{selector},{user}");
    }
    let mut found = Vec::new();
    for resource in runner_resources() {
        let api: Api<DynamicObject> = match namespace {
            Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        match api.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => {
                for object in list.items {
                    let mut value = serde_json::to_value(&object).map_err(|error| error.to_string())?;
                    // The API server leaves apiVersion and kind out of list items of built-in kinds (custom
                    // resources' items carry them): a session launcher Job was shown as "Unknown (kind ?)".
                    if value.get("kind").is_none_or(Value::is_null) {
                        value["apiVersion"] = Value::from(resource.api_version.clone());
                        value["kind"] = Value::from(resource.kind.clone());
                    }
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

/// Deletes a pipeline's runner object in the background, as kubectl does; the garbage collector then deletes its
/// ConfigMap through the owner reference.
pub async fn delete(client: &Client, namespace: &str, pipeline: &str) -> Result<Vec<String>, String> {
    let mut deleted = Vec::new();
    for (object, _) in find(client, Some(namespace), Some(pipeline)).await? {
        let resource = resource_of(&object)?;
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        api.delete(&name, &DeleteParams::background())
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
        .list(&ListParams::default().labels(SESSION_CLUSTER))
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
    api.delete(name, &DeleteParams::background())
        .await
        .map(|_| ())
        .map_err(|error| describe(&error))
}

/// Lists objects of any resource as JSON, namespaced or cluster-wide.
async fn list_json(
    client: &Client,
    resource: &ApiResource,
    namespace: Option<&str>,
    params: &ListParams,
) -> Result<Vec<Value>, String> {
    let api: Api<DynamicObject> = match namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, resource),
        None => Api::all_with(client.clone(), resource),
    };
    let list = api
        .list(params)
        .await
        .map_err(|error| format!("listing {}: {}", resource.plural, describe(&error)))?;
    list.items
        .into_iter()
        .map(|object| {
            let mut value = serde_json::to_value(&object).map_err(|error| error.to_string())?;
            // A list's items carry no kind; the judgements read it.
            value["kind"] = Value::from(resource.kind.clone());
            Ok(value)
        })
        .collect()
}

fn core(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", kind), plural)
}

/// The pods a job's roles select, in its namespace.
pub async fn pods_of(client: &Client, object: &Value) -> Result<Vec<Value>, String> {
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or("default");
    let mut pods: Vec<Value> = Vec::new();
    let mut listed: Vec<String> = Vec::new();
    for role in crate::pods::roles_of(object) {
        // Roles that live in another role's pods (the harnesses, the expansion service) share its selector: one
        // list per selector, not per role (`run --wait` asks at every poll).
        if listed.contains(&role.selector) {
            continue;
        }
        listed.push(role.selector.clone());
        for pod in list_json(
            client,
            &core("Pod", "pods"),
            Some(namespace),
            &ListParams::default().labels(&role.selector),
        )
        .await?
        {
            if !pods
                .iter()
                .any(|known| known["metadata"]["uid"] == pod["metadata"]["uid"])
            {
                pods.push(pod);
            }
        }
    }
    Ok(pods)
}

/// The events about a job: its runner object and each of its pods.
pub async fn events_of(client: &Client, object: &Value, pods: &[Value]) -> Result<Vec<Value>, String> {
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or("default");
    let mut events = Vec::new();
    let subjects = std::iter::once(object).chain(pods.iter());
    for subject in subjects {
        let name = subject["metadata"]["name"].as_str().unwrap_or_default();
        let kind = subject["kind"].as_str().unwrap_or("Pod");
        let selector = format!("involvedObject.name={name},involvedObject.kind={kind}");
        events.extend(
            list_json(
                client,
                &core("Event", "events"),
                Some(namespace),
                &ListParams::default().fields(&selector),
            )
            .await?,
        );
    }
    Ok(events)
}

/// The names of the CRDs the cluster serves.
pub async fn crd_names(client: &Client) -> Result<Vec<String>, String> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        "customresourcedefinitions",
    );
    Ok(list_json(client, &resource, None, &ListParams::default())
        .await?
        .iter()
        .filter_map(|crd| crd["metadata"]["name"].as_str().map(str::to_owned))
        .collect())
}

/// Mutating and validating webhook configurations.
pub async fn webhook_configurations(client: &Client) -> Result<(Vec<Value>, Vec<Value>), String> {
    let resource = |kind: &str, plural: &str| {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind),
            plural,
        )
    };
    let mutating = list_json(
        client,
        &resource("MutatingWebhookConfiguration", "mutatingwebhookconfigurations"),
        None,
        &ListParams::default(),
    )
    .await?;
    let validating = list_json(
        client,
        &resource("ValidatingWebhookConfiguration", "validatingwebhookconfigurations"),
        None,
        &ListParams::default(),
    )
    .await?;
    Ok((mutating, validating))
}

/// A namespace's labels (`{}` when it does not exist: the check then says so through the selector).
pub async fn namespace_labels(client: &Client, namespace: &str) -> Result<Option<Value>, String> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &core("Namespace", "namespaces"));
    match api.get_opt(namespace).await.map_err(|error| describe(&error))? {
        Some(object) => Ok(Some(
            object.metadata.labels.map(|labels| json!(labels)).unwrap_or(json!({})),
        )),
        None => Ok(None),
    }
}

/// Ready addresses behind a Service, from its EndpointSlices.
pub async fn ready_endpoints(client: &Client, namespace: &str, service: &str) -> Result<Option<usize>, String> {
    let services: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &core("Service", "services"));
    if services
        .get_opt(service)
        .await
        .map_err(|error| describe(&error))?
        .is_none()
    {
        return Ok(None);
    }
    let slices = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("discovery.k8s.io", "v1", "EndpointSlice"),
        "endpointslices",
    );
    let params = ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
    let ready = list_json(client, &slices, Some(namespace), &params)
        .await?
        .iter()
        .flat_map(|slice| slice["endpoints"].as_array().cloned().unwrap_or_default())
        .filter(|endpoint| endpoint.pointer("/conditions/ready") != Some(&Value::Bool(false)))
        .count();
    Ok(Some(ready))
}

/// Asks the API server to admit `object` without storing it (a server-side dry run), so every admission webhook
/// that matches it is called; returns its refusal as the API server phrased it.
pub async fn dry_run_create(client: &Client, namespace: &str, object: &Value) -> Result<(), String> {
    let resource = resource_of(object)?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let object: DynamicObject = serde_json::from_value(object.clone()).map_err(|error| error.to_string())?;
    let params = PostParams {
        dry_run: true,
        field_manager: Some(FIELD_MANAGER.to_owned()),
    };
    api.create(&params, &object)
        .await
        .map(drop)
        .map_err(|error| describe(&error))
}

/// The API server's version (`gitVersion`).
pub async fn server_version(client: &Client) -> Result<String, String> {
    client
        .apiserver_version()
        .await
        .map(|info| info.git_version)
        .map_err(|error| describe(&error))
}

/// The webhook Deployments the chart installed (label app.kubernetes.io/name=beamstack-webhook), any namespace.
pub async fn webhook_deployments(client: &Client) -> Result<Vec<Value>, String> {
    let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("apps", "v1", "Deployment"), "deployments");
    list_json(
        client,
        &resource,
        None,
        &ListParams::default().labels("app.kubernetes.io/name=beamstack-webhook"),
    )
    .await
}

/// A ConfigMap's data, if it exists.
pub async fn config_map_data(client: &Client, namespace: &str, name: &str) -> Result<Option<Value>, String> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &core("ConfigMap", "configmaps"));
    Ok(api
        .get_opt(name)
        .await
        .map_err(|error| describe(&error))?
        .map(|object| object.data["data"].clone()))
}

/// The pods of one role of a runner object, with the API that reads their logs.
async fn role_pods(
    client: &Client,
    object: &Value,
    role: &crate::pods::RolePods,
) -> Result<
    (
        Api<k8s_openapi::api::core::v1::Pod>,
        kube::api::ObjectList<k8s_openapi::api::core::v1::Pod>,
    ),
    String,
> {
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or("default");
    let api = Api::namespaced(client.clone(), namespace);
    let pods = api
        .list(&ListParams::default().labels(&role.selector))
        .await
        .map_err(|error| describe(&error))?;
    Ok((api, pods))
}

/// The last `lines` lines of the first scheduled pod of a role (its `container`), or None when no such pod has a log.
pub async fn log_tail(
    client: &Client,
    object: &Value,
    role: &crate::pods::RolePods,
    lines: i64,
) -> Result<Option<String>, String> {
    let (api, pods) = role_pods(client, object, role).await?;
    let Some(pod) = pods
        .items
        .iter()
        .find(|pod| pod.spec.as_ref().is_some_and(|spec| spec.node_name.is_some()))
    else {
        return Ok(None);
    };
    let params = kube::api::LogParams {
        container: role.container.clone(),
        tail_lines: Some(lines),
        ..Default::default()
    };
    api.logs(&pod.name_any(), &params)
        .await
        .map(Some)
        .map_err(|error| format!("logs of pod {}: {}", pod.name_any(), describe(&error)))
}

/// The last `lines` lines of one container's log; `previous`: of its last run, for a container that is restarting.
pub async fn container_log_tail(
    client: &Client,
    namespace: &str,
    pod: &str,
    container: &str,
    lines: i64,
    previous: bool,
) -> Result<String, String> {
    let api: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client.clone(), namespace);
    let params = kube::api::LogParams {
        container: Some(container.to_owned()),
        tail_lines: Some(lines),
        previous,
        ..Default::default()
    };
    api.logs(pod, &params)
        .await
        .map_err(|error| format!("logs of {pod}/{container}: {}", describe(&error)))
}

/// Streams (or prints) the logs of a role's pods to stdout, each line prefixed with its pod when there are several.
pub async fn logs(
    client: &Client,
    object: &Value,
    role: &crate::pods::RolePods,
    follow: bool,
    tail: Option<i64>,
) -> Result<usize, String> {
    use futures_util::{AsyncBufReadExt, TryStreamExt};
    use k8s_openapi::api::core::v1::Pod;
    let (api, pods) = role_pods(client, object, role).await?;
    // A pod without a node has no logs: the API server answers 204 No Content, which would print nothing at all.
    let (scheduled, waiting): (Vec<&Pod>, Vec<&Pod>) = pods
        .items
        .iter()
        .partition(|pod| pod.spec.as_ref().is_some_and(|spec| spec.node_name.is_some()));
    if scheduled.is_empty() && !waiting.is_empty() {
        let names: Vec<String> = waiting.iter().map(|pod| pod.name_any()).collect();
        return Err(format!(
            "{} not on a node yet, so there are no logs to show",
            names.join(", ")
        ));
    }
    for pod in &waiting {
        eprintln!("{}: not on a node yet, no logs", pod.name_any());
    }
    let several = scheduled.len() > 1;
    let mut streams = Vec::new();
    for pod in scheduled {
        let name = pod.name_any();
        let params = kube::api::LogParams {
            container: role.container.clone(),
            follow,
            tail_lines: tail,
            ..Default::default()
        };
        let stream = api
            .log_stream(&name, &params)
            .await
            .map_err(|error| format!("logs of pod {name}: {}", describe(&error)))?;
        let prefix = if several { format!("[{name}] ") } else { String::new() };
        streams.push(async move {
            let mut lines = stream.lines();
            while let Some(line) = lines.try_next().await.map_err(|error| error.to_string())? {
                println!("{prefix}{line}");
            }
            Ok::<(), String>(())
        });
    }
    let count = streams.len();
    for result in futures_util::future::join_all(streams).await {
        result?;
    }
    Ok(count)
}
