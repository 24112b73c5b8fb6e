//! CEL policies and tenant budgets.

pub mod model;
pub mod runtime;
