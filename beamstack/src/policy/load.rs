//! Policies and tenants from YAML files: the `--policies DIR` of the webhook, the chart's shipped policies, and the
//! plugin's offline loop. Errors name the file and line, and for CEL the line inside the file where the expression
//! sits plus the column.

use super::compile::{PolicyError, compile};
use super::engine::PolicySet;
use super::model::{RunnerPolicy, Tenant};
use super::runtime::Runtime;
use super::tenants::TenantDirectory;
use kube::ResourceExt;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A problem with one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// One YAML document with where it came from.
#[derive(Debug, Clone)]
pub struct Document {
    pub file: PathBuf,
    /// The line the document starts on.
    pub line: usize,
    pub text: String,
    pub value: Value,
}

/// Every `.yaml`/`.yml` file below `dir` (sorted, so loading is deterministic), or `dir` itself if it is a file.
pub(crate) fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let error = |message: String| LoadError {
        file: dir.to_owned(),
        line: 0,
        message,
    };
    if dir.is_file() {
        return Ok(vec![dir.to_owned()]);
    }
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(folder) = pending.pop() {
        let entries = std::fs::read_dir(&folder).map_err(|e| error(format!("cannot read the folder: {e}")))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let hidden = path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with('.'));
            if hidden {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .is_some_and(|extension| extension == "yaml" || extension == "yml")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Splits a file into its YAML documents, each with its starting line.
pub fn documents(file: &Path, text: &str) -> Result<Vec<Document>, LoadError> {
    let mut chunks: Vec<(usize, String)> = vec![(1, String::new())];
    for (index, line) in text.lines().enumerate() {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            chunks.push((index + 2, String::new()));
        } else if let Some((_, chunk)) = chunks.last_mut() {
            chunk.push_str(line);
            chunk.push('\n');
        }
    }
    let mut out = Vec::new();
    for (line, chunk) in chunks {
        let value: Option<Value> = serde_saphyr::from_str(&chunk).map_err(|error| LoadError {
            file: file.to_owned(),
            line,
            message: format!("not valid YAML: {error}"),
        })?;
        if let Some(value) = value.filter(|value| !value.is_null()) {
            out.push(Document {
                file: file.to_owned(),
                line,
                text: chunk,
                value,
            });
        }
    }
    Ok(out)
}

/// Reads every document below `dir`. Documents of other kinds (PolicyTest, ...) are skipped.
pub fn read(dir: &Path) -> Result<Vec<Document>, Vec<LoadError>> {
    let files = yaml_files(dir).map_err(|error| vec![error])?;
    let mut all = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => match documents(&file, &text) {
                Ok(documents) => all.extend(documents),
                Err(error) => errors.push(error),
            },
            Err(error) => errors.push(LoadError {
                file,
                line: 0,
                message: error.to_string(),
            }),
        }
    }
    if errors.is_empty() { Ok(all) } else { Err(errors) }
}

fn kind_of(document: &Document) -> (Option<&str>, Option<&str>) {
    (
        document.value.get("apiVersion").and_then(Value::as_str),
        document.value.get("kind").and_then(Value::as_str),
    )
}

fn decode<T: serde::de::DeserializeOwned>(document: &Document) -> Result<T, LoadError> {
    serde_path_to_error::deserialize(&document.value).map_err(|error| LoadError {
        file: document.file.clone(),
        line: document.line,
        message: format!("{} at `{}`", error.inner(), error.path()),
    })
}

/// The line in the file of a policy error: where its expression's first line appears in the document.
fn locate(document: &Document, error: &PolicyError, policy: &RunnerPolicy) -> usize {
    let source = expression_at(policy, &error.field);
    let cel_line = error
        .message
        .strip_prefix("CEL line ")
        .and_then(|rest| rest.split(',').next())
        .and_then(|line| line.trim().parse::<usize>().ok())
        .unwrap_or(1);
    source
        .and_then(|source| {
            let first = source.lines().next()?.trim();
            let offset = document
                .text
                .lines()
                .position(|line| !first.is_empty() && line.contains(first))?;
            Some(document.line + offset + cel_line - 1)
        })
        .unwrap_or(document.line)
}

fn expression_at<'a>(policy: &'a RunnerPolicy, field: &str) -> Option<&'a str> {
    let index = |prefix: &str| -> Option<usize> { field.strip_prefix(prefix)?.split(']').next()?.parse().ok() };
    let spec = &policy.spec;
    if let Some(index) = index("spec.validations[") {
        let validation = spec.validations.get(index)?;
        return Some(if field.ends_with("messageExpression") {
            validation.message_expression.as_deref()?
        } else {
            &validation.expression
        });
    }
    if let Some(index) = index("spec.variables[") {
        return Some(&spec.variables.get(index)?.expression);
    }
    if let Some(index) = index("spec.matchConditions[") {
        return Some(&spec.match_conditions.get(index)?.expression);
    }
    if let Some(index) = index("spec.mutations[") {
        return Some(&spec.mutations.get(index)?.expression);
    }
    None
}

/// A document that means to be a policy or tenant but names an apiVersion or kind that does not exist
/// (`beamstack.dev/v1`, `kind: RunnerPolicies`, a RunnerPolicy without its apiVersion). Skipping it like a document of
/// another API would silently drop the policy it was meant to be, so it is an error. PolicyTest documents and
/// other APIs' objects (the test cases' resources) are skipped.
fn misdeclared(api_version: Option<&str>, kind: Option<&str>) -> bool {
    let our_group = api_version.is_some_and(|version| version.split('/').next() == Some("beamstack.dev"));
    match kind {
        Some("PolicyTest") if our_group => api_version != Some("beamstack.dev/v1alpha1"),
        Some("RunnerPolicy" | "Tenant") => true,
        _ => our_group,
    }
}

/// The policies and tenants of a set of documents, compiled. Any error means no set: the caller keeps its last
/// good one.
pub fn build(
    documents: &[Document],
    runtime: &Runtime,
) -> Result<(PolicySet, Vec<RunnerPolicy>, Vec<Tenant>), Vec<LoadError>> {
    let mut errors = Vec::new();
    let mut policies = Vec::new();
    let mut compiled = Vec::new();
    let mut tenants = Vec::new();
    let mut names: HashMap<String, (PathBuf, usize)> = HashMap::new();
    for document in documents {
        match kind_of(document) {
            (Some("beamstack.dev/v1alpha1"), Some("RunnerPolicy")) => match decode::<RunnerPolicy>(document) {
                Ok(policy) => {
                    let name = policy.name_any();
                    if let Some((file, line)) =
                        names.insert(format!("policy/{name}"), (document.file.clone(), document.line))
                    {
                        errors.push(LoadError {
                            file: document.file.clone(),
                            line: document.line,
                            message: format!("RunnerPolicy {name:?} is also defined at {}:{line}", file.display()),
                        });
                        continue;
                    }
                    match compile(&policy, runtime) {
                        Ok(policy) => compiled.push(policy),
                        Err(error) => errors.push(LoadError {
                            file: document.file.clone(),
                            line: locate(document, &error, &policy),
                            message: error.to_string(),
                        }),
                    }
                    policies.push(policy);
                }
                Err(error) => errors.push(error),
            },
            (Some("beamstack.dev/v1alpha1"), Some("Tenant")) => match decode::<Tenant>(document).and_then(|tenant| {
                super::check_tenant(&tenant).map(|()| tenant).map_err(|bad| LoadError {
                    file: document.file.clone(),
                    line: document.line,
                    message: bad.to_string(),
                })
            }) {
                Ok(tenant) => tenants.push(tenant),
                Err(error) => errors.push(error),
            },
            (api_version, kind) if misdeclared(api_version, kind) => errors.push(LoadError {
                file: document.file.clone(),
                line: document.line,
                message: format!(
                    "apiVersion {} kind {} is not a kind the webhook knows: RunnerPolicy and Tenant are \
                     beamstack.dev/v1alpha1",
                    api_version.unwrap_or("(none)"),
                    kind.unwrap_or("(none)")
                ),
            }),
            _ => {}
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let set = PolicySet {
        policies: compiled,
        tenants: TenantDirectory::new(tenants.clone(), HashMap::new()),
    };
    Ok((set, policies, tenants))
}

/// A policy folder that is re-read when its contents change.
#[derive(Debug)]
pub struct DirectorySource {
    dir: PathBuf,
    fingerprint: std::sync::Mutex<Option<u64>>,
}

/// What one look at the folder found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    Unchanged,
    /// A new set is in force, with this many policies and tenants.
    Installed {
        policies: usize,
        tenants: usize,
    },
    /// The folder changed but does not compile: the previous set stays in force.
    Rejected(Vec<LoadError>),
}

impl DirectorySource {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            fingerprint: std::sync::Mutex::new(None),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn fingerprint(&self) -> Result<u64, LoadError> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for file in yaml_files(&self.dir)? {
            file.hash(&mut hasher);
            std::fs::read(&file)
                .map_err(|error| LoadError {
                    file: file.clone(),
                    line: 0,
                    message: error.to_string(),
                })?
                .hash(&mut hasher);
        }
        Ok(hasher.finish())
    }

    /// Re-reads the folder if its contents changed, and installs the new set only if all of it compiles.
    pub fn poll(&self, engine: &super::engine::Engine) -> Reload {
        let fingerprint = match self.fingerprint() {
            Ok(fingerprint) => fingerprint,
            Err(error) => return Reload::Rejected(vec![error]),
        };
        let mut last = self.fingerprint.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if *last == Some(fingerprint) {
            return Reload::Unchanged;
        }
        *last = Some(fingerprint);
        let documents = match read(&self.dir) {
            Ok(documents) => documents,
            Err(errors) => return Reload::Rejected(errors),
        };
        match build(&documents, engine.runtime()) {
            Ok((set, policies, tenants)) => {
                engine.install(set);
                Reload::Installed {
                    policies: policies.len(),
                    tenants: tenants.len(),
                }
            }
            Err(errors) => Reload::Rejected(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(text: &str) -> Vec<LoadError> {
        let documents = documents(Path::new("p.yaml"), text).unwrap();
        build(&documents, &Runtime::new()).err().unwrap_or_default()
    }

    #[test]
    fn a_policy_of_an_unknown_api_version_or_kind_is_refused_not_skipped() {
        let policy = "kind: RunnerPolicy\nmetadata: {name: p}\nspec:\n  validations:\n    - expression: 'true'\n";
        for header in ["apiVersion: beamstack.dev/v1\n", "apiVersion: v1\n", ""] {
            let errors = errors_of(&format!("{header}{policy}"));
            assert_eq!(errors.len(), 1, "{header}: {errors:?}");
            assert!(errors[0].message.contains("not a kind the webhook knows"), "{errors:?}");
        }
        let errors = errors_of("apiVersion: beamstack.dev/v1alpha1\nkind: RunnerPolicies\nmetadata: {name: p}\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        // Policy tests and other APIs' objects are not policies: skipped.
        for other in [
            "apiVersion: beamstack.dev/v1alpha1\nkind: PolicyTest\nmetadata: {name: t}\n",
            "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata: {name: f}\n",
        ] {
            assert!(errors_of(other).is_empty(), "{other}");
        }
    }
}
