//! One phase for every runner: the answer to "is it running, and if not, why?".
//!
//! FlinkDeployment status is spread over `lifecycleState`, `jobManagerDeploymentStatus`, `jobStatus.state` and
//! `error`; SparkApplication has `applicationState`; a session-mode launcher is a batch Job with conditions. Each is
//! mapped here, with the reason (the native state that decided) and the error message when there is one.

use serde_json::Value;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    Pending,
    Submitting,
    Running,
    Succeeded,
    Failed,
    Suspended,
    Unknown,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Submitting => "Submitting",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Suspended => "Suspended",
            Phase::Unknown => "Unknown",
        }
    }

    pub fn parse(text: &str) -> Option<Phase> {
        [
            Phase::Pending,
            Phase::Submitting,
            Phase::Running,
            Phase::Succeeded,
            Phase::Failed,
            Phase::Suspended,
            Phase::Unknown,
        ]
        .into_iter()
        .find(|phase| phase.as_str() == text)
    }

    /// Phases a job does not leave by itself: `status -w` stops there.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed | Phase::Suspended)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A phase, the native state that decided it, and the error message if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStatus {
    pub phase: Phase,
    pub reason: String,
    pub message: Option<String>,
}

fn status(phase: Phase, reason: impl Into<String>, message: Option<String>) -> JobStatus {
    JobStatus {
        phase,
        reason: reason.into(),
        message,
    }
}

fn text<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
}

/// The phase of any runner object (FlinkDeployment, SparkApplication, a launcher Job).
pub fn phase_of(object: &Value) -> JobStatus {
    match object.get("kind").and_then(Value::as_str) {
        Some("FlinkDeployment") => flink(object),
        Some("SparkApplication") => spark(object),
        Some("Job") => launcher(object),
        other => status(Phase::Unknown, format!("kind {}", other.unwrap_or("?")), None),
    }
}

/// FlinkDeployment: the lifecycle decides failures, suspensions and upgrades; the job state decides the rest.
pub fn flink(object: &Value) -> JobStatus {
    let error = text(object, "/status/error").map(str::to_owned);
    let lifecycle = text(object, "/status/lifecycleState");
    let job_manager = text(object, "/status/jobManagerDeploymentStatus");
    let job = text(object, "/status/jobStatus/state");
    let session_cluster = object.pointer("/spec/job").is_none_or(Value::is_null);
    if text(object, "/spec/job/state") == Some("suspended") && lifecycle != Some("FAILED") {
        return status(Phase::Suspended, "spec.job.state suspended", error);
    }
    match lifecycle {
        Some("FAILED") => return status(Phase::Failed, "lifecycleState FAILED", error),
        Some("SUSPENDED") => return status(Phase::Suspended, "lifecycleState SUSPENDED", error),
        Some("DELETING") | Some("DELETED") => {
            return status(
                Phase::Unknown,
                format!("lifecycleState {}", lifecycle.unwrap_or("")),
                error,
            );
        }
        Some("UPGRADING") => return status(Phase::Submitting, "lifecycleState UPGRADING", error),
        Some("ROLLING_BACK") => return status(Phase::Submitting, "lifecycleState ROLLING_BACK", error),
        _ => {}
    }
    if job_manager == Some("ERROR") {
        return status(Phase::Failed, "jobManagerDeploymentStatus ERROR", error);
    }
    if session_cluster {
        return match (lifecycle, job_manager) {
            (_, Some("READY")) => status(Phase::Running, "session cluster ready", error),
            (_, Some("DEPLOYING" | "DEPLOYED_NOT_READY")) => status(Phase::Submitting, "JobManager starting", error),
            (None, _) => status(Phase::Pending, "not reconciled yet", error),
            (Some(state), _) => status(Phase::Pending, format!("lifecycleState {state}"), error),
        };
    }
    match job {
        Some("RUNNING") => {
            let reason = if lifecycle == Some("ROLLED_BACK") {
                "RUNNING (rolled back to the last stable spec)"
            } else {
                "jobStatus RUNNING"
            };
            status(Phase::Running, reason, error)
        }
        Some("FINISHED") => status(Phase::Succeeded, "jobStatus FINISHED", error),
        Some("FAILED") => status(Phase::Failed, "jobStatus FAILED", error),
        Some("CANCELED") => status(
            Phase::Failed,
            "jobStatus CANCELED",
            error.or_else(|| Some("the job was cancelled".into())),
        ),
        Some("SUSPENDED") => status(Phase::Suspended, "jobStatus SUSPENDED", error),
        Some("CANCELLING") => status(Phase::Suspended, "jobStatus CANCELLING", error),
        // Restarting after a failure: the job is not done, but it is not healthy either; the reason says so.
        Some(state @ ("FAILING" | "RESTARTING")) => status(Phase::Running, format!("jobStatus {state}"), error),
        Some(state @ ("CREATED" | "INITIALIZING" | "RECONCILING")) => {
            status(Phase::Submitting, format!("jobStatus {state}"), error)
        }
        Some(other) => status(Phase::Unknown, format!("jobStatus {other}"), error),
        None => match job_manager {
            Some("DEPLOYING" | "DEPLOYED_NOT_READY" | "READY") => status(
                Phase::Submitting,
                format!("jobManagerDeploymentStatus {}", job_manager.unwrap_or("")),
                error,
            ),
            Some("MISSING") if error.is_some() => status(Phase::Failed, "JobManager missing", error),
            _ => status(
                Phase::Pending,
                lifecycle.map_or("not reconciled yet".to_owned(), |state| {
                    format!("lifecycleState {state}")
                }),
                error,
            ),
        },
    }
}

/// SparkApplication: `applicationState.state`, one to one.
pub fn spark(object: &Value) -> JobStatus {
    let message = text(object, "/status/applicationState/errorMessage").map(str::to_owned);
    let state = object
        .pointer("/status/applicationState/state")
        .and_then(Value::as_str)
        .unwrap_or("");
    let phase = match state {
        "" => Phase::Pending,
        "PENDING_RERUN" => Phase::Pending,
        "SUBMITTED" | "INVALIDATING" | "RESUMING" => Phase::Submitting,
        "RUNNING" => Phase::Running,
        // The driver finished; executors are being cleaned up.
        "SUCCEEDING" | "COMPLETED" => Phase::Succeeded,
        "FAILING" | "FAILED" | "SUBMISSION_FAILED" => Phase::Failed,
        "SUSPENDING" | "SUSPENDED" => Phase::Suspended,
        _ => Phase::Unknown,
    };
    let reason = if state.is_empty() {
        "not submitted yet".to_owned()
    } else {
        format!("applicationState {state}")
    };
    status(phase, reason, message)
}

/// A session-mode launcher Job: it submits the pipeline and follows it until it ends.
pub fn launcher(object: &Value) -> JobStatus {
    let conditions = object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let condition = |kind: &str| {
        conditions.iter().find(|condition| {
            condition.get("type").and_then(Value::as_str) == Some(kind)
                && condition.get("status").and_then(Value::as_str) == Some("True")
        })
    };
    let message = |condition: &Value| condition.get("message").and_then(Value::as_str).map(str::to_owned);
    if let Some(failed) = condition("Failed") {
        return status(Phase::Failed, "launcher Job Failed", message(failed));
    }
    // Complete's message ("Reached expected number of succeeded pods") is no error to show.
    if condition("Complete").is_some() {
        return status(Phase::Succeeded, "launcher Job Complete", None);
    }
    if let Some(suspended) = condition("Suspended") {
        return status(Phase::Suspended, "launcher Job Suspended", message(suspended));
    }
    let count = |field: &str| {
        object
            .pointer(&format!("/status/{field}"))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    if count("active") > 0 {
        let ready = count("ready");
        return status(
            if ready > 0 { Phase::Running } else { Phase::Submitting },
            "launcher pod active",
            None,
        );
    }
    status(Phase::Pending, "launcher not started", None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flink_with(lifecycle: &str, job_manager: &str, job: &str) -> Value {
        json!({"kind": "FlinkDeployment", "spec": {"job": {"jarURI": "x"}},
               "status": {"lifecycleState": lifecycle, "jobManagerDeploymentStatus": job_manager, "jobStatus": {"state": job}}})
    }

    #[test]
    fn flink_common_paths() {
        assert_eq!(
            flink(&json!({"kind": "FlinkDeployment", "spec": {"job": {}}})).phase,
            Phase::Pending
        );
        assert_eq!(flink(&flink_with("DEPLOYED", "DEPLOYING", "")).phase, Phase::Submitting);
        assert_eq!(
            flink(&flink_with("DEPLOYED", "READY", "CREATED")).phase,
            Phase::Submitting
        );
        assert_eq!(flink(&flink_with("STABLE", "READY", "RUNNING")).phase, Phase::Running);
        assert_eq!(
            flink(&flink_with("STABLE", "READY", "FINISHED")).phase,
            Phase::Succeeded
        );
        let mut failed = flink_with("FAILED", "ERROR", "FAILED");
        failed["status"]["error"] =
            json!("java.lang.ClassNotFoundException: org.apache.beam.runners.flink.FlinkPortableClientEntryPoint");
        let status = flink(&failed);
        assert_eq!(status.phase, Phase::Failed);
        assert!(status.message.unwrap().contains("ClassNotFoundException"));
        let mut suspended = flink_with("SUSPENDED", "MISSING", "SUSPENDED");
        suspended["spec"]["job"]["state"] = json!("suspended");
        assert_eq!(flink(&suspended).phase, Phase::Suspended);
        assert_eq!(
            flink(&flink_with("UPGRADING", "DEPLOYING", "RECONCILING")).phase,
            Phase::Submitting
        );
        assert_eq!(
            flink(&flink_with("ROLLED_BACK", "READY", "RUNNING")).reason,
            "RUNNING (rolled back to the last stable spec)"
        );
        let session = json!({"kind": "FlinkDeployment", "spec": {}, "status": {"lifecycleState": "STABLE", "jobManagerDeploymentStatus": "READY"}});
        assert_eq!(flink(&session).phase, Phase::Running);
    }

    #[test]
    fn launcher_jobs() {
        assert_eq!(launcher(&json!({"status": {}})).phase, Phase::Pending);
        assert_eq!(launcher(&json!({"status": {"active": 1}})).phase, Phase::Submitting);
        assert_eq!(
            launcher(&json!({"status": {"active": 1, "ready": 1}})).phase,
            Phase::Running
        );
        let done = json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(launcher(&done).phase, Phase::Succeeded);
        let failed = json!({"status": {"conditions": [{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}]}});
        assert_eq!(launcher(&failed).message.as_deref(), Some("BackoffLimitExceeded"));
    }
}
