//! Output and plumbing shared by the commands: kubectl-style printing, the runtime, the client, the namespace.

use super::{Global, Output};
use serde_json::Value;
use std::process::ExitCode;

pub fn block_on(future: impl std::future::Future<Output = Result<ExitCode, String>>) -> Result<ExitCode, String> {
    block_on_result(future)
}

pub fn block_on_result<T>(future: impl std::future::Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?
        .block_on(future)
}

pub async fn client(global: &Global) -> Result<kube::Client, String> {
    kubectl_beam::cluster::client(global.kubeconfig.as_deref(), global.context.as_deref()).await
}

/// The namespace: -n, else the kubeconfig context's, else `default`.
pub fn namespace(global: &Global) -> String {
    if let Some(namespace) = &global.namespace {
        return namespace.clone();
    }
    let config = match &global.kubeconfig {
        Some(path) => kube::config::Kubeconfig::read_from(path).ok(),
        None => kube::config::Kubeconfig::read().ok(),
    };
    config
        .and_then(|config| {
            let context = global.context.clone().or(config.current_context.clone())?;
            let named = config.contexts.iter().find(|named| named.name == context)?;
            named.context.as_ref()?.namespace.clone()
        })
        .unwrap_or_else(|| "default".to_owned())
}

/// A table cell: `-` for nothing.
pub fn show(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A table without borders, as kubectl prints them.
pub fn table(header: Vec<&str>) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::NOTHING);
    table.set_header(header);
    table
}

/// A value as JSON or YAML, for -o json|yaml.
pub fn print_structured(value: &impl serde::Serialize, output: Output) -> Result<(), String> {
    match output {
        Output::Yaml => print!("{}", serde_saphyr::to_string(value).map_err(|e| e.to_string())?),
        _ => println!("{}", serde_json::to_string_pretty(value).map_err(|e| e.to_string())?),
    }
    Ok(())
}

/// Prints objects as kubectl would: YAML documents, a JSON List, or kind/name lines.
pub fn print_objects(objects: &[Value], output: Output) -> Result<(), String> {
    match output {
        Output::Json => {
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
            println!(
                "{}",
                serde_json::to_string_pretty(&list).map_err(|error| error.to_string())?
            );
        }
        Output::Name => {
            for object in objects {
                let kind = object["kind"].as_str().unwrap_or("").to_lowercase();
                let group = object["apiVersion"]
                    .as_str()
                    .and_then(|v| v.split_once('/'))
                    .map(|(group, _)| group)
                    .unwrap_or("");
                let qualified = if group.is_empty() {
                    kind
                } else {
                    format!("{kind}.{group}")
                };
                println!("{qualified}/{}", object["metadata"]["name"].as_str().unwrap_or(""));
            }
        }
        Output::Yaml | Output::Table | Output::Wide => {
            let documents: Vec<String> = objects
                .iter()
                .map(|object| serde_saphyr::to_string(object).map_err(|error| error.to_string()))
                .collect::<Result<_, _>>()?;
            print!("{}", documents.join("---\n"));
        }
    }
    Ok(())
}
