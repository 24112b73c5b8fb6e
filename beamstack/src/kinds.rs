//! The runner custom resources Beamstack handles, recognised by group, version and kind, and where each keeps its
//! pods: the containers, images and volumes of its pod templates.

use crate::contract::{FLINK_CANARY_LABEL, Runner};
use crate::tree::{dotted, get};
use serde_json::Value;
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
    pub fn of_object(object: &Value) -> Option<Self> {
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

    /// The Flink operator's health-check canary: an object of its kinds labelled `flink.apache.org/canary: "true"`,
    /// which the operator creates to time its own reconcile loop and which its validator skips on purpose (it has no
    /// spec to speak of). Beamstack leaves it alone too, or the operator's documented health check would fail.
    pub fn is_operator_canary(self, object: &Value) -> bool {
        self.runner() == Runner::Flink
            && get(object, &["metadata", "labels", FLINK_CANARY_LABEL])
                .and_then(Value::as_str)
                .is_some_and(|value| value.eq_ignore_ascii_case("true"))
    }

    /// Where the runner settings live: a ScheduledSparkApplication wraps a SparkApplication spec in `spec.template`.
    pub fn spec_path(self) -> &'static [&'static str] {
        match self {
            RunnerKind::ScheduledSparkApplication => &["spec", "template"],
            _ => &["spec"],
        }
    }

    /// Every image an object names, with its field path.
    pub fn images_of(self, object: &Value) -> Vec<(String, String)> {
        let mut found = Vec::new();
        let mut image_at = |path: &[&str]| {
            if let Some(image) = get(object, path).and_then(Value::as_str) {
                found.push((path.join("."), image.to_owned()));
            }
        };
        match self.runner() {
            Runner::Flink => image_at(&["spec", "image"]),
            Runner::Spark => {
                let spec = self.spec_path();
                image_at(&[spec, &["image"]].concat());
                for role in ["driver", "executor"] {
                    image_at(&[spec, &[role, "image"]].concat());
                }
            }
        }
        for (path, container) in self.containers_of(object) {
            if let Some(image) = container.get("image").and_then(Value::as_str) {
                found.push((format!("{path}.image"), image.to_owned()));
            }
        }
        found
    }

    /// Every container an object declares (pod templates, sidecars, init containers), with its field path.
    pub fn containers_of(self, object: &Value) -> Vec<(String, &Value)> {
        self.container_lists()
            .into_iter()
            .flat_map(|(owner, key)| entries_at(object, &owner, key))
            .collect()
    }

    /// Every volume an object declares, with its field path.
    pub fn volumes_of(self, object: &Value) -> Vec<(String, &Value)> {
        let owners: Vec<Vec<&str>> = match self.runner() {
            Runner::Flink => FLINK_POD_SPECS.iter().map(|spec| spec.to_vec()).collect(),
            Runner::Spark => vec![self.spec_path().to_vec()],
        };
        owners
            .iter()
            .flat_map(|owner| entries_at(object, owner, "volumes"))
            .collect()
    }

    /// Where an object keeps lists of containers: (path of the owner, key of the list).
    fn container_lists(self) -> Vec<(Vec<&'static str>, &'static str)> {
        match self.runner() {
            Runner::Flink => FLINK_POD_SPECS
                .iter()
                .flat_map(|spec| [(spec.to_vec(), "initContainers"), (spec.to_vec(), "containers")])
                .collect(),
            Runner::Spark => ["driver", "executor"]
                .into_iter()
                .flat_map(|role| {
                    let owner = [self.spec_path(), &[role]].concat();
                    [(owner.clone(), "initContainers"), (owner, "sidecars")]
                })
                .collect(),
        }
    }
}

/// The pod specs of a FlinkDeployment: the template both roles start from, then each role's own.
const FLINK_POD_SPECS: [&[&str]; 3] = [
    &["spec", "podTemplate", "spec"],
    &["spec", "jobManager", "podTemplate", "spec"],
    &["spec", "taskManager", "podTemplate", "spec"],
];

/// The entries of the list `key` under `owner`, each with its field path (`owner.key[index]`).
fn entries_at<'a>(object: &'a Value, owner: &[&str], key: &str) -> Vec<(String, &'a Value)> {
    let list = get(object, &[owner, &[key]].concat()).and_then(Value::as_array);
    list.into_iter()
        .flatten()
        .enumerate()
        .map(|(index, entry)| (dotted(owner, &format!("{key}[{index}]")), entry))
        .collect()
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
