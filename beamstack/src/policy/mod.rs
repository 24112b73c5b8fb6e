//! CEL policies and tenant budgets.
//!
//! - `model`: the RunnerPolicy and Tenant API (CRDs are generated from it).
//! - `runtime`: the CEL environment, metered evaluation, JSON <-> CEL.
//! - `compile`: a policy's expressions and match rules, checked once.
//! - `engine`: the policy set in force and the evaluation of one request.
//! - `reads`: which parts of the object a policy reads, so a request converts only those.
//! - `demand`, `usage`, `tenants`: what a job asks for, what a tenant runs, which tenant a namespace is.
//! - `load`: policies and tenants from YAML files.
//!
//! The policy-test runner, which runs cases through the whole admission, is the crate's `policy_test` module.

pub mod compile;
pub mod demand;
pub mod engine;
pub mod load;
pub mod model;
pub mod reads;
pub mod runtime;
pub mod tenants;
pub mod usage;

use crate::units::Quantity;
use model::Tenant;

/// A Tenant its schema lets through but Beamstack cannot count against: the field and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct BadTenant {
    pub field: &'static str,
    pub problem: String,
}

/// Checks a Tenant beyond its schema: quantities must parse and counts must not be negative.
pub fn check_tenant(tenant: &Tenant) -> Result<(), BadTenant> {
    let bad = |field: &'static str, problem: String| BadTenant { field, problem };
    let budget = &tenant.spec.budget;
    let per_job = budget.per_job.clone().unwrap_or_default();
    for (field, quantity) in [
        ("spec.budget.cpu", &budget.cpu),
        ("spec.budget.memory", &budget.memory),
        ("spec.budget.perJob.cpu", &per_job.cpu),
        ("spec.budget.perJob.memory", &per_job.memory),
    ] {
        if let Some(quantity) = quantity {
            match Quantity::parse(&quantity.0) {
                Ok(parsed) if parsed.value().is_sign_negative() => {
                    return Err(bad(field, "must not be negative".into()));
                }
                Ok(_) => {}
                Err(error) => return Err(bad(field, error.to_string())),
            }
        }
    }
    for (field, count) in [
        ("spec.budget.jobs", budget.jobs),
        ("spec.budget.workers", budget.workers),
        ("spec.budget.perJob.workers", per_job.workers),
    ] {
        if count.is_some_and(|count| count < 0) {
            return Err(bad(field, "must not be negative".into()));
        }
    }
    if tenant.spec.namespaces.is_empty() && tenant.spec.namespace_selector.is_none() {
        return Err(bad(
            "spec",
            "name the tenant's namespaces, or give a namespaceSelector".into(),
        ));
    }
    Ok(())
}
