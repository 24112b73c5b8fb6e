//! The servers of the benchmarks, and the files they serve.
//!
//! - `prepare --out DIR`: the policy folder the webhook loads (the shipped `policies/*.yaml`, as the chart and the
//!   e2e harness take them, plus the tenant of the reviewed namespace), the two reviews the load generator sends
//!   (`mutate.json`, `validate.json`) and the webhook's answers to them (`*.answer.json`).
//! - `baseline`: the limit. A bare HTTPS server on the webhook's own stack (the same rustls configuration built by
//!   `webhook::server::tls`, the same accept loop, hyper's auto HTTP/1.1+HTTP/2 connection, axum, a multi-thread
//!   tokio runtime) whose handlers read the body and answer the webhook's answer from memory.
//! - `webhook`: `webhook::server::Server` in this process, with the folder's policies and `--runners N` runner CRs
//!   fed to the usage ledger the way the cluster watch feeds it; prints its memory once filled.

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use beamstack::admission::{Admission, Endpoint};
use beamstack::config::Config;
use beamstack::policy::load::DirectorySource;
use clap::{Parser, Subcommand};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use webhook::server::tls::{CertificateStore, server_config};
use webhook::server::{MAX_BODY_BYTES, ServeOptions, Server};

/// The allocator beam-webhook uses (webhook/src/main.rs), so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "bench-server", about = "Servers for bench/run.sh")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the policy folder, the reviews and the answers into DIR.
    Prepare {
        #[arg(long)]
        out: PathBuf,
    },
    /// Serve the answers of DIR (see prepare) on a bare axum + rustls server.
    Baseline {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        tls_cert: PathBuf,
        #[arg(long)]
        tls_key: PathBuf,
        /// The folder `prepare` wrote.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Serve the webhook in this process with N runner CRs in the usage ledger.
    Webhook {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        admin_listen: SocketAddr,
        #[arg(long)]
        tls_cert: PathBuf,
        #[arg(long)]
        tls_key: PathBuf,
        #[arg(long)]
        policies: PathBuf,
        /// Runner CRs the usage watch has delivered.
        #[arg(long, default_value_t = 0)]
        runners: usize,
    },
}

fn main() {
    match Cli::parse().command {
        Command::Prepare { out } => prepare(&out),
        Command::Baseline {
            listen,
            tls_cert,
            tls_key,
            dir,
        } => runtime().block_on(baseline(listen, &tls_cert, &tls_key, &dir)),
        Command::Webhook {
            listen,
            admin_listen,
            tls_cert,
            tls_key,
            policies,
            runners,
        } => webhook(listen, admin_listen, tls_cert, tls_key, &policies, runners),
    }
}

/// As beam-webhook builds it: multi-thread, one worker per CPU the process may run on.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn admission_from(dir: &Path) -> (Admission, DirectorySource) {
    match Admission::with_policy_folder(Config::default(), dir) {
        Ok((admission, source, _)) => (admission, source),
        Err(errors) => panic!("the policies in {} do not load: {errors:?}", dir.display()),
    }
}

fn prepare(out: &Path) {
    let policies = out.join("policies");
    bench::write_policy_folder(&policies);
    let (admission, _) = admission_from(&policies);
    let mutate = serde_json::to_vec(&bench::mutate_review()).expect("JSON");
    let validate = serde_json::to_vec(&bench::validate_review(&admission)).expect("JSON");
    for (name, endpoint, body) in [
        ("mutate", Endpoint::Mutate, &mutate),
        ("validate", Endpoint::Validate, &validate),
    ] {
        std::fs::write(out.join(format!("{name}.json")), body).expect("write a review");
        let answer = bench::answer(&admission, endpoint, body);
        std::fs::write(out.join(format!("{name}.answer.json")), answer).expect("write an answer");
    }
    let count = admission
        .engine()
        .map_or(0, |engine| engine.policy_set().policies.len());
    println!(
        "prepared {}: {count} policies and a tenant, reviews of {} and {} bytes",
        out.display(),
        mutate.len(),
        validate.len()
    );
}

fn fixed(answer: Bytes) -> impl Fn(Bytes) -> std::future::Ready<axum::response::Response> + Clone {
    move |_body: Bytes| {
        std::future::ready(([(header::CONTENT_TYPE, "application/json")], answer.clone()).into_response())
    }
}

async fn baseline(listen: SocketAddr, cert: &Path, key: &Path, dir: &Path) {
    let read = |name: &str| Bytes::from(std::fs::read(dir.join(name)).expect("answer file"));
    let router = Router::new()
        .route("/mutate", post(fixed(read("mutate.answer.json"))))
        .route("/validate", post(fixed(read("validate.answer.json"))))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    let store = CertificateStore::load(cert, key).expect("certificate");
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config(store, None).expect("TLS configuration"));
    let listener = tokio::net::TcpListener::bind(listen).await.expect("bind");
    println!("{{\"listening\":\"{}\"}}", listener.local_addr().expect("address"));
    // The webhook's accept loop (webhook/src/server/listener.rs) without its metrics and drain.
    loop {
        let Ok((stream, _peer)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let mut first = [0u8; 1];
            match tokio::time::timeout(Duration::from_secs(10), stream.peek(&mut first)).await {
                Ok(Ok(1)) if first[0] == 0x16 => {}
                _ => return,
            }
            let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await else {
                return;
            };
            let builder = auto::Builder::new(TokioExecutor::new());
            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
        });
    }
}

fn webhook(
    listen: SocketAddr,
    admin_listen: SocketAddr,
    tls_cert: PathBuf,
    tls_key: PathBuf,
    policies: &Path,
    runners: usize,
) {
    // As beam-webhook serve: JSON logs at info, one line per admission (run.sh sends them to /dev/null).
    webhook::telemetry::init(webhook::telemetry::LogFormat::Json, "info").expect("logging");
    let (admission, source) = admission_from(policies);
    let engine = Arc::clone(admission.engine().expect("engine"));
    let started = Instant::now();
    let seen = bench::fill(&engine, runners);
    let fill_seconds = started.elapsed().as_secs_f64();
    let observed = engine.with_ledger(|ledger| ledger.observed_count());
    let options = ServeOptions {
        listen,
        admin_listen,
        tls_cert,
        tls_key,
        client_ca: None,
        reload_interval: Duration::from_secs(1),
        drain_timeout: Duration::from_secs(5),
        policy_reload_interval: Duration::from_secs(1),
        noop_patch_bytes: None,
    };
    let runtime = runtime();
    runtime.block_on(async {
        let server = Server::start(&options, admission, Some(source), None)
            .await
            .expect("server starts");
        let (rss, peak) = bench::rss();
        println!(
            "{{\"listening\":\"{}\",\"runners\":{observed},\"fill_seconds\":{fill_seconds:.3},\"rss_bytes\":{rss},\"peak_rss_bytes\":{peak}}}",
            server.admission_address
        );
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        terminate.recv().await;
        server.shutdown().await;
    });
    drop(seen);
}
