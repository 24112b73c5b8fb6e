//! A Beam YAML pipeline from its file: rendered with Jinja as Beam does, parsed with line numbers, checked against
//! Beam's schema and Beam's own structural rules, and its transforms classified (Python or Java-backed).

pub mod catalogue;
pub mod checks;
pub mod render;
pub mod schema;
pub mod yaml;

use catalogue::Backing;
use checks::TransformInfo;
use serde_json::Value;
use std::fmt;
use std::path::{Path, PathBuf};

/// One problem, located: file, line and transform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineError {
    pub file: PathBuf,
    pub line: Option<u64>,
    pub transform: Option<String>,
    pub message: String,
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(transform) = &self.transform {
            write!(f, ": transform {transform:?}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// How to read a pipeline.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Jinja variables (from `--jinja-variables FILE` and `--set`).
    pub variables: Value,
    /// More folders to look up Jinja includes in.
    pub search_path: Vec<PathBuf>,
}

/// The pipelines of a Beam test-spec file (a top-level `pipelines:` list), each with its line keys.
pub fn pipelines_of(document: &Value) -> Vec<Value> {
    match document.get("pipelines").and_then(Value::as_array) {
        Some(items) => items.clone(),
        None => vec![document.clone()],
    }
}

/// What a pipeline file was made of: its source and the templates it included.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub source: String,
    pub includes: Vec<(String, String)>,
    pub variables: Value,
}

/// Renders and parses a file (with line keys), without checking it.
pub fn read(file: &Path, options: &LoadOptions) -> Result<(String, Value), PipelineError> {
    read_with_sources(file, options).map(|(rendered, document, _)| (rendered, document))
}

pub fn read_with_sources(file: &Path, options: &LoadOptions) -> Result<(String, Value, Sources), PipelineError> {
    let error = |message: String| PipelineError {
        file: file.to_owned(),
        line: None,
        transform: None,
        message,
    };
    let source = std::fs::read_to_string(file).map_err(|e| error(format!("cannot read: {e}")))?;
    let search = render::search_path(file, &options.search_path);
    let name = file
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("pipeline.yaml");
    let variables = if options.variables.is_null() {
        Value::Object(Default::default())
    } else {
        options.variables.clone()
    };
    let (rendered, includes) = render::render_with_includes(name, &source, &variables, &search).map_err(error)?;
    let document = yaml::parse(&rendered).map_err(|message| error(format!("not valid YAML: {message}")))?;
    Ok((
        rendered,
        document,
        Sources {
            source,
            includes,
            variables,
        },
    ))
}

/// A pipeline that passed every check.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub file: PathBuf,
    /// The file as rendered by Jinja: what goes into the ConfigMap and what Beam reads.
    pub rendered: String,
    /// The parsed document, without line keys.
    pub document: Value,
    pub transforms: Vec<TransformInfo>,
    pub sources: Sources,
}

impl Pipeline {
    /// The file's `options:`, which Beam lets override command-line flags of the same name.
    pub fn options(&self) -> serde_json::Map<String, Value> {
        self.document
            .get("options")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }

    /// Transforms that need Java (an expansion service, and a Java environment on the workers).
    pub fn java_transforms(&self) -> Vec<&TransformInfo> {
        self.transforms
            .iter()
            .filter(|transform| matches!(transform.backing, Backing::Java(_)))
            .collect()
    }

    pub fn name(&self) -> String {
        let stem = self
            .file
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or("pipeline");
        kubernetes_name(stem)
    }
}

/// A DNS-1035 label from any string: lowercase, `-` for anything else, starting with a letter, at most 45 chars
/// (the Flink operator's limit).
pub fn kubernetes_name(text: &str) -> String {
    let mut name: String = text
        .chars()
        .map(|character| {
            if character.is_ascii_alphanumeric() {
                character.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    let mut name = name.trim_matches('-').to_owned();
    if !name.starts_with(|character: char| character.is_ascii_lowercase()) {
        name.insert_str(0, "p-");
    }
    name.truncate(45);
    name.trim_end_matches('-').to_owned()
}

/// Reads, renders and checks a pipeline file; every problem found is returned, not only the first.
pub fn load(file: &Path, options: &LoadOptions) -> Result<Pipeline, Vec<PipelineError>> {
    let (rendered, document, sources) = read_with_sources(file, options).map_err(|error| vec![error])?;
    let mut pipeline = check_document(file, rendered, document)?;
    pipeline.sources = sources;
    Ok(pipeline)
}

/// The checks on a parsed document (with line keys).
pub fn check_document(file: &Path, rendered: String, document: Value) -> Result<Pipeline, Vec<PipelineError>> {
    let error = |line: Option<u64>, transform: Option<String>, message: String| PipelineError {
        file: file.to_owned(),
        line,
        transform,
        message,
    };
    if !document.is_object() {
        return Err(vec![error(
            None,
            None,
            "a pipeline file is a mapping with a `pipeline:` key".into(),
        )]);
    }
    let mut errors: Vec<PipelineError> = schema::check(&document)
        .into_iter()
        .map(|(line, transform, message)| error(line, transform, message))
        .collect();
    let report = checks::check(&document);
    errors.extend(
        report
            .problems
            .into_iter()
            .map(|problem| error(problem.line, problem.transform, problem.message)),
    );
    if !errors.is_empty() {
        errors.sort_by_key(|problem| problem.line);
        return Err(errors);
    }
    Ok(Pipeline {
        file: file.to_owned(),
        rendered,
        document: yaml::strip_lines(&document),
        transforms: report.transforms,
        sources: Sources::default(),
    })
}
