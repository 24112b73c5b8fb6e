//! Every native state of every runner maps to a phase, checked against the operators' own enum lists
//! (testdata/operator-enums.json, from the Flink operator release-1.15.0 and the Spark operator v2.5.2).

use kubectl_beam::status::{self, Phase};
use serde_json::{Value, json};
use std::path::PathBuf;

fn enums() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/operator-enums.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_spark_application_state_has_its_phase() {
    let expected = [
        ("", Phase::Pending),
        ("SUBMITTED", Phase::Submitting),
        ("RUNNING", Phase::Running),
        ("COMPLETED", Phase::Succeeded),
        ("FAILED", Phase::Failed),
        ("SUBMISSION_FAILED", Phase::Failed),
        ("PENDING_RERUN", Phase::Pending),
        ("INVALIDATING", Phase::Submitting),
        ("SUCCEEDING", Phase::Succeeded),
        ("FAILING", Phase::Failed),
        ("SUSPENDING", Phase::Suspended),
        ("SUSPENDED", Phase::Suspended),
        ("RESUMING", Phase::Submitting),
        ("UNKNOWN", Phase::Unknown),
    ];
    let states = strings(&enums()["spark"]["status.applicationState.state"]);
    assert_eq!(
        states.len(),
        expected.len(),
        "a new operator state needs a decision: {states:?}"
    );
    for state in states {
        let (_, phase) = expected
            .iter()
            .find(|(name, _)| *name == state)
            .unwrap_or_else(|| panic!("no decision for {state}"));
        let object = json!({"kind": "SparkApplication", "status": {"applicationState": {"state": state, "errorMessage": "driver pod failed"}}});
        let mapped = status::phase_of(&object);
        assert_eq!(mapped.phase, *phase, "{state}");
        assert_eq!(mapped.message.as_deref(), Some("driver pod failed"));
    }
}

#[test]
fn every_flink_job_state_has_its_phase() {
    let expected = [
        ("CANCELED", Phase::Failed),
        ("CANCELLING", Phase::Suspended),
        ("CREATED", Phase::Submitting),
        ("FAILED", Phase::Failed),
        ("FAILING", Phase::Running),
        ("FINISHED", Phase::Succeeded),
        ("INITIALIZING", Phase::Submitting),
        ("RECONCILING", Phase::Submitting),
        ("RESTARTING", Phase::Running),
        ("RUNNING", Phase::Running),
        ("SUSPENDED", Phase::Suspended),
    ];
    let states = strings(&enums()["flink"]["status.jobStatus.state"]);
    assert_eq!(states.len(), expected.len(), "{states:?}");
    for state in states {
        let (_, phase) = expected
            .iter()
            .find(|(name, _)| *name == state)
            .unwrap_or_else(|| panic!("no decision for {state}"));
        let object = json!({"kind": "FlinkDeployment", "spec": {"job": {"jarURI": "x"}},
            "status": {"lifecycleState": "STABLE", "jobManagerDeploymentStatus": "READY", "jobStatus": {"state": state}}});
        assert_eq!(status::phase_of(&object).phase, *phase, "{state}");
    }
}

#[test]
fn every_flink_lifecycle_and_job_manager_state_is_decided() {
    let enums = enums();
    let lifecycles = strings(&enums["flink"]["status.lifecycleState"]);
    let job_managers = strings(&enums["flink"]["status.jobManagerDeploymentStatus"]);
    let expected_lifecycle = [
        ("CREATED", None),
        ("DEPLOYED", None),
        ("STABLE", None),
        ("ROLLED_BACK", None), // the job state decides
        ("FAILED", Some(Phase::Failed)),
        ("SUSPENDED", Some(Phase::Suspended)),
        ("UPGRADING", Some(Phase::Submitting)),
        ("ROLLING_BACK", Some(Phase::Submitting)),
        ("DELETING", Some(Phase::Unknown)),
        ("DELETED", Some(Phase::Unknown)),
    ];
    assert_eq!(lifecycles.len(), expected_lifecycle.len(), "{lifecycles:?}");
    for lifecycle in &lifecycles {
        let (_, decided) = expected_lifecycle
            .iter()
            .find(|(name, _)| name == lifecycle)
            .unwrap_or_else(|| panic!("{lifecycle}"));
        for job_manager in &job_managers {
            let object = json!({"kind": "FlinkDeployment", "spec": {"job": {"jarURI": "x"}},
                "status": {"lifecycleState": lifecycle, "jobManagerDeploymentStatus": job_manager, "jobStatus": {"state": "RUNNING"}}});
            let phase = status::phase_of(&object).phase;
            match decided {
                Some(expected) => assert_eq!(phase, *expected, "{lifecycle}/{job_manager}"),
                None if job_manager == "ERROR" => assert_eq!(phase, Phase::Failed, "{lifecycle}/{job_manager}"),
                None => assert_eq!(
                    phase,
                    Phase::Running,
                    "{lifecycle}/{job_manager}: the job state decides"
                ),
            }
        }
    }
}

#[test]
fn a_realistic_flink_sequence_ends_in_a_terminal_phase() {
    let steps = [
        (json!({}), Phase::Pending),
        (json!({"lifecycleState": "CREATED"}), Phase::Pending),
        (
            json!({"lifecycleState": "DEPLOYED", "jobManagerDeploymentStatus": "DEPLOYING"}),
            Phase::Submitting,
        ),
        (
            json!({"lifecycleState": "DEPLOYED", "jobManagerDeploymentStatus": "READY", "jobStatus": {"state": "RECONCILING"}}),
            Phase::Submitting,
        ),
        (
            json!({"lifecycleState": "STABLE", "jobManagerDeploymentStatus": "READY", "jobStatus": {"state": "RUNNING"}}),
            Phase::Running,
        ),
        (
            json!({"lifecycleState": "STABLE", "jobManagerDeploymentStatus": "READY", "jobStatus": {"state": "FINISHED"}}),
            Phase::Succeeded,
        ),
    ];
    for (index, (status_field, phase)) in steps.iter().enumerate() {
        let object = json!({"kind": "FlinkDeployment", "spec": {"job": {"jarURI": "x"}}, "status": status_field});
        let mapped = status::phase_of(&object);
        assert_eq!(mapped.phase, *phase, "step {index}");
        assert_eq!(mapped.phase.is_terminal(), index == steps.len() - 1);
    }
}
