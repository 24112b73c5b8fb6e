//! The `beam-webhook` server around Beamstack's core (the `beamstack` crate): TLS, HTTP, reload and shutdown
//! (`server`), certificate files (`certs`), the CA and serving certificate it keeps itself (`self_managed`, IO in its
//! `controller`), Prometheus metrics (`metrics`), logs (`telemetry`), and the watch that feeds the policy engine
//! from the cluster (`cluster`). Flags and wiring are in `main.rs`.

pub mod certs;
pub mod cluster;
pub mod metrics;
pub mod self_managed;
pub mod server;
pub mod telemetry;
