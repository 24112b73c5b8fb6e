//! TLS for the admission port: certificates read from files and swapped without a restart.
//!
//! Kubernetes updates a mounted Secret by writing a new directory and swapping the `..data` symlink, which an
//! inotify watch on the files themselves never sees (kubernetes#111947). So the reloader polls: it reads both
//! files every interval, and when their bytes change and the new pair parses and matches, the resolver's key is
//! swapped atomically. A half-written or mismatched pair is refused and the previous certificate stays in use.

use crate::metrics::Metrics;
use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} holds no PEM certificate: expected a -----BEGIN CERTIFICATE----- block")]
    NoCertificate { path: String },
    #[error("{path} holds no PEM private key: expected a PKCS#8, PKCS#1 or SEC1 key block")]
    NoKey { path: String },
    #[error("certificate and key do not belong together or cannot be used: {0}")]
    Mismatch(rustls::Error),
    #[error("client CA {path}: {message}")]
    ClientCa { path: String, message: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The one crypto provider of the whole program: ring (see Cargo.toml).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Parses a PEM certificate chain and key into a key rustls can serve, checking they match.
pub fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_path: &Path,
    key_path: &Path,
) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.display().to_string(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| TlsError::NoKey {
        path: key_path.display().to_string(),
    })?;
    let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(TlsError::Mismatch)?;
    certified.keys_match().map_err(TlsError::Mismatch)?;
    Ok(certified)
}

/// The serving certificate in force, and where it comes from.
pub struct CertificateStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: ArcSwap<CertifiedKey>,
    /// The file contents behind `current`, to notice a change by comparing bytes.
    loaded_bytes: Mutex<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for CertificateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateStore")
            .field("cert_path", &self.cert_path)
            .finish()
    }
}

impl CertificateStore {
    /// Loads the certificate once; start-up fails if it cannot be served.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<Self>, TlsError> {
        let cert = read(cert_path)?;
        let key = read(key_path)?;
        let certified = certified_key(&cert, &key, cert_path, key_path)?;
        Ok(Arc::new(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: ArcSwap::from_pointee(certified),
            loaded_bytes: Mutex::new((cert, key)),
        }))
    }

    /// Re-reads the files. `Ok(true)`: a new certificate is in force; `Ok(false)`: nothing changed.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let cert = read(&self.cert_path)?;
        let key = read(&self.key_path)?;
        let mut loaded = self
            .loaded_bytes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if loaded.0 == cert && loaded.1 == key {
            return Ok(false);
        }
        let certified = certified_key(&cert, &key, &self.cert_path, &self.key_path)?;
        self.current.store(Arc::new(certified));
        *loaded = (cert, key);
        Ok(true)
    }

    /// Polls the files every `interval` until the process ends, logging and counting every reload.
    pub fn watch(self: Arc<Self>, interval: Duration, metrics: Arc<Metrics>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_error: Option<String> = None;
            loop {
                ticker.tick().await;
                let store = Arc::clone(&self);
                let result = tokio::task::spawn_blocking(move || store.reload()).await;
                match result {
                    Ok(Ok(true)) => {
                        tracing::info!(cert = %self.cert_path.display(), "serving certificate reloaded");
                        metrics.record_certificate_reload(true);
                        last_error = None;
                    }
                    Ok(Ok(false)) => last_error = None,
                    Ok(Err(error)) => {
                        // Logged once per distinct problem: a swap in progress usually heals at the next tick.
                        let text = error.to_string();
                        if last_error.as_ref() != Some(&text) {
                            tracing::warn!(error = %text, "new serving certificate refused; the previous one stays in use");
                            metrics.record_certificate_reload(false);
                            last_error = Some(text);
                        }
                    }
                    Err(join_error) => {
                        tracing::error!(error = %join_error, "certificate reload task failed")
                    }
                }
            }
        })
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }
}

#[derive(Debug)]
struct Resolver(Arc<CertificateStore>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }
}

/// A rustls server configuration: TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1, the store's certificate, and client
/// certificates required when a client CA is given.
pub fn server_config(store: Arc<CertificateStore>, client_ca: Option<&Path>) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let pem = read(path)?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok) {
                roots.add(cert).map_err(|error| TlsError::ClientCa {
                    path: path.display().to_string(),
                    message: error.to_string(),
                })?;
            }
            if roots.is_empty() {
                return Err(TlsError::ClientCa {
                    path: path.display().to_string(),
                    message: "holds no PEM certificate".into(),
                });
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|error| TlsError::ClientCa {
                    path: path.display().to_string(),
                    message: error.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(Resolver(store)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
