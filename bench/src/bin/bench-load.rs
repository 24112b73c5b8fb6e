//! The load generator of the load and tenant-scale benchmarks: N keep-alive HTTP/1.1 connections over rustls (ring), one request in
//! flight on each, on a single-threaded tokio runtime (pin it to one core with taskset).
//!
//! - Closed loop (no `--rate`): every connection sends its next request as soon as the answer arrives; reports the
//!   throughput and the latency of each request.
//! - Fixed rate (`--rate R`): connection i of N sends at t0 + (i + kN) / R, as wrk2 does; latency runs from the
//!   time a request was *due*, not from when it was sent, so a stall delays and counts every request behind it
//!   (no coordinated omission). Sleeps end 2 ms early and spin (yielding to the other connections), so the timer's millisecond granularity does not add to
//!   the latency; the lag between due and sent is reported separately.
//!
//! Requests started during `--warmup` are not counted. Every answer must be 200 with an allowed AdmissionReview.
//! Prints one JSON line.

use bench::load::{self, Pace};
use clap::Parser;
use hdrhistogram::Histogram;
use hyper::body::Bytes;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Clone)]
#[command(name = "bench-load", about = "HTTPS load generator for the webhook benchmarks")]
struct Args {
    /// https://HOST:PORT/PATH
    #[arg(long)]
    url: String,
    /// Request body (an AdmissionReview).
    #[arg(long)]
    body: PathBuf,
    /// CA certificate (PEM) the server's certificate is checked against.
    #[arg(long)]
    ca: PathBuf,
    /// Name the certificate must carry.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    #[arg(long, short = 'c', default_value_t = 1)]
    connections: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 2.0)]
    duration: f64,
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Requests per second over all connections (fixed-rate mode); closed loop when absent.
    #[arg(long)]
    rate: Option<f64>,
    /// A process whose CPU time over the measured window is reported (the server).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Free text copied into the output line.
    #[arg(long, default_value = "")]
    label: String,
}

struct Outcome {
    latencies: Histogram<u64>,
    send_lag: Histogram<u64>,
    completed: u64,
    errors: u64,
    first_error: Option<String>,
}

fn histogram() -> Histogram<u64> {
    // Nanoseconds, 1 µs .. 60 s, three significant digits.
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("histogram bounds")
}

/// CPU time (user + system) of a process so far, from /proc/PID/stat, in seconds.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Time this thread has run on a CPU, from the scheduler's own accounting (nanosecond resolution).
fn own_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(text.split_whitespace().next()?.parse::<f64>().ok()? / 1e9)
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    mut sender: load::Sender,
    path: String,
    host: String,
    body: Bytes,
    measure_from: Instant,
    end: Instant,
    mut pace: Pace,
) -> Outcome {
    let mut outcome = Outcome {
        latencies: histogram(),
        send_lag: histogram(),
        completed: 0,
        errors: 0,
        first_error: None,
    };
    while let Some(due) = pace.next(end).await {
        let sent = Instant::now();
        let result = match load::post(&mut sender, &host, &path, body.clone()).await {
            Ok((status, bytes)) if status == 200 && bytes.windows(14).any(|w| w == b"\"allowed\":true") => Ok(()),
            Ok((status, bytes)) => Err(format!(
                "status {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            )),
            Err(failure) => Err(failure.to_string()),
        };
        let done = Instant::now();
        if due < measure_from || done > end + Duration::from_secs(1) {
            if result.is_err() {
                outcome.errors += 1;
            }
            continue;
        }
        match result {
            Ok(()) => {
                outcome.completed += 1;
                let nanos = |d: Duration| (d.as_nanos() as u64).clamp(1_000, 60_000_000_000);
                outcome.latencies.saturating_record(nanos(done - due));
                outcome.send_lag.saturating_record(nanos(sent - due).max(1_000));
            }
            Err(error) => {
                outcome.errors += 1;
                if outcome.first_error.is_none() {
                    outcome.first_error = Some(error);
                }
                // A broken connection: stop this one rather than spin.
                if sender.is_closed() {
                    break;
                }
            }
        }
    }
    outcome
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let line = runtime.block_on(run(args));
    println!("{line}");
}

async fn run(args: Args) -> String {
    let body = Bytes::from(std::fs::read(&args.body).expect("body file"));
    let (host, path) = {
        let rest = args.url.strip_prefix("https://").expect("https URL");
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        (host.to_owned(), format!("/{path}"))
    };
    let config = load::client_config(&std::fs::read(&args.ca).expect("CA file")).expect("CA certificates");
    let address = host.clone();
    let mut senders = Vec::new();
    for _ in 0..args.connections {
        let connection = load::connect(&address, &args.server_name, Arc::clone(&config))
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        senders.push(connection.sender);
    }
    let start = Instant::now() + Duration::from_millis(20);
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::new();
    for (index, sender) in senders.into_iter().enumerate() {
        let pace = match args.rate {
            Some(rate) => Pace::fixed(start, index, args.connections, rate),
            None => Pace::closed_loop(),
        };
        let closed_loop = args.rate.is_none();
        let (path, host, body) = (path.clone(), host.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            if closed_loop {
                tokio::time::sleep_until(start.into()).await;
            }
            drive(sender, path, host, body, measure_from, end, pace).await
        }));
    }
    // CPU time over the measured window: this client (one thread) and the server, if named.
    tokio::time::sleep_until(measure_from.into()).await;
    let server_pid = args.server_pid.map(|pid| pid.to_string());
    let client_before = own_cpu_seconds();
    let server_before = server_pid.as_deref().and_then(cpu_seconds);
    tokio::time::sleep_until(end.into()).await;
    let client_after = own_cpu_seconds();
    let server_after = server_pid.as_deref().and_then(cpu_seconds);

    let mut latencies = histogram();
    let mut send_lag = histogram();
    let (mut completed, mut errors, mut first_error) = (0, 0, None);
    for task in tasks {
        let outcome = task.await.expect("connection task");
        latencies.add(&outcome.latencies).expect("merge");
        send_lag.add(&outcome.send_lag).expect("merge");
        completed += outcome.completed;
        errors += outcome.errors;
        first_error = first_error.or(outcome.first_error);
    }
    let window = args.duration;
    let micros = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let utilisation = |before: Option<f64>, after: Option<f64>| match (before, after) {
        (Some(before), Some(after)) => serde_json::json!(((after - before) / window * 1000.0).round() / 1000.0),
        _ => serde_json::Value::Null,
    };
    serde_json::json!({
        "label": args.label,
        "url": args.url,
        "mode": if args.rate.is_some() { "fixed-rate" } else { "closed-loop" },
        "connections": args.connections,
        "target_rate": args.rate,
        "seconds": window,
        "requests": completed,
        "errors": errors,
        "first_error": first_error,
        "throughput": (completed as f64 / window).round(),
        "p50_us": micros(&latencies, 0.5),
        "p90_us": micros(&latencies, 0.9),
        "p99_us": micros(&latencies, 0.99),
        "p999_us": micros(&latencies, 0.999),
        "max_us": latencies.max() as f64 / 1000.0,
        "mean_us": (latencies.mean() / 1000.0 * 10.0).round() / 10.0,
        "send_lag_p99_us": micros(&send_lag, 0.99),
        "client_cpu": utilisation(client_before, client_after),
        "server_cpu": utilisation(server_before, server_after),
    })
    .to_string()
}
