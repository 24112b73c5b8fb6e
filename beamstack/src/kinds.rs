//! The runner custom resources Beamstack handles, recognised by group, version and kind.

use crate::contract::Runner;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RunnerKind {
    FlinkDeployment,
    FlinkSessionJob,
    SparkApplication,
    ScheduledSparkApplication,
}

impl RunnerKind {
    pub const ALL: [RunnerKind; 4] = [
        RunnerKind::FlinkDeployment,
        RunnerKind::FlinkSessionJob,
        RunnerKind::SparkApplication,
        RunnerKind::ScheduledSparkApplication,
    ];

    /// The kind for an AdmissionRequest's `kind`; other versions of the same groups are not ours to judge.
    pub fn from_gvk(group: &str, version: &str, kind: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|candidate| candidate.group() == group && candidate.version() == version && candidate.kind() == kind)
    }

    /// The kind of a bare object, from its `apiVersion` and `kind`.
    pub fn of_object(object: &serde_json::Value) -> Option<Self> {
        let api_version = object.get("apiVersion")?.as_str()?;
        let (group, version) = api_version.split_once('/')?;
        Self::from_gvk(group, version, object.get("kind")?.as_str()?)
    }

    pub fn kind(self) -> &'static str {
        match self {
            RunnerKind::FlinkDeployment => "FlinkDeployment",
            RunnerKind::FlinkSessionJob => "FlinkSessionJob",
            RunnerKind::SparkApplication => "SparkApplication",
            RunnerKind::ScheduledSparkApplication => "ScheduledSparkApplication",
        }
    }

    pub fn runner(self) -> Runner {
        match self {
            RunnerKind::FlinkDeployment | RunnerKind::FlinkSessionJob => Runner::Flink,
            RunnerKind::SparkApplication | RunnerKind::ScheduledSparkApplication => Runner::Spark,
        }
    }

    pub fn group(self) -> &'static str {
        self.runner().group()
    }

    pub fn version(self) -> &'static str {
        self.runner().version()
    }

    /// Where the runner settings live: a ScheduledSparkApplication wraps a SparkApplication spec in `spec.template`.
    pub fn spec_path(self) -> &'static [&'static str] {
        match self {
            RunnerKind::ScheduledSparkApplication => &["spec", "template"],
            _ => &["spec"],
        }
    }
}

impl fmt::Display for RunnerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn recognises_exactly_the_four_kinds() {
        assert_eq!(
            RunnerKind::from_gvk("flink.apache.org", "v1beta1", "FlinkDeployment"),
            Some(RunnerKind::FlinkDeployment)
        );
        assert_eq!(
            RunnerKind::from_gvk("sparkoperator.k8s.io", "v1beta2", "ScheduledSparkApplication"),
            Some(RunnerKind::ScheduledSparkApplication)
        );
        assert_eq!(
            RunnerKind::from_gvk("flink.apache.org", "v1beta1", "FlinkStateSnapshot"),
            None
        );
        assert_eq!(
            RunnerKind::from_gvk("sparkoperator.k8s.io", "v1beta1", "SparkApplication"),
            None
        );
        assert_eq!(RunnerKind::from_gvk("", "v1", "Pod"), None);
        assert_eq!(
            RunnerKind::of_object(&json!({"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkSessionJob"})),
            Some(RunnerKind::FlinkSessionJob)
        );
        assert_eq!(RunnerKind::of_object(&json!({"apiVersion": "v1", "kind": "Pod"})), None);
    }
}
