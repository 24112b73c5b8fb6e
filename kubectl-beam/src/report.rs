//! The status view of one pipeline, assembled from what the cluster holds: the runner object, its pods, the events
//! about them, and (when Prometheus is known) the job's figures. Pure: the CLI fetches, this decides what to say.
//!
//! `-o json|yaml` prints `StatusReport` as it is; its field names are the documented, stable output (docs/plugin.md, "Status").

use crate::metrics::JobMetrics;
use crate::pods::{self, Readiness};
use crate::status::{self, Phase};
use beamstack::contract::{LABEL_PIPELINE, LABEL_RUNNER, LABEL_TENANT};
use serde::Serialize;
use serde_json::Value;

/// How many Warning events a status view shows.
const WARNINGS_SHOWN: usize = 3;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub name: String,
    pub namespace: String,
    pub kind: String,
    pub runner: Option<String>,
    pub phase: String,
    /// The native state that decided the phase, such as `jobStatus.state=RUNNING`.
    pub reason: String,
    pub message: Option<String>,
    /// Why a failed job failed, in its own words, when the runner's status names only an exit: the error line from
    /// the main pod's log (`crate::cause`), filled by the caller that reads it (see `wants_cause`).
    pub cause: Option<String>,
    pub tenant: Option<String>,
    pub age: String,
    pub parallelism: Option<i64>,
    pub pods: Vec<Readiness>,
    pub warnings: Vec<EventLine>,
    pub ui: Option<String>,
    pub metrics: Option<JobMetrics>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventLine {
    pub last_seen: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub reason: String,
    /// kind/name of the object the event is about.
    pub object: String,
    pub message: String,
    pub count: i64,
}

fn text(object: &Value, pointer: &str) -> Option<String> {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
}

/// A pipeline's name: its label, else the object's name.
pub fn pipeline_name(object: &Value) -> String {
    text(
        object,
        &format!("/metadata/labels/{}", LABEL_PIPELINE.replace('/', "~1")),
    )
    .or_else(|| text(object, "/metadata/name"))
    .unwrap_or_default()
}

/// The timestamp of an object or event, as seconds since the epoch.
fn seconds(timestamp: &str) -> Option<i64> {
    timestamp
        .parse::<k8s_openapi::jiff::Timestamp>()
        .ok()
        .map(|t| t.as_second())
}

/// kubectl's short ages: 45s, 3m, 5h, 2d.
pub fn age_between(then: Option<&str>, now: i64) -> String {
    let Some(then) = then.and_then(seconds) else {
        return "-".into();
    };
    let elapsed = (now - then).max(0);
    match elapsed {
        0..60 => format!("{elapsed}s"),
        60..3600 => format!("{}m", elapsed / 60),
        3600..86400 => format!("{}h", elapsed / 3600),
        _ => format!("{}d", elapsed / 86400),
    }
}

/// The job's parallelism: the Flink job's, else Spark's executor count.
pub fn parallelism(object: &Value) -> Option<i64> {
    object
        .pointer("/spec/job/parallelism")
        .or_else(|| object.pointer("/spec/executor/instances"))
        .and_then(Value::as_i64)
}

/// Where the runner's web UI answers inside the cluster.
pub fn ui_endpoint(object: &Value) -> Option<String> {
    let name = text(object, "/metadata/name")?;
    let namespace = text(object, "/metadata/namespace").unwrap_or_else(|| "default".into());
    match object.get("kind").and_then(Value::as_str)? {
        "FlinkDeployment" => {
            // The operator fills {{name}} and {{namespace}} in an ingress template the same way.
            if let Some(template) = text(object, "/spec/ingress/template") {
                let host = template.replace("{{name}}", &name).replace("{{namespace}}", &namespace);
                return Some(if host.contains("://") {
                    host
                } else {
                    format!("http://{host}")
                });
            }
            Some(format!("http://{name}-rest.{namespace}.svc:8081"))
        }
        "SparkApplication" => text(object, "/status/driverInfo/webUIIngressAddress")
            .or_else(|| text(object, "/status/driverInfo/webUIAddress"))
            .map(|address| {
                if address.contains("://") {
                    address
                } else {
                    format!("http://{address}")
                }
            })
            .or_else(|| {
                let service = text(object, "/status/driverInfo/webUIServiceName")?;
                let port = object.pointer("/status/driverInfo/webUIPort").and_then(Value::as_i64)?;
                Some(format!("http://{service}.{namespace}.svc:{port}"))
            }),
        // A session-mode launcher's job runs in the session cluster: its UI is the cluster's.
        "Job" => text(object, "/metadata/annotations/beamstack.dev~1session-cluster")
            .map(|cluster| format!("http://{cluster}-rest.{namespace}.svc:8081")),
        _ => None,
    }
}

/// The newest Warning events, newest first.
pub fn warnings(events: &[Value], now: i64) -> Vec<EventLine> {
    let mut warnings: Vec<(i64, EventLine)> = events
        .iter()
        .filter(|event| event["type"] == "Warning")
        .map(|event| {
            let when = text(event, "/lastTimestamp")
                .or_else(|| text(event, "/eventTime"))
                .or_else(|| text(event, "/metadata/creationTimestamp"));
            let line = EventLine {
                last_seen: age_between(when.as_deref(), now),
                kind: "Warning".into(),
                reason: text(event, "/reason").unwrap_or_default(),
                object: format!(
                    "{}/{}",
                    text(event, "/involvedObject/kind").unwrap_or_default().to_lowercase(),
                    text(event, "/involvedObject/name").unwrap_or_default()
                ),
                message: text(event, "/message").unwrap_or_default(),
                count: event["count"].as_i64().unwrap_or(1),
            };
            (when.as_deref().and_then(seconds).unwrap_or(0), line)
        })
        .collect();
    warnings.sort_by_key(|(when, _)| std::cmp::Reverse(*when));
    warnings
        .into_iter()
        .take(WARNINGS_SHOWN)
        .map(|(_, line)| line)
        .collect()
}

/// The whole view, from the runner object and what was found around it.
pub fn report(object: &Value, pods: &[Value], events: &[Value], metrics: Option<JobMetrics>, now: i64) -> StatusReport {
    let status = status::phase_of(object);
    StatusReport {
        name: pipeline_name(object),
        namespace: text(object, "/metadata/namespace").unwrap_or_default(),
        kind: text(object, "/kind").unwrap_or_default(),
        runner: text(object, &format!("/metadata/labels/{}", LABEL_RUNNER.replace('/', "~1"))),
        phase: status.phase.as_str().into(),
        reason: status.reason,
        message: status.message,
        cause: None,
        tenant: text(object, &format!("/metadata/labels/{}", LABEL_TENANT.replace('/', "~1"))),
        age: age_between(text(object, "/metadata/creationTimestamp").as_deref(), now),
        parallelism: parallelism(object),
        pods: pods::readiness(object, pods),
        warnings: warnings(events, now),
        ui: ui_endpoint(object),
        metrics,
    }
}

/// Whether the main pod's log should be read for the cause: the job failed and its runner's status does not carry
/// the job's own error (a Spark driver's or a launcher's exit code; a FlinkDeployment's `error` holds the exception).
pub fn wants_cause(report: &StatusReport) -> bool {
    report.phase == Phase::Failed.as_str() && report.kind != "FlinkDeployment"
}

/// The phase as the enum, for exit codes.
pub fn phase(report: &StatusReport) -> Phase {
    status::Phase::parse(&report.phase).unwrap_or(Phase::Unknown)
}

/// The human view of a report: a few aligned lines.
pub fn render_text(report: &StatusReport) -> String {
    let mut lines = vec![
        format!(
            "Name:         {} ({}/{})",
            report.name,
            report.namespace,
            report.kind.to_lowercase()
        ),
        format!("Phase:        {} ({})", report.phase, report.reason),
    ];
    if let Some(message) = &report.message {
        lines.push(format!("Error:        {message}"));
    }
    if let Some(cause) = &report.cause {
        lines.push(format!("Cause:        {cause}"));
    }
    let or_dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".into());
    lines.push(format!("Runner:       {}", or_dash(&report.runner)));
    lines.push(format!("Tenant:       {}", or_dash(&report.tenant)));
    lines.push(format!("Age:          {}", report.age));
    lines.push(format!(
        "Parallelism:  {}",
        report.parallelism.map(|p| p.to_string()).unwrap_or_else(|| "-".into())
    ));
    let pods: Vec<String> = report
        .pods
        .iter()
        .map(|r| format!("{} {}/{}", r.role.as_str(), r.ready, r.total))
        .collect();
    lines.push(format!(
        "Pods ready:   {}",
        if pods.is_empty() { "-".into() } else { pods.join(", ") }
    ));
    lines.push(format!("UI:           {}", or_dash(&report.ui)));
    if let Some(metrics) = &report.metrics {
        let figure = |value: Option<f64>, unit: &str| {
            value
                .map(|v| format!("{v:.1}{unit}"))
                .unwrap_or_else(|| "no data".into())
        };
        lines.push(format!(
            "Throughput:   {}",
            figure(metrics.records_per_second, " records/s")
        ));
        lines.push(format!(
            "Backpressure: {}",
            figure(metrics.backpressure.map(|b| b * 100.0), " %")
        ));
        lines.push(format!(
            "Checkpoint:   {}",
            figure(metrics.checkpoint_age_seconds, " s ago")
        ));
    }
    if report.warnings.is_empty() {
        lines.push("Warnings:     none".into());
    } else {
        lines.push("Warnings:".into());
        for event in &report.warnings {
            lines.push(format!(
                "  {:>4} {} {}: {}{}",
                event.last_seen,
                event.object,
                event.reason,
                event.message,
                if event.count > 1 {
                    format!(" (x{})", event.count)
                } else {
                    String::new()
                }
            ));
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn at(seconds_before: i64) -> String {
        k8s_openapi::jiff::Timestamp::from_second(NOW - seconds_before)
            .unwrap()
            .to_string()
    }

    fn deployment() -> Value {
        json!({
            "kind": "FlinkDeployment",
            "metadata": {
                "name": "wordcount", "namespace": "data", "creationTimestamp": at(7200),
                "labels": {"beamstack.dev/pipeline": "wordcount", "beamstack.dev/runner": "flink",
                           "beamstack.dev/tenant": "team-a"},
            },
            "spec": {"job": {"parallelism": 4}},
            "status": {"lifecycleState": "FAILED", "error": "OutOfMemoryError: Java heap space",
                       "jobManagerDeploymentStatus": "ERROR", "jobStatus": {"state": "FAILED"}},
        })
    }

    #[test]
    fn a_failed_flink_job_says_why_with_its_pods_and_warnings() {
        let pods = [
            json!({"metadata": {"labels": {"app": "wordcount", "component": "jobmanager"}},
                           "status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
        ];
        let events = [
            json!({"type": "Normal", "reason": "Started", "involvedObject": {"kind": "Pod", "name": "x"},
                   "lastTimestamp": at(10)}),
            json!({"type": "Warning", "reason": "BackOff", "message": "Back-off restarting failed container",
                   "involvedObject": {"kind": "Pod", "name": "wordcount-jm"}, "lastTimestamp": at(30), "count": 5}),
            json!({"type": "Warning", "reason": "JobException", "message": "heap",
                   "involvedObject": {"kind": "FlinkDeployment", "name": "wordcount"}, "lastTimestamp": at(90)}),
        ];
        let report = report(&deployment(), &pods, &events, None, NOW);
        assert_eq!(report.phase, "Failed");
        assert_eq!(report.message.as_deref(), Some("OutOfMemoryError: Java heap space"));
        assert_eq!(report.tenant.as_deref(), Some("team-a"));
        assert_eq!(report.age, "2h");
        assert_eq!(report.parallelism, Some(4));
        assert_eq!((report.pods[0].ready, report.pods[0].total), (0, 1));
        assert_eq!(report.ui.as_deref(), Some("http://wordcount-rest.data.svc:8081"));
        assert_eq!(report.warnings.len(), 2);
        assert_eq!(report.warnings[0].reason, "BackOff");
        assert_eq!(report.warnings[0].last_seen, "30s");
        assert_eq!(report.warnings[1].object, "flinkdeployment/wordcount");
        let text = render_text(&report);
        assert!(text.contains("Phase:        Failed"), "{text}");
        assert!(text.contains("Error:        OutOfMemoryError"), "{text}");
        assert!(
            text.contains("Pods ready:   jobmanager 0/1, taskmanager 0/0, harness 0/0"),
            "{text}"
        );
        assert!(text.contains("(x5)"), "{text}");
        assert_eq!(phase(&report), Phase::Failed);
    }

    #[test]
    fn a_failed_spark_application_wants_its_cause_and_shows_it_under_the_operators_error() {
        let application = json!({
            "kind": "SparkApplication",
            "metadata": {"name": "raises", "namespace": "data", "creationTimestamp": at(60)},
            "status": {"applicationState": {"state": "FAILED",
                       "errorMessage": "driver container failed with ExitCode: 1, Reason: Error"}},
        });
        let mut report = report(&application, &[], &[], None, NOW);
        assert!(wants_cause(&report));
        assert_eq!(render_text(&report).matches("Cause:").count(), 0);
        report.cause = Some("ZeroDivisionError: division by zero".into());
        let text = render_text(&report);
        assert!(
            text.contains("Error:        driver container failed with ExitCode: 1, Reason: Error\nCause:        ZeroDivisionError: division by zero"),
            "{text}"
        );

        // Flink's status carries the exception itself; a running or finished job has nothing to explain.
        assert!(!wants_cause(&super::report(&deployment(), &[], &[], None, NOW)));
        let completed = json!({"kind": "SparkApplication", "status": {"applicationState": {"state": "COMPLETED"}}});
        assert!(!wants_cause(&super::report(&completed, &[], &[], None, NOW)));
    }

    #[test]
    fn json_output_has_the_documented_keys() {
        let metrics = JobMetrics {
            records_per_second: Some(10.0),
            backpressure: None,
            checkpoint_age_seconds: Some(3.0),
        };
        let value = serde_json::to_value(report(&deployment(), &[], &[], Some(metrics), NOW)).unwrap();
        let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "name",
                "namespace",
                "kind",
                "runner",
                "phase",
                "reason",
                "message",
                "cause",
                "tenant",
                "age",
                "parallelism",
                "pods",
                "warnings",
                "ui",
                "metrics"
            ]
        );
        assert_eq!(value["metrics"]["recordsPerSecond"], 10.0);
        assert_eq!(value["pods"][0]["role"], "jobmanager");
    }

    #[test]
    fn ui_endpoints_for_each_runner() {
        let mut ingress = deployment();
        ingress["spec"]["ingress"] = json!({"template": "flink.example.com/{{namespace}}/{{name}}"});
        assert_eq!(
            ui_endpoint(&ingress).as_deref(),
            Some("http://flink.example.com/data/wordcount")
        );
        let spark = json!({"kind": "SparkApplication", "metadata": {"name": "etl", "namespace": "data"},
                           "status": {"driverInfo": {"webUIServiceName": "etl-ui-svc", "webUIPort": 4040}}});
        assert_eq!(ui_endpoint(&spark).as_deref(), Some("http://etl-ui-svc.data.svc:4040"));
        let launcher = json!({"kind": "Job", "metadata": {"name": "wc", "namespace": "data",
                              "annotations": {"beamstack.dev/session-cluster": "shared"}}});
        assert_eq!(
            ui_endpoint(&launcher).as_deref(),
            Some("http://shared-rest.data.svc:8081")
        );
    }
}
