//! The versions Beamstack reads: Beam releases, Python minors, and the Flink operator's `v1_19` notation.

use regex::Regex;
use std::sync::LazyLock;

/// The Flink operator's `spec.flinkVersion` values: `v1_19`, `v1_20`, ...
pub(crate) static FLINK_VERSION_PATTERN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^v\d+_\d+$").unwrap());
static BEAM_VERSION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\d+\.\d+\.\d+(?:[-.]?(?:rc|dev)\d*)?$").unwrap());
static PYTHON_MINOR: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^3\.\d{1,2}$").unwrap());

/// A Beam release (`2.77.0`) or release candidate (`2.78.0rc1`).
pub(crate) fn is_beam_version(text: &str) -> bool {
    BEAM_VERSION.is_match(text)
}

/// A Python minor (`3.11`): Beam's SDK images are made per minor.
pub(crate) fn is_python_minor(text: &str) -> bool {
    PYTHON_MINOR.is_match(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beam_releases_and_python_minors() {
        assert!(is_beam_version("2.77.0"));
        assert!(is_beam_version("2.78.0rc1"));
        assert!(!is_beam_version("2.77"));
        assert!(is_python_minor("3.11"));
        assert!(!is_python_minor("3.11.4"));
    }

    #[test]
    fn flink_versions_are_the_operators_notation() {
        assert!(FLINK_VERSION_PATTERN.is_match("v1_19"));
        assert!(!FLINK_VERSION_PATTERN.is_match("1.19"));
    }
}
