//! Certificates for the webhook: a CA and a serving certificate signed by it, with every name the API server may
//! use for the Service (`svc`, `svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local`) as SANs. API servers refuse
//! CN-only certificates, so the names are always SANs.
//!
//! Used by dev setups (`beam-webhook certs`), the end-to-end harness and the tests.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::net::IpAddr;
use std::path::Path;
use time::{Duration, OffsetDateTime};

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("could not generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("could not write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("`{0}` is neither a DNS name nor an IP address")]
    Name(String),
}

/// What to put in the serving certificate.
#[derive(Debug, Clone)]
pub struct ServingCertRequest {
    /// The webhook Service's name and namespace: they give the in-cluster DNS names.
    pub service: String,
    pub namespace: String,
    /// More names or IP addresses (`localhost`, `127.0.0.1` for a webhook the API server calls by URL).
    pub extra_names: Vec<String>,
    /// How long the serving certificate is valid; the CA lives ten times as long.
    pub valid_for: Duration,
}

/// PEM-encoded CA and serving certificate with their keys.
#[derive(Debug, Clone)]
pub struct CertBundle {
    pub ca_cert: String,
    pub ca_key: String,
    pub cert: String,
    pub key: String,
}

impl ServingCertRequest {
    /// Every SAN the serving certificate carries.
    pub fn names(&self) -> Vec<String> {
        let service = &self.service;
        let namespace = &self.namespace;
        let mut names = vec![
            service.clone(),
            format!("{service}.{namespace}"),
            format!("{service}.{namespace}.svc"),
            format!("{service}.{namespace}.svc.cluster.local"),
        ];
        for name in &self.extra_names {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, "beamstack.dev");
    name
}

/// A CA's certificate and key, PEM-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaMaterial {
    pub cert: String,
    pub key: String,
}

/// Generates a fresh CA valid for `valid_for`, named after the namespace it serves.
pub fn generate_ca(namespace: &str, valid_for: Duration) -> Result<CaMaterial, CertError> {
    let now = OffsetDateTime::now_utc();
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name = distinguished_name(&format!("beamstack webhook CA ({namespace})"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    // A little slack in the past for clocks that disagree by a few minutes.
    ca_params.not_before = now - Duration::hours(1);
    ca_params.not_after = now + valid_for;
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    Ok(CaMaterial {
        cert: ca.pem(),
        key: ca.key().serialize_pem(),
    })
}

/// Signs a serving certificate for `request` with an existing CA. It is valid for `request.valid_for`, but never
/// past the CA's own expiry (`ca_not_after`), since a certificate outliving its issuer would not verify anyway.
pub fn issue_serving(
    ca: &CaMaterial,
    ca_not_after: OffsetDateTime,
    request: &ServingCertRequest,
) -> Result<(String, String), CertError> {
    let now = OffsetDateTime::now_utc();
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, KeyPair::from_pem(&ca.key)?)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = distinguished_name(&format!("{}.{}.svc", request.service, request.namespace));
    params.subject_alt_names = request
        .names()
        .into_iter()
        .map(|name| match name.parse::<IpAddr>() {
            Ok(address) => Ok(SanType::IpAddress(address)),
            Err(_) => name
                .as_str()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|_| CertError::Name(name.clone())),
        })
        .collect::<Result<_, _>>()?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = now - Duration::hours(1);
    params.not_after = (now + request.valid_for).min(ca_not_after);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Generates a fresh CA (valid ten times as long as the serving certificate) and a serving certificate signed by it.
pub fn generate(request: &ServingCertRequest) -> Result<CertBundle, CertError> {
    let ca_valid_for = request.valid_for * 10;
    let ca = generate_ca(&request.namespace, ca_valid_for)?;
    let (cert, key) = issue_serving(&ca, OffsetDateTime::now_utc() + ca_valid_for, request)?;
    Ok(CertBundle {
        ca_cert: ca.cert,
        ca_key: ca.key,
        cert,
        key,
    })
}

/// A client certificate signed by a fresh CA, for testing `--client-ca` (the API server's own client certificate).
pub fn generate_client(common_name: &str) -> Result<CertBundle, CertError> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name = distinguished_name("beamstack client CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = distinguished_name(common_name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;
    Ok(CertBundle {
        ca_key: ca.key().serialize_pem(),
        ca_cert: ca.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

impl CertBundle {
    /// Writes `ca.crt`, `ca.key`, `tls.crt` and `tls.key` (the names a kubernetes.io/tls Secret mounts) into `dir`.
    /// Keys are written owner-readable only.
    pub fn write_to(&self, dir: &Path) -> Result<(), CertError> {
        let write = |name: &str, contents: &str, private: bool| -> Result<(), CertError> {
            let path = dir.join(name);
            let error = |source| CertError::Write {
                path: path.display().to_string(),
                source,
            };
            std::fs::create_dir_all(dir).map_err(error)?;
            std::fs::write(&path, contents).map_err(error)?;
            #[cfg(unix)]
            if private {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(error)?;
            }
            let _ = private;
            Ok(())
        };
        write("ca.crt", &self.ca_cert, false)?;
        write("ca.key", &self.ca_key, true)?;
        write("tls.crt", &self.cert, false)?;
        write("tls.key", &self.key, true)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_certificate_names_the_service_every_way() {
        let request = ServingCertRequest {
            service: "beam-webhook".into(),
            namespace: "beamstack".into(),
            extra_names: vec!["localhost".into(), "127.0.0.1".into()],
            valid_for: Duration::days(365),
        };
        assert_eq!(
            request.names(),
            [
                "beam-webhook",
                "beam-webhook.beamstack",
                "beam-webhook.beamstack.svc",
                "beam-webhook.beamstack.svc.cluster.local",
                "localhost",
                "127.0.0.1"
            ]
        );
        let bundle = generate(&request).unwrap();
        assert!(bundle.cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(bundle.key.contains("PRIVATE KEY"));
        assert_ne!(bundle.cert, bundle.ca_cert);
        let dir = tempfile::tempdir().unwrap();
        bundle.write_to(dir.path()).unwrap();
        for file in ["ca.crt", "ca.key", "tls.crt", "tls.key"] {
            assert!(dir.path().join(file).exists(), "{file}");
        }
    }
}
