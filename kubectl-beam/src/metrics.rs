//! A running job's health from Prometheus: throughput, backpressure and checkpoint age.
//!
//! Flink's Prometheus reporter names its series `flink_<scope>_<metric>` with a `job_name` label; kubectl beam names
//! the Flink job after the pipeline (Beam's `--job_name`), so one label finds the job's series. The queries are the
//! same ones the shipped Grafana dashboard uses for its pipeline panels.
//!
//! Flink publishes no completion time for checkpoints (`lastCheckpointDuration`, `lastCompletedCheckpointId` and
//! counts, as a real JobManager's series show), so the checkpoint age is the time since Prometheus last saw
//! `lastCompletedCheckpointId` change: exact to within a scrape interval, and none when it did not change for an hour.

use serde::Serialize;
use serde_json::Value;

/// What `status --prometheus` shows. A value Prometheus has no series for stays `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobMetrics {
    /// Records read per second, summed over every task.
    pub records_per_second: Option<f64>,
    /// The busiest task's share of time spent back-pressured, 0 to 1.
    pub backpressure: Option<f64>,
    /// Seconds since the last completed checkpoint.
    pub checkpoint_age_seconds: Option<f64>,
}

/// A PromQL string literal.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A label value as Flink's Prometheus reporter writes it: every character outside `[a-zA-Z0-9:_]` becomes `_`
/// (its `UNALLOWED_CHAR_PATTERN`, applied to label values too), so the job `orders-2024.v1` is
/// `job_name="orders_2024_v1"`. Found on a real TaskManager: a query by the pipeline's own name matched nothing.
pub fn reporter_label_value(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == ':' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The three PromQL queries for a Flink job, by its job name.
pub fn queries(job_name: &str) -> [(&'static str, String); 3] {
    let job = quoted(&reporter_label_value(job_name));
    [
        (
            "recordsPerSecond",
            format!("sum(flink_taskmanager_job_task_numRecordsInPerSecond{{job_name={job}}})"),
        ),
        (
            "backpressure",
            format!("max(flink_taskmanager_job_task_backPressuredTimeMsPerSecond{{job_name={job}}}) / 1000"),
        ),
        (
            "checkpointAgeSeconds",
            format!(
                "time() - max(max_over_time((timestamp(idelta(\
                 flink_jobmanager_job_lastCompletedCheckpointId{{job_name={job}}}[2m]) > 0))[1h:5s]))"
            ),
        ),
    ]
}

/// The single number of an instant query's answer (`/api/v1/query`), or `None` when no series matched.
pub fn number_of(answer: &Value) -> Result<Option<f64>, String> {
    if answer["status"] != "success" {
        return Err(format!(
            "Prometheus answered {}: {}",
            answer["errorType"].as_str().unwrap_or("an error"),
            answer["error"].as_str().unwrap_or("no message")
        ));
    }
    let result = &answer["data"]["result"];
    let sample = match answer["data"]["resultType"].as_str() {
        Some("vector") => result.get(0).map(|series| &series["value"]),
        Some("scalar") => Some(result),
        other => {
            return Err(format!(
                "Prometheus answered a {} where a number was expected",
                other.unwrap_or("?")
            ));
        }
    };
    let Some(sample) = sample else { return Ok(None) };
    let text = sample
        .get(1)
        .and_then(Value::as_str)
        .ok_or("Prometheus sample without a value")?;
    let number: f64 = text
        .parse()
        .map_err(|_| format!("Prometheus sample {text:?} is not a number"))?;
    Ok(number.is_finite().then_some(number))
}

/// Asks Prometheus at `base_url` (such as http://prometheus.monitoring:9090) for a job's figures.
pub async fn fetch(base_url: &str, job_name: &str) -> Result<JobMetrics, String> {
    let mut metrics = JobMetrics::default();
    for (key, query) in queries(job_name) {
        let url = format!(
            "{}/api/v1/query?query={}",
            base_url.trim_end_matches('/'),
            crate::http::percent_encode(&query)
        );
        let answer: Value = serde_json::from_slice(&crate::http::get(&url).await?)
            .map_err(|error| format!("{base_url} did not answer like Prometheus: {error}"))?;
        let value = number_of(&answer)?;
        match key {
            "recordsPerSecond" => metrics.records_per_second = value,
            "backpressure" => metrics.backpressure = value,
            _ => metrics.checkpoint_age_seconds = value,
        }
    }
    Ok(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn queries_select_the_job_by_the_name_flinks_reporter_writes() {
        let [throughput, backpressure, age] = queries("word\"count-2.v1");
        assert_eq!(
            throughput.1,
            "sum(flink_taskmanager_job_task_numRecordsInPerSecond{job_name=\"word_count_2_v1\"})"
        );
        assert_eq!(reporter_label_value("ticks-16441"), "ticks_16441");
        assert_eq!(reporter_label_value("a:b_C9"), "a:b_C9");
        assert!(backpressure.1.ends_with("/ 1000"));
        assert!(
            age.1
                .contains("flink_jobmanager_job_lastCompletedCheckpointId{job_name=\"word_count_2_v1\"}[2m]")
        );
    }

    #[test]
    fn numbers_from_vectors_scalars_and_empty_answers() {
        let vector = json!({"status": "success", "data": {"resultType": "vector",
            "result": [{"metric": {}, "value": [1700000000.0, "123.5"]}]}});
        assert_eq!(number_of(&vector), Ok(Some(123.5)));
        let scalar = json!({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "7"]}});
        assert_eq!(number_of(&scalar), Ok(Some(7.0)));
        let empty = json!({"status": "success", "data": {"resultType": "vector", "result": []}});
        assert_eq!(number_of(&empty), Ok(None));
        let nan = json!({"status": "success", "data": {"resultType": "vector",
            "result": [{"metric": {}, "value": [1.0, "NaN"]}]}});
        assert_eq!(number_of(&nan), Ok(None));
        let error = json!({"status": "error", "errorType": "bad_data", "error": "parse error"});
        assert_eq!(
            number_of(&error),
            Err("Prometheus answered bad_data: parse error".into())
        );
    }
}
