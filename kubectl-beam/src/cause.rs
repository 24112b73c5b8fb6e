//! What a failed job's own log says went wrong, in one line.
//!
//! The runners' statuses often know only that a process exited: the Spark operator's `errorMessage` for a failed
//! driver is "driver container failed with ExitCode: 1, Reason: Error", while the driver's log holds the Python
//! error that Beam's harness sent back, buried under a thousand lines of Java stack. This finds that line, so
//! `status` can say "ZeroDivisionError: division by zero [while running 'MapToFields/...']". Pure: the caller reads
//! the log.

/// How long a cause may be before it is cut (a Python error can carry a whole record).
const MAX_CHARS: usize = 400;

/// The line that says why the job failed: the last Python error in the log's fatal Java exception (Beam relays the
/// worker's traceback there), else that exception's deepest `Caused by`, else the last Python error anywhere in the
/// log (a launcher's own failure). None when the log says nothing recognisable.
pub fn failure_cause(log: &str) -> Option<String> {
    let lines: Vec<&str> = log.lines().collect();
    let fatal = lines
        .iter()
        .rposition(|line| line.starts_with("Exception in thread \"main\" "));
    let cause = match fatal {
        Some(start) => {
            let after = &lines[start..];
            python_errors(after)
                .last()
                .copied()
                .or_else(|| deepest_java_cause(after))
        }
        None => python_errors(&lines).last().copied(),
    }?;
    Some(cut(cause.trim()))
}

/// The closing line of each Python traceback: the first unindented line after "Traceback (most recent call last):"
/// (the frames between are indented).
fn python_errors<'a>(lines: &[&'a str]) -> Vec<&'a str> {
    let mut errors = Vec::new();
    let mut in_traceback = false;
    for line in lines {
        if line.ends_with("Traceback (most recent call last):") {
            in_traceback = true;
        } else if in_traceback && !line.is_empty() && !line.starts_with([' ', '\t']) {
            errors.push(*line);
            in_traceback = false;
        }
    }
    errors
}

/// A Java exception's innermost cause (its last `Caused by:` line), or the exception itself.
fn deepest_java_cause<'a>(lines: &[&'a str]) -> Option<&'a str> {
    let first = lines.first()?.trim_start_matches("Exception in thread \"main\" ");
    Some(
        lines
            .iter()
            .filter_map(|line| line.strip_prefix("Caused by: "))
            .next_back()
            .unwrap_or(first),
    )
}

fn cut(text: &str) -> String {
    match text.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of a Spark driver's log when a Beam Python step raised (trimmed from a real run on the Spark
    /// operator: tests/e2e/tests/spark_operator.rs).
    const SPARK_DRIVER: &str = r#"26/12/02 17:11:35 WARN TaskSetManager: Lost task 0.0 in stage 1.0 (TID 2): java.util.concurrent.ExecutionException: java.lang.RuntimeException: Error received from SDK harness for instruction 2: Traceback (most recent call last):
  File "apache_beam/runners/common.py", line 1501, in apache_beam.runners.common.DoFnRunner.process
  File "<string>", line 3, in fn
ZeroDivisionError: division by zero

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/usr/local/lib/python3.11/dist-packages/apache_beam/runners/worker/sdk_worker.py", line 311, in _execute
    response = task()
               ^^^^^^
  File "<string>", line 3, in fn
ZeroDivisionError: division by zero [while running 'MapToFields/ToRows(inverse)/Map(<lambda at core.py:3531>)']

	at java.base/java.util.concurrent.CompletableFuture.reportGet(CompletableFuture.java:396)
26/12/02 17:11:35 ERROR TaskSetManager: Task 0 in stage 1.0 failed 4 times; aborting job
Exception in thread "main" java.lang.RuntimeException: Job raises-x_73744513 failed.
	at org.apache.beam.runners.spark.SparkPipelineRunner.run(SparkPipelineRunner.java:160)
Caused by: java.lang.RuntimeException: Error received from SDK harness for instruction 6: Traceback (most recent call last):
  File "/usr/local/lib/python3.11/dist-packages/apache_beam/runners/worker/sdk_worker.py", line 311, in _execute
  File "<string>", line 3, in fn
ValueError: math domain error [while running 'MapToFields/ToRows(inverse)/Map(<lambda at core.py:3531>)']

	at org.apache.beam.runners.fnexecution.control.FnApiControlClient$ResponseStreamObserver.onNext(FnApiControlClient.java:180)
	... 3 more
26/12/02 17:11:36 INFO ShutdownHookManager: Shutdown hook called
"#;

    #[test]
    fn the_python_error_in_the_fatal_exception_is_the_cause() {
        assert_eq!(
            failure_cause(SPARK_DRIVER).as_deref(),
            Some(
                "ValueError: math domain error [while running 'MapToFields/ToRows(inverse)/Map(<lambda at core.py:3531>)']"
            )
        );
    }

    #[test]
    fn a_java_failure_gives_its_deepest_cause() {
        let log = "INFO starting\nException in thread \"main\" java.lang.RuntimeException: Job x failed.\n\tat a.b(C.java:1)\n\
                   Caused by: java.io.IOException: no space\n\tat d.e(F.java:2)\n\
                   Caused by: java.io.FileNotFoundException: /data/in.csv (No such file or directory)\n\t... 3 more\n";
        assert_eq!(
            failure_cause(log).as_deref(),
            Some("java.io.FileNotFoundException: /data/in.csv (No such file or directory)")
        );
        let alone = "Exception in thread \"main\" java.lang.IllegalStateException: no master\n\tat a.b(C.java:1)\n";
        assert_eq!(
            failure_cause(alone).as_deref(),
            Some("java.lang.IllegalStateException: no master")
        );
    }

    #[test]
    fn without_a_java_exception_the_last_python_error_is_the_cause() {
        let launcher = "INFO:root:building the jar\nTraceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n\
                        ValueError: Unknown transform type: ReadFromNowhere\n";
        assert_eq!(
            failure_cause(launcher).as_deref(),
            Some("ValueError: Unknown transform type: ReadFromNowhere")
        );
    }

    #[test]
    fn a_log_without_an_error_has_no_cause() {
        assert_eq!(failure_cause(""), None);
        assert_eq!(failure_cause("INFO all good\nINFO done\n"), None);
        // A traceback cut off by the log's tail before its closing line says nothing yet.
        assert_eq!(
            failure_cause("Traceback (most recent call last):\n  File \"x.py\"\n"),
            None
        );
    }

    #[test]
    fn a_long_cause_is_cut() {
        let long = format!("Traceback (most recent call last):\nKeyError: '{}'\n", "é".repeat(1000));
        let cause = failure_cause(&long).unwrap();
        assert_eq!(cause.chars().count(), MAX_CHARS + 3);
        assert!(cause.ends_with("..."));
    }
}
