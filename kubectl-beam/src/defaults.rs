//! Where a run's settings come from when no flag names them, lowest first: the built-in version table, the
//! ConfigMap the Helm chart publishes in the cluster (so users need not know image names), the user's config file,
//! then the command line.
//!
//! The file and the ConfigMap's `defaults.yaml` key share one format (`charts/beamstack/values.yaml`
//! `pluginDefaults`, and docs/plugin.md, "Defaults"):
//!
//! ```yaml
//! runner: flink
//! beamVersion: "2.77.0"
//! flinkVersion: "1.20"
//! pythonVersion: "3.11"
//! imageRepository: registry.example.com/flink
//! launcherImage: registry.example.com/beam_python3.11_sdk:2.77.0
//! jobServerImage: registry.example.com/beam_flink1.20_job_server:2.77.0
//! javaImage: registry.example.com/beam-java-transforms:2.77.0
//! serviceAccount: flink
//! prometheus: http://prometheus.monitoring:9090
//! beamServices: {"sdks:java:extensions:sql:expansion-service:shadowJar": "expansion.beam:8097"}
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The chart's plugin-defaults ConfigMap, and the key that holds the settings.
pub const CONFIG_MAP_NAME: &str = "beamstack-plugin-defaults";
pub const CONFIG_MAP_KEY: &str = "defaults.yaml";

/// Where the chart is installed: $BEAMSTACK_NAMESPACE, else `beamstack` (the chart's documented namespace).
pub fn chart_namespace() -> String {
    std::env::var("BEAMSTACK_NAMESPACE")
        .ok()
        .filter(|namespace| !namespace.is_empty())
        .unwrap_or_else(|| "beamstack".into())
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Defaults {
    pub runner: Option<String>,
    pub beam_version: Option<String>,
    pub flink_version: Option<String>,
    pub python_version: Option<String>,
    pub image: Option<String>,
    pub image_repository: Option<String>,
    pub launcher_image: Option<String>,
    pub job_server_image: Option<String>,
    pub java_image: Option<String>,
    pub service_account: Option<String>,
    pub prometheus: Option<String>,
    pub beam_services: Option<BTreeMap<String, String>>,
}

impl Defaults {
    /// Reads the format above; `origin` names the file or ConfigMap in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Defaults, String> {
        if text.trim().is_empty() {
            return Ok(Defaults::default());
        }
        serde_saphyr::from_str(text).map_err(|error| {
            format!(
                "{origin}: {error} (known keys: runner, beamVersion, flinkVersion, pythonVersion, image, \
                 imageRepository, launcherImage, jobServerImage, javaImage, serviceAccount, prometheus, beamServices)"
            )
        })
    }

    /// Every setting of `self`, with those `higher` sets taking their place.
    pub fn overlaid_with(self, higher: Defaults) -> Defaults {
        Defaults {
            runner: higher.runner.or(self.runner),
            beam_version: higher.beam_version.or(self.beam_version),
            flink_version: higher.flink_version.or(self.flink_version),
            python_version: higher.python_version.or(self.python_version),
            image: higher.image.or(self.image),
            image_repository: higher.image_repository.or(self.image_repository),
            launcher_image: higher.launcher_image.or(self.launcher_image),
            job_server_image: higher.job_server_image.or(self.job_server_image),
            java_image: higher.java_image.or(self.java_image),
            service_account: higher.service_account.or(self.service_account),
            prometheus: higher.prometheus.or(self.prometheus),
            beam_services: higher.beam_services.or(self.beam_services),
        }
    }
}

/// The user's config file: $BEAMSTACK_CONFIG, else $XDG_CONFIG_HOME/beamstack/config.yaml, else
/// ~/.config/beamstack/config.yaml.
pub fn user_file() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("BEAMSTACK_CONFIG") {
        return Some(PathBuf::from(path));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".config")))?;
    Some(base.join("beamstack").join("config.yaml"))
}

/// The user's defaults; a missing file is no defaults, a broken one an error naming it.
pub fn read_user_file(path: Option<&Path>) -> Result<Defaults, String> {
    let Some(path) = path else {
        return Ok(Defaults::default());
    };
    match std::fs::read_to_string(path) {
        Ok(text) => Defaults::parse(&text, &path.display().to_string()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Defaults::default()),
        Err(error) => Err(format!("{}: {error}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn higher_layers_win_key_by_key() {
        let cluster = Defaults::parse(
            "imageRepository: registry.example.com/flink-beam\nbeamVersion: \"2.76.0\"\nprometheus: http://p:9090\n",
            "cluster",
        )
        .unwrap();
        let user = Defaults::parse("beamVersion: \"2.77.0\"\nrunner: spark\n", "user").unwrap();
        let merged = cluster.overlaid_with(user);
        assert_eq!(merged.beam_version.as_deref(), Some("2.77.0"));
        assert_eq!(merged.runner.as_deref(), Some("spark"));
        assert_eq!(
            merged.image_repository.as_deref(),
            Some("registry.example.com/flink-beam")
        );
        assert_eq!(merged.prometheus.as_deref(), Some("http://p:9090"));
    }

    #[test]
    fn unknown_keys_are_named() {
        let error = Defaults::parse("beamVersoin: \"2.77.0\"\n", "~/.config/beamstack/config.yaml").unwrap_err();
        assert!(error.contains("beamVersoin"), "{error}");
        assert!(error.contains("known keys"), "{error}");
        assert_eq!(Defaults::parse("", "x"), Ok(Defaults::default()));
    }

    #[test]
    fn a_missing_file_is_no_defaults() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            read_user_file(Some(&dir.path().join("none.yaml"))),
            Ok(Defaults::default())
        );
        let file = dir.path().join("config.yaml");
        std::fs::write(&file, "runner: [flink]\n").unwrap();
        assert!(read_user_file(Some(&file)).unwrap_err().contains("config.yaml"));
    }
}
