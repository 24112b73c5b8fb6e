//! Beam's pipeline schema, prepared at build time instead of at every start-up (the plugin dry-run benchmark: parsing the YAML with
//! serde-saphyr was about 30 % of a `kubectl beam run`'s instructions, compiling it with jsonschema, which first
//! compiles the draft-07 meta-schema to check it, another 28 %).
//!
//! Writes to OUT_DIR:
//! - `pipeline.schema.json`: beam/pipeline.schema.yaml as JSON. serde_json keeps the file's key order (the
//!   workspace's `preserve_order`); a unit test in `src/pipeline/schema.rs` checks it is the YAML, value for value.
//! - `pipeline_schema.rs`: a `#[jsonschema::validator]` over that file, which jsonschema's macro compiles into Rust
//!   code; `src/pipeline/schema.rs` includes it, and its tests hold it to the runtime-compiled validator's errors.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let source = manifest.join("beam/pipeline.schema.yaml");
    println!("cargo::rerun-if-changed={}", source.display());
    let text = std::fs::read_to_string(&source).expect("beam/pipeline.schema.yaml is readable");
    let schema: serde_json::Value = serde_saphyr::from_str(&text).expect("Beam's schema is YAML");
    let json = serde_json::to_string(&schema).expect("a JSON value serializes");

    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let json_path = out.join("pipeline.schema.json");
    std::fs::write(&json_path, json).expect("OUT_DIR is writable");
    let json_path = json_path.to_str().expect("OUT_DIR is UTF-8");
    // `{json_path:?}` is a Rust string literal of the absolute path, which the macro reads as is.
    let code = format!(
        "/// Beam's pipeline schema (draft-07), compiled by jsonschema's macro at build time.\n\
         #[jsonschema::validator(path = {json_path:?}, draft = Draft7, methods = {{ is_valid = false, validate = false, iter_errors = true }})]\n\
         pub struct PipelineSchema;\n"
    );
    std::fs::write(out.join("pipeline_schema.rs"), code).expect("OUT_DIR is writable");
}
