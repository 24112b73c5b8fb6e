//! A Beam YAML pipeline file through what `kubectl beam run --dry-run=client` does with it: Jinja rendering (with
//! the variables and include folders of examples/beam/jinja), parsing with line numbers, Beam's schema and
//! structural checks, and the conversion to the runners' objects (Flink application and session mode, Spark).
//!
//! Asserts: no panic; every problem is an error with a message; a pipeline that passes the checks converts, or is
//! refused with a message; the objects are a ConfigMap and a runner object with names; and the ConfigMap's
//! `pipeline.yaml`, which the launcher's Beam renders with Jinja again, renders back to the pipeline that was
//! checked (trailing newlines aside).

#![no_main]

use beamstack_fuzz::repo;
use kubectl_beam::convert::versions::{self, Versions};
use kubectl_beam::convert::{self, RunSettings, Runner};
use kubectl_beam::pipeline::{self, render, yaml};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

struct Setup {
    variables: Value,
    search: Vec<PathBuf>,
    versions: Versions,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        // minijinja 3.0.5 panics on some malformed tags (`{% import 'x' as m/r %}`); render_with_includes catches
        // that and answers an error, so such a panic is not a crash. Every other panic still aborts (libFuzzer's
        // hook, kept as `previous`), and so would one of those escaping render_with_includes.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info
                .location()
                .is_some_and(|location| location.file().contains("/minijinja-"))
            {
                previous(info);
            }
        }));
        let jinja = repo().join("examples/beam/jinja");
        let variables = std::fs::read_to_string(jinja.join("jinja_variables.json")).expect("jinja variables");
        let mut variables: Value = serde_json::from_str(&variables).expect("variables JSON");
        variables["count"] = json!(3);
        variables["flag"] = json!(true);
        variables["items"] = json!(["a", "b"]);
        Setup {
            variables,
            search: vec![jinja.join("include"), jinja.join("import")],
            versions: Versions::resolve(
                versions::DEFAULT_BEAM,
                versions::DEFAULT_FLINK,
                versions::DEFAULT_PYTHON,
            )
            .expect("default versions"),
        }
    })
}

/// Renders the ConfigMap's pipeline as Beam's launcher does: Jinja with no variables, undefined names are errors.
fn render_again(text: &str) -> Result<String, minijinja::Error> {
    let mut environment = minijinja::Environment::new();
    environment.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    environment.render_str(text, minijinja::context! {})
}

fn settings_list(versions: &Versions) -> Vec<RunSettings> {
    let mut list = Vec::new();
    let base = RunSettings::new("pipeline", "team-a", versions.clone());
    list.push(base.clone());
    let mut session = base.clone();
    session.session = Some("session-cluster".into());
    session.parallelism = Some(4);
    session.checkpoint_interval_ms = Some(10_000);
    list.push(session);
    let mut spark = base.clone();
    spark.runner = Runner::Spark;
    spark.beam_services =
        serde_json::from_value(json!({"sql": "expansion:8097", "java": "expansion:8097"})).expect("services");
    spark.labels = convert::parse_labels(&["team=team-a".to_owned()]).expect("labels");
    list.push(spark);
    list
}

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let setup = setup();
    let rendered = match render::render_with_includes("pipeline.yaml", source, &setup.variables, &setup.search) {
        Ok((rendered, _)) => rendered,
        Err(message) => {
            assert!(!message.is_empty());
            return;
        }
    };
    let document = match yaml::parse(&rendered) {
        Ok(document) => document,
        Err(message) => {
            assert!(!message.is_empty());
            return;
        }
    };
    let file = Path::new("pipeline.yaml");
    let checked = pipeline::check_document(file, rendered.clone(), document);
    let mut pipeline = match checked {
        Ok(pipeline) => pipeline,
        Err(errors) => {
            assert!(!errors.is_empty(), "a refused pipeline without a problem");
            for error in &errors {
                assert!(!error.message.is_empty());
                let _ = error.to_string();
            }
            return;
        }
    };
    pipeline.sources.source = source.to_owned();
    let _ = pipeline.options();
    let _ = pipeline.java_transforms();
    for settings in settings_list(&setup.versions) {
        let objects = match convert::objects(&pipeline, &settings) {
            Ok(objects) => objects,
            Err(message) => {
                assert!(!message.is_empty());
                continue;
            }
        };
        assert_eq!(objects.len(), 2, "a ConfigMap and a runner object");
        assert_eq!(objects[0]["kind"], "ConfigMap");
        for object in &objects {
            assert!(object["metadata"]["name"].as_str().is_some_and(|name| !name.is_empty()));
            assert!(object["apiVersion"].is_string() && object["kind"].is_string());
        }
        let stored = objects[0]["data"]["pipeline.yaml"]
            .as_str()
            .expect("the ConfigMap holds the pipeline");
        match render_again(stored) {
            // Trailing newlines aside (Jinja drops one each time it renders; YAML does not care).
            Ok(again) => assert_eq!(
                again.trim_end_matches('\n'),
                rendered.trim_start_matches(['\n', '\r']).trim_end_matches('\n'),
                "the launcher would render a different pipeline from the ConfigMap"
            ),
            Err(error) => panic!("the launcher could not render the ConfigMap's pipeline: {error}\n{stored}"),
        }
    }
});
