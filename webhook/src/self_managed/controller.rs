//! The IO of self-managed certificates: reads and writes the Secret, writes the files the TLS reloader serves, and
//! sets the caBundle of the webhook configurations.
//!
//! Every replica runs the same loop. Writes use the object's resourceVersion, so when two replicas renew at once
//! only one write lands; the other sees a conflict, reads again, and adopts what the winner stored. Each replica
//! serves what the Secret holds, so all of them present certificates from the trusted CA. The loop also repairs
//! drift: a `helm upgrade` or a person that resets the caBundle is corrected at the next check.

use super::{CA_BUNDLE, CA_KEY, Change, Material, RenewalPolicy, TLS_CERT, TLS_KEY, reconcile};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::core::ObjectMeta;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::OffsetDateTime;

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("Secret {namespace}/{name}: {source}")]
    Secret {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("{kind} {name}: {source}")]
    Configuration {
        kind: &'static str,
        name: String,
        source: kube::Error,
    },
    #[error("another replica wrote the Secret or a webhook configuration first; it is read again")]
    Conflict,
    #[error(transparent)]
    Cert(#[from] crate::certs::CertError),
    #[error("cannot write {path}: {source}")]
    File { path: String, source: std::io::Error },
}

/// Where the certificates live and what they are for.
#[derive(Debug, Clone)]
pub struct SelfManaged {
    pub secret_namespace: String,
    pub secret_name: String,
    /// Name of the MutatingWebhookConfiguration and ValidatingWebhookConfiguration whose caBundle we keep.
    pub configuration: String,
    pub policy: RenewalPolicy,
    /// The files the server reads (an emptyDir in the chart), written from the Secret.
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub check_interval: Duration,
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    pub change: Option<String>,
    pub files_written: bool,
    /// Configurations whose caBundle was set.
    pub patched: Vec<String>,
    /// Configurations that do not exist (yet): the chart creates them, maybe after the webhook starts.
    pub missing: Vec<String>,
}

impl SelfManaged {
    /// Brings the Secret, the served files and the caBundles in line once.
    pub async fn pass(&self, client: &kube::Client) -> Result<Pass, ControllerError> {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &self.secret_namespace);
        let secret_error = |source| ControllerError::Secret {
            namespace: self.secret_namespace.clone(),
            name: self.secret_name.clone(),
            source,
        };
        let existing = secrets.get_opt(&self.secret_name).await.map_err(secret_error)?;
        let stored = existing.as_ref().map(material_of);
        let (material, change) = reconcile(stored.as_ref(), &self.policy, OffsetDateTime::now_utc())?;
        if let Some(change) = &change {
            self.store(&secrets, existing, &material, change).await?;
        }
        let mut pass = Pass {
            change: change.map(|change| change.to_string()),
            ..Pass::default()
        };
        // The caBundles first: a certificate from a new CA is served only once the API server can trust it.
        self.set_ca_bundles(client, material.ca_bundle.as_bytes(), &mut pass)
            .await?;
        pass.files_written = self.write_files(&material)?;
        Ok(pass)
    }

    async fn store(
        &self,
        secrets: &Api<Secret>,
        existing: Option<Secret>,
        material: &Material,
        change: &Change,
    ) -> Result<(), ControllerError> {
        let conflict_or = |source: kube::Error| match &source {
            kube::Error::Api(status) if status.is_conflict() || status.is_already_exists() => ControllerError::Conflict,
            _ => ControllerError::Secret {
                namespace: self.secret_namespace.clone(),
                name: self.secret_name.clone(),
                source,
            },
        };
        let data = data_of(material);
        match existing {
            None => {
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(self.secret_name.clone()),
                        namespace: Some(self.secret_namespace.clone()),
                        labels: Some(BTreeMap::from([(
                            "app.kubernetes.io/managed-by".to_string(),
                            "beam-webhook".to_string(),
                        )])),
                        ..ObjectMeta::default()
                    },
                    type_: Some("kubernetes.io/tls".into()),
                    data: Some(data),
                    ..Secret::default()
                };
                secrets
                    .create(&PostParams::default(), &secret)
                    .await
                    .map_err(conflict_or)?;
            }
            Some(mut secret) => {
                // Only our four keys change; other keys, labels and annotations stay. The resourceVersion read
                // above makes the write fail if another replica wrote in between.
                secret.data.get_or_insert_with(BTreeMap::new).extend(data);
                secrets
                    .replace(&self.secret_name, &PostParams::default(), &secret)
                    .await
                    .map_err(conflict_or)?;
            }
        }
        tracing::info!(secret = %format!("{}/{}", self.secret_namespace, self.secret_name), "{change}");
        Ok(())
    }

    /// Writes the serving pair if it differs from what is on disk. Key first: the reloader refuses a mismatched pair
    /// and keeps the previous one until both files agree.
    fn write_files(&self, material: &Material) -> Result<bool, ControllerError> {
        let same = |path: &Path, contents: &str| std::fs::read(path).is_ok_and(|bytes| bytes == contents.as_bytes());
        if same(&self.cert_path, &material.cert) && same(&self.key_path, &material.key) {
            return Ok(false);
        }
        write_atomically(&self.key_path, &material.key, true)?;
        write_atomically(&self.cert_path, &material.cert, false)?;
        tracing::info!(cert = %self.cert_path.display(), "serving certificate written from the Secret");
        Ok(true)
    }

    async fn set_ca_bundles(
        &self,
        client: &kube::Client,
        bundle: &[u8],
        pass: &mut Pass,
    ) -> Result<(), ControllerError> {
        self.set_ca_bundles_of::<MutatingWebhookConfiguration>(client, bundle, pass)
            .await?;
        self.set_ca_bundles_of::<ValidatingWebhookConfiguration>(client, bundle, pass)
            .await
    }

    /// Sets the caBundle of every webhook of one configuration, when one of them differs.
    async fn set_ca_bundles_of<K: WebhookConfiguration>(
        &self,
        client: &kube::Client,
        bundle: &[u8],
        pass: &mut Pass,
    ) -> Result<(), ControllerError> {
        let api = Api::<K>::all(client.clone());
        let kind = K::KIND;
        let name = &self.configuration;
        // Two replicas setting the same bundle at once: the loser's write conflicts, and the winner's is what it
        // would have written.
        let error = |source: kube::Error| match &source {
            kube::Error::Api(status) if status.is_conflict() => ControllerError::Conflict,
            _ => ControllerError::Configuration {
                kind,
                name: name.clone(),
                source,
            },
        };
        let Some(mut configuration) = api.get_opt(name).await.map_err(error)? else {
            pass.missing.push(format!("{kind} {name}"));
            return Ok(());
        };
        if set_all(configuration.ca_bundles().into_iter(), bundle) {
            api.replace(name, &PostParams::default(), &configuration)
                .await
                .map_err(error)?;
            tracing::info!(configuration = %format!("{kind} {name}"), "caBundle set");
            pass.patched.push(format!("{kind} {name}"));
        }
        Ok(())
    }

    /// Runs passes until the serving files exist, so the server can start with a certificate the API server trusts.
    /// Errors (API server not reachable yet, a conflict) are logged and retried.
    pub async fn first_pass(&self, client: &kube::Client) -> Pass {
        let mut delay = Duration::from_millis(200);
        loop {
            match self.pass(client).await {
                Ok(pass) => return pass,
                Err(ControllerError::Conflict) => {}
                Err(error) => tracing::warn!(%error, "self-managed certificates: retrying"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }

    /// Checks every `check_interval` for the life of the process.
    pub async fn run(self, client: kube::Client) {
        let mut reported_missing = Vec::new();
        loop {
            tokio::time::sleep(self.check_interval).await;
            match self.pass(&client).await {
                Ok(pass) => {
                    if pass.missing != reported_missing {
                        for missing in &pass.missing {
                            tracing::warn!(configuration = %missing, "not found: its caBundle cannot be set");
                        }
                        reported_missing = pass.missing;
                    }
                }
                // The winner's write is read at the next pass; no need to hurry.
                Err(ControllerError::Conflict) => tracing::debug!("self-managed certificates: conflict, read again"),
                Err(error) => tracing::warn!(%error, "self-managed certificates: will retry"),
            }
        }
    }
}

/// The two kinds of webhook configuration, as far as their caBundles go.
trait WebhookConfiguration:
    kube::Resource<DynamicType = ()>
    + k8s_openapi::Metadata
    + Clone
    + std::fmt::Debug
    + serde::Serialize
    + serde::de::DeserializeOwned
{
    fn ca_bundles(&mut self) -> Vec<&mut Option<ByteString>>;
}

impl WebhookConfiguration for MutatingWebhookConfiguration {
    fn ca_bundles(&mut self) -> Vec<&mut Option<ByteString>> {
        let webhooks = self.webhooks.iter_mut().flatten();
        webhooks.map(|webhook| &mut webhook.client_config.ca_bundle).collect()
    }
}

impl WebhookConfiguration for ValidatingWebhookConfiguration {
    fn ca_bundles(&mut self) -> Vec<&mut Option<ByteString>> {
        let webhooks = self.webhooks.iter_mut().flatten();
        webhooks.map(|webhook| &mut webhook.client_config.ca_bundle).collect()
    }
}

/// Sets every caBundle to `bundle`; true when one of them differed.
fn set_all<'a>(ca_bundles: impl Iterator<Item = &'a mut Option<ByteString>>, bundle: &[u8]) -> bool {
    let mut changed = false;
    for ca_bundle in ca_bundles {
        if ca_bundle.as_ref().map(|bytes| bytes.0.as_slice()) != Some(bundle) {
            *ca_bundle = Some(ByteString(bundle.to_vec()));
            changed = true;
        }
    }
    changed
}

/// The Secret's four keys as text; a missing or non-UTF-8 key reads as empty, which `reconcile` treats as damaged.
fn material_of(secret: &Secret) -> Material {
    let text = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|data| data.get(key))
            .and_then(|bytes| String::from_utf8(bytes.0.clone()).ok())
            .unwrap_or_default()
    };
    Material {
        ca_bundle: text(CA_BUNDLE),
        ca_key: text(CA_KEY),
        cert: text(TLS_CERT),
        key: text(TLS_KEY),
    }
}

fn data_of(material: &Material) -> BTreeMap<String, ByteString> {
    [
        (CA_BUNDLE, &material.ca_bundle),
        (CA_KEY, &material.ca_key),
        (TLS_CERT, &material.cert),
        (TLS_KEY, &material.key),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), ByteString(value.as_bytes().to_vec())))
    .collect()
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
fn write_atomically(path: &Path, contents: &str, private: bool) -> Result<(), ControllerError> {
    let error = |source| ControllerError::File {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(error)?;
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, contents).map_err(error)?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600)).map_err(error)?;
    }
    let _ = private;
    std::fs::rename(&temporary, path).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ca_bundle_is_set_and_a_second_pass_changes_nothing() {
        let mut bundles = [None, Some(ByteString(b"old".to_vec()))];
        assert!(set_all(bundles.iter_mut(), b"new"));
        assert!(bundles.iter().all(|bundle| bundle.as_ref().unwrap().0 == b"new"));
        assert!(!set_all(bundles.iter_mut(), b"new"));
    }

    #[test]
    fn a_secret_missing_keys_reads_as_empty_material_and_round_trips() {
        let material = Material {
            ca_bundle: "a".into(),
            ca_key: "b".into(),
            cert: "c".into(),
            key: "d".into(),
        };
        let secret = Secret {
            data: Some(data_of(&material)),
            ..Secret::default()
        };
        assert_eq!(material_of(&secret), material);
        assert_eq!(material_of(&Secret::default()).ca_bundle, "");
    }

    #[test]
    fn files_are_replaced_whole_and_keys_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tls").join("tls.key");
        write_atomically(&path, "first", true).unwrap();
        write_atomically(&path, "second", true).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second");
        assert!(!dir.path().join("tls").join("tls.key.tmp").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
