//! Plain GETs for the plugin's own HTTP calls (Prometheus), over HTTP or HTTPS with the machine's trust store.

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// How long one call may take: a status view should not hang on a slow monitoring stack.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Percent-encodes a query-string value.
pub fn percent_encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The body of a 2xx answer to a GET of `url`; any other answer is an error naming the URL.
pub async fn get(url: &str) -> Result<Bytes, String> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|error| format!("reading the trust store: {error}"))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let uri: hyper::Uri = url.parse().map_err(|error| format!("{url}: {error}"))?;
    let call = async {
        let response = client.get(uri).await.map_err(|error| format!("GET {url}: {error}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|error| format!("GET {url}: {error}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("GET {url}: {status}: {}", String::from_utf8_lossy(&body)));
        }
        Ok(body)
    };
    tokio::time::timeout(TIMEOUT, call)
        .await
        .map_err(|_| format!("GET {url}: no answer within {} s", TIMEOUT.as_secs()))?
}
