//! Hardening: the real `beam-webhook serve` binary under load from the load benchmark's generator
//! (`bench::load`: keep-alive HTTPS connections, a fixed rate, the benchmark's FlinkDeployment review on /mutate and
//! /validate) while
//!
//! 1. its serving certificate is rotated 100 times,
//! 2. it is sent SIGTERM and drains,
//! 3. its policy folder is rewritten 100 times, broken versions among them,
//!
//! and in each, no admission fails. Every answer is checked: HTTP 200, an `admission.k8s.io/v1` AdmissionReview
//! echoing the request's own uid, a patch from /mutate, and the verdict the policy set in force gives.
//!
//! Each test starts its own server on loopback ports picked by binding port 0, with certificates from
//! `webhook::certs` and the shipped policies (plus the benchmark's tenant) in a temporary folder. The tests run one
//! at a time (a 2-core machine runs one server and one load generator well; three at once would measure the
//! machine). Each prints one `hardening:` line with its figures.
//!
//! The binary is the `beam-webhook` cargo built beside this test (`cargo test --workspace` builds every binary of
//! the workspace first); when it is missing (`cargo test -p bench` alone), the test builds it with cargo. It is not
//! rebuilt when present: after changing the server, build it (`cargo build -p webhook`) or run the workspace's tests.

use beamstack::admission::{Admission, Endpoint};
use beamstack::config::Config;
use beamstack::policy::engine::Engine;
use beamstack::policy::load::DirectorySource;
use bench::load::{self, Failure, Pace};
use hyper::body::Bytes;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use webhook::certs::{self, CaMaterial, ServingCertRequest};

/// The name the client checks in the server's certificate.
const SERVER_NAME: &str = "localhost";
/// The uid of the review bodies; every request replaces it with one of its own (same length).
const UID_PLACEHOLDER: &str = "feedface-0000-4000-8000-000000000000";
/// The label the policy test's toggled policy looks at (the review carries it).
const TOGGLE_LABEL: &str = "hardening";

// ---- The server --------------------------------------------------------------------------------------------------

/// One test at a time (see the module comment).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// `<target-dir>/<profile>/beam-webhook`: the target directory cargo reports (`cargo metadata`), the profile this
/// test was built in (the folder above its own `deps/`). Not the test's own folder: with a separate build directory
/// (`build.build-dir`, which CI sets to share compiled dependencies between clones) test executables live there and
/// binaries are copied to the target directory.
fn beam_webhook() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("the test's path");
            let profile = exe
                .parent()
                .and_then(Path::parent)
                .and_then(Path::file_name)
                .and_then(|name| name.to_str())
                .expect("<profile>/deps/hardening-*")
                .to_owned();
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let metadata = Command::new(&cargo)
                .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .expect("run cargo metadata");
            assert!(metadata.status.success(), "cargo metadata failed");
            let metadata: Value = serde_json::from_slice(&metadata.stdout).expect("cargo metadata's JSON");
            let target_dir = metadata["target_directory"].as_str().expect("target_directory");
            let binary = Path::new(target_dir)
                .join(&profile)
                .join(format!("beam-webhook{}", std::env::consts::EXE_SUFFIX));
            if !binary.exists() {
                let mut build = Command::new(&cargo);
                build.args(["build", "-p", "webhook", "--bin", "beam-webhook"]);
                match profile.as_str() {
                    "debug" => {}
                    "release" => {
                        build.arg("--release");
                    }
                    other => {
                        build.args(["--profile", other]);
                    }
                }
                let status = build.status().expect("run cargo");
                assert!(status.success(), "cargo build -p webhook --bin beam-webhook failed");
            }
            assert!(binary.exists(), "{} is missing", binary.display());
            binary
        })
        .clone()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// A running `beam-webhook serve`; killed when dropped if still running.
struct Webhook {
    child: Child,
    /// `127.0.0.1:PORT` of the admission (HTTPS) and admin (HTTP) ports.
    address: String,
    admin: String,
    /// Its standard error: the JSON log.
    log: PathBuf,
}

impl Webhook {
    /// Starts the binary on two free loopback ports with the certificate pair of `secret` (`tls.crt`, `tls.key`),
    /// the policy folder and `extra` flags, and waits until /readyz answers 200.
    async fn start(work: &Path, secret: &Path, policies: &Path, extra: &[&str]) -> Self {
        let address = format!("127.0.0.1:{}", free_port());
        let admin = format!("127.0.0.1:{}", free_port());
        let log = work.join("beam-webhook.log");
        let child = Command::new(beam_webhook())
            .arg("serve")
            .args(["--listen", &address, "--admin-listen", &admin])
            .arg("--tls-cert")
            .arg(secret.join("tls.crt"))
            .arg("--tls-key")
            .arg(secret.join("tls.key"))
            .arg("--policies")
            .arg(policies)
            .args(["--log-format", "json", "--log-level", "info"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // A file, not a pipe: one log line per admission would fill a pipe nobody reads and stall the server.
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start beam-webhook");
        let mut webhook = Self {
            child,
            address,
            admin,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = http_get(&webhook.admin, "/readyz").await {
                break;
            }
            if let Ok(Some(status)) = webhook.child.try_wait() {
                panic!("beam-webhook exited with {status}:\n{}", webhook.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "beam-webhook not ready after 30 s:\n{}",
                webhook.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        webhook
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The value of one sample of the admin port's /metrics (`name{labels}` as printed), 0 when absent.
    async fn metric(&self, sample: &str) -> f64 {
        let (status, text) = http_get(&self.admin, "/metrics").await.expect("GET /metrics");
        assert_eq!(status, 200, "{text}");
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Waits until `sample` reaches `value` (at most `within`); returns what it is then.
    async fn metric_reaches(&self, sample: &str, value: f64, within: Duration) -> f64 {
        let deadline = Instant::now() + within;
        loop {
            let now = self.metric(sample).await;
            if now >= value || Instant::now() >= deadline {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// SIGTERM, then waits for the exit (at most `within`).
    async fn stop(&mut self, within: Duration) -> std::process::ExitStatus {
        self.signal("TERM");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "beam-webhook still running {within:?} after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// GET on the admin port (plain HTTP, one request per connection): status and body.
async fn http_get(address: &str, path: &str) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|error| error.to_string())?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .map_err(|error| error.to_string())?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|error| error.to_string())?;
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP answer: {response:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status: {head}"))?;
    if !head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return Ok((status, body.to_owned()));
    }
    let (mut out, mut rest) = (String::new(), body);
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || tail.len() < size {
            break;
        }
        out.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    Ok((status, out))
}

// ---- Certificates ------------------------------------------------------------------------------------------------

fn serving_request() -> ServingCertRequest {
    ServingCertRequest {
        service: "beam-webhook".into(),
        namespace: "beamstack".into(),
        extra_names: vec![SERVER_NAME.into(), "127.0.0.1".into()],
        valid_for: time::Duration::days(1),
    }
}

/// A new serving certificate and key signed by `ca`.
fn issue(ca: &CaMaterial) -> (String, String) {
    certs::issue_serving(
        ca,
        time::OffsetDateTime::now_utc() + time::Duration::days(9),
        &serving_request(),
    )
    .expect("issue a serving certificate")
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("PEM certificate")
        .to_vec()
}

/// Writes a pair the way the kubelet projects a Secret: a timestamped folder, a `..data` symlink to it, and
/// `tls.crt`/`tls.key` symlinks through `..data`. Swapping `..data` is one atomic rename; the previous folder is
/// then removed, as the kubelet does.
fn project_secret(dir: &Path, generation: u32, (cert, key): &(String, String)) {
    let folder = |generation: u32| dir.join(format!("..2026_11_21_{generation:04}"));
    let new = folder(generation);
    std::fs::create_dir_all(&new).expect("secret folder");
    std::fs::write(new.join("tls.crt"), cert).expect("tls.crt");
    std::fs::write(new.join("tls.key"), key).expect("tls.key");
    let staging = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&staging);
    std::os::unix::fs::symlink(new.file_name().expect("name"), &staging).expect("symlink");
    std::fs::rename(&staging, dir.join("..data")).expect("swap ..data");
    for file in ["tls.crt", "tls.key"] {
        let link = dir.join(file);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(file), &link).expect("symlink");
        }
    }
    if generation > 0 {
        let _ = std::fs::remove_dir_all(folder(generation - 1));
    }
}

/// A temporary folder with a projected Secret (`secret/`) holding a pair signed by the first of two CAs, a CA
/// bundle with both (as the caBundle during a CA rotation), and the policy folder (`policies/`: the shipped
/// policies and the benchmark's tenant, as `bench-server prepare` writes it).
struct Setup {
    work: tempfile::TempDir,
    cas: [CaMaterial; 2],
    first: (String, String),
    client: Arc<rustls::ClientConfig>,
}

impl Setup {
    fn new() -> Self {
        let work = tempfile::tempdir().expect("temporary folder");
        let ca = || certs::generate_ca("beamstack", time::Duration::days(10)).expect("CA");
        let cas = [ca(), ca()];
        let first = issue(&cas[0]);
        std::fs::create_dir(work.path().join("secret")).expect("secret/");
        project_secret(&work.path().join("secret"), 0, &first);
        let bundle = format!("{}{}", cas[0].cert, cas[1].cert);
        // Without TLS session resumption, as the API server's webhook client: a resumed session would skip the
        // certificate (and report the cached one), and every new connection is to see the certificate in force.
        let mut client = (*load::client_config(bundle.as_bytes()).expect("client configuration")).clone();
        client.resumption = rustls::client::Resumption::disabled();
        let client = Arc::new(client);
        let policies = work.path().join("policies");
        bench::write_policy_folder(&policies);
        Self {
            work,
            cas,
            first,
            client,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    async fn start(&self, extra: &[&str]) -> Webhook {
        Webhook::start(self.work.path(), &self.path("secret"), &self.path("policies"), extra).await
    }
}

// ---- The load ----------------------------------------------------------------------------------------------------

/// A review body for one endpoint, with the offset of its uid.
#[derive(Clone)]
struct Body {
    path: &'static str,
    template: Bytes,
    uid_at: usize,
}

impl Body {
    fn new(path: &'static str, review: &Value) -> Self {
        let template = serde_json::to_vec(review).expect("JSON");
        let needle = UID_PLACEHOLDER.as_bytes();
        let uid_at = template
            .windows(needle.len())
            .position(|window| window == needle)
            .expect("the uid placeholder");
        Self {
            path,
            template: Bytes::from(template),
            uid_at,
        }
    }

    fn with_uid(&self, uid: &str) -> Bytes {
        let mut body = self.template.to_vec();
        body[self.uid_at..self.uid_at + uid.len()].copy_from_slice(uid.as_bytes());
        Bytes::from(body)
    }
}

/// The benchmark's reviews (bench::mutate_review, and the object as /mutate leaves it for /validate), with the uid
/// placeholder and the label the toggled policy looks at; /mutate's patch computed in-process from `policies`.
fn bodies(policies: &Path) -> Vec<Body> {
    let mut review = bench::mutate_review();
    review["request"]["uid"] = json!(UID_PLACEHOLDER);
    review["request"]["object"]["metadata"]["labels"][TOGGLE_LABEL] = json!("probe");
    let engine = Engine::standard();
    DirectorySource::new(policies).poll(&engine);
    let admission = Admission::with_engine(Config::default(), engine);
    let outcome = admission
        .review(Endpoint::Mutate, &serde_json::to_vec(&review).expect("JSON"))
        .expect("mutate");
    let mut validate = review.clone();
    let patch = outcome.review.decoded_patch().expect("the review is mutated");
    json_patch::patch(&mut validate["request"]["object"], &patch).expect("the patch applies");
    vec![Body::new("/mutate", &review), Body::new("/validate", &validate)]
}

/// A well-formed answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Answer {
    allowed: bool,
    /// The generation of the toggled policy named in the answer (its warning or denial), if any.
    generation: Option<u32>,
}

#[derive(Debug, Clone)]
enum Outcome {
    Answered(Answer),
    /// An answer that is not a 200 with a well-formed AdmissionReview for this request (the fields of these variants
    /// are read through Debug, in failure messages).
    #[allow(dead_code)]
    Wrong(String),
    /// No connection: refused, or the TLS handshake failed.
    #[allow(dead_code)]
    NoConnection(String),
    Failed(Failure),
}

#[derive(Debug, Clone)]
struct Sample {
    path: &'static str,
    uid: String,
    /// When the request was handed to the connection, and when its outcome was known.
    sent: Instant,
    done: Instant,
    outcome: Outcome,
}

/// Checks an answer: 200, an `admission.k8s.io/v1` AdmissionReview, the request's uid, a patch from /mutate when
/// allowed, a message when denied.
fn check(status: hyper::StatusCode, body: &[u8], uid: &str, path: &str) -> Result<Answer, String> {
    let text = String::from_utf8_lossy(body);
    if status != 200 {
        return Err(format!("status {status}: {}", &text[..text.len().min(300)]));
    }
    let value: Value = serde_json::from_slice(body).map_err(|error| format!("not JSON ({error}): {text}"))?;
    if value["apiVersion"] != "admission.k8s.io/v1" || value["kind"] != "AdmissionReview" {
        return Err(format!("not an AdmissionReview: {text}"));
    }
    let response = &value["response"];
    if response["uid"] != uid {
        return Err(format!("uid {} for a request of uid {uid}", response["uid"]));
    }
    let allowed = response["allowed"]
        .as_bool()
        .ok_or_else(|| format!("no `allowed`: {text}"))?;
    if allowed && path == "/mutate" && (response["patchType"] != "JSONPatch" || !response["patch"].is_string()) {
        return Err(format!("/mutate allowed without the patch: {text}"));
    }
    if !allowed && !response["status"]["message"].is_string() {
        return Err(format!("a denial without a message: {text}"));
    }
    let generation = text.split("hardening generation ").nth(1).and_then(|rest| {
        rest.split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|digits| digits.parse().ok())
    });
    Ok(Answer { allowed, generation })
}

/// The load: `connections` keep-alive connections sending `rate` requests per second in all (the load benchmark's fixed-
/// rate schedule, relaxed: no spinning), connection i on `bodies[i % len]`, each request with its own uid. A
/// connection that fails is reopened at its next request; with `reconnect_every`, connections are also replaced
/// after that many requests, so TLS handshakes go on throughout. Runs until `stop`.
struct Load {
    address: String,
    client: Arc<rustls::ClientConfig>,
    bodies: Vec<Body>,
    connections: usize,
    rate: f64,
    reconnect_every: Option<u32>,
}

/// What the load's connections saw, once stopped.
struct Run {
    samples: Vec<Sample>,
    /// The leaf certificates presented to the load's connections, in the order they were opened (per connection).
    certificates: Vec<Vec<u8>>,
}

impl Load {
    fn start(self, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Run> {
        let start = Instant::now() + Duration::from_millis(10);
        let far = start + Duration::from_secs(600);
        let load = Arc::new(self);
        let tasks: Vec<_> = (0..load.connections)
            .map(|index| {
                let (load, stop) = (Arc::clone(&load), Arc::clone(&stop));
                tokio::spawn(async move {
                    let body = &load.bodies[index % load.bodies.len()];
                    let mut pace = Pace::fixed(start, index, load.connections, load.rate).relaxed();
                    let (mut samples, mut certificates) = (Vec::new(), Vec::new());
                    let mut connection: Option<load::Sender> = None;
                    let (mut sequence, mut on_this_connection) = (0u64, 0u32);
                    while !stop.load(Ordering::SeqCst) {
                        if pace.next(far).await.is_none() || stop.load(Ordering::SeqCst) {
                            break;
                        }
                        sequence += 1;
                        let uid = format!("{index:08x}-0000-4000-8000-{sequence:012x}");
                        let sent = Instant::now();
                        let sample = |outcome| Sample {
                            path: body.path,
                            uid: uid.clone(),
                            sent,
                            done: Instant::now(),
                            outcome,
                        };
                        if connection.as_ref().is_none_or(|sender| sender.is_closed())
                            || load.reconnect_every.is_some_and(|every| on_this_connection >= every)
                        {
                            connection = None;
                            match load::connect(&load.address, SERVER_NAME, Arc::clone(&load.client)).await {
                                Ok(opened) => {
                                    certificates.push(opened.server_cert);
                                    connection = Some(opened.sender);
                                    on_this_connection = 0;
                                }
                                Err(error) => {
                                    samples.push(sample(Outcome::NoConnection(error)));
                                    continue;
                                }
                            }
                        }
                        let Some(sender) = connection.as_mut() else { continue };
                        on_this_connection += 1;
                        let outcome = match load::post(sender, &load.address, body.path, body.with_uid(&uid)).await {
                            Ok((status, bytes)) => match check(status, &bytes, &uid, body.path) {
                                Ok(answer) => Outcome::Answered(answer),
                                Err(error) => Outcome::Wrong(error),
                            },
                            Err(failure) => {
                                connection = None;
                                Outcome::Failed(failure)
                            }
                        };
                        samples.push(sample(outcome));
                    }
                    (samples, certificates)
                })
            })
            .collect();
        tokio::spawn(async move {
            let mut run = Run {
                samples: Vec::new(),
                certificates: Vec::new(),
            };
            for task in tasks {
                let (samples, certificates) = task.await.expect("a load connection");
                run.samples.extend(samples);
                run.certificates.extend(certificates);
            }
            run.samples.sort_by_key(|sample| sample.sent);
            run
        })
    }
}

/// Up to `limit` samples, one per line, for a failure message.
fn listed<'a>(samples: impl IntoIterator<Item = &'a Sample>, limit: usize) -> String {
    samples
        .into_iter()
        .take(limit)
        .map(|sample| format!("  {} {}: {:?}", sample.path, sample.uid, sample.outcome))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---- 1. Certificate rotations ------------------------------------------------------------------------------------

/// **100 certificate rotations under load, no failed admission.** The server polls its certificate files every
/// 20 ms (`--tls-reload-interval`); the test replaces the pair 100 times as the kubelet updates a mounted Secret
/// (a new folder, an atomic `..data` symlink swap, the old folder removed), each time with a new key and a new
/// serving certificate, signed alternately by two CAs (the client trusts both, as the caBundle does during a CA
/// rotation). It waits for each rotation to be observed (the `certificate_reloads_total{result="loaded"}` counter
/// of /metrics goes up) and checks that a new connection is then served the newest certificate, before the next.
/// Meanwhile 6 keep-alive connections send the benchmark's reviews to /mutate and /validate at 200/s, each
/// replaced by a new connection (a new handshake) every 5 requests.
///
/// Proves: every admission during the run was answered 200 with a well-formed, allowed AdmissionReview carrying
/// its own uid (and /mutate's patch); the reload counter rose by exactly 100; every rotation was served to new
/// connections before the next; a new connection after the last one sees the last certificate.
#[test]
fn hundred_certificate_rotations_under_load_fail_no_admission() {
    let _serial = serial();
    runtime().block_on(async {
        let setup = Setup::new();
        let mut webhook = setup.start(&["--tls-reload-interval", "20ms"]).await;
        let loaded = "beamstack_webhook_certificate_reloads_total{result=\"loaded\"}";
        let rejected = "beamstack_webhook_certificate_reloads_total{result=\"rejected\"}";
        let before = webhook.metric(loaded).await;
        let stop = Arc::new(AtomicBool::new(false));
        let load = Load {
            address: webhook.address.clone(),
            client: Arc::clone(&setup.client),
            bodies: bodies(&setup.path("policies")),
            connections: 6,
            rate: 200.0,
            reconnect_every: Some(5),
        }
        .start(Arc::clone(&stop));
        tokio::time::sleep(Duration::from_millis(300)).await;

        let started = Instant::now();
        let rotations = 100;
        let mut newest = setup.first.clone();
        for rotation in 1..=rotations {
            newest = issue(&setup.cas[rotation as usize % 2]);
            project_secret(&setup.path("secret"), rotation, &newest);
            let seen = webhook
                .metric_reaches(loaded, before + f64::from(rotation), Duration::from_secs(10))
                .await;
            assert_eq!(
                seen,
                before + f64::from(rotation),
                "rotation {rotation} not observed within 10 s:\n{}",
                webhook.log_text()
            );
            let probe = load::connect(&webhook.address, SERVER_NAME, Arc::clone(&setup.client))
                .await
                .unwrap_or_else(|error| panic!("a new connection after rotation {rotation}: {error}"));
            assert!(
                probe.server_cert == der(&newest.0),
                "a new connection after rotation {rotation} is not served the newest certificate"
            );
        }
        let rotating = started.elapsed();
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::SeqCst);
        let run = load.await.expect("the load");

        let failed: Vec<&Sample> = run
            .samples
            .iter()
            .filter(|sample| !matches!(sample.outcome, Outcome::Answered(Answer { allowed: true, .. })))
            .collect();
        let reloads = webhook.metric(loaded).await - before;
        let refused = webhook.metric(rejected).await;
        let distinct: std::collections::HashSet<&Vec<u8>> = run.certificates.iter().collect();
        let last = load::connect(&webhook.address, SERVER_NAME, Arc::clone(&setup.client))
            .await
            .expect("a new connection at the end");
        println!(
            "hardening: certificate rotations: {} admissions sent, {} failed; {rotations} rotations written, {reloads} \
             reloads observed ({refused} reads of a pair mid-swap refused); the load's {} connections were served \
             {} distinct certificates; {:.1} s of rotations",
            run.samples.len(),
            failed.len(),
            run.certificates.len(),
            distinct.len(),
            rotating.as_secs_f64()
        );
        assert!(
            failed.is_empty(),
            "{} of {} admissions failed during the rotations:\n{}",
            failed.len(),
            run.samples.len(),
            listed(failed.iter().copied(), 10)
        );
        assert_eq!(reloads, f64::from(rotations), "one reload per rotation");
        assert!(last.server_cert == der(&newest.0), "the last certificate is served");
        assert!(
            distinct.len() >= 3,
            "the load's own new connections saw the rotations ({} certificates)",
            distinct.len()
        );
        assert!(
            run.samples.len() > 500,
            "the load ran ({} admissions)",
            run.samples.len()
        );
        let status = webhook.stop(Duration::from_secs(30)).await;
        assert!(status.success(), "exit status {status}");
    });
}

// ---- 2. SIGTERM --------------------------------------------------------------------------------------------------

/// **SIGTERM under load with a graceful drain, no failed admission.** 8 keep-alive connections send the
/// benchmark's reviews at 300/s to a server started with `--drain-timeout 5s`; a ninth connection has made one
/// request and sits idle. Then the test sends SIGTERM.
///
/// Proves: every request sent before the signal (before `kill` started) was answered 200 with a well-formed,
/// allowed AdmissionReview carrying its uid; no answer at all was an error (a 5xx, a malformed body); the server
/// closed the idle keep-alive connection and exited 0 before the drain deadline (it did not wait the deadline out:
/// its log says every connection drained); connections opened after the signal were refused.
///
/// Requests that found their connection closed after the signal, and connections refused after it, are not failed
/// admissions: a replica that is shutting down stops taking connections, and the API server's requests go to the
/// Service's other replicas (the terminating pod leaves the Service's endpoints). They are counted and printed.
#[test]
fn sigterm_under_load_drains_every_admission_sent_before_it() {
    let _serial = serial();
    runtime().block_on(async {
        let setup = Setup::new();
        let drain_timeout = Duration::from_secs(5);
        let mut webhook = setup.start(&["--drain-timeout", "5s"]).await;
        let bodies = bodies(&setup.path("policies"));
        // The idle connection: one request, then nothing.
        let mut idle = load::connect(&webhook.address, SERVER_NAME, Arc::clone(&setup.client))
            .await
            .expect("the idle connection");
        let (status, answer) = load::post(
            &mut idle.sender,
            &webhook.address,
            "/mutate",
            bodies[0].with_uid(UID_PLACEHOLDER),
        )
        .await
        .expect("the idle connection's request");
        check(status, &answer, UID_PLACEHOLDER, "/mutate").expect("the idle connection's answer");

        let stop = Arc::new(AtomicBool::new(false));
        let load = Load {
            address: webhook.address.clone(),
            client: Arc::clone(&setup.client),
            bodies,
            connections: 8,
            rate: 300.0,
            reconnect_every: None,
        }
        .start(Arc::clone(&stop));
        // /readyz, polled as a kubelet would (much more often), until the admin port goes away.
        let readiness = tokio::spawn({
            let admin = webhook.admin.clone();
            async move {
                let mut seen = Vec::new();
                loop {
                    match http_get(&admin, "/readyz").await {
                        Ok((status, _)) => {
                            if seen.last() != Some(&status) {
                                seen.push(status);
                            }
                        }
                        Err(_) => return seen,
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(1500)).await;

        // `kill` is a process of its own: the server may take the signal and refuse connections before it returns.
        // Every request sent before it started must be answered; one sent while it ran races the signal.
        let signalling = Instant::now();
        webhook.signal("TERM");
        let signalled = Instant::now();
        let exit = loop {
            if let Some(status) = webhook.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                signalled.elapsed() < drain_timeout + Duration::from_secs(5),
                "beam-webhook still running {:?} after SIGTERM:\n{}",
                signalled.elapsed(),
                webhook.log_text()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let exited_after = signalled.elapsed();
        // The idle connection was closed by the server: had it stayed open, the drain would have waited for it until
        // the deadline (the log line and the exit time asserted below show it did not).
        tokio::time::sleep(Duration::from_millis(20)).await;
        let idle_closed = idle.sender.is_closed();
        // A connection after the signal is refused.
        let after = load::connect(&webhook.address, SERVER_NAME, Arc::clone(&setup.client)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.store(true, Ordering::SeqCst);
        let run = load.await.expect("the load");
        let readiness = readiness.await.expect("the readiness poller");

        let ok = |sample: &Sample| matches!(sample.outcome, Outcome::Answered(Answer { allowed: true, .. }));
        let (before, after_signal): (Vec<&Sample>, Vec<&Sample>) =
            run.samples.iter().partition(|sample| sample.sent < signalling);
        let failed_before: Vec<&Sample> = before.iter().copied().filter(|sample| !ok(sample)).collect();
        let wrong: Vec<&Sample> = run
            .samples
            .iter()
            .filter(|sample| matches!(sample.outcome, Outcome::Wrong(_)))
            .collect();
        let answered_after = after_signal.iter().filter(|sample| ok(sample)).count();
        let unanswered_after = after_signal
            .iter()
            .filter(|sample| matches!(sample.outcome, Outcome::Failed(Failure::NoAnswer(_))))
            .count();
        let closed_after = after_signal
            .iter()
            .filter(|sample| matches!(sample.outcome, Outcome::Failed(Failure::NotSent(_))))
            .count();
        let refused_after = after_signal
            .iter()
            .filter(|sample| matches!(sample.outcome, Outcome::NoConnection(_)))
            .count();
        let log = webhook.log_text();
        println!(
            "hardening: SIGTERM drain: {} admissions sent before the signal, {} failed; after it {} answered, {} found \
             their connection closed before sending, {} sent and then cut off unanswered, {} connections refused; \
             exit {} after {} ms (drain deadline {} s); idle keep-alive connection closed: {idle_closed}; /readyz \
             statuses seen: {readiness:?}",
            before.len(),
            failed_before.len(),
            answered_after,
            closed_after,
            unanswered_after,
            refused_after,
            exit.code().map_or("by signal".into(), |code| code.to_string()),
            exited_after.as_millis(),
            drain_timeout.as_secs()
        );
        assert!(
            failed_before.is_empty(),
            "{} admissions sent before SIGTERM failed:\n{}",
            failed_before.len(),
            listed(failed_before.iter().copied(), 10)
        );
        assert!(
            wrong.is_empty(),
            "answers that were errors:\n{}",
            listed(wrong.iter().copied(), 10)
        );
        assert_eq!(
            unanswered_after, 0,
            "requests written on an open connection after the signal were cut off unanswered"
        );
        assert!(before.len() > 100, "the load ran ({} admissions)", before.len());
        assert!(exit.success(), "exit status {exit}:\n{log}");
        assert!(
            exited_after < drain_timeout,
            "exited after {exited_after:?}, not before the drain deadline"
        );
        assert!(
            log.contains("all admission connections drained"),
            "the drain finished on its own, not at the deadline:\n{log}"
        );
        assert!(idle_closed, "the idle keep-alive connection was closed");
        assert!(after.is_err(), "a connection after the signal is refused");
        // The admin port outlives the admission drain, so a probe sees "not ready" for all of it.
        assert_eq!(
            readiness,
            [200, 503],
            "/readyz: ready under load, then 503 from the signal until the drain ended"
        );
    });
}

// ---- 3. Policy updates -------------------------------------------------------------------------------------------

/// The toggled policy at `generation`: denying the review's `hardening: probe` label (Deny), or letting it through
/// with a warning (Warn); both name the generation, so every /validate answer tells which set decided it.
fn toggle(generation: u32, deny: bool) -> String {
    let action = if deny { "Deny" } else { "Warn" };
    format!(
        "apiVersion: beamstack.dev/v1alpha1\nkind: RunnerPolicy\nmetadata:\n  name: hardening-toggle\nspec:\n  \
         action: {action}\n  validations:\n    - expression: \"!has(object.metadata.labels) || \
         !('{TOGGLE_LABEL}' in object.metadata.labels) || \
         object.metadata.labels['{TOGGLE_LABEL}'] != 'probe'\"\n      message: \"hardening generation \
         {generation}: {action}\"\n"
    )
}

/// A broken version of the toggled policy, of kind `variant % 5`: not YAML; CEL that does not compile; a field of
/// the wrong type; a RunnerPolicy of an apiVersion that does not exist; a validation without its expression.
fn broken(generation: u32, variant: u32) -> (&'static str, String) {
    let good = toggle(generation, true);
    match variant % 5 {
        0 => (
            "bad YAML",
            format!("# generation {generation}\n{}  validations: [unclosed\n", good),
        ),
        1 => ("CEL that does not compile", good.replace("!= 'probe'", "!= 'probe' &&")),
        2 => (
            "a field of the wrong type",
            good.replace("  action: Deny\n", "  action: [Deny]\n"),
        ),
        3 => (
            "a wrong apiVersion",
            good.replace("beamstack.dev/v1alpha1", "beamstack.dev/v1"),
        ),
        _ => (
            "a validation without its expression",
            good.replace("    - expression:", "    - expresion:"),
        ),
    }
}

/// Writes `file` atomically (a hidden temporary file, which the loader skips, renamed over it), as a ConfigMap's
/// symlink swap changes a mounted folder at once.
fn write_atomically(file: &Path, text: &str) {
    let temporary = file.with_file_name(format!(
        ".{}.tmp",
        file.file_name().and_then(|name| name.to_str()).unwrap_or("policy")
    ));
    std::fs::write(&temporary, text).expect("write the policy");
    std::fs::rename(&temporary, file).expect("rename the policy");
}

/// **100 policy updates, broken ones among them, under load: no failed admission, and always the last good set.**
/// Beside the shipped policies and the tenant, the folder holds `hardening-toggle.yaml`, a RunnerPolicy about the
/// review's `hardening: probe` label. The test rewrites it 100 times (atomically): valid versions alternate between
/// denying the label and only warning about it, and every third version is broken, in turn: not YAML, CEL that
/// does not compile, a field of the wrong type, an apiVersion that does not exist, a validation without its
/// expression. Every version names its generation in its message, so each /validate answer says which set
/// decided it. The server polls the folder every 10 ms (`--policy-reload-interval`); the test waits for each
/// version to be observed (`policy_reloads_total{result="loaded"}` for a valid one, `{result="rejected"}` for a
/// broken one) before the next, and after a broken one checks that /readyz reports it and a new request is still
/// decided by the last good generation. Meanwhile 6 keep-alive connections send the benchmark's reviews to /mutate
/// and /validate at 200/s.
///
/// Proves: every admission was answered 200 with a well-formed AdmissionReview carrying its uid (no 500s, no
/// timeouts); /mutate always allowed with its patch; every /validate verdict came from a valid generation that
/// could have been in force during the request (no older than the last one observed in force when it was sent, no
/// newer than the last one written when it was answered), and denied exactly when that generation denies; no
/// broken version ever took effect, and each one was counted as refused.
#[test]
fn hundred_policy_updates_with_broken_ones_keep_the_last_good_set() {
    let _serial = serial();
    runtime().block_on(async {
        let setup = Setup::new();
        let toggle_file = setup.path("policies").join("hardening-toggle.yaml");
        write_atomically(&toggle_file, &toggle(0, false));
        let mut webhook = setup.start(&["--policy-reload-interval", "10ms"]).await;
        let loaded = "beamstack_webhook_policy_reloads_total{result=\"loaded\"}";
        let rejected = "beamstack_webhook_policy_reloads_total{result=\"rejected\"}";
        let bodies = bodies(&setup.path("policies"));
        let validate = bodies[1].clone();
        let stop = Arc::new(AtomicBool::new(false));
        let load = Load {
            address: webhook.address.clone(),
            client: Arc::clone(&setup.client),
            bodies,
            connections: 6,
            rate: 200.0,
            reconnect_every: None,
        }
        .start(Arc::clone(&stop));
        tokio::time::sleep(Duration::from_millis(300)).await;

        // generation -> (denies, written at, observed in force at); generation 0 was in force from the start.
        let epoch = Instant::now();
        let mut valid: Vec<(u32, bool, Instant, Instant)> = vec![(0, false, epoch, epoch)];
        let mut broken_kinds = std::collections::BTreeMap::<&str, u32>::new();
        let (mut loaded_count, mut rejected_count) = (webhook.metric(loaded).await, webhook.metric(rejected).await);
        let mut probe = load::connect(&webhook.address, SERVER_NAME, Arc::clone(&setup.client))
            .await
            .expect("the probe connection");
        let started = Instant::now();
        let updates = 100u32;
        let mut valid_written = 0;
        for generation in 1..=updates {
            let is_broken = generation % 3 == 0;
            let (kind, text) = if is_broken {
                broken(generation, generation / 3)
            } else {
                valid_written += 1;
                ("valid", toggle(generation, valid_written % 2 == 1))
            };
            let written = Instant::now();
            write_atomically(&toggle_file, &text);
            let counter = if is_broken { rejected } else { loaded };
            let expected = if is_broken {
                rejected_count + 1.0
            } else {
                loaded_count + 1.0
            };
            let seen = webhook.metric_reaches(counter, expected, Duration::from_secs(10)).await;
            let (now_loaded, now_rejected) = (webhook.metric(loaded).await, webhook.metric(rejected).await);
            let readyz = http_get(&webhook.admin, "/readyz").await.expect("GET /readyz").1;
            assert!(
                seen == expected
                    && now_loaded == loaded_count + f64::from(!is_broken)
                    && now_rejected == rejected_count + f64::from(is_broken),
                "generation {generation} ({kind}) should be {}: reloads loaded {loaded_count} -> {now_loaded}, \
                 rejected {rejected_count} -> {now_rejected}; /readyz: {readyz}\n{text}",
                if is_broken { "refused" } else { "loaded" }
            );
            (loaded_count, rejected_count) = (now_loaded, now_rejected);
            if is_broken {
                *broken_kinds.entry(kind).or_default() += 1;
                assert!(
                    readyz.contains("latestChangeRefused") && readyz.contains("hardening-toggle.yaml"),
                    "/readyz reports the refused change ({kind}): {readyz}"
                );
                assert!(readyz.contains("\"ready\":true"), "still ready: {readyz}");
                // A request now is decided by the last good generation.
                let uid = format!("ffffffff-0000-4000-8000-{generation:012x}");
                let (status, body) = load::post(
                    &mut probe.sender,
                    &webhook.address,
                    "/validate",
                    validate.with_uid(&uid),
                )
                .await
                .expect("the probe request");
                let answer = check(status, &body, &uid, "/validate").expect("the probe's answer");
                let &(good, denies, _, _) = valid.last().expect("a valid generation");
                assert_eq!(
                    answer,
                    Answer {
                        allowed: !denies,
                        generation: Some(good)
                    },
                    "after generation {generation} ({kind}) was refused, generation {good} decides"
                );
            } else {
                valid.push((generation, valid_written % 2 == 1, written, Instant::now()));
            }
        }
        let updating = started.elapsed();
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::SeqCst);
        let run = load.await.expect("the load");

        // Every answer against the generations that could have been in force while it was decided.
        let mut failed: Vec<(&Sample, String)> = Vec::new();
        let (mut allowed, mut denied) = (0, 0);
        for sample in &run.samples {
            let answer = match &sample.outcome {
                Outcome::Answered(answer) => *answer,
                other => {
                    failed.push((sample, format!("{other:?}")));
                    continue;
                }
            };
            if answer.allowed {
                allowed += 1;
            } else {
                denied += 1;
            }
            if sample.path == "/mutate" {
                if !answer.allowed {
                    failed.push((sample, "/mutate denied".into()));
                }
                continue;
            }
            let oldest = valid
                .iter()
                .filter(|(_, _, _, seen)| *seen <= sample.sent)
                .map(|(generation, ..)| *generation)
                .max()
                .unwrap_or(0);
            let newest = valid
                .iter()
                .filter(|(_, _, written, _)| *written <= sample.done)
                .map(|(generation, ..)| *generation)
                .max()
                .unwrap_or(0);
            let decided = answer
                .generation
                .and_then(|generation| valid.iter().find(|(valid, ..)| *valid == generation));
            match decided {
                None => failed.push((
                    sample,
                    format!("decided by generation {:?}, not a valid one", answer.generation),
                )),
                Some(&(generation, denies, _, _)) => {
                    if generation < oldest || generation > newest {
                        failed.push((
                            sample,
                            format!("decided by generation {generation}; in force then: {oldest}..={newest}"),
                        ));
                    } else if answer.allowed == denies {
                        failed.push((
                            sample,
                            format!(
                                "generation {generation} denies: {denies}, yet allowed: {}",
                                answer.allowed
                            ),
                        ));
                    }
                }
            }
        }
        println!(
            "hardening: policy updates: {} admissions sent ({allowed} allowed, {denied} denied as the set in force \
             said), {} failed; {updates} updates written, {} valid loaded and {} broken refused as observed \
             ({broken_kinds:?}); {:.1} s of updates",
            run.samples.len(),
            failed.len(),
            valid.len() - 1,
            broken_kinds.values().sum::<u32>(),
            updating.as_secs_f64()
        );
        assert!(
            failed.is_empty(),
            "{} of {} admissions failed or were decided by a set not in force:\n{}",
            failed.len(),
            run.samples.len(),
            failed
                .iter()
                .take(10)
                .map(|(sample, why)| format!("  {} {}: {why}", sample.path, sample.uid))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(denied > 0 && allowed > 0, "both verdicts were seen");
        assert!(
            run.samples.len() > 500,
            "the load ran ({} admissions)",
            run.samples.len()
        );
        let status = webhook.stop(Duration::from_secs(30)).await;
        assert!(status.success(), "exit status {status}");
    });
}
