//! `kubectl beam doctor` and `kubectl beam version`: what the plugin finds in the cluster, judged.

use super::output::{client, namespace, print_structured, table};
use super::{Global, Output};
use kubectl_beam::doctor::{self, Check, Endpoint, Verdict};
use serde_json::{Value, json};
use std::process::ExitCode;

fn now() -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_second()
}

/// Runs every check; exit 1 when one fails.
pub async fn doctor(global: &Global, prometheus: Option<String>) -> Result<ExitCode, String> {
    let mut checks = Vec::new();
    let client = match client(global).await {
        Ok(client) => client,
        Err(error) => {
            checks.push(Check::fail(
                "API server",
                error,
                "pass --kubeconfig and --context of a reachable cluster",
            ));
            return report(global, &checks);
        }
    };
    match kubectl_beam::cluster::server_version(&client).await {
        Ok(version) => checks.push(Check::pass("API server", format!("reachable, Kubernetes {version}"))),
        Err(error) => {
            checks.push(Check::fail(
                "API server",
                format!("not reachable: {error}"),
                "check --kubeconfig and --context, and that the cluster is up",
            ));
            return report(global, &checks);
        }
    }
    checks.extend(doctor::crds(&kubectl_beam::cluster::crd_names(&client).await?));

    let (mutating, validating) = kubectl_beam::cluster::webhook_configurations(&client).await?;
    let namespace = namespace(global);
    let found = kubectl_beam::cluster::namespace_labels(&client, &namespace).await?;
    let namespace_exists = found.is_some();
    let labels = match found {
        Some(labels) => labels,
        None => {
            checks.push(Check::fail(
                format!("namespace {namespace}"),
                "does not exist",
                format!("kubectl create namespace {namespace}, or pass -n"),
            ));
            json!({})
        }
    };
    checks.extend(doctor::webhook_configurations(
        &mutating,
        &validating,
        &namespace,
        &labels,
        now(),
    ));
    checks.extend(reachability(&client, mutating.iter().chain(&validating)).await);
    // The whole path as the API server takes it, whatever network lies between this machine and the pods.
    if namespace_exists {
        let answer =
            kubectl_beam::cluster::dry_run_create(&client, &namespace, &doctor::admission_probe(&namespace)).await;
        checks.push(doctor::admission_check(&namespace, answer));
    }

    let prometheus = prometheus.or(super::defaults(Some(&client)).await?.prometheus);
    if let Some(url) = prometheus {
        let ready = format!("{}/-/ready", url.trim_end_matches('/'));
        checks.push(match kubectl_beam::http::get(&ready).await {
            Ok(_) => Check::pass("Prometheus", format!("{url} is ready")),
            Err(error) => Check::fail(
                "Prometheus",
                error,
                "check the URL (--prometheus, or `prometheus` in the plugin defaults) and that Prometheus runs",
            ),
        });
    } else {
        checks.push(Check::warn(
            "Prometheus",
            "no Prometheus URL configured: status shows no throughput, backpressure or checkpoint age",
            "pass --prometheus URL, or set `prometheus` in ~/.config/beamstack/config.yaml or the chart's \
             pluginDefaults",
        ));
    }
    report(global, &checks)
}

/// Can each of our webhooks be reached the way the API server reaches it?
async fn reachability<'a>(client: &kube::Client, configurations: impl Iterator<Item = &'a Value>) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut seen = Vec::new();
    for webhook in configurations.flat_map(doctor::our_webhooks) {
        let Some(endpoint) = doctor::endpoint_of(webhook) else {
            continue;
        };
        let ca = webhook
            .pointer("/clientConfig/caBundle")
            .and_then(Value::as_str)
            .and_then(|encoded| {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.decode(encoded).ok()
            })
            .unwrap_or_default();
        if seen.contains(&(endpoint.clone(), ca.clone())) {
            continue;
        }
        seen.push((endpoint.clone(), ca.clone()));
        let name = webhook["name"].as_str().unwrap_or("?");
        match endpoint {
            Endpoint::Url { host, port, .. } => {
                let check = format!("webhook {name}: {host}:{port}");
                checks.push(match kubectl_beam::probe::webhook_tls(&host, port, &ca).await {
                    Ok(not_after) => {
                        doctor::expiry_check(check, "reachable; its serving certificate", not_after, now())
                    }
                    Err(error) => Check::fail(
                        check,
                        format!("{error}: the API server cannot call it either, so runner objects are refused"),
                        "start the webhook (or fix its URL); if the handshake fails, the caBundle is not the CA that \
                         signed the serving certificate: re-run the chart's certificate step",
                    ),
                });
            }
            Endpoint::Service {
                namespace,
                name: service,
                port,
            } => {
                let check = format!("webhook {name}: service {namespace}/{service}:{port}");
                checks.push(
                    match kubectl_beam::cluster::ready_endpoints(client, &namespace, &service).await {
                        Ok(Some(0)) => Check::fail(
                            check,
                            "the service has no ready endpoints: the webhook pods are not running or not ready",
                            format!("kubectl -n {namespace} get pods -l app.kubernetes.io/name=beamstack-webhook"),
                        ),
                        Ok(Some(ready)) => Check::pass(check, format!("{ready} ready endpoints")),
                        Ok(None) => Check::fail(
                            check,
                            "the service does not exist",
                            "helm upgrade --install beamstack charts/beamstack",
                        ),
                        Err(error) => Check::warn(
                            check,
                            error,
                            "give your user read access to services and endpointslices",
                        ),
                    },
                );
            }
        }
    }
    checks
}

fn report(global: &Global, checks: &[Check]) -> Result<ExitCode, String> {
    match global.output {
        Some(output @ (Output::Json | Output::Yaml)) => print_structured(&checks, output)?,
        _ => {
            let mut table = table(vec!["CHECK", "VERDICT", "DETAIL", "FIX"]);
            for check in checks {
                let verdict = match check.verdict {
                    Verdict::Pass => "ok",
                    Verdict::Warn => "warn",
                    Verdict::Fail => "FAIL",
                };
                table.add_row(vec![
                    check.name.as_str(),
                    verdict,
                    check.detail.as_str(),
                    check.fix.as_str(),
                ]);
            }
            println!("{table}");
        }
    }
    let failed = checks.iter().filter(|check| check.verdict == Verdict::Fail).count();
    if failed > 0 {
        eprintln!("{failed} check{} failed", if failed == 1 { "" } else { "s" });
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The plugin's version, the API server's, and the webhook's (from the chart's Deployment label), as far as known.
pub async fn version(global: &Global, client_only: bool) -> Result<ExitCode, String> {
    let mut versions = json!({"plugin": beamstack::VERSION});
    if !client_only {
        match client(global).await {
            Ok(client) => {
                versions["server"] = match kubectl_beam::cluster::server_version(&client).await {
                    Ok(version) => json!(version),
                    Err(error) => json!(format!("unknown ({error})")),
                };
                versions["webhook"] = match kubectl_beam::cluster::webhook_deployments(&client).await {
                    Ok(deployments) if !deployments.is_empty() => deployments
                        .iter()
                        .map(|deployment| {
                            json!({
                                "namespace": deployment["metadata"]["namespace"],
                                "version": deployment.pointer("/metadata/labels/app.kubernetes.io~1version"),
                                "image": deployment.pointer("/spec/template/spec/containers/0/image"),
                            })
                        })
                        .collect(),
                    Ok(_) => json!("not installed (no Deployment labelled app.kubernetes.io/name=beamstack-webhook)"),
                    Err(error) => json!(format!("unknown ({error})")),
                };
            }
            Err(error) => versions["server"] = json!(format!("unknown ({error})")),
        }
    }
    match global.output {
        Some(output @ (Output::Json | Output::Yaml)) => print_structured(&versions, output)?,
        _ => {
            println!("Plugin:  kubectl-beam {}", beamstack::VERSION);
            if let Some(server) = versions["server"].as_str() {
                println!("Server:  {server}");
            }
            match &versions["webhook"] {
                Value::Array(found) => {
                    for webhook in found {
                        println!(
                            "Webhook: {} in namespace {} ({})",
                            webhook["version"].as_str().unwrap_or("?"),
                            webhook["namespace"].as_str().unwrap_or("?"),
                            webhook["image"].as_str().unwrap_or("?")
                        );
                    }
                }
                Value::String(text) => println!("Webhook: {text}"),
                _ => {}
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
