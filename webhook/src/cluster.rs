//! Feeds the engine from the cluster: RunnerPolicy and Tenant objects, Namespace labels, and every runner CR (whose
//! demand makes up the tenants' usage). Watches, so every change takes effect without a restart.
//!
//! - A RunnerPolicy that does not compile is refused at admission by the webhook itself; one that reaches the cluster
//!   anyway (created while the webhook was down) leaves its last good version in force, and its status says why.
//! - A re-list (after a disconnect) replaces what the watch knew, so objects deleted meanwhile are forgotten.
//! - A runner kind whose CRD is not installed is skipped, logged, and does not hold readiness back.
//! - Readiness waits until every watch has listed once.

use beamstack::kinds::RunnerKind;
use beamstack::policy::compile::compile;
use beamstack::policy::demand::demand_of;
use beamstack::policy::engine::Engine;
use beamstack::policy::model::{RunnerPolicy, Tenant};
use beamstack::policy::usage::ObjectKey;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many of the watches have listed once.
#[derive(Debug)]
pub struct SyncState {
    expected: usize,
    synced: AtomicUsize,
}

impl SyncState {
    fn new(expected: usize) -> Arc<Self> {
        Arc::new(Self {
            expected,
            synced: AtomicUsize::new(0),
        })
    }

    fn mark(&self) {
        self.synced.fetch_add(1, Ordering::SeqCst);
    }

    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::SeqCst) >= self.expected
    }

    pub fn progress(&self) -> (usize, usize) {
        (self.synced.load(Ordering::SeqCst).min(self.expected), self.expected)
    }
}

/// The number of watches `start` runs: policies, tenants, namespaces, and one per runner kind.
const WATCHES: usize = 3 + RunnerKind::ALL.len();

/// Starts every watch; returns at once with the state readiness reads.
pub fn start(client: Client, engine: Arc<Engine>) -> Arc<SyncState> {
    let sync = SyncState::new(WATCHES);
    tokio::spawn(watch_policies(client.clone(), Arc::clone(&engine), Arc::clone(&sync)));
    tokio::spawn(watch_tenants(client.clone(), Arc::clone(&engine), Arc::clone(&sync)));
    tokio::spawn(watch_namespaces(client.clone(), Arc::clone(&engine), Arc::clone(&sync)));
    for kind in RunnerKind::ALL {
        tokio::spawn(watch_runners(
            client.clone(),
            Arc::clone(&engine),
            Arc::clone(&sync),
            kind,
        ));
    }
    sync
}

/// Runs a watcher, calling `apply`/`delete` per object and `relisted` with the names a re-list saw.
async fn follow<K>(
    api: Api<K>,
    what: &'static str,
    sync: Arc<SyncState>,
    mut apply: impl FnMut(&K),
    mut delete: impl FnMut(&K),
    mut relisted: impl FnMut(&HashSet<String>),
) where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
    let mut seen: HashSet<String> = HashSet::new();
    let mut marked = false;
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => seen.clear(),
            Ok(Event::InitApply(object)) => {
                seen.insert(key_of(&object));
                apply(&object);
            }
            Ok(Event::InitDone) => {
                relisted(&seen);
                if !marked {
                    marked = true;
                    sync.mark();
                    tracing::info!(what, objects = seen.len(), "watch synced");
                }
            }
            Ok(Event::Apply(object)) => apply(&object),
            Ok(Event::Delete(object)) => delete(&object),
            // The watcher retries by itself; say so once per error.
            Err(error) => tracing::warn!(what, %error, "watch error; retrying"),
        }
    }
}

/// Names of cluster-scoped objects a watch has delivered, to forget those a re-list no longer sees.
#[derive(Default)]
struct KnownNames(std::sync::Mutex<HashSet<String>>);

impl KnownNames {
    fn remember(&self, name: String) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(name);
    }

    /// Calls `forget` for each remembered name the re-list (`seen`, as `/name` keys) did not deliver.
    fn forget_unseen(&self, seen: &HashSet<String>, mut forget: impl FnMut(&str)) {
        let mut known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        known.retain(|name| {
            let still_there = seen.contains(&format!("/{name}"));
            if !still_there {
                forget(name);
            }
            still_there
        });
    }
}

fn key_of<K: kube::Resource>(object: &K) -> String {
    format!("{}/{}", object.namespace().unwrap_or_default(), object.name_any())
}

async fn watch_policies(client: Client, engine: Arc<Engine>, sync: Arc<SyncState>) {
    let api: Api<RunnerPolicy> = Api::all(client);
    let status_api = api.clone();
    let apply_engine = Arc::clone(&engine);
    let relist_engine = Arc::clone(&engine);
    let known = KnownNames::default();
    follow(
        api,
        "RunnerPolicy",
        sync,
        |policy: &RunnerPolicy| {
            let name = policy.name_any();
            known.remember(name.clone());
            let result = compile(policy, apply_engine.runtime());
            let condition = match &result {
                Ok(_) => ("True", "Compiled", "the policy compiled and is in force".to_owned()),
                Err(error) => (
                    "False",
                    "CompileError",
                    format!(
                        "{}: {}; the last good version stays in force",
                        error.field, error.message
                    ),
                ),
            };
            match result {
                Ok(compiled) => apply_engine.set_cluster_policy(&name, Some(compiled)),
                Err(error) => tracing::error!(policy = %name, %error, "RunnerPolicy does not compile"),
            }
            let already = policy
                .status
                .as_ref()
                .and_then(|status| status.conditions.iter().find(|condition| condition.type_ == "Compiled"))
                .is_some_and(|current| {
                    current.status == condition.0
                        && current.message == condition.2
                        && current.observed_generation == policy.metadata.generation
                });
            if !already {
                let patch = json!({"status": {
                    "observedGeneration": policy.metadata.generation,
                    "conditions": [{
                        "type": "Compiled", "status": condition.0, "reason": condition.1, "message": condition.2,
                        "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string(),
                        "observedGeneration": policy.metadata.generation,
                    }]
                }});
                let api = status_api.clone();
                tokio::spawn(async move {
                    if let Err(error) = api
                        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                    {
                        tracing::warn!(policy = %name, %error, "could not update the RunnerPolicy's status");
                    }
                });
            }
        },
        |policy| engine.set_cluster_policy(&policy.name_any(), None),
        |seen| known.forget_unseen(seen, |gone| relist_engine.set_cluster_policy(gone, None)),
    )
    .await;
}

async fn watch_tenants(client: Client, engine: Arc<Engine>, sync: Arc<SyncState>) {
    let api: Api<Tenant> = Api::all(client);
    let known = KnownNames::default();
    follow(
        api,
        "Tenant",
        sync,
        |tenant: &Tenant| match beamstack::policy::check_tenant(tenant) {
            Ok(()) => {
                known.remember(tenant.name_any());
                engine.set_cluster_tenant(&tenant.name_any(), Some(tenant.clone()));
            }
            Err(error) => {
                tracing::error!(tenant = %tenant.name_any(), %error, "Tenant is invalid; its last good version stays")
            }
        },
        |tenant| engine.set_cluster_tenant(&tenant.name_any(), None),
        |seen| known.forget_unseen(seen, |gone| engine.set_cluster_tenant(gone, None)),
    )
    .await;
}

async fn watch_namespaces(client: Client, engine: Arc<Engine>, sync: Arc<SyncState>) {
    let api: Api<Namespace> = Api::all(client);
    let known = KnownNames::default();
    follow(
        api,
        "Namespace",
        sync,
        |namespace: &Namespace| {
            known.remember(namespace.name_any());
            engine.set_namespace(&namespace.name_any(), Some(namespace.labels().clone()));
        },
        |namespace| engine.set_namespace(&namespace.name_any(), None),
        |seen| known.forget_unseen(seen, |gone| engine.set_namespace(gone, None)),
    )
    .await;
}

async fn watch_runners(client: Client, engine: Arc<Engine>, sync: Arc<SyncState>, kind: RunnerKind) {
    let gvk = GroupVersionKind::gvk(kind.group(), kind.version(), kind.kind());
    let resource = ApiResource::from_gvk_with_plural(&gvk, &format!("{}s", kind.kind().to_lowercase()));
    let api: Api<DynamicObject> = Api::all_with(client, &resource);
    // Without the operator's CRD there is nothing to count; do not hold readiness back for it.
    if let Err(error) = api.list_metadata(&ListParams::default().limit(1)).await {
        tracing::warn!(kind = kind.kind(), %error, "cannot list this runner kind (CRD not installed?); its usage is not counted");
        sync.mark();
        return;
    }
    let key =
        move |object: &DynamicObject| ObjectKey::new(kind, &object.namespace().unwrap_or_default(), &object.name_any());
    let demand = move |object: &DynamicObject| demand_of(kind, &serde_json::to_value(object).unwrap_or_default());
    follow(
        api,
        kind.kind(),
        sync,
        |object: &DynamicObject| engine.with_ledger(|ledger| ledger.observe(key(object), demand(object))),
        |object| engine.with_ledger(|ledger| ledger.forget(&key(object))),
        |seen| {
            engine.with_ledger(|ledger| {
                ledger.retain_kind(kind, |key| seen.contains(&format!("{}/{}", key.namespace, key.name)))
            })
        },
    )
    .await;
}
