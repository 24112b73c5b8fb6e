//! Which pods belong to a pipeline's job, in which role, and how many are ready.
//!
//! The operators label the pods they make: the Flink operator (native mode) with `app=<deployment>` and
//! `component=jobmanager|taskmanager`, the Spark operator with `sparkoperator.k8s.io/app-name=<app>` and
//! `spark-role=driver|executor`; a session-mode launcher is a batch Job, whose pods carry
//! `batch.kubernetes.io/job-name`. The Beam worker pool is the `beam-worker-pool` container the webhook puts beside
//! the TaskManagers and executors.

use serde::Serialize;
use serde_json::Value;

use beamstack::contract::{FLINK_MAIN_CONTAINER, HARNESS_CONTAINER};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[value(name = "jobmanager")]
    JobManager,
    #[value(name = "taskmanager")]
    TaskManager,
    /// The Beam worker pool beside the TaskManagers or executors.
    Harness,
    Driver,
    Executor,
    Launcher,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::JobManager => "jobmanager",
            Role::TaskManager => "taskmanager",
            Role::Harness => "harness",
            Role::Driver => "driver",
            Role::Executor => "executor",
            Role::Launcher => "launcher",
        }
    }
}

/// The pods of one role: a label selector, and the container whose logs show that role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolePods {
    pub role: Role,
    pub selector: String,
    pub container: Option<String>,
}

/// The roles of a runner object's pods, in the order a reader meets them.
pub fn roles_of(object: &Value) -> Vec<RolePods> {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let pods = |role: Role, selector: String, container: &str| RolePods {
        role,
        selector,
        container: Some(container.to_owned()),
    };
    match object.get("kind").and_then(Value::as_str) {
        Some("FlinkDeployment") => vec![
            pods(
                Role::JobManager,
                format!("app={name},component=jobmanager"),
                FLINK_MAIN_CONTAINER,
            ),
            pods(
                Role::TaskManager,
                format!("app={name},component=taskmanager"),
                FLINK_MAIN_CONTAINER,
            ),
            pods(
                Role::Harness,
                format!("app={name},component=taskmanager"),
                HARNESS_CONTAINER,
            ),
        ],
        Some("SparkApplication") => vec![
            pods(
                Role::Driver,
                format!("sparkoperator.k8s.io/app-name={name},spark-role=driver"),
                "spark-kubernetes-driver",
            ),
            pods(
                Role::Executor,
                format!("sparkoperator.k8s.io/app-name={name},spark-role=executor"),
                "spark-kubernetes-executor",
            ),
            pods(
                Role::Harness,
                format!("sparkoperator.k8s.io/app-name={name},spark-role=executor"),
                HARNESS_CONTAINER,
            ),
        ],
        Some("Job") => vec![RolePods {
            role: Role::Launcher,
            selector: format!("batch.kubernetes.io/job-name={name}"),
            container: None,
        }],
        _ => Vec::new(),
    }
}

/// Ready and total pods of one role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub role: Role,
    pub ready: usize,
    pub total: usize,
}

/// A pod is ready when its Ready condition is True (what kubectl's READY column counts as a whole pod).
pub fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|condition| condition["type"] == "Ready" && condition["status"] == "True")
        })
}

/// Does a pod carry every `key=value` of a selector (the equality selectors `roles_of` makes)?
pub fn selects(selector: &str, pod: &Value) -> bool {
    let labels = pod.pointer("/metadata/labels");
    selector.split(',').all(|term| {
        let (key, value) = term.split_once('=').unwrap_or((term, ""));
        labels.and_then(|labels| labels.get(key)).and_then(Value::as_str) == Some(value)
    })
}

/// Pods ready by role, from the pods of the job's namespace. The harness is counted by its container's readiness,
/// since it shares its pods with the TaskManagers or executors.
pub fn readiness(object: &Value, pods: &[Value]) -> Vec<Readiness> {
    roles_of(object)
        .into_iter()
        .map(|role| {
            let members: Vec<&Value> = pods.iter().filter(|pod| selects(&role.selector, pod)).collect();
            if role.role == Role::Harness {
                let container = role.container.as_deref().unwrap_or(HARNESS_CONTAINER);
                let statuses: Vec<&Value> = members
                    .iter()
                    .filter_map(|pod| pod.pointer("/status/containerStatuses").and_then(Value::as_array))
                    .flatten()
                    .filter(|status| status["name"] == container)
                    .collect();
                let total = members
                    .iter()
                    .filter(|pod| {
                        pod.pointer("/spec/containers")
                            .and_then(Value::as_array)
                            .is_some_and(|containers| containers.iter().any(|c| c["name"] == container))
                    })
                    .count();
                return Readiness {
                    role: role.role,
                    ready: statuses.iter().filter(|status| status["ready"] == true).count(),
                    total,
                };
            }
            Readiness {
                role: role.role,
                ready: members.iter().filter(|pod| is_ready(pod)).count(),
                total: members.len(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: Value, ready: bool, harness_ready: Option<bool>) -> Value {
        let mut containers = vec![json!({"name": "flink-main-container"})];
        let mut statuses = vec![json!({"name": "flink-main-container", "ready": ready})];
        if let Some(harness) = harness_ready {
            containers.push(json!({"name": HARNESS_CONTAINER}));
            statuses.push(json!({"name": HARNESS_CONTAINER, "ready": harness}));
        }
        json!({
            "metadata": {"labels": labels},
            "spec": {"containers": containers},
            "status": {
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                "containerStatuses": statuses,
            }
        })
    }

    #[test]
    fn flink_pods_by_role_with_the_harness_counted_by_its_container() {
        let deployment = json!({"kind": "FlinkDeployment", "metadata": {"name": "wordcount"}});
        let pods = [
            pod(json!({"app": "wordcount", "component": "jobmanager"}), true, None),
            pod(
                json!({"app": "wordcount", "component": "taskmanager"}),
                true,
                Some(true),
            ),
            pod(
                json!({"app": "wordcount", "component": "taskmanager"}),
                false,
                Some(false),
            ),
            // Another deployment's pods are not counted.
            pod(json!({"app": "other", "component": "taskmanager"}), true, Some(true)),
        ];
        let counts: Vec<(Role, usize, usize)> = readiness(&deployment, &pods)
            .into_iter()
            .map(|r| (r.role, r.ready, r.total))
            .collect();
        assert_eq!(
            counts,
            vec![
                (Role::JobManager, 1, 1),
                (Role::TaskManager, 1, 2),
                (Role::Harness, 1, 2)
            ]
        );
    }

    #[test]
    fn spark_and_launcher_selectors() {
        let app = json!({"kind": "SparkApplication", "metadata": {"name": "etl"}});
        let roles = roles_of(&app);
        assert_eq!(roles[0].selector, "sparkoperator.k8s.io/app-name=etl,spark-role=driver");
        assert_eq!(roles[2].container.as_deref(), Some(HARNESS_CONTAINER));
        let job = json!({"kind": "Job", "metadata": {"name": "etl-launcher"}});
        assert_eq!(roles_of(&job)[0].selector, "batch.kubernetes.io/job-name=etl-launcher");
        assert!(roles_of(&json!({"kind": "ConfigMap"})).is_empty());
    }

    #[test]
    fn a_selector_needs_every_label() {
        let pod = json!({"metadata": {"labels": {"app": "a", "component": "jobmanager"}}});
        assert!(selects("app=a,component=jobmanager", &pod));
        assert!(!selects("app=a,component=taskmanager", &pod));
        assert!(!selects("app=a", &json!({"metadata": {}})));
    }
}
