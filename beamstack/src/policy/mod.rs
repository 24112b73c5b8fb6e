//! CEL policies and tenant budgets.
//!
//! - `model`: the RunnerPolicy and Tenant API (CRDs are generated from it).
//! - `runtime`: the CEL environment, metered evaluation, JSON <-> CEL.
//! - `compile`: a policy's expressions and match rules, checked once.
//! - `engine`: the policy set in force and the evaluation of one request.
//! - `reads`: which parts of the object a policy reads, so a request converts only those.
//! - `demand`, `usage`, `tenants`: what a job asks for, what a tenant runs, which tenant a namespace is.
//! - `load`: policies and tenants from YAML files.

pub mod compile;
pub mod demand;
pub mod engine;
pub mod load;
pub mod model;
pub mod reads;
pub mod runtime;
pub mod tenants;
pub mod testing;
pub mod usage;

use crate::units::Quantity;
use model::Tenant;

/// Checks a Tenant beyond its schema: quantities must parse and counts must not be negative.
pub fn check_tenant(tenant: &Tenant) -> Result<(), String> {
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
                    return Err(format!("{field}: must not be negative"));
                }
                Ok(_) => {}
                Err(error) => return Err(format!("{field}: {error}")),
            }
        }
    }
    for (field, count) in [
        ("spec.budget.jobs", budget.jobs),
        ("spec.budget.workers", budget.workers),
        ("spec.budget.perJob.workers", per_job.workers),
    ] {
        if count.is_some_and(|count| count < 0) {
            return Err(format!("{field}: must not be negative"));
        }
    }
    if tenant.spec.namespaces.is_empty() && tenant.spec.namespace_selector.is_none() {
        return Err("spec: name the tenant's namespaces, or give a namespaceSelector".into());
    }
    Ok(())
}
