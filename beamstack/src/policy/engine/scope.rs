//! The variables a policy sees for one request, built as CEL values directly and only as far as some matching
//! policy reads them.

use super::{Engine, Request};
use crate::policy::demand::{Demand, demand_of};
use crate::policy::model::Tenant;
use crate::policy::reads::Reads;
use crate::policy::runtime::{CelQuantity, to_val};
use crate::policy::tenants::TenantDirectory;
use crate::policy::usage::ObjectKey;
use crate::tree;
use crate::units::Quantity;
use cel::Value;
use kube::ResourceExt;
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

impl Engine {
    /// The variables every policy sees for this request.
    pub(super) fn request_scope(
        &self,
        request: &Request<'_>,
        tenants: &TenantDirectory,
        namespace_labels: &BTreeMap<String, String>,
        needed: &std::collections::HashSet<&str>,
        reads: &HashMap<&str, Reads>,
    ) -> cel::Context<'_, 'static> {
        let mut scope = self.runtime.scope();
        // Only what some matching policy refers to is built, and of the object only the fields they read (`reads`):
        // converting all of it was a quarter of an admission's instructions. The derived lists and the tenant's
        // usage are built only on demand too.
        let needs = |name: &str| needed.contains(name);
        static NOTHING: Reads = Reads::Fields(BTreeMap::new());
        let read = |name: &str| reads.get(name).unwrap_or(&NOTHING);
        scope.add_variable_as_val("object", read("object").to_val(request.object));
        if needs("oldObject") {
            scope.add_variable_as_val(
                "oldObject",
                read("oldObject").to_val(request.old_object.unwrap_or(&Json::Null)),
            );
        }
        if needs("runnerSpec") {
            let runner_spec = tree::get(request.object, request.kind.spec_path()).unwrap_or(&Json::Null);
            scope.add_variable_as_val("runnerSpec", read("runnerSpec").to_val(runner_spec));
        }
        scope.add_variable_as_val("kind", string(request.kind.kind()));
        // Every container, image and volume wherever the kind keeps them, so rules need not know each layout.
        let listed = |entries: Vec<(String, Json)>, key: &str| {
            let items: Vec<Json> = entries
                .into_iter()
                .map(|(path, value)| serde_json::json!({"path": path, key: value}))
                .collect();
            to_val(&Json::Array(items))
        };
        if needs("containers") {
            let containers = request
                .kind
                .containers_of(request.object)
                .into_iter()
                .map(|(p, c)| (p, c.clone()))
                .collect();
            scope.add_variable_as_val("containers", listed(containers, "container"));
        }
        if needs("images") {
            let images = request
                .kind
                .images_of(request.object)
                .into_iter()
                .map(|(p, i)| (p, Json::String(i)))
                .collect();
            scope.add_variable_as_val("images", listed(images, "image"));
        }
        if needs("volumes") {
            let volumes = request
                .kind
                .volumes_of(request.object)
                .into_iter()
                .map(|(p, v)| (p, v.clone()))
                .collect();
            scope.add_variable_as_val("volumes", listed(volumes, "volume"));
        }
        if needs("request") {
            let request_value = serde_json::json!({
                "operation": if request.create { "CREATE" } else { "UPDATE" },
                "namespace": request.namespace,
                "name": request.name,
                "dryRun": request.dry_run,
                "kind": {"group": request.kind.group(), "version": request.kind.version(), "kind": request.kind.kind()},
                "userInfo": request.user_info.cloned().unwrap_or(Json::Null),
            });
            scope.add_variable_as_val("request", to_val(&request_value));
        }
        if needs("namespaceObject") {
            let namespace_object = tenants.namespace_labels(request.namespace).map(|_| {
                serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": request.namespace, "labels": namespace_labels}})
            });
            scope.add_variable_as_val(
                "namespaceObject",
                to_val(namespace_object.as_ref().unwrap_or(&Json::Null)),
            );
        }
        if needs("demand") {
            scope.add_variable_as_val("demand", demand_value(demand_of(request.kind, request.object)));
        }
        let tenant = tenants.tenant_for(request.namespace);
        let namespaces = || match tenant {
            Some(tenant) => tenants.namespaces_of(tenant, request.namespace),
            None => vec![request.namespace.to_owned()],
        };
        if needs("usage") {
            let excluding = (!request.create).then(|| ObjectKey::new(request.kind, request.namespace, request.name));
            let now = Instant::now();
            let mut usage = {
                let ledger = self.ledger.read().unwrap_or_else(|poisoned| poisoned.into_inner());
                namespaces().iter().fold(Demand::default(), |total, namespace| {
                    total.plus(ledger.namespace_usage(namespace, excluding.as_ref(), now))
                })
            };
            if let Some(tenant) = tenant
                && let Some(stated) = self
                    .stated_usage
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&tenant.name_any())
            {
                // Stated usage includes the running version of an object being updated: count it out, as the
                // ledger does.
                let old = request
                    .old_object
                    .filter(|_| !request.create)
                    .map(|old| demand_of(request.kind, old));
                usage = usage.plus(stated.minus(old.unwrap_or_default()));
            }
            scope.add_variable_as_val("usage", demand_value(usage));
        }
        if needs("tenant") {
            scope.add_variable_as_val(
                "tenant",
                tenant.map_or_else(null, |tenant| tenant_value(tenant, &namespaces())),
            );
        }
        scope
    }
}

/// The values below are built as CEL values directly: going through `cel::Value` copied and rehashed every map
/// twice on the way into the scope (a tenth of an admission's instructions, callgrind).
type Val = Box<dyn cel::common::value::Val>;

fn quantity(quantity: Quantity) -> Val {
    let opaque = Value::Opaque(Arc::new(CelQuantity(quantity)));
    Val::try_from(opaque).expect("an opaque value converts")
}

fn null() -> Val {
    Box::new(cel::common::types::CelNull)
}

fn int(value: i64) -> Val {
    Box::new(cel::common::types::CelInt::from(value))
}

fn string(value: &str) -> Val {
    Box::new(cel::common::types::CelString::from(value.to_owned()))
}

fn empty_list() -> Val {
    Box::new(cel::common::types::CelList::from(Vec::<Val>::new()))
}

fn empty_map() -> Val {
    map(Vec::new())
}

fn map(entries: Vec<(&str, Val)>) -> Val {
    use cel::common::types::{CelMap, CelMapKey, CelString};
    Box::new(CelMap::from(
        entries
            .into_iter()
            .map(|(key, value)| (CelMapKey::String(CelString::from(key.to_owned())), value))
            .collect::<HashMap<_, _>>(),
    ))
}

/// `demand` and `usage`: quantities for readable budget rules, plain integers for arithmetic.
fn demand_value(demand: Demand) -> Val {
    map(vec![
        ("cpu", quantity(Quantity::millicores(demand.cpu))),
        ("memory", quantity(Quantity::bytes(demand.memory))),
        ("cpuMillis", int(demand.cpu.0 as i64)),
        ("memoryBytes", int(demand.memory.0 as i64)),
        ("workers", int(demand.workers as i64)),
        ("jobs", int(demand.jobs as i64)),
    ])
}

fn optional_quantity(value: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>) -> Val {
    value
        .and_then(|value| Quantity::parse(&value.0).ok())
        .map_or_else(null, quantity)
}

fn optional_int(value: Option<i64>) -> Val {
    value.map_or_else(null, int)
}

/// `tenant`: every field present (null when unset), so rules can test `tenant.budget.cpu != null`.
fn tenant_value(tenant: &Tenant, namespaces: &[String]) -> Val {
    let spec = &tenant.spec;
    let budget = &spec.budget;
    let per_job = budget.per_job.clone().unwrap_or_default();
    let defaults = serde_json::to_value(&spec.defaults).unwrap_or(Json::Null);
    let strings = |items: &[String]| -> Val {
        Box::new(cel::common::types::CelList::from(
            items.iter().map(|item| string(item)).collect::<Vec<_>>(),
        ))
    };
    let default = |key: &str, absent: fn() -> Val| defaults.get(key).map_or_else(absent, to_val);
    map(vec![
        ("name", string(&tenant.name_any())),
        ("namespaces", strings(namespaces)),
        (
            "budget",
            map(vec![
                ("cpu", optional_quantity(budget.cpu.as_ref())),
                ("memory", optional_quantity(budget.memory.as_ref())),
                ("jobs", optional_int(budget.jobs)),
                ("workers", optional_int(budget.workers)),
                (
                    "perJob",
                    map(vec![
                        ("cpu", optional_quantity(per_job.cpu.as_ref())),
                        ("memory", optional_quantity(per_job.memory.as_ref())),
                        ("workers", optional_int(per_job.workers)),
                    ]),
                ),
            ]),
        ),
        (
            "defaults",
            map(vec![
                ("tolerations", default("tolerations", empty_list)),
                ("nodeSelector", default("nodeSelector", empty_map)),
                ("priorityClassName", default("priorityClassName", null)),
                ("volcanoQueue", default("volcanoQueue", null)),
            ]),
        ),
        (
            "allowances",
            map(vec![
                ("registries", strings(&spec.allowances.registries)),
                ("flinkVersions", strings(&spec.allowances.flink_versions)),
                ("serviceAccounts", strings(&spec.allowances.service_accounts)),
            ]),
        ),
    ])
}
