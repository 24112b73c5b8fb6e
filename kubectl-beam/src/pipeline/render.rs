//! Jinja rendering the way Beam does it before parsing: undefined variables are errors (StrictUndefined), and
//! `include`/`import`/`extends` names are looked up in the pipeline's folder, the extra search paths (Beam also
//! looks in its install folder; pass `--jinja-search-path` for that), and the working directory.

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Where templates are looked up, in order.
pub fn search_path(pipeline_file: &Path, extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(folder) = pipeline_file.parent() {
        paths.push(if folder.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            folder.to_owned()
        });
    }
    paths.extend(extra.iter().cloned());
    paths.push(PathBuf::from("."));
    paths
}

/// Beam drops the comment lines a file starts with before rendering (`strip_leading_comments`); they are blanked
/// here instead, so line numbers in errors stay those of the file.
pub fn blank_leading_comments(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut leading = true;
    for line in source.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if leading && (trimmed.starts_with('#') || trimmed.trim().is_empty()) {
            if line.ends_with('\n') {
                out.push('\n');
            }
            continue;
        }
        leading = false;
        out.push_str(line);
    }
    out
}

/// Renders `source` with `variables`. Errors carry the template name and line Jinja reports.
pub fn render(name: &str, source: &str, variables: &Value, search: &[PathBuf]) -> Result<String, String> {
    render_with_includes(name, source, variables, search).map(|(rendered, _)| rendered)
}

/// Renders, and returns every template it included or imported (name as written, contents).
pub fn render_with_includes(
    name: &str,
    source: &str,
    variables: &Value,
    search: &[PathBuf],
) -> Result<(String, Vec<(String, String)>), String> {
    let source = &blank_leading_comments(source);
    let included: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>> = Default::default();
    let record = std::sync::Arc::clone(&included);
    let mut environment = Environment::new();
    environment.set_undefined_behavior(UndefinedBehavior::Strict);
    // Beam renders with Jinja2's defaults otherwise (a single trailing newline is dropped, as here).
    let search = search.to_vec();
    environment.set_loader(move |template: &str| {
        for folder in &search {
            let candidate = folder.join(template);
            if candidate.is_file() {
                let contents = std::fs::read_to_string(&candidate).map_err(|error| {
                    minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        format!("{}: {error}", candidate.display()),
                    )
                })?;
                if let Ok(mut included) = record.lock()
                    && !included.iter().any(|(name, _)| name == template)
                {
                    included.push((template.to_owned(), contents.clone()));
                }
                return Ok(Some(contents));
            }
        }
        Ok(None)
    });
    // minijinja 3.0.5 panics (`unreachable!` in its code generator) on some malformed tags, such as
    // `{% import 'x' as m/r %}` (found by fuzz/fuzz_targets/beam_yaml.rs): the panic becomes an error here.
    let rendered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<String, String> {
        environment
            .add_template_owned(name.to_owned(), source.to_owned())
            .map_err(|error| describe(&error))?;
        let template = environment.get_template(name).map_err(|error| describe(&error))?;
        template
            .render(minijinja::value::Serde(variables))
            .map_err(|error| describe(&error))
    }))
    .unwrap_or_else(|_| {
        Err(format!(
            "{name}: the Jinja engine failed on this template (a malformed tag, such as `import ... as` with \
             something other than a name?)"
        ))
    })?;
    let included = included.lock().map(|included| included.clone()).unwrap_or_default();
    Ok((rendered, included))
}

fn describe(error: &minijinja::Error) -> String {
    let mut message = match (error.name(), error.line()) {
        (Some(name), Some(line)) => format!("{name}:{line}: {}", error.kind()),
        _ => error.kind().to_string(),
    };
    if let Some(detail) = error.detail() {
        message.push_str(": ");
        message.push_str(detail);
    }
    if error.kind() == minijinja::ErrorKind::UndefinedError {
        message.push_str(" (pass it with --jinja-variables FILE or --set name=value)");
    }
    if error.kind() == minijinja::ErrorKind::TemplateNotFound {
        message.push_str(" (looked in the pipeline's folder, --jinja-search-path folders and the working directory)");
    }
    message
}

/// Variables from `--set name=value` pairs: values are read as YAML scalars (`3` is a number, `a` a string);
/// dotted names nest (`source.path=x`).
pub fn set_variable(variables: &mut Value, assignment: &str) -> Result<(), String> {
    let (name, value) = assignment
        .split_once('=')
        .ok_or_else(|| format!("--set {assignment}: expected name=value"))?;
    let parsed: Value = serde_saphyr::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    let parsed = if parsed.is_null() && !value.is_empty() {
        Value::String(value.to_owned())
    } else {
        parsed
    };
    let mut node = variables;
    let segments: Vec<&str> = name.split('.').collect();
    for segment in &segments[..segments.len() - 1] {
        if !node.is_object() {
            *node = Value::Object(Default::default());
        }
        node = node
            .as_object_mut()
            .unwrap()
            .entry(*segment)
            .or_insert_with(|| Value::Object(Default::default()));
    }
    if !node.is_object() {
        *node = Value::Object(Default::default());
    }
    node.as_object_mut()
        .unwrap()
        .insert(segments[segments.len() - 1].to_owned(), parsed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn undefined_variables_are_errors_with_a_hint() {
        let error = render("p.yaml", "path: {{ input_path }}\n", &json!({}), &[]).unwrap_err();
        assert!(error.contains("undefined") && error.contains("--set"), "{error}");
        assert_eq!(
            render("p.yaml", "path: {{ input_path }}\n", &json!({"input_path": "/x"}), &[]).unwrap(),
            "path: /x"
        );
    }

    #[test]
    fn a_template_the_engine_panics_on_is_an_error() {
        // Regression (fuzz/regressions/beam_yaml-import-as-expression.yaml): minijinja's code generator hit
        // `unreachable!` on an import whose name is an expression, and `kubectl beam validate` panicked.
        for source in ["{%import''as m/r%}", "{% import 'x.yaml' as 1 %}\npipeline: {}\n"] {
            let error = render("p.yaml", source, &json!({}), &[]).unwrap_err();
            assert!(error.contains("p.yaml") && error.contains("Jinja"), "{error}");
        }
    }

    #[test]
    fn set_reads_scalars_and_nests() {
        let mut variables = json!({});
        set_variable(&mut variables, "count=3").unwrap();
        set_variable(&mut variables, "source.path=/data/in.txt").unwrap();
        set_variable(&mut variables, "flag=true").unwrap();
        assert_eq!(
            variables,
            json!({"count": 3, "source": {"path": "/data/in.txt"}, "flag": true})
        );
        assert!(set_variable(&mut variables, "novalue").is_err());
    }
}
