//! The policy-scale benchmark: the cost of one admission (`Admission::review`: parse, built-in rules, every policy,
//! the answer) of the benchmark review with 0, 10, 50 and 200 RunnerPolicies (the shipped ones, then renamed copies
//! of them) and the tenant, in this process, one thread. Per repeat, every count is measured in turn and a least-
//! squares line through the medians gives the cost per added policy.
//!
//! Prints one JSON line per (repeat, endpoint, count) and one per (repeat, endpoint) fit.

use beamstack::admission::{Admission, Endpoint};
use clap::Parser;
use serde_json::json;
use std::time::{Duration, Instant};

/// The allocator beam-webhook uses (webhook/src/main.rs), so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "bench-policy", about = "Cost per admission against the number of policies")]
struct Args {
    #[arg(long, value_delimiter = ',', default_value = "0,10,50,200")]
    counts: Vec<usize>,
    /// Admissions measured per (endpoint, count, repeat).
    #[arg(long, default_value_t = 2000)]
    rounds: usize,
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Runner CRs in the usage ledger for the in-process tenant-scale points.
    #[arg(long, default_value_t = 10_000)]
    runners: usize,
}

fn measure(admission: &Admission, endpoint: Endpoint, body: &[u8], rounds: usize) -> Vec<Duration> {
    for _ in 0..rounds / 10 + 1 {
        std::hint::black_box(admission.review(endpoint, body).expect("review"));
    }
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        let outcome = admission.review(endpoint, body).expect("review");
        samples.push(started.elapsed());
        std::hint::black_box(outcome);
    }
    samples.sort();
    samples
}

/// Slope and intercept of the least-squares line through the points.
fn fit(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (slope, mean_y - slope * mean_x)
}

fn main() {
    let args = Args::parse();
    let admissions: Vec<(usize, Admission)> = args
        .counts
        .iter()
        .map(|&count| (count, bench::admission(count)))
        .collect();
    let mutate = serde_json::to_vec(&bench::mutate_review()).expect("JSON");
    // /validate sees the object as the shipped set mutated it, as in the API server.
    let shipped = bench::admission(bench::shipped_policies().len());
    let validate = serde_json::to_vec(&bench::validate_review(&shipped)).expect("JSON");
    // Every measured admission is allowed (answer() checks), so every policy runs to its end.
    for (_, admission) in &admissions {
        bench::answer(admission, Endpoint::Mutate, &mutate);
        bench::answer(admission, Endpoint::Validate, &validate);
    }
    let micros = |duration: Duration| duration.as_secs_f64() * 1e6;
    // The tenant-scale benchmark without the network: the shipped set with an empty ledger and with `--runners` CRs in it.
    let shipped_count = bench::shipped_policies().len();
    let ledgers: Vec<(usize, Admission)> = [0, args.runners]
        .into_iter()
        .map(|runners| {
            let admission = bench::admission(shipped_count);
            bench::fill(admission.engine().expect("engine"), runners);
            (runners, admission)
        })
        .collect();
    for repeat in 0..args.repeats {
        for (endpoint, body) in [(Endpoint::Mutate, &mutate), (Endpoint::Validate, &validate)] {
            for (runners, admission) in &ledgers {
                let samples = measure(admission, endpoint, body, args.rounds);
                println!(
                    "{}",
                    json!({"kind": "ledger", "repeat": repeat, "endpoint": endpoint.as_str(), "runners": runners,
                           "p50_us": micros(samples[samples.len() / 2]),
                           "p99_us": micros(samples[samples.len() * 99 / 100])})
                );
            }
        }
    }
    for repeat in 0..args.repeats {
        for (endpoint, body) in [(Endpoint::Mutate, &mutate), (Endpoint::Validate, &validate)] {
            let mut points = Vec::new();
            for (count, admission) in &admissions {
                let samples = measure(admission, endpoint, body, args.rounds);
                let p50 = micros(samples[samples.len() / 2]);
                let p99 = micros(samples[samples.len() * 99 / 100]);
                let mean = micros(samples.iter().sum::<Duration>()) / samples.len() as f64;
                points.push((*count as f64, p50));
                println!(
                    "{}",
                    json!({"kind": "point", "repeat": repeat, "endpoint": endpoint.as_str(), "policies": count,
                           "p50_us": p50, "p99_us": p99, "mean_us": mean})
                );
            }
            let (slope, intercept) = fit(&points);
            println!(
                "{}",
                json!({"kind": "fit", "repeat": repeat, "endpoint": endpoint.as_str(),
                       "us_per_policy": slope, "intercept_us": intercept})
            );
        }
    }
}
