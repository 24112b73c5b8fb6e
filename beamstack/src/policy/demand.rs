//! What a runner CR will ask the cluster for when it runs: the sum over all its pods, computed with the same units
//! as the webhook, so budgets count what the operators will really request.
//!
//! - FlinkDeployment: JobManager × replicas + TaskManager × replicas, each pod adding the requests of its extra
//!   containers (the harness sidecar). TaskManagers default to ceil(parallelism / task slots), as the operator does.
//!   Each role's cpu and memory are what the operator reads (`flink_resources`: operator 1.16's `resources`, else
//!   `resource`, else `flinkConfiguration`; Flink's one core when nothing sets the cpu).
//! - SparkApplication: driver + executor × instances (maxExecutors under dynamic allocation), each with memory
//!   overhead max(memory × factor, 384Mi) unless `memoryOverhead` is given, plus sidecar requests; each amount
//!   from the spec's field, else from the same setting in `sparkConf`.
//!
//! Each pod counts as the scheduler counts it (Kubernetes' effective requests): its containers plus its native
//! sidecars (init containers with `restartPolicy: Always`, such as Beam's job server beside a JobManager or a Spark
//! driver), or, if larger, what an ordinary init container needs while it runs beside the sidecars started before
//! it; per resource.
//! - FlinkSessionJob: nothing of its own (it runs in its session cluster's pods) but it is a job.
//! - ScheduledSparkApplication: what one run (its template) asks for; it counts no job itself, its runs do.

use crate::contract::FLINK_MAIN_CONTAINER as MAIN_CONTAINER;
use crate::flink_resources::{self, Role};
use crate::kinds::RunnerKind;
use crate::tree::{flatten_keys, get, get_str};
use crate::units::{self, Bytes, Millicores};
use serde_json::Value;

/// Resources of one runner CR, or sums of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Demand {
    pub cpu: Millicores,
    pub memory: Bytes,
    /// TaskManagers plus executors.
    pub workers: u64,
    /// Runner CRs that count as jobs (0 or 1 for one object).
    pub jobs: u64,
}

impl Demand {
    /// Cpu and memory alone: a pod or a container, which counts as no worker and no job by itself.
    fn resources(cpu: Millicores, memory: Bytes) -> Demand {
        Demand {
            cpu,
            memory,
            workers: 0,
            jobs: 0,
        }
    }

    pub fn plus(self, other: Demand) -> Demand {
        Demand {
            cpu: Millicores(self.cpu.0.saturating_add(other.cpu.0)),
            memory: Bytes(self.memory.0.saturating_add(other.memory.0)),
            workers: self.workers.saturating_add(other.workers),
            jobs: self.jobs.saturating_add(other.jobs),
        }
    }

    pub fn minus(self, other: Demand) -> Demand {
        Demand {
            cpu: Millicores(self.cpu.0.saturating_sub(other.cpu.0)),
            memory: Bytes(self.memory.0.saturating_sub(other.memory.0)),
            workers: self.workers.saturating_sub(other.workers),
            jobs: self.jobs.saturating_sub(other.jobs),
        }
    }

    fn times(self, count: u64) -> Demand {
        Demand {
            cpu: Millicores(self.cpu.0.saturating_mul(count)),
            memory: Bytes(self.memory.0.saturating_mul(count)),
            workers: self.workers.saturating_mul(count),
            jobs: self.jobs.saturating_mul(count),
        }
    }
}

/// The demand of a runner object. Unparseable amounts count as zero: validation reports them on their own.
pub fn demand_of(kind: RunnerKind, object: &Value) -> Demand {
    if kind.is_operator_canary(object) {
        // The operator only times its reconcile loop with it: it never deploys a canary.
        return Demand::default();
    }
    match kind {
        RunnerKind::FlinkDeployment => flink_deployment(object),
        RunnerKind::FlinkSessionJob => Demand {
            jobs: 1,
            ..Demand::default()
        },
        RunnerKind::SparkApplication => Demand {
            jobs: 1,
            ..spark_application(get(object, &["spec"]))
        },
        RunnerKind::ScheduledSparkApplication => spark_application(get(object, &["spec", "template"])),
    }
}

fn count(value: Option<&Value>) -> Option<u64> {
    value
        .and_then(Value::as_i64)
        .filter(|count| *count >= 0)
        .map(|count| count as u64)
}

fn flink_deployment(object: &Value) -> Demand {
    let role = |role: Role| {
        let name = role.field();
        // What the operator will give the role (flink_resources); Flink's one core when nothing says.
        let cpu =
            flink_resources::cpu(object, role).map_or(Some(flink_resources::DEFAULT_CPU), |setting| setting.cpu());
        let memory = flink_resources::memory(object, role).and_then(|setting| setting.memory());
        let (cpu, memory) = (cpu.unwrap_or_default(), memory.unwrap_or_default());
        let template = get(object, &["spec", name, "podTemplate", "spec"]);
        pod_demand(
            Demand::resources(cpu, memory),
            extra_containers(template.and_then(|t| t.get("containers")), MAIN_CONTAINER),
            template.and_then(|t| t.get("initContainers")),
        )
    };
    let job_managers = count(get(object, &["spec", "jobManager", "replicas"])).unwrap_or(1);
    let task_managers = count(get(object, &["spec", "taskManager", "replicas"])).unwrap_or_else(|| {
        // The operator sizes TaskManagers from the job's parallelism and the slots each offers.
        let parallelism = count(get(object, &["spec", "job", "parallelism"])).unwrap_or(0);
        let slots = get(object, &["spec", "flinkConfiguration"])
            .map(flatten_keys)
            .and_then(|keys| {
                keys.into_iter()
                    .find(|(key, _)| key == "taskmanager.numberOfTaskSlots")
                    .and_then(|(_, value)| {
                        value
                            .as_str()
                            .and_then(|text| text.parse().ok())
                            .or_else(|| value.as_u64())
                    })
            })
            .filter(|slots: &u64| *slots > 0)
            .unwrap_or(1);
        parallelism.div_ceil(slots)
    });
    let has_job = get(object, &["spec", "job"]).is_some_and(|job| !job.is_null());
    let task_manager = Demand {
        workers: 1,
        ..role(Role::TaskManager)
    };
    Demand {
        jobs: u64::from(has_job),
        ..role(Role::JobManager).times(job_managers)
    }
    .plus(task_manager.times(task_managers))
}

fn spark_application(spec: Option<&Value>) -> Demand {
    let Some(spec) = spec else { return Demand::default() };
    let factor = get_str(spec, &["memoryOverheadFactor"])
        .and_then(|factor| factor.parse::<f64>().ok())
        .unwrap_or_else(|| units::spark_default_overhead_factor(get_str(spec, &["type"]).unwrap_or("Scala")));
    // A field wins over the same setting in `sparkConf` (the operator passes it to spark-submit later); without the
    // field, `sparkConf` holds what Spark uses.
    let setting = |field: &[&str], conf_key: &str| {
        get(spec, field)
            .filter(|value| !value.is_null())
            .or_else(|| get(spec, &["sparkConf", conf_key]).filter(|value| !value.is_null()))
    };
    // Whole numbers, as JSON numbers in fields and as strings in sparkConf.
    let number = |value: Option<&Value>| {
        count(value).or_else(|| value.and_then(Value::as_str).and_then(|text| text.trim().parse().ok()))
    };
    let pod = |role: &str| {
        let role_spec = get(spec, &[role]);
        let cores = setting(
            &[role, "coreRequest"],
            &format!("spark.kubernetes.{role}.request.cores"),
        )
        .and_then(Value::as_str)
        .and_then(|q| units::quantity_millicores(q).ok());
        let cpu = cores.unwrap_or_else(|| {
            let cores = setting(&[role, "cores"], &format!("spark.{role}.cores"));
            let cores =
                count(cores).or_else(|| cores.and_then(Value::as_str).and_then(|text| text.trim().parse().ok()));
            Millicores(cores.unwrap_or(1).saturating_mul(1000))
        });
        let memory = setting(&[role, "memory"], &format!("spark.{role}.memory"))
            .and_then(Value::as_str)
            .and_then(|memory| units::spark_memory(memory).ok())
            .unwrap_or(Bytes(1 << 30));
        let overhead = setting(&[role, "memoryOverhead"], &format!("spark.{role}.memoryOverhead"))
            .and_then(Value::as_str)
            .and_then(|overhead| units::spark_memory(overhead).ok());
        let memory = units::spark_pod_memory(memory, overhead, factor);
        pod_demand(
            Demand::resources(cpu, memory),
            extra_containers(role_spec.and_then(|r| r.get("sidecars")), ""),
            role_spec.and_then(|r| r.get("initContainers")),
        )
    };
    // The operator passes spark.dynamicAllocation.enabled only when the spec turns it on: otherwise sparkConf's stands.
    let dynamic = get(spec, &["dynamicAllocation", "enabled"]).and_then(Value::as_bool) == Some(true)
        || get_str(spec, &["sparkConf", "spark.dynamicAllocation.enabled"])
            .is_some_and(|enabled| enabled.trim().eq_ignore_ascii_case("true"));
    let instances = number(setting(&["executor", "instances"], "spark.executor.instances"));
    let executors = if dynamic {
        // The worst case is what the budget must allow for.
        number(setting(
            &["dynamicAllocation", "maxExecutors"],
            "spark.dynamicAllocation.maxExecutors",
        ))
        .or(instances)
        .unwrap_or(1)
    } else {
        instances.unwrap_or(1)
    };
    let executor = Demand {
        workers: 1,
        ..pod("executor")
    };
    pod("driver").plus(executor.times(executors))
}

/// One pod as the scheduler counts it: the main container and the other containers (`main`, `others`), plus the
/// native sidecars among `init_containers`; or, per resource, the most an ordinary init container needs beside the
/// sidecars started before it, when that is more.
fn pod_demand(main: Demand, others: Demand, init_containers: Option<&Value>) -> Demand {
    let mut sidecars = Demand::default();
    let mut init_peak = Demand::default();
    for container in init_containers.and_then(Value::as_array).into_iter().flatten() {
        let own = container_requests(container);
        if container.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
            sidecars = sidecars.plus(own);
        } else {
            let needs = own.plus(sidecars);
            init_peak.cpu = init_peak.cpu.max(needs.cpu);
            init_peak.memory = init_peak.memory.max(needs.memory);
        }
    }
    let running = main.plus(others).plus(sidecars);
    Demand {
        cpu: running.cpu.max(init_peak.cpu),
        memory: running.memory.max(init_peak.memory),
        ..running
    }
}

/// The requests (else limits) of every container in `containers` but `main`.
fn extra_containers(containers: Option<&Value>, main: &str) -> Demand {
    let mut total = Demand::default();
    for container in containers.and_then(Value::as_array).into_iter().flatten() {
        if container.get("name").and_then(Value::as_str) == Some(main) {
            continue;
        }
        total = total.plus(container_requests(container));
    }
    total
}

/// One container's requests (else limits) of cpu and memory.
fn container_requests(container: &Value) -> Demand {
    // A request left out defaults to the limit (as the API server defaults it).
    let amount = |name: &str| {
        ["requests", "limits"]
            .iter()
            .find_map(|kind| container.get("resources")?.get(kind)?.get(name)?.as_str())
    };
    Demand::resources(
        amount("cpu")
            .and_then(|cpu| units::quantity_millicores(cpu).ok())
            .unwrap_or_default(),
        amount("memory")
            .and_then(|memory| units::quantity_bytes(memory).ok())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn huge_core_counts_saturate() {
        // Regression (fuzz/regressions/admission_review-spark-cores-overflow.json): `cores * 1000` overflowed (a
        // panic with debug assertions, and in release a wrapped, small demand that a budget would let through).
        for cores in [json!(i64::MAX), json!(u64::MAX / 1000 + 1)] {
            let object = json!({"spec": {"driver": {"cores": 1}, "executor": {"cores": cores, "instances": 2}}});
            let demand = demand_of(RunnerKind::SparkApplication, &object);
            assert_eq!(demand.cpu, Millicores(u64::MAX), "{cores}");
        }
    }

    #[test]
    fn flink_counts_every_pod_and_the_harness() {
        let object = json!({"spec": {
            "jobManager": {"replicas": 1, "resource": {"cpu": 1, "memory": "2048m"}},
            "taskManager": {"replicas": 3, "resource": {"cpu": 2, "memory": "4g"},
                "podTemplate": {"spec": {"containers": [
                    {"name": "flink-main-container"},
                    {"name": "beam-worker-pool", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}
                ]}}},
            "job": {"parallelism": 6}
        }});
        let demand = demand_of(RunnerKind::FlinkDeployment, &object);
        assert_eq!(demand.cpu, Millicores(1000 + 3 * 2500));
        assert_eq!(demand.memory, Bytes(2 * GIB + 3 * 5 * GIB));
        assert_eq!((demand.workers, demand.jobs), (3, 1));
    }

    #[test]
    fn flink_task_managers_follow_parallelism_and_slots() {
        let object = json!({"spec": {
            "flinkConfiguration": {"taskmanager.numberOfTaskSlots": "4"},
            "jobManager": {"resource": {"cpu": 1, "memory": "1g"}},
            "taskManager": {"resource": {"cpu": 1, "memory": "1g"}},
            "job": {"parallelism": 10}
        }});
        let demand = demand_of(RunnerKind::FlinkDeployment, &object);
        assert_eq!(demand.workers, 3, "ceil(10 / 4)");
        assert_eq!(demand.cpu, Millicores(4000));
        let session = json!({"spec": {"jobManager": {"resource": {"cpu": 1, "memory": "1g"}}}});
        assert_eq!(
            demand_of(RunnerKind::FlinkDeployment, &session).jobs,
            0,
            "a session cluster is not a job"
        );
    }

    #[test]
    fn spark_counts_overhead_and_executors() {
        let object = json!({"spec": {"type": "Python",
            "driver": {"cores": 1, "memory": "1g"},
            "executor": {"cores": 2, "memory": "2g", "instances": 4,
                "sidecars": [{"name": "beam-worker-pool", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]}}});
        let demand = demand_of(RunnerKind::SparkApplication, &object);
        assert_eq!(demand.cpu, Millicores(1000 + 4 * 2500));
        let driver = GIB + (GIB as f64 * 0.4).ceil() as u64;
        let executor = 2 * GIB + (2.0 * GIB as f64 * 0.4).ceil() as u64 + GIB;
        assert_eq!(demand.memory, Bytes(driver + 4 * executor));
        assert_eq!((demand.workers, demand.jobs), (4, 1));
    }

    #[test]
    fn native_sidecars_count_for_the_whole_pod_and_init_containers_only_at_their_peak() {
        // The driver as `kubectl beam run` makes it: Beam's job server a native sidecar, the launcher an ordinary
        // init container that runs before Spark's container starts.
        let job_server = json!({"name": "beam-job-server", "restartPolicy": "Always",
            "resources": {"requests": {"cpu": "100m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}});
        let launcher =
            |memory: &str| json!({"name": "build-pipeline-jar", "resources": {"limits": {"memory": memory}}});
        let driver = |launcher_memory: &str| {
            json!({"spec": {"type": "Java",
            "driver": {"coreRequest": "250m", "memory": "512m",
                       "initContainers": [job_server.clone(), launcher(launcher_memory)]},
            "executor": {"instances": 0}}})
        };
        let demand = demand_of(RunnerKind::SparkApplication, &driver("256Mi"));
        assert_eq!(demand.cpu, Millicores(250 + 100));
        assert_eq!(demand.memory, Bytes(512 * MIB + 384 * MIB + GIB));
        // A launcher that needs more than Spark's container, beside the job server started before it, sets the pod's
        // memory; cpu still comes from the running containers.
        let demand = demand_of(RunnerKind::SparkApplication, &driver("4Gi"));
        assert_eq!(demand.memory, Bytes(4 * GIB + GIB));
        assert_eq!(demand.cpu, Millicores(350));

        let flink = json!({"spec": {
            "jobManager": {"resource": {"cpu": 1, "memory": "1g"},
                "podTemplate": {"spec": {"initContainers": [job_server]}}},
            "taskManager": {"replicas": 0, "resource": {"cpu": 1, "memory": "1g"}}}});
        let demand = demand_of(RunnerKind::FlinkDeployment, &flink);
        assert_eq!(demand.cpu, Millicores(1100));
        assert_eq!(demand.memory, Bytes(2 * GIB));
    }

    #[test]
    fn spark_dynamic_allocation_counts_the_maximum() {
        let object = json!({"spec": {"type": "Scala", "driver": {"memory": "512m"}, "executor": {"memory": "512m"},
            "dynamicAllocation": {"enabled": true, "maxExecutors": 10}}});
        let demand = demand_of(RunnerKind::SparkApplication, &object);
        assert_eq!(demand.workers, 10);
        assert_eq!(
            demand.memory,
            Bytes(11 * (512 * MIB + 384 * MIB)),
            "the 384Mi floor applies to 512m JVM pods"
        );
    }

    #[test]
    fn scheduled_spark_is_one_run_and_no_job() {
        let object = json!({"spec": {"template": {"type": "Scala", "executor": {"instances": 2}}}});
        let demand = demand_of(RunnerKind::ScheduledSparkApplication, &object);
        assert_eq!((demand.workers, demand.jobs), (2, 0));
        assert_eq!(demand.cpu, Millicores(3000));
    }
}
