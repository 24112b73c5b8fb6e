//! The TLS accept loop: handshake, HTTP/1.1 or HTTP/2, and a graceful drain on shutdown.

use crate::metrics::Metrics;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A client that opens a connection and says nothing is not allowed to hold a task forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers (slowloris).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// After SIGTERM, how long open connections are kept (at most half the drain timeout) so that their next request is
/// answered, with `Connection: close`, instead of being cut off; see `serve_tls`.
const LINGER: Duration = Duration::from_secs(1);
/// What a plain-HTTP client gets on the TLS port, as Go's net/http answers it.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n\
Client sent an HTTP request to an HTTPS server: the admission port speaks TLS only.\n";

pub async fn serve_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    metrics: Arc<Metrics>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    drain_timeout: Duration,
) {
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    // Out of file descriptors and the like: back off briefly instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => break,
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(closing_after_shutdown(router.clone(), shutdown.clone()));
        let metrics = Arc::clone(&metrics);
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let mut first = [0u8; 1];
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
                Ok(Ok(1)) if first[0] != TLS_HANDSHAKE_RECORD => {
                    metrics.record_handshake_failure();
                    tracing::debug!(%peer, "plain HTTP on the TLS port");
                    let mut stream = stream;
                    let _ = stream.write_all(PLAIN_HTTP_ANSWER).await;
                    let _ = stream.shutdown().await;
                    return;
                }
                Ok(Ok(_)) => {}
                _ => return,
            }
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    metrics.record_handshake_failure();
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    metrics.record_handshake_failure();
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let mut builder = auto::Builder::new(TokioExecutor::new());
            // Without a timer hyper never times out a client that sends its headers a byte at a time.
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let connection = builder.serve_connection(TokioIo::new(tls), service).into_owned();
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    // HTTP/1.1 cannot tell a client to stop using a keep-alive connection except by answering a request with
    // `Connection: close`, or by closing it. Closing an idle one at once loses a request the client wrote just
    // before (hyper counts a connection idle until it has read a request's head; the bytes are discarded), and the
    // API server does not resend a POST. So for a short while connections stay open: every answer now carries
    // `Connection: close` and its connection ends after it. Then what is still open is closed: idle connections at
    // once (they sent nothing during the linger), busy ones after their answer; HTTP/2 ones get GOAWAY.
    let deadline = tokio::time::Instant::now() + drain_timeout;
    let linger_until = tokio::time::Instant::now() + LINGER.min(drain_timeout / 2);
    while graceful.count() > 0 && tokio::time::Instant::now() < linger_until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all admission connections drained"),
        _ = tokio::time::sleep_until(deadline) => tracing::warn!("drain timeout reached; closing remaining connections"),
    }
}

/// The router, with `Connection: close` on HTTP/1 answers once shutdown has begun: the client sends nothing more
/// on that connection, which hyper closes after the answer.
fn closing_after_shutdown(
    router: Router,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> impl tower::Service<
    axum::http::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<axum::response::Response, std::convert::Infallible>> + Send,
> + Clone {
    tower::service_fn(move |request: axum::http::Request<hyper::body::Incoming>| {
        let http1 = request.version() < axum::http::Version::HTTP_2;
        let (router, shutdown) = (router.clone(), shutdown.clone());
        async move {
            let mut response = tower::ServiceExt::oneshot(router, request).await?;
            if http1 && *shutdown.borrow() {
                response.headers_mut().insert(
                    axum::http::header::CONNECTION,
                    axum::http::HeaderValue::from_static("close"),
                );
            }
            Ok(response)
        }
    })
}
