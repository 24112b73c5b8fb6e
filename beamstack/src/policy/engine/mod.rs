//! The policy engine: the compiled policy set, the tenants, what they run, and the evaluation of one request.
//!
//! Per request the CEL variables are built once (the object converted once, shared by every policy); each policy
//! then gets a scope of its own for `variables`. Policy sets are swapped whole, so a reload never leaves a request
//! looking at half of the old set and half of the new.

mod scope;

use super::compile::CompiledPolicy;
use super::demand::{Demand, demand_of};
use super::model::{Action, FailurePolicy, MergeStrategy, Tenant};
use super::reads::Reads;
use super::runtime::{CostLimit, EvalError, Runtime, to_json};
use super::tenants::TenantDirectory;
use super::usage::{ObjectKey, RESERVATION_TTL, UsageLedger};
use crate::kinds::RunnerKind;
use crate::tree;
use arc_swap::ArcSwap;
use cel::Value;
use cel::objects::{Key, Map};
use kube::ResourceExt;
use kube::core::SelectorExt;
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Compiled policies and tenants: one consistent snapshot.
#[derive(Debug, Default)]
pub struct PolicySet {
    pub policies: Vec<CompiledPolicy>,
    pub tenants: TenantDirectory,
}

/// Limits on what evaluation may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_expression: CostLimit,
    /// Comprehension iterations across every expression of every policy for one request.
    pub per_request_iterations: u64,
}

impl Default for Limits {
    /// Kubernetes allows 1,000,000 cost units per expression and 10,000,000 per policy evaluation.
    fn default() -> Self {
        Self {
            per_expression: CostLimit::default(),
            per_request_iterations: 10_000_000,
        }
    }
}

/// One admission request, as the engine sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub kind: RunnerKind,
    pub create: bool,
    pub object: &'a Json,
    pub old_object: Option<&'a Json>,
    pub namespace: &'a str,
    pub name: &'a str,
    pub user_info: Option<&'a Json>,
    pub dry_run: bool,
}

/// A validation that failed under a Deny policy (or an evaluation error under failurePolicy Fail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyViolation {
    pub policy: String,
    pub field: Option<String>,
    pub message: String,
    pub reason: Option<String>,
}

/// How one policy's evaluation went, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Denied,
    Warned,
    Audited,
    Mutated,
    NotMatched,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Denied => "denied",
            Outcome::Warned => "warned",
            Outcome::Audited => "audited",
            Outcome::Mutated => "mutated",
            Outcome::NotMatched => "not-matched",
            Outcome::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyStat {
    pub policy: String,
    pub outcome: Outcome,
    pub elapsed: Duration,
}

/// Everything the policies said about one request.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    pub violations: Vec<PolicyViolation>,
    pub warnings: Vec<String>,
    pub audit_annotations: BTreeMap<String, String>,
    /// Evaluation errors under failurePolicy Ignore: logged, not enforced.
    pub ignored_errors: Vec<String>,
    /// Fields set by mutations, as change notes.
    pub changes: Vec<String>,
    pub stats: Vec<PolicyStat>,
}

/// Where policies and tenants come from. The set in force is composed from all of them.
#[derive(Debug, Default)]
struct Inputs {
    file_policies: Vec<CompiledPolicy>,
    file_tenants: Vec<Tenant>,
    /// From the cluster, by object name: the last version that compiled.
    cluster_policies: BTreeMap<String, CompiledPolicy>,
    cluster_tenants: BTreeMap<String, Tenant>,
    namespace_labels: HashMap<String, BTreeMap<String, String>>,
}

pub struct Engine {
    runtime: Arc<Runtime>,
    set: ArcSwap<PolicySet>,
    inputs: std::sync::Mutex<Inputs>,
    ledger: RwLock<UsageLedger>,
    /// Usage stated from outside (`kubectl beam policy eval --usage`), per tenant, added to what the ledger knows.
    stated_usage: RwLock<HashMap<String, Demand>>,
    limits: Limits,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("policies", &self.set.load().policies.len())
            .finish()
    }
}

impl Engine {
    /// An engine with a CEL runtime of its own and the default limits: what the webhook, the plugin's offline loop
    /// and the benchmarks start from.
    pub fn standard() -> Arc<Self> {
        Arc::new(Self::new(Arc::new(Runtime::new()), Limits::default()))
    }

    pub fn new(runtime: Arc<Runtime>, limits: Limits) -> Self {
        Self {
            runtime,
            set: ArcSwap::from_pointee(PolicySet::default()),
            inputs: std::sync::Mutex::new(Inputs::default()),
            ledger: RwLock::new(UsageLedger::default()),
            stated_usage: RwLock::new(HashMap::new()),
            limits,
        }
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Puts a new set from files in force, whole (policies and tenants from the cluster stay).
    pub fn install(&self, set: PolicySet) {
        self.update(|inputs| {
            inputs.file_policies = set.policies;
            inputs.file_tenants = set.tenants.tenants().map(|tenant| tenant.as_ref().clone()).collect();
            inputs
                .namespace_labels
                .extend(set.tenants.namespace_labels_all().clone());
        });
    }

    /// A RunnerPolicy from the cluster, compiled; `None` when it was deleted.
    pub fn set_cluster_policy(&self, name: &str, policy: Option<CompiledPolicy>) {
        self.update(|inputs| match policy {
            Some(policy) => {
                inputs.cluster_policies.insert(name.to_owned(), policy);
            }
            None => {
                inputs.cluster_policies.remove(name);
            }
        });
    }

    /// A Tenant from the cluster; `None` when it was deleted.
    pub fn set_cluster_tenant(&self, name: &str, tenant: Option<Tenant>) {
        self.update(|inputs| match tenant {
            Some(tenant) => {
                inputs.cluster_tenants.insert(name.to_owned(), tenant);
            }
            None => {
                inputs.cluster_tenants.remove(name);
            }
        });
    }

    /// A namespace's labels; `None` when it was deleted.
    pub fn set_namespace(&self, name: &str, labels: Option<BTreeMap<String, String>>) {
        self.update(|inputs| match labels {
            Some(labels) => {
                inputs.namespace_labels.insert(name.to_owned(), labels);
            }
            None => {
                inputs.namespace_labels.remove(name);
            }
        });
    }

    /// Applies a change to the inputs and puts the recomposed set in force.
    fn update(&self, change: impl FnOnce(&mut Inputs)) {
        let mut inputs = self.inputs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        change(&mut inputs);
        let mut policies = inputs.file_policies.clone();
        policies.extend(inputs.cluster_policies.values().cloned());
        let mut tenants = inputs.file_tenants.clone();
        tenants.extend(inputs.cluster_tenants.values().cloned());
        self.set.store(Arc::new(PolicySet {
            policies,
            tenants: TenantDirectory::new(tenants, inputs.namespace_labels.clone()),
        }));
    }

    pub fn policy_set(&self) -> Arc<PolicySet> {
        self.set.load_full()
    }

    pub fn with_ledger<T>(&self, f: impl FnOnce(&mut UsageLedger) -> T) -> T {
        f(&mut self.ledger.write().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    pub fn state_usage(&self, tenant: &str, usage: Demand) {
        self.stated_usage
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant.to_owned(), usage);
    }

    /// Every tenant's running usage (its namespaces' totals in the ledger) beside its budget, for /metrics.
    pub fn tenant_usage(&self) -> Vec<(String, Demand, crate::policy::model::Budget)> {
        let set = self.policy_set();
        let now = Instant::now();
        let ledger = self.ledger.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        set.tenants
            .tenants()
            .map(|tenant| {
                let usage = set
                    .tenants
                    .namespaces_of(tenant, "")
                    .iter()
                    .filter(|namespace| !namespace.is_empty())
                    .map(|namespace| ledger.namespace_usage(namespace, None, now))
                    .fold(Demand::default(), Demand::plus);
                (tenant.name_any(), usage, tenant.spec.budget.clone())
            })
            .collect()
    }

    /// Counts an admitted object as running until the usage watch reports it.
    pub fn reserve(&self, request: &Request<'_>) {
        if request.dry_run || request.name.is_empty() {
            return;
        }
        let key = ObjectKey::new(request.kind, request.namespace, request.name);
        let demand = demand_of(request.kind, request.object);
        self.with_ledger(|ledger| ledger.reserve(key, demand, Instant::now() + RESERVATION_TTL));
    }

    /// Runs the validations of every matching policy.
    pub fn validate(&self, request: &Request<'_>) -> Verdict {
        self.run(request, Phase::Validate, None)
    }

    /// Runs the mutations of every matching policy on `object` (a copy of the request's object).
    pub fn mutate(&self, request: &Request<'_>, object: &mut Json) -> Verdict {
        self.run(request, Phase::Mutate, Some(object))
    }

    fn run(&self, request: &Request<'_>, phase: Phase, mut target: Option<&mut Json>) -> Verdict {
        let set = self.set.load();
        let mut verdict = Verdict::default();
        let object_labels = labels(request.object);
        let namespace_labels = set
            .tenants
            .namespace_labels(request.namespace)
            .cloned()
            .unwrap_or_default();
        let candidates: Vec<&CompiledPolicy> = set
            .policies
            .iter()
            .filter(|policy| match phase {
                Phase::Validate => !policy.validations.is_empty(),
                Phase::Mutate => !policy.mutations.is_empty(),
            })
            .filter(|policy| policy.applies_to(request.kind, request.create))
            .filter(|policy| {
                policy
                    .object_selector
                    .as_ref()
                    .is_none_or(|selector| selector.matches(&object_labels))
            })
            .filter(|policy| {
                policy
                    .namespace_selector
                    .as_ref()
                    .is_none_or(|selector| selector.matches(&namespace_labels))
            })
            .collect();
        if candidates.is_empty() {
            return verdict;
        }
        let needed: std::collections::HashSet<&str> = candidates
            .iter()
            .flat_map(|policy| policy.uses.iter().copied())
            .collect();
        let mut reads: HashMap<&str, Reads> = HashMap::new();
        for (variable, read) in candidates.iter().flat_map(|policy| &policy.reads) {
            reads.entry(variable).or_default().merge(read);
        }
        let scope = self.request_scope(request, &set.tenants, &namespace_labels, &needed, &reads);
        let mut budget = self.limits.per_request_iterations;
        for policy in candidates {
            let started = Instant::now();
            let outcome = self.run_policy(policy, &scope, phase, &mut budget, &mut verdict, target.as_deref_mut());
            verdict.stats.push(PolicyStat {
                policy: policy.name.clone(),
                outcome,
                elapsed: started.elapsed(),
            });
        }
        verdict
    }

    fn run_policy(
        &self,
        policy: &CompiledPolicy,
        request_scope: &cel::Context<'_, 'static>,
        phase: Phase,
        budget: &mut u64,
        verdict: &mut Verdict,
        target: Option<&mut Json>,
    ) -> Outcome {
        let mut scope = request_scope.new_inner_scope();
        let mut evaluate = |compiled: &super::runtime::Compiled, scope: &cel::Context<'_, 'static>| {
            let limit = CostLimit {
                iterations: self.limits.per_expression.iterations.min(*budget),
                ..self.limits.per_expression
            };
            let (result, used) = self.runtime.evaluate_counted(compiled, scope, limit);
            *budget = budget.saturating_sub(used);
            result
        };
        let fail = |verdict: &mut Verdict, what: String, error: EvalError| -> Outcome {
            let message = format!("{what} could not be evaluated: {error}");
            match policy.failure_policy {
                FailurePolicy::Ignore => {
                    verdict.ignored_errors.push(format!("{}: {message}", policy.name));
                }
                FailurePolicy::Fail => report(policy, verdict, None, message, None),
            }
            Outcome::Error
        };
        for (name, condition) in &policy.match_conditions {
            match evaluate(condition, &scope) {
                Ok(Value::Bool(true)) => {}
                Ok(Value::Bool(false)) => return Outcome::NotMatched,
                Ok(other) => {
                    let error =
                        EvalError::Failed(format!("matchCondition {name} gave {:?}, not a bool", other.type_of()));
                    return fail(verdict, format!("matchCondition {name}"), error);
                }
                Err(error) => return fail(verdict, format!("matchCondition {name}"), error),
            }
        }
        if !policy.variables.is_empty() {
            let mut variables: HashMap<Key, Value> = HashMap::new();
            for (name, expression) in &policy.variables {
                match evaluate(expression, &scope) {
                    Ok(value) => {
                        variables.insert(Key::String(Arc::new(name.clone())), value);
                        scope.add_variable_from_value(
                            "variables",
                            Value::Map(Map {
                                map: Arc::new(variables.clone()),
                            }),
                        );
                    }
                    Err(error) => return fail(verdict, format!("variable {name}"), error),
                }
            }
        }
        match phase {
            Phase::Validate => {
                let mut failed = false;
                for (index, validation) in policy.validations.iter().enumerate() {
                    match evaluate(&validation.expression, &scope) {
                        Ok(Value::Bool(true)) => {}
                        Ok(Value::Bool(false)) => {
                            failed = true;
                            let message = validation
                                .message_expression
                                .as_ref()
                                .and_then(|expression| match evaluate(expression, &scope) {
                                    Ok(Value::String(text)) => Some(text.as_ref().clone()),
                                    _ => None,
                                })
                                .or_else(|| validation.message.clone())
                                .unwrap_or_else(|| format!("failed expression: {}", validation.expression.source));
                            report(
                                policy,
                                verdict,
                                validation.field_path.clone(),
                                message,
                                validation.reason.clone(),
                            );
                        }
                        Ok(other) => {
                            let error = EvalError::Failed(format!("gave {:?}, not a bool", other.type_of()));
                            return fail(verdict, format!("validations[{index}]"), error);
                        }
                        Err(error) => return fail(verdict, format!("validations[{index}]"), error),
                    }
                }
                match (failed, policy.action) {
                    (false, _) => Outcome::Passed,
                    (true, Action::Deny) => Outcome::Denied,
                    (true, Action::Warn) => Outcome::Warned,
                    (true, Action::Audit) => Outcome::Audited,
                }
            }
            Phase::Mutate => {
                let Some(object) = target else { return Outcome::Passed };
                let mut changed = false;
                for (index, mutation) in policy.mutations.iter().enumerate() {
                    let value = match evaluate(&mutation.expression, &scope).map(|value| to_json(&value)) {
                        Ok(Ok(value)) => value,
                        Ok(Err(no_json)) => {
                            return fail(
                                verdict,
                                format!("mutations[{index}]"),
                                EvalError::Failed(no_json.to_string()),
                            );
                        }
                        Err(error) => return fail(verdict, format!("mutations[{index}]"), error),
                    };
                    let mut path: Vec<&str> = Vec::new();
                    let runner_spec = request_runner_spec_path(object);
                    if mutation.from_runner_spec {
                        path.extend(runner_spec);
                    }
                    path.extend(mutation.path.iter().map(String::as_str));
                    if apply(object, &path, value, mutation.strategy) {
                        changed = true;
                        verdict
                            .changes
                            .push(format!("{} (policy {})", path.join("."), policy.name));
                    }
                }
                if changed { Outcome::Mutated } else { Outcome::Passed }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Validate,
    Mutate,
}

fn report(
    policy: &CompiledPolicy,
    verdict: &mut Verdict,
    field: Option<String>,
    message: String,
    reason: Option<String>,
) {
    match policy.action {
        Action::Deny => verdict.violations.push(PolicyViolation {
            policy: policy.name.clone(),
            field,
            message,
            reason,
        }),
        Action::Warn => verdict.warnings.push(format!("{}: {message}", policy.name)),
        Action::Audit => {
            // Keys must be unique per response; a policy with several failures joins them.
            let entry = verdict
                .audit_annotations
                .entry(format!("beamstack.dev/{}", policy.name))
                .or_default();
            if !entry.is_empty() {
                entry.push_str("; ");
            }
            entry.push_str(&message);
        }
    }
}

fn request_runner_spec_path(object: &Json) -> &'static [&'static str] {
    RunnerKind::of_object(object).map_or(&["spec"], |kind| kind.spec_path())
}

fn labels(object: &Json) -> BTreeMap<String, String> {
    tree::get(object, &["metadata", "labels"])
        .and_then(Json::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Puts `value` at `path`. Merge fills only what is unset (missing keys, missing list items, absent scalars);
/// Replace sets it. Null means nothing to set. Returns whether the object changed.
pub fn apply(object: &mut Json, path: &[&str], value: Json, strategy: MergeStrategy) -> bool {
    if value.is_null() {
        return false;
    }
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let Some(parent) = tree::object_at(object, parents) else {
        return false;
    };
    let slot = parent.entry(*last).or_insert(Json::Null);
    match strategy {
        MergeStrategy::Replace => {
            if *slot == value {
                false
            } else {
                *slot = value;
                true
            }
        }
        MergeStrategy::Merge => tree::merge_missing(slot, value),
    }
}
