//! The `kubectl beam` plugin as a library: pipelines (render, check, classify), their conversion to the runners'
//! custom resources, status mapping, and the offline policy loop. The binary is a thin CLI over it.

pub mod cluster;
pub mod convert;
pub mod defaults;
pub mod doctor;
pub mod http;
pub mod metrics;
pub mod pipeline;
pub mod pods;
pub mod probe;
pub mod report;
pub mod status;
