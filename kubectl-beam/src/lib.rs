//! The `kubectl beam` plugin as a library: pipelines (render, check, classify), their conversion to the runners'
//! custom resources, status mapping, and, with the `cluster` feature (on by default), what reads and writes a
//! cluster: the API client, Prometheus, doctor's checks and the status report. The binary is a thin CLI over it.

pub mod cause;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod convert;
pub mod defaults;
#[cfg(feature = "cluster")]
pub mod doctor;
#[cfg(feature = "cluster")]
pub mod http;
#[cfg(feature = "cluster")]
pub mod metrics;
pub mod pipeline;
pub mod pods;
#[cfg(feature = "cluster")]
pub mod probe;
#[cfg(feature = "cluster")]
pub mod report;
pub mod status;
