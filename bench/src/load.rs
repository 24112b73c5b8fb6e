//! The load generator's core: keep-alive HTTP/1.1 connections over rustls (ring), one request in flight on each,
//! paced in a closed loop or at a fixed rate (wrk2's schedule). `bench-load` (the load and tenant-scale benchmarks) measures latency
//! with it; the hardening tests (`bench/tests/hardening.rs`) drive the real `beam-webhook` with it while they rotate
//! certificates, rewrite policies and send SIGTERM.

use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls_pki_types::pem::PemObject;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The sending half of one keep-alive HTTP/1.1 connection.
pub type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A client configuration that trusts the CA certificates of `ca_pem` (one PEM block or several, as a caBundle
/// holds during a CA rotation), checks the server's name, offers HTTP/1.1 only and TLS 1.2 and 1.3.
pub fn client_config(ca_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|error| format!("CA PEM: {error}"))?;
        roots.add(cert).map_err(|error| format!("CA certificate: {error}"))?;
    }
    if roots.is_empty() {
        return Err("the CA file holds no certificate".into());
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS versions: {error}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// An open connection.
pub struct Connection {
    pub sender: Sender,
    /// The leaf certificate the server presented in the handshake (DER).
    pub server_cert: Vec<u8>,
}

/// Opens a keep-alive connection to `address` (`HOST:PORT`): TCP with TCP_NODELAY, the TLS handshake checking
/// `server_name`, the HTTP/1.1 handshake. The connection's I/O runs on a task of its own.
pub async fn connect(
    address: &str,
    server_name: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<Connection, String> {
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|error| format!("connect: {error}"))?;
    tcp.set_nodelay(true).map_err(|error| format!("TCP_NODELAY: {error}"))?;
    let name = ServerName::try_from(server_name.to_owned()).map_err(|error| format!("server name: {error}"))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|error| format!("TLS handshake: {error}"))?;
    let server_cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| cert.to_vec())
        .unwrap_or_default();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|error| format!("HTTP/1.1 handshake: {error}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(Connection { sender, server_cert })
}

/// Waits until `due`: the timer for most of the way, then yielding to the other connections until it is time.
pub async fn wait_until(due: Instant) {
    let now = Instant::now();
    // tokio's timer has millisecond ticks and may wake up to a tick late: stop sleeping two ticks early.
    if due > now + Duration::from_millis(3) {
        tokio::time::sleep_until((due - Duration::from_millis(2)).into()).await;
    }
    while Instant::now() < due {
        tokio::task::yield_now().await;
    }
}

/// When one connection sends its requests.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Fixed rate: the next request's due time and the interval between this connection's requests.
    schedule: Option<(Instant, Duration)>,
    /// Spin the last two milliseconds before a due time (exact timing for latency; costs CPU), or just sleep.
    spin: bool,
}

impl Pace {
    /// Every request as soon as the previous answer arrived.
    pub fn closed_loop() -> Self {
        Self {
            schedule: None,
            spin: false,
        }
    }

    /// Connection `index` of `connections` sends at `start + (index + k * connections) / rate`, so the connections
    /// together send `rate` requests per second, evenly spread.
    pub fn fixed(start: Instant, index: usize, connections: usize, rate: f64) -> Self {
        Self {
            schedule: Some((
                start + Duration::from_secs_f64(index as f64 / rate),
                Duration::from_secs_f64(connections as f64 / rate),
            )),
            spin: true,
        }
    }

    /// The same schedule without the spin at the end of each wait: requests may leave up to a timer tick late,
    /// and the generator uses no CPU between them (for tests on a busy machine, where latency is not measured).
    pub fn relaxed(self) -> Self {
        Self { spin: false, ..self }
    }

    /// Waits until the next request is due and returns its due time (now, in a closed loop); `None` once that
    /// would be at or after `end`.
    pub async fn next(&mut self, end: Instant) -> Option<Instant> {
        match &mut self.schedule {
            Some((due, interval)) => {
                let this = *due;
                if this >= end {
                    return None;
                }
                *due = this + *interval;
                if self.spin {
                    wait_until(this).await;
                } else {
                    tokio::time::sleep_until(this.into()).await;
                }
                Some(this)
            }
            None => {
                let now = Instant::now();
                (now < end).then_some(now)
            }
        }
    }
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The connection was closed (or broken) before the request was written: the server never saw it.
    NotSent(String),
    /// The request was (at least partly) written, and the connection ended before a complete answer arrived.
    NoAnswer(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NotSent(message) => write!(f, "not sent: {message}"),
            Failure::NoAnswer(message) => write!(f, "no answer: {message}"),
        }
    }
}

/// POSTs `body` (JSON) to `path` on the connection and reads the whole answer: its status and body.
pub async fn post(
    sender: &mut Sender,
    host: &str,
    path: &str,
    body: Bytes,
) -> Result<(hyper::StatusCode, Bytes), Failure> {
    let request = Request::post(path)
        .header(hyper::header::HOST, host)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::ACCEPT, "application/json")
        .body(Full::new(body))
        .map_err(|error| Failure::NotSent(format!("request: {error}")))?;
    sender
        .ready()
        .await
        .map_err(|error| Failure::NotSent(error.to_string()))?;
    let response = sender.try_send_request(request).await.map_err(|mut error| {
        // hyper hands the request back when it never reached the connection.
        if error.take_message().is_some() {
            Failure::NotSent(error.error().to_string())
        } else {
            Failure::NoAnswer(error.error().to_string())
        }
    })?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|error| Failure::NoAnswer(format!("reading the body: {error}")))?
        .to_bytes();
    Ok((status, bytes))
}
