//! The commands that look at running pipelines: status, list, events, logs, delete.

use super::output::{client, namespace, print_structured, show, table};
use super::{Global, Output};
use kubectl_beam::metrics::{self, JobMetrics};
use kubectl_beam::pods::{self, Role};
use kubectl_beam::report::{self, StatusReport};
use kubectl_beam::status::Phase;
use serde_json::Value;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

/// How often `status -w`, `run --wait` and `delete --wait` look again.
const POLL: Duration = Duration::from_secs(1);

fn now() -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_second()
}

/// The runner object of a pipeline in the current namespace, or an error that says where to look.
async fn runner_object(client: &kube::Client, global: &Global, name: &str) -> Result<Value, String> {
    let namespace = namespace(global);
    kubectl_beam::cluster::find(client, Some(&namespace), Some(name))
        .await?
        .into_iter()
        .next()
        .map(|(object, _)| object)
        .ok_or_else(|| format!("no pipeline {name:?} in namespace {namespace} (kubectl beam list -A shows what runs)"))
}

/// Everything the status view says of one pipeline, read now.
async fn read_report(
    client: &kube::Client,
    global: &Global,
    name: &str,
    prometheus: Option<&str>,
) -> Result<StatusReport, String> {
    let object = runner_object(client, global, name).await?;
    let pods = kubectl_beam::cluster::pods_of(client, &object).await?;
    let events = kubectl_beam::cluster::events_of(client, &object, &pods).await?;
    let metrics = match prometheus {
        // Flink only: the job name is the pipeline's (Beam's --job_name, set by `run`).
        Some(url) if object["kind"] == "FlinkDeployment" => Some(metrics::fetch(url, name).await?),
        Some(_) => Some(JobMetrics::default()),
        None => None,
    };
    let mut report = report::report(&object, &pods, &events, metrics, now());
    if report::wants_cause(&report) {
        report.cause = main_log_cause(client, &object).await;
    }
    Ok(report)
}

/// How much of the main pod's log is read for a failure's cause: a Spark driver that failed on a Python step writes
/// about 1,500 lines after the error first appears (Spark retries the task, each retry with both stacks).
const CAUSE_LOG_LINES: i64 = 5000;

/// The cause a failed job's main pod (the driver, the launcher) gives in its log. A log that cannot be read (the pod
/// is gone, the node does not answer) leaves the view without a cause rather than failing it: the phase and the
/// runner's error are still true.
async fn main_log_cause(client: &kube::Client, object: &Value) -> Option<String> {
    let main = pods::roles_of(object).into_iter().next()?;
    match kubectl_beam::cluster::log_tail(client, object, &main, CAUSE_LOG_LINES).await {
        Ok(log) => log.as_deref().and_then(kubectl_beam::cause::failure_cause),
        Err(error) => {
            eprintln!("warning: no cause from the {} log: {error}", main.role.as_str());
            None
        }
    }
}

/// Prints a pipeline's status; with `watch`, again at every phase change until a terminal phase. Exit 1 if it failed.
pub async fn status(global: &Global, name: &str, watch: bool, prometheus: Option<&str>) -> Result<ExitCode, String> {
    let client = client(global).await?;
    let mut last: Option<(String, String)> = None;
    loop {
        let report = read_report(&client, global, name, prometheus).await?;
        let current = (report.phase.clone(), report.reason.clone());
        if last.as_ref() != Some(&current) {
            match global.output {
                // One document per change, so `-w -o json` is a stream a program can read line by line.
                Some(Output::Json) => println!("{}", serde_json::to_string(&report).map_err(|e| e.to_string())?),
                Some(Output::Yaml) => println!("---\n{}", serde_saphyr::to_string(&report).map_err(|e| e.to_string())?),
                _ if watch && last.is_some() => {
                    let error = [&report.message, &report.cause]
                        .into_iter()
                        .flatten()
                        .map(|text| format!(": {text}"))
                        .collect::<String>();
                    println!("{name}\t{}\t{}{error}", coloured(&report.phase), report.reason);
                }
                _ => println!(
                    "{}",
                    report::render_text(&report).replacen(
                        &format!("Phase:        {}", report.phase),
                        &format!("Phase:        {}", coloured(&report.phase)),
                        1
                    )
                ),
            }
            last = Some(current);
        }
        let phase = report::phase(&report);
        if !watch || phase.is_terminal() {
            return Ok(exit_for(phase));
        }
        tokio::time::sleep(POLL).await;
    }
}

fn exit_for(phase: Phase) -> ExitCode {
    if phase == Phase::Failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `run --wait`: a spinner with the current phase on a terminal, a line per change otherwise, until the job runs or
/// fails.
pub async fn wait_until_running(global: &Global, name: &str) -> Result<ExitCode, String> {
    let client = client(global).await?;
    let terminal = std::io::stderr().is_terminal();
    let spinner = indicatif::ProgressBar::new_spinner();
    if terminal {
        spinner.enable_steady_tick(Duration::from_millis(120));
    } else {
        spinner.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut last = String::new();
    loop {
        let object = runner_object(&client, global, name).await?;
        let status = kubectl_beam::status::phase_of(&object);
        let line = format!("{name}: {} ({})", status.phase, status.reason);
        if line != last {
            if terminal {
                spinner.set_message(line.clone());
            } else {
                eprintln!("{line}");
            }
            last = line;
        }
        match status.phase {
            Phase::Running | Phase::Succeeded => {
                spinner.finish_with_message(last);
                return Ok(ExitCode::SUCCESS);
            }
            Phase::Failed => {
                spinner.finish_and_clear();
                eprintln!("error: {}", status.message.unwrap_or_else(|| status.reason.clone()));
                return Ok(ExitCode::FAILURE);
            }
            _ => {}
        }
        // The runner object can say "submitting" for ever while a container of its pods crash-loops (a launcher that
        // cannot build the pipeline, an expansion service or a worker pool that cannot start): that is a failure.
        let pods = kubectl_beam::cluster::pods_of(&client, &object).await?;
        if let Some(failing) = pods::crash_looping(&pods) {
            spinner.finish_and_clear();
            let namespace = object["metadata"]["namespace"].as_str().unwrap_or("default");
            let log = kubectl_beam::cluster::container_log_tail(
                &client,
                namespace,
                &failing.pod,
                &failing.container,
                CAUSE_LOG_LINES,
                true,
            )
            .await
            .unwrap_or_default();
            let cause = kubectl_beam::cause::failure_cause(&log).or_else(|| {
                log.lines()
                    .rev()
                    .find(|line| !line.trim().is_empty())
                    .map(str::to_owned)
            });
            eprintln!(
                "error: container {} of pod {} keeps failing ({} restarts, CrashLoopBackOff){}\n  kubectl logs {} -c {} \
                 -n {namespace} --previous shows its last run",
                failing.container,
                failing.pod,
                failing.restarts,
                cause.map(|cause| format!(": {cause}")).unwrap_or_default(),
                failing.pod,
                failing.container,
            );
            return Ok(ExitCode::FAILURE);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A phase coloured for a terminal: green running or done, red failed, yellow on the way.
fn coloured(phase: &str) -> String {
    if !std::io::stdout().is_terminal() {
        return phase.to_owned();
    }
    let colour = match phase {
        "Running" | "Succeeded" => anstyle::AnsiColor::Green,
        "Failed" => anstyle::AnsiColor::Red,
        "Unknown" => anstyle::AnsiColor::Magenta,
        _ => anstyle::AnsiColor::Yellow,
    };
    let style = anstyle::Style::new().fg_color(Some(colour.into())).bold();
    format!("{}{phase}{}", style.render(), style.render_reset())
}

pub async fn list(global: &Global, selector: Option<&str>) -> Result<ExitCode, String> {
    let client = client(global).await?;
    let namespace = (!global.all_namespaces).then(|| namespace(global));
    let now = now();
    let reports: Vec<StatusReport> =
        kubectl_beam::cluster::find_selected(&client, namespace.as_deref(), None, selector)
            .await?
            .iter()
            .map(|(object, _)| report::report(object, &[], &[], None, now))
            .collect();
    match global.output {
        Some(output @ (Output::Json | Output::Yaml)) => {
            // Only what a list knows: pods, events and metrics are `status NAME`'s.
            let rows: Vec<Value> = reports
                .iter()
                .map(|r| {
                    serde_json::json!({"name": r.name, "namespace": r.namespace, "kind": r.kind, "runner": r.runner,
                        "phase": r.phase, "reason": r.reason, "message": r.message, "age": r.age,
                        "parallelism": r.parallelism, "tenant": r.tenant})
                })
                .collect();
            print_structured(&rows, output)?;
        }
        Some(Output::Name) => reports.iter().for_each(|r| println!("{}", r.name)),
        _ => {
            let wide = global.output == Some(Output::Wide);
            let mut header = vec!["NAME"];
            if global.all_namespaces {
                header.push("NAMESPACE");
            }
            header.extend(["RUNNER", "PHASE", "AGE", "PARALLELISM", "TENANT"]);
            if wide {
                header.extend(["KIND", "REASON"]);
            }
            let mut table = table(header);
            for r in &reports {
                let mut cells = vec![r.name.clone()];
                if global.all_namespaces {
                    cells.push(r.namespace.clone());
                }
                cells.push(r.runner.clone().unwrap_or_else(|| "-".into()));
                cells.push(r.phase.clone());
                cells.push(r.age.clone());
                cells.push(show(&serde_json::json!(r.parallelism)));
                cells.push(r.tenant.clone().unwrap_or_else(|| "-".into()));
                if wide {
                    cells.push(r.kind.clone());
                    cells.push(r.reason.clone());
                }
                table.add_row(cells);
            }
            println!("{table}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn events(global: &Global, name: &str) -> Result<ExitCode, String> {
    let client = client(global).await?;
    let object = runner_object(&client, global, name).await?;
    let pods = kubectl_beam::cluster::pods_of(&client, &object).await?;
    let mut events = kubectl_beam::cluster::events_of(&client, &object, &pods).await?;
    let when = |event: &Value| {
        ["/lastTimestamp", "/eventTime", "/metadata/creationTimestamp"]
            .iter()
            .find_map(|pointer| event.pointer(pointer).and_then(Value::as_str).filter(|t| !t.is_empty()))
            .map(str::to_owned)
    };
    events.sort_by_key(|event| when(event));
    match global.output {
        Some(output @ (Output::Json | Output::Yaml)) => print_structured(&events, output)?,
        _ => {
            if events.is_empty() {
                println!("No events for {name}.");
                return Ok(ExitCode::SUCCESS);
            }
            let now = now();
            let mut table = table(vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]);
            for event in &events {
                table.add_row(vec![
                    report::age_between(when(event).as_deref(), now),
                    show(&event["type"]),
                    show(&event["reason"]),
                    format!(
                        "{}/{}",
                        event["involvedObject"]["kind"].as_str().unwrap_or("").to_lowercase(),
                        event["involvedObject"]["name"].as_str().unwrap_or("")
                    ),
                    show(&event["message"]),
                ]);
            }
            println!("{table}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn logs(
    global: &Global,
    name: &str,
    role: Option<Role>,
    follow: bool,
    tail: Option<i64>,
) -> Result<ExitCode, String> {
    let client = client(global).await?;
    let object = runner_object(&client, global, name).await?;
    let roles = pods::roles_of(&object);
    let chosen = match role {
        Some(role) => roles.iter().find(|candidate| candidate.role == role).ok_or_else(|| {
            let known: Vec<&str> = roles.iter().map(|r| r.role.as_str()).collect();
            format!(
                "{name} is a {} and has no {} pods: its roles are {}",
                object["kind"].as_str().unwrap_or("?"),
                role.as_str(),
                known.join(", ")
            )
        })?,
        // The role whose logs say why a job failed: the JobManager, the driver, the launcher.
        None => roles
            .first()
            .ok_or("this runner object has no pods kubectl beam knows")?,
    };
    let shown = kubectl_beam::cluster::logs(&client, &object, chosen, follow, tail).await?;
    if shown == 0 {
        return Err(format!(
            "no {} pods of {name} yet (selector {}): kubectl beam status {name} says what the job is waiting for",
            chosen.role.as_str(),
            chosen.selector
        ));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn delete(global: &Global, name: &str, wait: bool) -> Result<ExitCode, String> {
    let client = client(global).await?;
    let namespace = namespace(global);
    let deleted = kubectl_beam::cluster::delete(&client, &namespace, name).await?;
    if deleted.is_empty() {
        return Err(format!("no pipeline {name:?} in namespace {namespace}"));
    }
    for object in &deleted {
        println!("{object} deleted");
    }
    if wait {
        // Foreground deletion: the object stays until its dependents are gone; we wait for the object.
        while !kubectl_beam::cluster::find(&client, Some(&namespace), Some(name))
            .await?
            .is_empty()
        {
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}
