//! The HTTP side: HTTPS admission endpoints, a plain-HTTP admin port, reload and graceful shutdown.
//!
//! `admission_router` and `admin_router` are plain axum routers, so tests drive them without sockets; `Server`
//! binds them to ports: admission behind TLS (`listener`), admin in the clear (probes and metrics only).

mod listener;
pub mod tls;

use crate::metrics::Metrics;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use beamstack::admission::noop::NoopAdmission;
use beamstack::admission::{Admission, BadRequest, Endpoint, Outcome, Record};
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tls::CertificateStore;

/// The API server refuses requests over 3 MiB; an AdmissionReview larger than that did not come from it.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// A request (its body included) that takes longer than this is answered 408: the API server waits at most
/// `timeoutSeconds` (10 s at most) for an answer, so a slower client is not the API server, and must not hold a
/// task and its buffer forever.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// What every request handler shares.
pub struct AppState {
    pub admission: Admission,
    /// Benchmarks only (`--noop-patch-bytes`): answer with the no-op admission instead of `admission`.
    pub noop: Option<NoopAdmission>,
    pub metrics: Arc<Metrics>,
    /// False until the listeners are up, and again once shutdown has begun (so the Service stops routing to us).
    pub ready: AtomicBool,
    pub certificates: Option<Arc<CertificateStore>>,
    /// Why the policy folder's latest contents were refused (the previous set stays in force); empty when fine.
    pub policy_errors: std::sync::RwLock<Vec<String>>,
    /// The cluster watches (policies, tenants, namespaces, runner CRs), when the webhook watches the cluster.
    pub cluster: Option<Arc<crate::cluster::SyncState>>,
}

impl AppState {
    pub fn new(admission: Admission) -> Arc<Self> {
        Arc::new(Self {
            admission,
            noop: None,
            metrics: Arc::new(Metrics::new()),
            ready: AtomicBool::new(true),
            certificates: None,
            policy_errors: Default::default(),
            cluster: None,
        })
    }
}

fn error_response(status: StatusCode, reason: &str, message: &str) -> Response {
    (status, axum::Json(json!({"error": reason, "message": message}))).into_response()
}

/// `POST /mutate` and `POST /validate`. Anything else gets a JSON 404 or 405.
pub fn admission_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/validate", post(validate))
        .fallback(|| async {
            error_response(
                StatusCode::NOT_FOUND,
                "not-found",
                "no such endpoint: use POST /mutate or POST /validate",
            )
        })
        .method_not_allowed_fallback(|| async {
            error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "admission endpoints take POST with an AdmissionReview body",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), deadline))
        .with_state(state)
}

/// Answers 408 when a request, body included, takes longer than `REQUEST_TIMEOUT`.
async fn deadline(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            state.metrics.record_bad_request("timeout");
            tracing::warn!("admission request not complete after {REQUEST_TIMEOUT:?}: a slow client");
            error_response(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                &format!(
                    "the request was not complete after {} s; the API server sends a whole AdmissionReview at once",
                    REQUEST_TIMEOUT.as_secs()
                ),
            )
        }
    }
}

async fn mutate(State(state): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Response {
    handle(&state, Endpoint::Mutate, body)
}

async fn validate(State(state): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Response {
    handle(&state, Endpoint::Validate, body)
}

fn handle(state: &AppState, endpoint: Endpoint, body: Result<Bytes, BytesRejection>) -> Response {
    let started = Instant::now();
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            let (reason, message) = if status == StatusCode::PAYLOAD_TOO_LARGE {
                (
                    "too-large",
                    format!(
                        "request body is over {MAX_BODY_BYTES} bytes, the API server's limit; nothing was reviewed"
                    ),
                )
            } else {
                (
                    "unreadable-body",
                    format!("could not read the request body: {}", rejection.body_text()),
                )
            };
            state.metrics.record_bad_request(reason);
            tracing::warn!(endpoint = endpoint.as_str(), reason, "admission request refused");
            return error_response(status, reason, &message);
        }
    };
    match review(state, endpoint, &body) {
        Ok(outcome) => {
            let reviewed = started.elapsed();
            state.metrics.record_admission(endpoint, &outcome.record, reviewed);
            let response = axum::Json(outcome.review).into_response();
            state.metrics.record_handling(endpoint, started.elapsed());
            // The log line is written once the answer is on its way, as a web server writes its access log: in a
            // pod, formatting and writing it took 60-90 µs of a 300 µs admission (bench/NOTES.md). A task of its own
            // runs after this one has handed the answer to hyper.
            let record = outcome.record;
            tokio::spawn(async move { log_admission(endpoint, &record, reviewed) });
            response
        }
        Err(bad) => {
            state.metrics.record_bad_request(bad.reason);
            tracing::warn!(endpoint = endpoint.as_str(), reason = bad.reason, message = %bad.message, "bad admission request");
            error_response(StatusCode::BAD_REQUEST, bad.reason, &bad.message)
        }
    }
}

fn log_admission(endpoint: Endpoint, record: &Record, reviewed: Duration) {
    tracing::info!(
        endpoint = endpoint.as_str(),
        uid = %record.uid,
        kind = %record.kind,
        namespace = %record.namespace,
        name = %record.name,
        operation = record.operation,
        allowed = record.allowed,
        patched = record.patched,
        denied_by = ?record.denied_by,
        duration_us = reviewed.as_micros() as u64,
        "admission"
    );
}

/// The real admission, or the no-op one the API-server benchmark compares it with.
fn review(state: &AppState, endpoint: Endpoint, body: &[u8]) -> Result<Outcome, BadRequest> {
    match &state.noop {
        Some(noop) => noop.review(endpoint, body),
        None => state.admission.review(endpoint, body),
    }
}

/// `/healthz` (the process answers), `/readyz` (serving with a certificate), `/metrics` (Prometheus text).
pub fn admin_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let ready = state.ready.load(Ordering::SeqCst);
    let certificate = state.certificates.as_ref().map(|store| {
        let key = store.current();
        key.end_entity_cert().map(|cert| cert.len()).unwrap_or(0) > 0
    });
    // Until every cluster watch has listed once, tenants' usage is incomplete: not ready.
    let cluster = state.cluster.as_ref().map(|sync| sync.progress());
    let cluster_synced = cluster.is_none_or(|(synced, expected)| synced >= expected);
    let status = if ready && certificate != Some(false) && cluster_synced {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let policies = state
        .admission
        .engine()
        .map(|engine| engine.policy_set().policies.len());
    let policy_errors = state
        .policy_errors
        .read()
        .map(|errors| errors.clone())
        .unwrap_or_default();
    let body = json!({
        "ready": status == StatusCode::OK,
        "checks": {
            "serving": if ready { "ok" } else { "shutting down or not started" },
            "certificate": match certificate { Some(true) => "loaded", Some(false) => "missing", None => "not used" },
            "config": "loaded",
            "cluster": match cluster {
                None => json!("not watched"),
                Some((synced, expected)) => json!({"watchesSynced": synced, "watches": expected}),
            },
            "policies": match policies {
                None => json!("not used"),
                Some(count) if policy_errors.is_empty() => json!({"inForce": count}),
                Some(count) => json!({"inForce": count, "latestChangeRefused": policy_errors}),
            },
        },
        "version": beamstack::VERSION,
    });
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    if let Some(engine) = state.admission.engine() {
        state.metrics.set_tenants(&engine.tenant_usage());
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// Re-reads the policy folder every `interval`; a folder that does not compile leaves the last good set in force.
fn watch_policies(
    source: beamstack::policy::load::DirectorySource,
    engine: Arc<beamstack::policy::engine::Engine>,
    state: Arc<AppState>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    use beamstack::policy::load::Reload;
    let source = Arc::new(source);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let (source, engine) = (Arc::clone(&source), Arc::clone(&engine));
            let Ok(outcome) = tokio::task::spawn_blocking(move || source.poll(&engine)).await else {
                continue;
            };
            match outcome {
                Reload::Unchanged => {}
                Reload::Installed { policies, tenants } => {
                    tracing::info!(policies, tenants, "policy set reloaded");
                    state.metrics.record_policy_reload(true);
                    if let Ok(mut errors) = state.policy_errors.write() {
                        errors.clear();
                    }
                }
                Reload::Rejected(errors) => {
                    for error in &errors {
                        tracing::error!(%error, "policy change refused; the previous set stays in force");
                    }
                    state.metrics.record_policy_reload(false);
                    if let Ok(mut kept) = state.policy_errors.write() {
                        *kept = errors.iter().map(ToString::to_string).collect();
                    }
                }
            }
        }
    })
}

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub client_ca: Option<PathBuf>,
    pub reload_interval: Duration,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub drain_timeout: Duration,
    /// How often the policy folder (if any) is checked for changes.
    pub policy_reload_interval: Duration,
    /// Benchmarks only: serve the no-op admission, its /mutate patch this many bytes long.
    pub noop_patch_bytes: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// A running server: its bound addresses, and a way to stop it and wait for the drain.
pub struct Server {
    pub admission_address: SocketAddr,
    pub admin_address: SocketAddr,
    pub state: Arc<AppState>,
    shutdown: tokio::sync::watch::Sender<bool>,
    /// The admin port stops only after the admission port has drained, so /readyz answers "shutting down" (503)
    /// for the whole drain instead of going away with it.
    admin_shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Binds both ports and starts serving; returns once the listeners are up.
    pub async fn start(
        options: &ServeOptions,
        admission: Admission,
        policy_source: Option<beamstack::policy::load::DirectorySource>,
        cluster: Option<Arc<crate::cluster::SyncState>>,
    ) -> Result<Self, ServeError> {
        let store = CertificateStore::load(&options.tls_cert, &options.tls_key)?;
        let tls_config = tls::server_config(Arc::clone(&store), options.client_ca.as_deref())?;
        let state = Arc::new(AppState {
            admission,
            noop: options.noop_patch_bytes.map(NoopAdmission::new),
            metrics: Arc::new(Metrics::new()),
            ready: AtomicBool::new(false),
            certificates: Some(Arc::clone(&store)),
            policy_errors: Default::default(),
            cluster,
        });
        let bind = |address: SocketAddr| async move {
            tokio::net::TcpListener::bind(address)
                .await
                .map_err(|source| ServeError::Bind { address, source })
        };
        let admission_listener = bind(options.listen).await?;
        let admin_listener = bind(options.admin_listen).await?;
        let admission_address = admission_listener.local_addr().map_err(|source| ServeError::Bind {
            address: options.listen,
            source,
        })?;
        let admin_address = admin_listener.local_addr().map_err(|source| ServeError::Bind {
            address: options.admin_listen,
            source,
        })?;
        let (shutdown, shutdown_signal) = tokio::sync::watch::channel(false);
        let reloader = store.watch(options.reload_interval, Arc::clone(&state.metrics));
        let admission_task = tokio::spawn(listener::serve_tls(
            admission_listener,
            tokio_rustls::TlsAcceptor::from(tls_config),
            admission_router(Arc::clone(&state)),
            Arc::clone(&state.metrics),
            shutdown_signal.clone(),
            options.drain_timeout,
        ));
        let (admin_shutdown, mut admin_shutdown_signal) = tokio::sync::watch::channel(false);
        let admin_router = admin_router(Arc::clone(&state));
        let admin_task = tokio::spawn(async move {
            let stopped = async move {
                let _ = admin_shutdown_signal.wait_for(|stop| *stop).await;
            };
            if let Err(error) = axum::serve(admin_listener, admin_router)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::error!(%error, "admin server failed");
            }
        });
        let mut tasks = vec![admission_task, admin_task, reloader];
        if let (Some(source), Some(engine)) = (policy_source, state.admission.engine().cloned()) {
            tasks.push(watch_policies(
                source,
                engine,
                Arc::clone(&state),
                options.policy_reload_interval,
            ));
        }
        state.ready.store(true, Ordering::SeqCst);
        tracing::info!(%admission_address, %admin_address, version = beamstack::VERSION, "beam-webhook serving");
        Ok(Self {
            admission_address,
            admin_address,
            state,
            shutdown,
            admin_shutdown,
            tasks,
        })
    }

    /// Stops accepting, lets in-flight requests finish (up to the drain timeout), then returns.
    pub async fn shutdown(self) {
        self.state.ready.store(false, Ordering::SeqCst);
        let _ = self.shutdown.send(true);
        let mut tasks = self.tasks.into_iter();
        // The admission server drains, then the admin server; the reloaders loop forever and are simply stopped.
        if let Some(admission) = tasks.next() {
            let _ = admission.await;
        }
        let _ = self.admin_shutdown.send(true);
        if let Some(admin) = tasks.next() {
            let _ = admin.await;
        }
        for task in tasks {
            task.abort();
        }
        tracing::info!("beam-webhook stopped");
    }
}
