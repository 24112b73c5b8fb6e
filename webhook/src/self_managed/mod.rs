//! Self-managed certificates: the webhook keeps its own CA and serving certificate in a Secret, renews them before
//! they expire, and keeps the webhook configurations' caBundle in step (the chart's `certificates.mode:
//! selfManaged`, for clusters without cert-manager).
//!
//! This module is the pure part: given what the Secret holds and the clock, what it should hold. `controller` does
//! the IO (the Secret, the files the TLS reloader reads, the webhook configurations).
//!
//! Rotation without a failed admission: the API server trusts every CA in the caBundle. A new CA is therefore
//! added beside the old one, which stays in the bundle until it expires, and the serving certificate from the old
//! CA is kept for one more pass: only after that pass has set the new bundle is a certificate from the new CA
//! served. A renewed serving certificate from the same CA needs no caBundle change at all.

pub mod controller;

use crate::certs::{self, CaMaterial, CertError, ServingCertRequest};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

/// The Secret's keys: those of a `kubernetes.io/tls` Secret, plus the CA's key so any replica can renew.
pub const TLS_CERT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";
/// Every CA the API server should trust, the signing one first.
pub const CA_BUNDLE: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";

/// What the Secret holds (PEM text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Material {
    pub ca_bundle: String,
    pub ca_key: String,
    pub cert: String,
    pub key: String,
}

/// How certificates are made and when they are renewed.
#[derive(Debug, Clone)]
pub struct RenewalPolicy {
    /// Names and lifetime of the serving certificate.
    pub serving: ServingCertRequest,
    /// Renew the serving certificate when less than this is left.
    pub renew_before: Duration,
    /// Lifetime of a new CA.
    pub ca_valid_for: Duration,
}

/// Lifetimes that cannot work together, named by the flags that set them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifetimeError {
    #[error("certificate lifetime: {0}")]
    OutOfRange(String),
    #[error("--cert-renew-before ({renew_before}) must be shorter than --cert-validity ({valid_for})")]
    RenewAfterExpiry { renew_before: String, valid_for: String },
    #[error(
        "--ca-validity ({ca_valid_for}) must be longer than --cert-validity plus --cert-renew-before, or the CA \
         would be replaced at every check"
    )]
    CaTooShort { ca_valid_for: String },
}

impl RenewalPolicy {
    /// The policy for these lifetimes: renewal must come before expiry, and a CA must outlive a serving
    /// certificate plus its renewal period (`ca_renew_before`), or every check would replace it. Without a CA
    /// lifetime, a CA lives ten serving lifetimes.
    pub fn new(
        serving: ServingCertRequest,
        renew_before: std::time::Duration,
        ca_valid_for: Option<std::time::Duration>,
    ) -> Result<Self, LifetimeError> {
        let span = |duration: std::time::Duration| {
            Duration::try_from(duration).map_err(|error| LifetimeError::OutOfRange(error.to_string()))
        };
        let shown = |duration: Duration| humantime::format_duration(duration.unsigned_abs()).to_string();
        let valid_for = serving.valid_for;
        let renew_before = span(renew_before)?;
        if renew_before >= valid_for {
            return Err(LifetimeError::RenewAfterExpiry {
                renew_before: shown(renew_before),
                valid_for: shown(valid_for),
            });
        }
        let ca_valid_for = match ca_valid_for {
            Some(duration) => span(duration)?,
            None => valid_for * 10,
        };
        let policy = Self {
            serving,
            renew_before,
            ca_valid_for,
        };
        if ca_valid_for <= policy.ca_renew_before() {
            return Err(LifetimeError::CaTooShort {
                ca_valid_for: shown(ca_valid_for),
            });
        }
        Ok(policy)
    }

    /// A CA is replaced while it can still sign a full-length serving certificate and be trusted beside its
    /// successor for a renewal period.
    fn ca_renew_before(&self) -> Duration {
        self.serving.valid_for + self.renew_before
    }
}

/// Why the Secret's contents changed, for logs and events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// There was nothing usable: a new CA and serving certificate.
    Created { reason: String },
    /// The CA expires soon (or its key does not match): a new CA beside the old one, and a serving certificate from it.
    NewCa { reason: String },
    /// The serving certificate expires soon, names the wrong hosts, or was not signed by the CA: a new one.
    Reissued { reason: String },
    /// CAs that have expired left the bundle.
    Pruned { removed: usize },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Created { reason } => write!(f, "created a CA and serving certificate: {reason}"),
            Change::NewCa { reason } => write!(
                f,
                "rotated the CA (the old one stays trusted until it expires): {reason}"
            ),
            Change::Reissued { reason } => write!(f, "issued a new serving certificate: {reason}"),
            Change::Pruned { removed } => write!(f, "removed {removed} expired CA(s) from the bundle"),
        }
    }
}

/// The facts of one certificate that renewal looks at.
#[derive(Debug, Clone)]
pub struct CertFacts {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// DNS names and IP addresses among the subject alternative names, as text.
    pub names: Vec<String>,
    der: Vec<u8>,
}

impl CertFacts {
    pub fn parse_der(der: &[u8]) -> Result<Self, String> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|error| format!("not an X.509 certificate: {error}"))?;
        let mut names = Vec::new();
        for extension in cert.extensions() {
            if let ParsedExtension::SubjectAlternativeName(san) = extension.parsed_extension() {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(dns) => names.push(dns.to_string()),
                        GeneralName::IPAddress(bytes) => names.push(ip_text(bytes)),
                        _ => {}
                    }
                }
            }
        }
        Ok(CertFacts {
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            names,
            der: der.to_vec(),
        })
    }

    /// Whether `issuer`'s key signed this certificate.
    fn signed_by(&self, issuer: &CertFacts) -> bool {
        let (Ok((_, cert)), Ok((_, issuer))) = (
            X509Certificate::from_der(&self.der),
            X509Certificate::from_der(&issuer.der),
        ) else {
            return false;
        };
        cert.verify_signature(Some(issuer.public_key())).is_ok()
    }

    fn remaining(&self, now: OffsetDateTime) -> Duration {
        self.not_after - now
    }
}

fn ip_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).unwrap_or_default()).to_string(),
        16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).unwrap_or_default()).to_string(),
        _ => format!("{bytes:?}"),
    }
}

/// Every certificate of a PEM text, in order.
pub fn parse_pem_chain(pem: &str) -> Result<Vec<CertFacts>, String> {
    let ders: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|error| format!("unreadable PEM: {error}"))?;
    if ders.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    ders.iter().map(|der| CertFacts::parse_der(der)).collect()
}

/// The PEM blocks of a text, each with its trailing newline, so a bundle can be rebuilt from some of them.
fn pem_blocks(pem: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current = String::new();
    for line in pem.lines() {
        if line.starts_with("-----BEGIN CERTIFICATE-----") {
            current.clear();
        }
        current.push_str(line);
        current.push('\n');
        if line.starts_with("-----END CERTIFICATE-----") {
            blocks.push(std::mem::take(&mut current));
        }
    }
    blocks
}

/// Whether a PEM private key is the one of a certificate.
fn key_matches(cert: &CertFacts, key_pem: &str) -> bool {
    let Ok(key) = rcgen::KeyPair::from_pem(key_pem) else {
        return false;
    };
    let Ok((_, cert)) = X509Certificate::from_der(&cert.der) else {
        return false;
    };
    cert.public_key().subject_public_key.data.as_ref() == key.public_key_raw()
}

/// What the Secret should hold now, and why it changed (`None`: keep it as it is).
pub fn reconcile(
    stored: Option<&Material>,
    policy: &RenewalPolicy,
    now: OffsetDateTime,
) -> Result<(Material, Option<Change>), CertError> {
    let Some(stored) = stored else {
        return fresh(policy, "the Secret does not exist yet".into());
    };
    let bundle = match parse_pem_chain(&stored.ca_bundle) {
        Ok(bundle) => bundle,
        Err(error) => return fresh(policy, format!("{CA_BUNDLE}: {error}")),
    };
    let signing_ca = &bundle[0];
    if !key_matches(signing_ca, &stored.ca_key) {
        return fresh(
            policy,
            format!("{CA_KEY} is not the key of the first CA in {CA_BUNDLE}"),
        );
    }
    // Expired CAs leave the bundle (the signing one is replaced below before it gets there).
    let blocks = pem_blocks(&stored.ca_bundle);
    let live: Vec<usize> = (0..bundle.len())
        .filter(|&index| bundle[index].not_after > now)
        .collect();
    if signing_ca.remaining(now) < policy.ca_renew_before() {
        let kept: String = live.iter().filter_map(|&index| blocks.get(index).cloned()).collect();
        let ca = certs::generate_ca(&policy.serving.namespace, policy.ca_valid_for)?;
        let ca_not_after = OffsetDateTime::now_utc() + policy.ca_valid_for;
        let mut material = Material {
            ca_bundle: format!("{}{kept}", ca.cert),
            ca_key: ca.key.clone(),
            cert: stored.cert.clone(),
            key: stored.key.clone(),
        };
        // The serving certificate from the old CA stays until the API server trusts the new one: it is replaced at
        // the next pass, after this pass has set the new bundle. One that cannot be served anyway goes now.
        if serving_fault(stored, signing_ca, policy, now).is_some() {
            (material.cert, material.key) = certs::issue_serving(&ca, ca_not_after, &policy.serving)?;
        }
        let reason = format!("it expires at {}", signing_ca.not_after);
        return Ok((material, Some(Change::NewCa { reason })));
    }
    let mut material = stored.clone();
    let mut change = None;
    if live.len() < bundle.len() {
        material.ca_bundle = live.iter().filter_map(|&index| blocks.get(index).cloned()).collect();
        change = Some(Change::Pruned {
            removed: bundle.len() - live.len(),
        });
    }
    if let Some(reason) = serving_fault(stored, signing_ca, policy, now) {
        let ca = CaMaterial {
            cert: blocks.first().cloned().unwrap_or_default(),
            key: stored.ca_key.clone(),
        };
        let (cert, key) = certs::issue_serving(&ca, signing_ca.not_after, &policy.serving)?;
        material.cert = cert;
        material.key = key;
        change = Some(Change::Reissued { reason });
    }
    Ok((material, change))
}

/// Why the serving certificate must be replaced, if it must.
fn serving_fault(
    stored: &Material,
    signing_ca: &CertFacts,
    policy: &RenewalPolicy,
    now: OffsetDateTime,
) -> Option<String> {
    let serving = match parse_pem_chain(&stored.cert) {
        Ok(chain) => chain.into_iter().next()?,
        Err(error) => return Some(format!("{TLS_CERT}: {error}")),
    };
    if !key_matches(&serving, &stored.key) {
        return Some(format!("{TLS_KEY} is not the key of {TLS_CERT}"));
    }
    if !serving.signed_by(signing_ca) {
        return Some("it was not signed by the current CA".into());
    }
    let wanted = policy.serving.names();
    if let Some(missing) = wanted.iter().find(|name| !serving.names.contains(name)) {
        return Some(format!("it does not name {missing}"));
    }
    if serving.not_before > now {
        return Some(format!("it is not valid before {}", serving.not_before));
    }
    if serving.remaining(now) < policy.renew_before {
        return Some(format!("it expires at {}", serving.not_after));
    }
    None
}

fn fresh(policy: &RenewalPolicy, reason: String) -> Result<(Material, Option<Change>), CertError> {
    let ca = certs::generate_ca(&policy.serving.namespace, policy.ca_valid_for)?;
    let ca_not_after = OffsetDateTime::now_utc() + policy.ca_valid_for;
    let (cert, key) = certs::issue_serving(&ca, ca_not_after, &policy.serving)?;
    let material = Material {
        ca_bundle: ca.cert,
        ca_key: ca.key,
        cert,
        key,
    };
    Ok((material, Some(Change::Created { reason })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RenewalPolicy {
        RenewalPolicy {
            serving: ServingCertRequest {
                service: "beam-webhook".into(),
                namespace: "beamstack".into(),
                extra_names: vec!["127.0.0.1".into()],
                valid_for: Duration::days(30),
            },
            renew_before: Duration::days(7),
            ca_valid_for: Duration::days(300),
        }
    }

    #[test]
    fn lifetimes_that_cannot_work_together_are_refused_by_the_flag_that_sets_them() {
        let serving = policy().serving;
        let day = std::time::Duration::from_secs(86_400);
        let renewed = RenewalPolicy::new(serving.clone(), 7 * day, None).unwrap();
        assert_eq!(
            renewed.ca_valid_for,
            Duration::days(300),
            "ten serving lifetimes by default"
        );
        let late = RenewalPolicy::new(serving.clone(), 30 * day, None).unwrap_err();
        assert!(late.to_string().starts_with("--cert-renew-before (30days)"), "{late}");
        let short_ca = RenewalPolicy::new(serving.clone(), 7 * day, Some(37 * day)).unwrap_err();
        assert!(
            short_ca.to_string().starts_with("--ca-validity (1month 6days"),
            "{short_ca}"
        );
        assert!(RenewalPolicy::new(serving, 7 * day, Some(38 * day)).is_ok());
    }

    fn created() -> Material {
        let (material, change) = reconcile(None, &policy(), OffsetDateTime::now_utc()).unwrap();
        assert!(matches!(change, Some(Change::Created { .. })), "{change:?}");
        material
    }

    #[test]
    fn an_absent_secret_gets_a_ca_and_a_serving_certificate_for_every_service_name() {
        let material = created();
        let ca = parse_pem_chain(&material.ca_bundle).unwrap();
        assert_eq!(ca.len(), 1);
        let serving = &parse_pem_chain(&material.cert).unwrap()[0];
        assert!(serving.signed_by(&ca[0]));
        for name in policy().serving.names() {
            assert!(serving.names.contains(&name), "{name} missing from {:?}", serving.names);
        }
        assert!(key_matches(serving, &material.key));
        assert!(key_matches(&ca[0], &material.ca_key));
    }

    #[test]
    fn a_healthy_secret_is_kept_byte_for_byte() {
        let material = created();
        let (again, change) = reconcile(Some(&material), &policy(), OffsetDateTime::now_utc()).unwrap();
        assert_eq!(change, None);
        assert_eq!(again, material);
    }

    #[test]
    fn a_serving_certificate_near_expiry_is_reissued_from_the_same_ca_so_the_bundle_does_not_change() {
        let material = created();
        // 24 days on, 6 of its 30 days are left: inside the 7-day renewal window.
        let later = OffsetDateTime::now_utc() + Duration::days(24);
        let (renewed, change) = reconcile(Some(&material), &policy(), later).unwrap();
        assert!(
            matches!(change, Some(Change::Reissued { ref reason }) if reason.contains("expires")),
            "{change:?}"
        );
        assert_eq!(renewed.ca_bundle, material.ca_bundle);
        assert_eq!(renewed.ca_key, material.ca_key);
        assert_ne!(renewed.cert, material.cert);
        let ca = &parse_pem_chain(&renewed.ca_bundle).unwrap()[0];
        assert!(parse_pem_chain(&renewed.cert).unwrap()[0].signed_by(ca));
    }

    #[test]
    fn a_ca_near_expiry_is_replaced_and_the_old_one_stays_trusted_beside_it() {
        let material = created();
        // 270 of the CA's 300 days gone: 30 left, less than a serving lifetime plus a renewal window (37). The
        // serving certificate has expired by then, so it is replaced at once, from the new CA.
        let later = OffsetDateTime::now_utc() + Duration::days(270);
        let (rotated, change) = reconcile(Some(&material), &policy(), later).unwrap();
        assert!(matches!(change, Some(Change::NewCa { .. })), "{change:?}");
        let bundle = parse_pem_chain(&rotated.ca_bundle).unwrap();
        assert_eq!(bundle.len(), 2, "new CA first, old one still trusted");
        assert!(rotated.ca_bundle.ends_with(&material.ca_bundle));
        assert!(parse_pem_chain(&rotated.cert).unwrap()[0].signed_by(&bundle[0]));
        assert!(!parse_pem_chain(&rotated.cert).unwrap()[0].signed_by(&bundle[1]));
    }

    #[test]
    fn a_usable_serving_certificate_outlives_its_ca_rotation_by_one_pass() {
        // A CA with 35 days left (less than 30 + 7) and a fresh serving certificate from it.
        let ca = certs::generate_ca("beamstack", Duration::days(35)).unwrap();
        let ca_end = OffsetDateTime::now_utc() + Duration::days(35);
        let (cert, key) = certs::issue_serving(&ca, ca_end, &policy().serving).unwrap();
        let stored = Material {
            ca_bundle: ca.cert.clone(),
            ca_key: ca.key,
            cert,
            key,
        };
        let now = OffsetDateTime::now_utc();
        let (first, change) = reconcile(Some(&stored), &policy(), now).unwrap();
        assert!(matches!(change, Some(Change::NewCa { .. })), "{change:?}");
        assert_eq!(first.cert, stored.cert, "served until the API server has the new CA");
        assert_eq!(parse_pem_chain(&first.ca_bundle).unwrap().len(), 2);
        // The next pass: the certificate is not the current CA's, so it is replaced; the bundle stays.
        let (second, change) = reconcile(Some(&first), &policy(), now).unwrap();
        assert!(
            matches!(change, Some(Change::Reissued { ref reason }) if reason.contains("not signed by the current CA")),
            "{change:?}"
        );
        assert_eq!(second.ca_bundle, first.ca_bundle);
        let bundle = parse_pem_chain(&second.ca_bundle).unwrap();
        assert!(parse_pem_chain(&second.cert).unwrap()[0].signed_by(&bundle[0]));
        let (third, change) = reconcile(Some(&second), &policy(), now).unwrap();
        assert_eq!(change, None);
        assert_eq!(third, second);
    }

    #[test]
    fn expired_cas_leave_the_bundle() {
        let material = created();
        let old_ca = certs::generate_ca("beamstack", Duration::minutes(1)).unwrap();
        let with_old = Material {
            ca_bundle: format!("{}{}", material.ca_bundle, old_ca.cert),
            ..material.clone()
        };
        let later = OffsetDateTime::now_utc() + Duration::days(1);
        let (pruned, change) = reconcile(Some(&with_old), &policy(), later).unwrap();
        assert_eq!(change, Some(Change::Pruned { removed: 1 }));
        assert_eq!(pruned.ca_bundle, material.ca_bundle);
        assert_eq!(pruned.cert, material.cert);
    }

    #[test]
    fn a_serving_certificate_for_other_names_or_from_another_ca_is_replaced() {
        let material = created();
        let mut other_names = policy();
        other_names.serving.extra_names.push("webhook.example.com".into());
        let (_, change) = reconcile(Some(&material), &other_names, OffsetDateTime::now_utc()).unwrap();
        assert!(
            matches!(change, Some(Change::Reissued { ref reason }) if reason.contains("webhook.example.com")),
            "{change:?}"
        );

        let stranger = created();
        let mixed = Material {
            cert: stranger.cert,
            key: stranger.key,
            ..material
        };
        let (_, change) = reconcile(Some(&mixed), &policy(), OffsetDateTime::now_utc()).unwrap();
        assert!(
            matches!(change, Some(Change::Reissued { ref reason }) if reason.contains("not signed by the current CA")),
            "{change:?}"
        );
    }

    #[test]
    fn damaged_contents_start_over_with_the_reason() {
        let material = created();
        let cases = [
            (
                Material {
                    ca_bundle: "garbage".into(),
                    ..material.clone()
                },
                "ca.crt",
            ),
            (
                Material {
                    ca_key: created().ca_key,
                    ..material.clone()
                },
                "ca.key",
            ),
        ];
        for (damaged, named) in cases {
            let (_, change) = reconcile(Some(&damaged), &policy(), OffsetDateTime::now_utc()).unwrap();
            assert!(
                matches!(change, Some(Change::Created { ref reason }) if reason.contains(named)),
                "{named}: {change:?}"
            );
        }
        let swapped_key = Material {
            key: created().key,
            ..material
        };
        let (_, change) = reconcile(Some(&swapped_key), &policy(), OffsetDateTime::now_utc()).unwrap();
        assert!(
            matches!(change, Some(Change::Reissued { ref reason }) if reason.contains("tls.key")),
            "{change:?}"
        );
    }
}
