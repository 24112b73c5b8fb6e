//! Beamstack's own API (`beamstack.dev/v1alpha1`): RunnerPolicy and Tenant, both cluster-scoped.
//!
//! The object model follows ValidatingAdmissionPolicy, which platform teams already know: match constraints,
//! `matchConditions`, `variables`, `validations` with `message`/`messageExpression`/`reason`, a failure policy.
//! What it adds: an action per policy (Deny, Warn, Audit), CEL-computed mutations, and tenants whose budgets are
//! checked against what they already run. The CRDs in `charts/beamstack/crds/` are generated from these types.

use k8s_openapi::api::core::v1::Toleration;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::contract::GROUP;
pub const VERSION: &str = "v1alpha1";

/// A set of CEL rules applied to runner CRs at admission.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "beamstack.dev",
    version = "v1alpha1",
    kind = "RunnerPolicy",
    plural = "runnerpolicies",
    shortname = "rpol",
    status = "PolicyStatus",
    category = "beamstack",
    printcolumn = r#"{"name":"Action","type":"string","jsonPath":".spec.action"}"#,
    printcolumn = r#"{"name":"Failure Policy","type":"string","jsonPath":".spec.failurePolicy"}"#,
    printcolumn = r#"{"name":"Compiled","type":"string","jsonPath":".status.conditions[?(@.type==\"Compiled\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RunnerPolicySpec {
    /// What a failing validation does: Deny refuses the object, Warn returns a warning kubectl prints, Audit only
    /// records an audit annotation and a metric.
    #[serde(default)]
    pub action: Action,
    /// What an evaluation error (or a cost-limit cutoff) does: Fail refuses the object, Ignore lets it through.
    #[serde(default)]
    pub failure_policy: FailurePolicy,
    /// Which requests the policy sees.
    #[serde(default, rename = "match")]
    pub match_rules: MatchRules,
    /// CEL conditions that must all be true for the policy to apply (evaluated before variables).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_conditions: Vec<NamedExpression>,
    /// Named CEL expressions, available to later ones as `variables.<name>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<NamedExpression>,
    /// Rules: each expression must evaluate to true.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validations: Vec<Validation>,
    /// Changes applied on /mutate, before the built-in defaults (so a tenant's defaults win over the global ones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mutations: Vec<MutationRule>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Action {
    #[default]
    Deny,
    Warn,
    Audit,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum FailurePolicy {
    #[default]
    Fail,
    Ignore,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchRules {
    /// Runner kinds: FlinkDeployment, FlinkSessionJob, SparkApplication, ScheduledSparkApplication. Empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    /// CREATE and/or UPDATE. Empty: both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
    /// Namespaces whose labels match. Absent: every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Objects whose labels match. Absent: every object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_selector: Option<LabelSelector>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamedExpression {
    pub name: String,
    pub expression: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Validation {
    /// CEL that must be true for the object to pass.
    pub expression: String,
    /// Shown when the expression is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// CEL producing the message (it wins over `message` when it evaluates to a string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_expression: Option<String>,
    /// A machine-readable reason, such as Forbidden or Invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The field the rule is about, shown in the denial (`spec.taskManager.replicas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_path: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MutationRule {
    /// Where the value goes: a dotted path from the object root (`spec.podTemplate.spec.nodeSelector`), or from the
    /// runner's spec with the prefix `runnerSpec.` (a ScheduledSparkApplication's `spec.template`).
    pub path: String,
    /// CEL computing the value. `null` means "nothing to set".
    pub expression: String,
    /// Merge (default) fills only what is unset: missing map keys, missing list items, an absent scalar.
    /// Replace sets the value whatever was there.
    #[serde(default)]
    pub strategy: MergeStrategy,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum MergeStrategy {
    #[default]
    Merge,
    Replace,
}

/// Whether a policy compiled and is in force, as Kubernetes conditions.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A team's namespaces, budget, defaults and allowances.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "beamstack.dev",
    version = "v1alpha1",
    kind = "Tenant",
    plural = "tenants",
    shortname = "btn",
    status = "TenantStatus",
    category = "beamstack",
    printcolumn = r#"{"name":"CPU","type":"string","jsonPath":".spec.budget.cpu"}"#,
    printcolumn = r#"{"name":"Memory","type":"string","jsonPath":".spec.budget.memory"}"#,
    printcolumn = r#"{"name":"Jobs","type":"integer","jsonPath":".spec.budget.jobs"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TenantSpec {
    /// Namespaces that belong to the tenant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Namespaces whose labels match also belong to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default)]
    pub budget: Budget,
    #[serde(default)]
    pub defaults: TenantDefaults,
    #[serde(default)]
    pub allowances: Allowances,
}

/// Totals over every runner CR the tenant runs. Absent fields are unlimited.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
    /// Runner CRs (FlinkDeployment, SparkApplication, ...) at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<i64>,
    /// TaskManagers plus Spark executors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<i64>,
    /// Caps for any single job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_job: Option<JobCaps>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobCaps {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<i64>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantDefaults {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volcano_queue: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Allowances {
    /// Registries or repository prefixes images may come from. Empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registries: Vec<String>,
    /// flinkVersion values allowed. Empty: any the webhook supports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flink_versions: Vec<String>,
    /// Service accounts jobs may run as. Empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The CustomResourceDefinitions of RunnerPolicy and Tenant as YAML documents, generated from these types.
pub fn crds_yaml() -> String {
    use kube::CustomResourceExt;
    let header = "# Generated by `beam-webhook crds` from webhook/src/policy/model.rs: do not edit by hand.\n";
    let mut out = String::from(header);
    for (index, crd) in [RunnerPolicy::crd(), Tenant::crd()].iter().enumerate() {
        if index > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_saphyr::to_string(crd).unwrap_or_default());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CRDs committed for the chart must be what the types generate (run with UPDATE_CRDS=1 to refresh them).
    #[test]
    fn committed_crds_are_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/beamstack/crds/beamstack.dev.yaml");
        let generated = crds_yaml();
        if std::env::var_os("UPDATE_CRDS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{} is stale: run `UPDATE_CRDS=1 cargo test -p webhook committed_crds`",
            path.display()
        );
    }

    #[test]
    fn the_crds_are_cluster_scoped_structural_and_have_status() {
        use kube::CustomResourceExt;
        for crd in [RunnerPolicy::crd(), Tenant::crd()] {
            assert_eq!(crd.spec.scope, "Cluster");
            let version = &crd.spec.versions[0];
            assert!(version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some());
            assert!(
                version
                    .additional_printer_columns
                    .as_ref()
                    .is_some_and(|columns| !columns.is_empty())
            );
            let schema = version.schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap();
            assert_eq!(schema.type_.as_deref(), Some("object"), "structural: typed at the root");
        }
    }
}
