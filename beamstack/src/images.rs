//! Container image references: as registries read them, and Beam's Python SDK images (Python minor and tag).

use regex::Regex;
use std::sync::LazyLock;

/// `…/beam_python3.11_sdk:2.77.0`, with any registry or repository in front and an optional digest behind.
static PYTHON_SDK_IMAGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|/)beam_python(\d+\.\d+)_sdk(?::([^@/]+))?(?:@.*)?$").unwrap());

/// `registry/path` with Docker's implicit defaults spelled out: `flink:1.20` is `docker.io/library/flink:1.20`.
pub(crate) fn normalize_image(image: &str) -> String {
    let image = image.trim();
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            let (registry, rest) = image.split_once('/').unwrap_or((image, ""));
            let registry = if registry == "index.docker.io" {
                "docker.io"
            } else {
                registry
            };
            format!("{registry}/{rest}")
        }
        Some(_) => format!("docker.io/{image}"),
        None => format!("docker.io/library/{image}"),
    }
}

/// A Beam Python SDK image's Python minor and tag, if `image` is one.
pub(crate) fn parse_python_sdk_image(image: &str) -> Option<(String, Option<String>)> {
    let captures = PYTHON_SDK_IMAGE.captures(image)?;
    Some((
        captures[1].to_owned(),
        captures.get(2).map(|tag| tag.as_str().to_owned()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_normalize_like_docker() {
        assert_eq!(normalize_image("flink:1.20"), "docker.io/library/flink:1.20");
        assert_eq!(
            normalize_image("apache/beam_python3.11_sdk:2.77.0"),
            "docker.io/apache/beam_python3.11_sdk:2.77.0"
        );
        assert_eq!(normalize_image("ghcr.io/acme/job:1"), "ghcr.io/acme/job:1");
        assert_eq!(normalize_image("localhost/x"), "localhost/x");
        assert_eq!(normalize_image("registry:5000/x"), "registry:5000/x");
    }

    #[test]
    fn sdk_images_are_recognised() {
        assert_eq!(
            parse_python_sdk_image("apache/beam_python3.11_sdk:2.77.0"),
            Some(("3.11".into(), Some("2.77.0".into())))
        );
        assert_eq!(
            parse_python_sdk_image("registry:5000/mirror/beam_python3.10_sdk:2.76.0@sha256:abc"),
            Some(("3.10".into(), Some("2.76.0".into())))
        );
        assert_eq!(
            parse_python_sdk_image("apache/beam_python3.9_sdk"),
            Some(("3.9".into(), None))
        );
        assert_eq!(parse_python_sdk_image("flink:1.20"), None);
        assert_eq!(parse_python_sdk_image("apache/not_beam_python3.11_sdk:2.77.0"), None);
    }
}
