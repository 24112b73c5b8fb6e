//! Beam 2.77's transform types and what backs each: pure Python (runs in the Python SDK harness) or Java (needs an
//! expansion service when the pipeline is built and a Java SDK environment on the workers).

use std::collections::HashMap;
use std::sync::LazyLock;

const STANDARD: &str = include_str!("../../beam/standard_transform_types_2.77.0.txt");

/// What runs a transform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    Python,
    /// Java: the expansion-service targets that provide it (Gradle targets, as `--beam_services` keys).
    Java(Vec<String>),
}

#[derive(Debug, Clone)]
struct Entry {
    providers: String,
    java_targets: Vec<String>,
}

pub struct Catalogue {
    types: HashMap<String, Entry>,
}

pub static STANDARD_CATALOGUE: LazyLock<Catalogue> = LazyLock::new(|| Catalogue::parse(STANDARD));

impl Catalogue {
    fn parse(text: &str) -> Self {
        let mut types = HashMap::new();
        for line in text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        {
            let mut fields = line.split('\t');
            let (Some(name), Some(providers)) = (fields.next(), fields.next()) else {
                continue;
            };
            let java_targets = fields
                .next()
                .unwrap_or("")
                .split(';')
                .map(|target| target.split_whitespace().next().unwrap_or("").to_owned())
                .filter(|target| !target.is_empty())
                .collect();
            types.insert(
                name.to_owned(),
                Entry {
                    providers: providers.to_owned(),
                    java_targets,
                },
            );
        }
        Self { types }
    }

    /// The catalogue entry a `type` (with its `config.language`) resolves to, as Beam resolves it:
    /// `MapToFields` + `language: python` is `MapToFields-python`; no language is `-generic`.
    pub fn resolve(&self, transform_type: &str, language: Option<&str>) -> Option<(String, Backing)> {
        let candidates = [
            transform_type.to_owned(),
            format!("{transform_type}-{}", language.unwrap_or("generic")),
        ];
        candidates.into_iter().find_map(|name| {
            let entry = self.types.get(&name)?;
            Some((name, backing(entry)))
        })
    }

    pub fn is_known(&self, transform_type: &str) -> bool {
        self.types.contains_key(transform_type)
            || self.types.keys().any(|name| {
                name.strip_prefix(transform_type)
                    .is_some_and(|rest| rest.starts_with('-'))
            })
    }
}

fn backing(entry: &Entry) -> Backing {
    // Any provider that runs inline in Python wins: Beam prefers it, and it needs no Java.
    let python = entry.providers.split(',').map(str::trim).any(|provider| {
        matches!(
            provider,
            "InlineProvider" | "SpecProvider" | "RenamingProvider->InlineProvider"
        )
    });
    if python {
        Backing::Python
    } else {
        Backing::Java(entry.java_targets.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_and_java_transforms() {
        let catalogue = &*STANDARD_CATALOGUE;
        assert_eq!(catalogue.resolve("ReadFromText", None).unwrap().1, Backing::Python);
        assert_eq!(
            catalogue.resolve("MapToFields", Some("python")).unwrap(),
            ("MapToFields-python".into(), Backing::Python)
        );
        assert_eq!(
            catalogue.resolve("Filter", None).unwrap().1,
            Backing::Python,
            "generic runs inline"
        );
        assert!(matches!(catalogue.resolve("Sql", None).unwrap().1, Backing::Java(_)));
        assert!(matches!(
            catalogue.resolve("MapToFields", Some("java")).unwrap().1,
            Backing::Java(_)
        ));
        match catalogue.resolve("ReadFromKafka", None).unwrap().1 {
            Backing::Java(targets) => assert!(
                targets.iter().any(|t| t.contains("io:expansion-service")),
                "{targets:?}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(catalogue.resolve("ReadFromNowhere", None).is_none());
        assert!(catalogue.is_known("MapToFields") && !catalogue.is_known("MapTo"));
    }
}
