//! CEL policies and tenant budgets.

pub mod demand;
pub mod model;
pub mod runtime;
pub mod tenants;
pub mod usage;
