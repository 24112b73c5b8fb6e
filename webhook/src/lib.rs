//! Beamstack: the admission logic for Beam pipelines on the Flink and Spark Kubernetes operators.
//!
//! One library, two front ends: the `beam-webhook` server and the `kubectl beam` plugin's offline checks call the
//! same pure functions (object in, patch or verdict out). IO lives at the edges: `server` (TLS, HTTP, reload,
//! shutdown), `certs` (files), `main.rs` (flags).
//!
//! - `admission`: AdmissionReview in, answer out.
//! - `mutate`: defaults and the Beam SDK harness, as a JSON patch.
//! - `validate`: the built-in rules, every violation with its field.
//! - `harness`: what marks a pipeline and which harness image it needs.
//! - `units`: Flink, Spark and Kubernetes memory and cpu notations.
//! - `config`: the webhook's configuration file.
//! - `self_managed`: the CA and serving certificate the webhook keeps and renews itself (IO in its `controller`).

pub mod admission;
pub mod certs;

pub mod config;
pub mod harness;
pub mod kinds;
pub mod metrics;

pub mod mutate;
pub mod policy;
pub mod self_managed;
pub mod server;
pub mod telemetry;

pub mod tree;
pub mod units;
pub mod validate;

pub use mutate::MERGE_BY_NAME_KEY;

/// The version every binary reports and every mutation records.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
