//! Beamstack's core: the admission logic for Beam pipelines on the Flink and Spark Kubernetes operators, pure
//! functions from object to patch or verdict. The `beam-webhook` server and the `kubectl beam` plugin's offline
//! checks call this same code; neither IO nor a server framework lives here (the server, TLS, certificates, metrics
//! and the cluster watch are in the `webhook` crate).
//!
//! - `contract`: what the webhook and the plugin agree on (annotations, labels, API groups, the harness container).
//! - `admission`: AdmissionReview in, answer out.
//! - `mutate`: defaults and the Beam SDK harness, as a JSON patch.
//! - `validate`: the built-in rules, every violation with its field.
//! - `policy`: RunnerPolicies in CEL, tenants and their usage.
//! - `policy_test`: the offline policy-test runner, through the whole admission.
//! - `flink_resources`: where a FlinkDeployment's cpu and memory come from, as the Flink operator reads them.
//! - `harness`: what marks a pipeline and which harness image it needs.
//! - `images`, `versions`: how image references and Beam, Python and Flink versions are read.
//! - `kinds`: the runner kinds and where each keeps its pods, containers, images and volumes.
//! - `units`: Flink, Spark and Kubernetes memory and cpu notations.
//! - `config`: the webhook's configuration file.
//! - `tree`: reading and writing paths in JSON objects.

pub mod admission;
pub mod config;
pub mod contract;
pub mod flink_resources;
pub mod harness;
pub mod images;
pub mod kinds;
pub mod mutate;
pub mod policy;
pub mod policy_test;
pub mod tree;
pub mod units;
pub mod validate;
pub mod versions;

pub use mutate::MERGE_BY_NAME_KEY;

/// The version every binary reports and every mutation records.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
