//! Which pods belong to a pipeline's job, in which role, and how many are ready.
//!
//! The operators label the pods they make: the Flink operator (native mode) with `app=<deployment>` and
//! `component=jobmanager|taskmanager`, the Spark operator with `sparkoperator.k8s.io/app-name=<app>` and
//! `spark-role=driver|executor`; a session-mode launcher is a batch Job, whose pods carry
//! `batch.kubernetes.io/job-name`. The Beam worker pool is the `beam-worker-pool` container the webhook puts beside
//! the TaskManagers and executors; a pipeline with Java-backed transforms also has the Java pool
//! (`beam-java-worker-pool`) there, and the expansion service beside its launcher (a native sidecar of the
//! JobManager or the driver).

use serde::Serialize;
use serde_json::Value;

use beamstack::contract::{ANNOTATION_JAVA_TRANSFORMS, FLINK_MAIN_CONTAINER, HARNESS_CONTAINER, JAVA_POOL_CONTAINER};

/// The expansion service's container beside the launcher (kubectl beam names it so).
pub const EXPANSION_SERVICE_CONTAINER: &str = "beam-expansion-service";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[value(name = "jobmanager")]
    JobManager,
    #[value(name = "taskmanager")]
    TaskManager,
    /// The Beam worker pool beside the TaskManagers or executors.
    Harness,
    /// The Java worker pool beside them, for Java-backed transforms.
    #[value(name = "java-harness")]
    JavaHarness,
    /// The expansion service beside the launcher, for Java-backed transforms.
    #[value(name = "expansion-service")]
    ExpansionService,
    Driver,
    Executor,
    Launcher,
}

impl Role {
    /// Roles whose pods belong to another role, counted by one container's readiness.
    fn is_container(self) -> bool {
        matches!(self, Role::Harness | Role::JavaHarness | Role::ExpansionService)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::JobManager => "jobmanager",
            Role::TaskManager => "taskmanager",
            Role::Harness => "harness",
            Role::JavaHarness => "java-harness",
            Role::ExpansionService => "expansion-service",
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
    let java = object
        .pointer("/metadata/annotations")
        .and_then(|annotations| annotations.get(ANNOTATION_JAVA_TRANSFORMS))
        .is_some();
    // The Java roles, for objects that have them: the expansion service beside the launcher, the Java pool beside
    // the workers.
    let java_roles = |launcher_pods: String, worker_pods: String| {
        if java {
            vec![
                pods(Role::ExpansionService, launcher_pods, EXPANSION_SERVICE_CONTAINER),
                pods(Role::JavaHarness, worker_pods, JAVA_POOL_CONTAINER),
            ]
        } else {
            Vec::new()
        }
    };
    match object.get("kind").and_then(Value::as_str) {
        Some("FlinkDeployment") => [
            vec![
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
            java_roles(
                format!("app={name},component=jobmanager"),
                format!("app={name},component=taskmanager"),
            ),
        ]
        .concat(),
        Some("SparkApplication") => [
            vec![
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
            java_roles(
                format!("sparkoperator.k8s.io/app-name={name},spark-role=driver"),
                format!("sparkoperator.k8s.io/app-name={name},spark-role=executor"),
            ),
        ]
        .concat(),
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

/// Pods ready by role, from the pods of the job's namespace. The harnesses and the expansion service are counted by
/// their container's readiness, since they share their pods with another role (the expansion service is a native
/// sidecar: an init container).
pub fn readiness(object: &Value, pods: &[Value]) -> Vec<Readiness> {
    roles_of(object)
        .into_iter()
        .map(|role| {
            let members: Vec<&Value> = pods.iter().filter(|pod| selects(&role.selector, pod)).collect();
            if role.role.is_container() {
                let container = role.container.as_deref().unwrap_or(HARNESS_CONTAINER);
                let (specs, statuses) = if role.role == Role::ExpansionService {
                    ("/spec/initContainers", "/status/initContainerStatuses")
                } else {
                    ("/spec/containers", "/status/containerStatuses")
                };
                let statuses: Vec<&Value> = members
                    .iter()
                    .filter_map(|pod| pod.pointer(statuses).and_then(Value::as_array))
                    .flatten()
                    .filter(|status| status["name"] == container)
                    .collect();
                let total = members
                    .iter()
                    .filter(|pod| {
                        pod.pointer(specs)
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

/// A container of a job's pods that keeps failing: waiting in CrashLoopBackOff after its restarts (the launcher or
/// the expansion service beside a JobManager, a worker pool that cannot start). The job it belongs to cannot get
/// further by itself, although its runner object may still say it is being submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailingContainer {
    pub pod: String,
    pub container: String,
    pub restarts: u64,
}

/// The first crash-looping container of `pods`, init containers first (they run first).
pub fn crash_looping(pods: &[Value]) -> Option<FailingContainer> {
    pods.iter().find_map(|pod| {
        ["/status/initContainerStatuses", "/status/containerStatuses"]
            .iter()
            .filter_map(|field| pod.pointer(field).and_then(Value::as_array))
            .flatten()
            .find(|status| status.pointer("/state/waiting/reason").and_then(Value::as_str) == Some("CrashLoopBackOff"))
            .map(|status| FailingContainer {
                pod: pod
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                container: status["name"].as_str().unwrap_or_default().to_owned(),
                restarts: status["restartCount"].as_u64().unwrap_or(0),
            })
    })
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
    fn java_transforms_add_the_java_pool_and_the_expansion_service_counted_by_their_containers() {
        let deployment = json!({"kind": "FlinkDeployment",
            "metadata": {"name": "pg", "annotations": {ANNOTATION_JAVA_TRANSFORMS: "ReadFromPostgres"}}});
        let mut task_manager = pod(json!({"app": "pg", "component": "taskmanager"}), true, Some(true));
        task_manager["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": JAVA_POOL_CONTAINER}));
        task_manager["status"]["containerStatuses"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": JAVA_POOL_CONTAINER, "ready": false}));
        let mut job_manager = pod(json!({"app": "pg", "component": "jobmanager"}), true, None);
        job_manager["spec"]["initContainers"] = json!([{"name": EXPANSION_SERVICE_CONTAINER}]);
        job_manager["status"]["initContainerStatuses"] = json!([{"name": EXPANSION_SERVICE_CONTAINER, "ready": true}]);
        let counts: Vec<(Role, usize, usize)> = readiness(&deployment, &[job_manager, task_manager])
            .into_iter()
            .map(|r| (r.role, r.ready, r.total))
            .collect();
        assert_eq!(counts[3..], [(Role::ExpansionService, 1, 1), (Role::JavaHarness, 0, 1)]);
        let python_only = json!({"kind": "FlinkDeployment", "metadata": {"name": "pg"}});
        assert_eq!(roles_of(&python_only).len(), 3, "no Java roles without Java transforms");
    }

    #[test]
    fn a_crash_looping_container_is_found_init_containers_first() {
        let waiting = |name: &str, reason: &str, restarts: u64| json!({"name": name, "restartCount": restarts, "state": {"waiting": {"reason": reason}}});
        let pod = json!({
            "metadata": {"name": "pg-1"},
            "status": {
                "initContainerStatuses": [
                    {"name": "beam-job-server", "restartCount": 0, "state": {"running": {}}},
                    waiting("beam-pipeline-jar", "CrashLoopBackOff", 3),
                ],
                "containerStatuses": [waiting("flink-main-container", "PodInitializing", 0)],
            }
        });
        assert_eq!(
            crash_looping(&[pod]),
            Some(FailingContainer {
                pod: "pg-1".into(),
                container: "beam-pipeline-jar".into(),
                restarts: 3
            })
        );
        let starting = json!({"metadata": {"name": "pg-2"},
            "status": {"containerStatuses": [waiting("beam-java-worker-pool", "ContainerCreating", 0)]}});
        assert_eq!(crash_looping(&[starting]), None);
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
