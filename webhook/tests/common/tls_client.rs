//! A minimal HTTPS client for the server tests: one request per connection, so every request makes a fresh TLS
//! handshake and sees the certificate in force at that moment.

use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_rustls::TlsConnector;

pub struct Client {
    connector: TlsConnector,
}

pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    /// The leaf certificate the server presented.
    pub server_cert: Vec<u8>,
}

impl Client {
    /// Trusts the CAs in `ca_pems`; presents `identity` (cert PEM, key PEM) when given.
    pub fn new(ca_pems: &[&str], identity: Option<(&str, &str)>) -> Self {
        Self::with_versions(ca_pems, identity, rustls::DEFAULT_VERSIONS, &[])
    }

    /// A client limited to the given TLS versions, offering the given ALPN protocols.
    pub fn with_versions(
        ca_pems: &[&str],
        identity: Option<(&str, &str)>,
        versions: &[&'static rustls::SupportedProtocolVersion],
        alpn: &[&[u8]],
    ) -> Self {
        let mut roots = RootCertStore::empty();
        for pem in ca_pems {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots.add(cert.unwrap()).unwrap();
            }
        }
        let builder = rustls::ClientConfig::builder_with_provider(webhook::server::tls::provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_slice_iter(cert.as_bytes())
                        .map(Result::unwrap)
                        .collect(),
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
        };
        let mut config = config;
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        // Every request shows the certificate in force: a resumed session would report the cached one.
        config.resumption = rustls::client::Resumption::disabled();
        Self {
            connector: TlsConnector::from(Arc::new(config)),
        }
    }

    /// A fresh TLS connection with nothing sent on it yet: every request starts with one, and the slow-client tests
    /// misbehave on it directly.
    pub async fn connect(
        &self,
        address: SocketAddr,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
        let tcp = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| e.to_string())?;
        let name = ServerName::try_from("localhost").unwrap();
        self.connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))
    }

    pub async fn request(&self, address: SocketAddr, method: &str, path: &str, body: Vec<u8>) -> Result<Reply, String> {
        let tls = self.connect(address).await?;
        let server_cert = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .map(|c| c.to_vec())
            .unwrap_or_default();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("http: {e}"))?;
        tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes()
            .to_vec();
        Ok(Reply {
            status,
            body,
            server_cert,
        })
    }

    /// One request over HTTP/2 (the client must offer `h2`); returns the status and the negotiated TLS version.
    pub async fn request_h2(&self, address: SocketAddr, path: &str, body: Vec<u8>) -> Result<(u16, String), String> {
        let tls = self.connect(address).await?;
        let version = format!("{:?}", tls.get_ref().1.protocol_version());
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), TokioIo::new(tls))
                .await
                .map_err(|e| format!("h2: {e}"))?;
        tokio::spawn(connection);
        let request = Request::post(format!("https://localhost{path}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        Ok((response.status().as_u16(), version))
    }

    pub async fn post_json(
        &self,
        address: SocketAddr,
        path: &str,
        value: &serde_json::Value,
    ) -> Result<(u16, serde_json::Value), String> {
        let reply = self
            .request(address, "POST", path, serde_json::to_vec(value).unwrap())
            .await?;
        let body = serde_json::from_slice(&reply.body)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&reply.body).into()));
        Ok((reply.status, body))
    }
}

/// The DER of the first certificate in a PEM string.
pub fn der_of(pem: &str) -> Vec<u8> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}
