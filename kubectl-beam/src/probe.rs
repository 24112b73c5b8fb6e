//! Dials a webhook the way the API server does: TLS to its URL, trusting only the configuration's caBundle and
//! checking the certificate names the host. A pass here means the API server's calls can get through.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(3);

/// The served certificate's notAfter (seconds since the epoch) when the handshake succeeds with `ca_pem` as the only
/// root; otherwise what failed, in words.
pub async fn webhook_tls(host: &str, port: u16, ca_pem: &[u8]) -> Result<i64, String> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(ca_pem) {
        let certificate = certificate.map_err(|error| format!("caBundle: {error:?}"))?;
        roots.add(certificate).map_err(|error| format!("caBundle: {error}"))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_owned()).map_err(|error| format!("{host}: {error}"))?;
    let handshake = async {
        let stream = TcpStream::connect((host, port))
            .await
            .map_err(|error| format!("cannot connect to {host}:{port}: {error}"))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, stream)
            .await
            .map_err(|error| format!("TLS handshake with {host}:{port} failed: {error}"))?;
        let (_, session) = tls.get_ref();
        let leaf = session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .ok_or("the webhook sent no certificate")?;
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())
            .map_err(|error| format!("the served certificate does not parse: {error}"))?;
        Ok(parsed.validity().not_after.timestamp())
    };
    tokio::time::timeout(TIMEOUT, handshake)
        .await
        .map_err(|_| format!("{host}:{port} did not answer within {} s", TIMEOUT.as_secs()))?
}
