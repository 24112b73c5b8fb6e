//! `kubectl beam doctor`: each check of a healthy installation, with a verdict and the fix. The judgements here are
//! pure (they take what the CLI read from the cluster); the reading and the TLS dial are in `cluster`.
//!
//! What users of the operators' webhooks keep tripping over decides the checks: a namespaceSelector that does not
//! match (so nothing is mutated and nobody says why), a caBundle blanked or from an older CA, an expired certificate,
//! an unreachable service.

use serde::Serialize;
use serde_json::Value;

/// Webhooks of ours are the ones named under our API group.
pub const WEBHOOK_SUFFIX: &str = "beamstack.dev";

/// Warn when a certificate ends within this many days.
const EXPIRY_WARNING_DAYS: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Warn,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub verdict: Verdict,
    pub detail: String,
    /// What to do; empty for a pass.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fix: String,
}

impl Check {
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            verdict: Verdict::Pass,
            detail: detail.into(),
            fix: String::new(),
        }
    }

    pub fn warn(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            verdict: Verdict::Warn,
            detail: detail.into(),
            fix: fix.into(),
        }
    }

    pub fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            verdict: Verdict::Fail,
            detail: detail.into(),
            fix: fix.into(),
        }
    }
}

/// The CRDs a run needs: the operators' (one of them at least) and ours.
pub fn crds(installed: &[String]) -> Vec<Check> {
    let has = |name: &str| installed.iter().any(|crd| crd == name);
    let mut checks = Vec::new();
    for (name, what, fix) in [
        (
            "flinkdeployments.flink.apache.org",
            "Flink operator",
            "install the Flink Kubernetes operator (its Helm chart installs the CRDs), or run with --runner spark",
        ),
        (
            "sparkapplications.sparkoperator.k8s.io",
            "Spark operator",
            "install the Kubeflow Spark operator if you run with --runner spark",
        ),
    ] {
        checks.push(if has(name) {
            Check::pass(format!("CRD {name}"), format!("the {what}'s CRD is installed"))
        } else {
            Check::warn(format!("CRD {name}"), format!("the {what}'s CRD is not installed"), fix)
        });
    }
    if !has("flinkdeployments.flink.apache.org") && !has("sparkapplications.sparkoperator.k8s.io") {
        checks.push(Check::fail(
            "runner operators",
            "neither the Flink nor the Spark operator's CRDs are installed: no pipeline can run",
            "install the Flink Kubernetes operator or the Spark operator",
        ));
    }
    for name in ["runnerpolicies.beamstack.dev", "tenants.beamstack.dev"] {
        checks.push(if has(name) {
            Check::pass(format!("CRD {name}"), "installed")
        } else {
            Check::fail(
                format!("CRD {name}"),
                "not installed",
                "helm upgrade --install beamstack charts/beamstack (the chart ships the CRDs)",
            )
        });
    }
    checks
}

/// Does a Kubernetes LabelSelector select these labels? An empty selector selects everything.
pub fn selector_matches(selector: &Value, labels: &Value) -> bool {
    let label = |key: &str| labels.get(key).and_then(Value::as_str);
    let match_labels = selector["matchLabels"].as_object();
    if let Some(wanted) = match_labels
        && !wanted.iter().all(|(key, value)| label(key) == value.as_str())
    {
        return false;
    }
    let expressions = selector["matchExpressions"].as_array().cloned().unwrap_or_default();
    expressions.iter().all(|expression| {
        let key = expression["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = expression["values"]
            .as_array()
            .map(|values| values.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        match expression["operator"].as_str().unwrap_or_default() {
            "In" => label(key).is_some_and(|value| values.contains(&value)),
            "NotIn" => label(key).is_none_or(|value| !values.contains(&value)),
            "Exists" => label(key).is_some(),
            "DoesNotExist" => label(key).is_none(),
            _ => false,
        }
    })
}

/// Our webhooks in a MutatingWebhookConfiguration or ValidatingWebhookConfiguration.
pub fn our_webhooks(configuration: &Value) -> Vec<&Value> {
    configuration["webhooks"]
        .as_array()
        .map(|webhooks| {
            webhooks
                .iter()
                .filter(|webhook| {
                    webhook["name"]
                        .as_str()
                        .is_some_and(|name| name.ends_with(WEBHOOK_SUFFIX))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The checks on the webhook configurations themselves: present, a caBundle that parses and has not expired, and
/// a namespaceSelector that covers the user's namespace.
pub fn webhook_configurations(
    mutating: &[Value],
    validating: &[Value],
    namespace: &str,
    namespace_labels: &Value,
    now: i64,
) -> Vec<Check> {
    let mut checks = Vec::new();
    for (kind, configurations) in [
        ("MutatingWebhookConfiguration", mutating),
        ("ValidatingWebhookConfiguration", validating),
    ] {
        let webhooks: Vec<(&str, &Value)> = configurations
            .iter()
            .flat_map(|configuration| {
                let name = configuration
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                our_webhooks(configuration)
                    .into_iter()
                    .map(move |webhook| (name, webhook))
            })
            .collect();
        if webhooks.is_empty() {
            checks.push(Check::fail(
                kind,
                format!("no {kind} has a webhook named *.{WEBHOOK_SUFFIX}: runner objects get no defaults or checks"),
                "helm upgrade --install beamstack charts/beamstack",
            ));
            continue;
        }
        for (configuration, webhook) in webhooks {
            let name = format!("{kind} {configuration} ({})", webhook["name"].as_str().unwrap_or("?"));
            checks.push(ca_bundle(&name, webhook, now));
            let selector = &webhook["namespaceSelector"];
            checks.push(if selector_matches(selector, namespace_labels) {
                Check::pass(
                    format!("{name}: namespace"),
                    format!("namespace {namespace} is covered"),
                )
            } else {
                Check::fail(
                    format!("{name}: namespace"),
                    format!(
                        "namespace {namespace} (labels {namespace_labels}) is not selected by namespaceSelector \
                         {selector}: its runner objects are neither defaulted nor checked"
                    ),
                    format!(
                        "remove the opt-out label (kubectl label namespace {namespace} beamstack.dev/webhook-) or run \
                         in another namespace"
                    ),
                )
            });
        }
    }
    checks
}

fn ca_bundle(name: &str, webhook: &Value, now: i64) -> Check {
    let check = format!("{name}: caBundle");
    let Some(encoded) = webhook.pointer("/clientConfig/caBundle").and_then(Value::as_str) else {
        return Check::fail(
            check,
            "the caBundle is empty: the API server cannot trust the webhook and every call fails",
            "with cert-manager, check the Certificate and the cainjector; self-managed, restart the webhook so it \
             patches the caBundle again",
        );
    };
    use base64::Engine;
    let pem = match base64::engine::general_purpose::STANDARD.decode(encoded) {
        Ok(pem) => pem,
        Err(error) => {
            return Check::fail(
                check,
                format!("the caBundle is not base64: {error}"),
                "re-install the chart",
            );
        }
    };
    match not_after(&pem) {
        Ok(expiry) => expiry_check(check, "the CA", expiry, now),
        Err(error) => Check::fail(check, error, "re-install the chart, or re-run the certificate job"),
    }
}

/// A certificate's expiry, judged.
pub fn expiry_check(check: String, what: &str, not_after: i64, now: i64) -> Check {
    let days = (not_after - now).div_euclid(86_400);
    if not_after <= now {
        Check::fail(
            check,
            format!("{what} expired {} days ago", -days),
            "rotate the certificate: see certs/README.md, 'Recovering from an expired certificate'",
        )
    } else if days < EXPIRY_WARNING_DAYS {
        Check::warn(
            check,
            format!("{what} expires in {days} days"),
            "rotate the certificate soon (certs/README.md)",
        )
    } else {
        Check::pass(check, format!("{what} is valid for {days} more days"))
    }
}

/// The notAfter of the first certificate in a PEM bundle, as seconds since the epoch.
pub fn not_after(pem: &[u8]) -> Result<i64, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|error| format!("not a PEM certificate: {error}"))?;
    let certificate = pem
        .parse_x509()
        .map_err(|error| format!("the PEM block is not an X.509 certificate: {error}"))?;
    Ok(certificate.validity().not_after.timestamp())
}

/// Where an API server would send a webhook's calls: its URL, or a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Url { host: String, port: u16, path: String },
    Service { namespace: String, name: String, port: u16 },
}

pub fn endpoint_of(webhook: &Value) -> Option<Endpoint> {
    let client = &webhook["clientConfig"];
    if let Some(url) = client["url"].as_str() {
        let uri: hyper::Uri = url.parse().ok()?;
        return Some(Endpoint::Url {
            host: uri.host()?.trim_matches(['[', ']']).to_owned(),
            port: uri.port_u16().unwrap_or(443),
            path: uri.path().to_owned(),
        });
    }
    let service = &client["service"];
    Some(Endpoint::Service {
        namespace: service["namespace"].as_str()?.to_owned(),
        name: service["name"].as_str()?.to_owned(),
        port: service["port"].as_u64().unwrap_or(443) as u16,
    })
}

/// The name of the object `doctor` asks the API server to admit, in a server-side dry run (nothing is stored).
pub const PROBE_NAME: &str = "beamstack-doctor-probe";

/// A small FlinkDeployment for the admission probe: the API server sends it to every webhook that matches it, exactly
/// as it would a user's, so the probe sees what users see (a Service without endpoints, a caBundle that does not
/// trust the serving certificate, a timeout) whatever the network between `doctor` and the pods.
pub fn admission_probe(namespace: &str) -> Value {
    serde_json::json!({
        "apiVersion": "flink.apache.org/v1beta1",
        "kind": "FlinkDeployment",
        "metadata": {"name": PROBE_NAME, "namespace": namespace},
        "spec": {
            "image": "flink:1.19",
            "flinkVersion": "v1_19",
            "serviceAccount": "flink",
            "jobManager": {"resource": {"cpu": 1, "memory": "1024m"}},
            "taskManager": {"resource": {"cpu": 1, "memory": "1024m"}},
        },
    })
}

/// Judges the API server's answer to the probe. An answer from our webhook, allowed or denied (a policy may refuse
/// the probe), proves the call path; only a failed call is a failure.
pub fn admission_check(namespace: &str, answer: Result<(), String>) -> Check {
    let check = format!("admission in {namespace}");
    match answer {
        Ok(()) => Check::pass(
            check,
            "a FlinkDeployment passed admission (server-side dry run, nothing stored)",
        ),
        Err(error) if error.contains("failed calling webhook") => {
            let fix = if error.contains("x509") || error.contains("certificate") {
                "the caBundle is not the CA that signed the webhook's serving certificate: re-run the chart's \
                 certificate step (certs/README.md)"
            } else if error.contains("no endpoints") || error.contains("connection refused") {
                "the webhook pods are not running or not ready: kubectl -n beamstack get pods \
                 -l app.kubernetes.io/name=beamstack-webhook"
            } else {
                "check the webhook pods' logs and the network between the API server and the webhook's Service"
            };
            Check::fail(
                check,
                format!("the API server could not call the webhook: {error}"),
                fix,
            )
        }
        Err(error) if error.contains("denied the request") => Check::pass(
            check,
            format!("the webhook answered a FlinkDeployment (server-side dry run), denying it: {error}"),
        ),
        Err(error) => Check::warn(
            check,
            format!("the probe could not be sent: {error}"),
            "doctor needs create on flinkdeployments in this namespace (a dry run stores nothing)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn selector() -> Value {
        json!({"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "beamstack"]},
            {"key": "beamstack.dev/webhook", "operator": "NotIn", "values": ["disabled"]},
        ]})
    }

    #[test]
    fn label_selectors_as_the_api_server_reads_them() {
        let data = json!({"kubernetes.io/metadata.name": "data"});
        assert!(selector_matches(&selector(), &data));
        assert!(!selector_matches(
            &selector(),
            &json!({"kubernetes.io/metadata.name": "kube-system"})
        ));
        assert!(!selector_matches(
            &selector(),
            &json!({"kubernetes.io/metadata.name": "data", "beamstack.dev/webhook": "disabled"})
        ));
        assert!(selector_matches(&json!({}), &data));
        assert!(selector_matches(
            &json!({"matchLabels": {"team": "a"}}),
            &json!({"team": "a"})
        ));
        assert!(!selector_matches(&json!({"matchLabels": {"team": "a"}}), &data));
        let exists = json!({"matchExpressions": [{"key": "team", "operator": "Exists"}]});
        assert!(!selector_matches(&exists, &data));
        let absent = json!({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]});
        assert!(selector_matches(&absent, &data));
        let within = json!({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}]});
        assert!(!selector_matches(&within, &data));
    }

    fn ca_pem(valid_days: i64) -> String {
        let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(400);
        params.not_after = now + time::Duration::days(valid_days);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    fn configuration(ca_bundle: Option<String>) -> Value {
        use base64::Engine;
        let mut webhook = json!({"name": "runners.mutate.beamstack.dev", "namespaceSelector": selector(),
                                 "clientConfig": {"url": "https://127.0.0.1:8443/mutate"}});
        if let Some(pem) = ca_bundle {
            webhook["clientConfig"]["caBundle"] = json!(base64::engine::general_purpose::STANDARD.encode(pem));
        }
        json!({"metadata": {"name": "beamstack"}, "webhooks": [
            {"name": "someone.else.example.com"}, webhook,
        ]})
    }

    #[test]
    fn webhook_configurations_are_judged_for_ca_and_namespace() {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let labels = json!({"kubernetes.io/metadata.name": "data"});
        let healthy = [configuration(Some(ca_pem(365)))];
        let checks = webhook_configurations(&healthy, &healthy, "data", &labels, now);
        assert!(checks.iter().all(|check| check.verdict == Verdict::Pass), "{checks:#?}");
        assert_eq!(checks.len(), 4);

        let expired = [configuration(Some(ca_pem(-1)))];
        let checks = webhook_configurations(&expired, &healthy, "data", &labels, now);
        assert_eq!(checks[0].verdict, Verdict::Fail);
        assert!(checks[0].detail.contains("expired"), "{checks:#?}");

        let blank = [configuration(None)];
        let checks = webhook_configurations(
            &blank,
            &[],
            "kube-system",
            &json!({"kubernetes.io/metadata.name": "kube-system"}),
            now,
        );
        assert!(checks[0].detail.contains("caBundle is empty"));
        assert!(checks[1].detail.contains("not selected"), "{checks:#?}");
        assert!(checks[2].detail.contains("no ValidatingWebhookConfiguration"));
    }

    #[test]
    fn expiry_soon_warns() {
        let check = expiry_check("cert".into(), "the serving certificate", NOW + 5 * 86_400, NOW);
        assert_eq!(check.verdict, Verdict::Warn);
        assert_eq!(check.detail, "the serving certificate expires in 5 days");
    }

    #[test]
    fn crds_missing_say_what_to_install() {
        let checks = crds(&["flinkdeployments.flink.apache.org".to_owned()]);
        assert_eq!(checks[0].verdict, Verdict::Pass);
        assert_eq!(checks[1].verdict, Verdict::Warn);
        assert!(
            checks
                .iter()
                .any(|c| c.verdict == Verdict::Fail && c.name.contains("runnerpolicies"))
        );
        assert!(crds(&[]).iter().any(|c| c.name == "runner operators"));
    }

    #[test]
    fn endpoints_by_url_and_service() {
        let url = json!({"clientConfig": {"url": "https://127.0.0.1:8443/validate"}});
        assert_eq!(
            endpoint_of(&url),
            Some(Endpoint::Url {
                host: "127.0.0.1".into(),
                port: 8443,
                path: "/validate".into()
            })
        );
        let service = json!({"clientConfig": {"service": {"namespace": "beamstack", "name": "beamstack-webhook"}}});
        assert_eq!(
            endpoint_of(&service),
            Some(Endpoint::Service {
                namespace: "beamstack".into(),
                name: "beamstack-webhook".into(),
                port: 443
            })
        );
    }

    #[test]
    fn admission_probe_verdicts() {
        let pass = admission_check("team-a", Ok(()));
        assert_eq!(pass.verdict, Verdict::Pass);
        let denied = admission_check(
            "team-a",
            Err("admission webhook \"runners.validate.beamstack.dev\" denied the request: metadata.labels.team".into()),
        );
        assert_eq!(denied.verdict, Verdict::Pass, "a denial proves the call path");
        let untrusted = admission_check(
            "team-a",
            Err(
                "Internal error occurred: failed calling webhook \"runners.mutate.beamstack.dev\": failed to call \
                 webhook: Post \"https://beam-webhook.beamstack.svc:443/mutate?timeout=5s\": tls: failed to verify \
                 certificate: x509: certificate signed by unknown authority"
                    .into(),
            ),
        );
        assert_eq!(untrusted.verdict, Verdict::Fail);
        assert!(untrusted.fix.contains("caBundle"), "{untrusted:?}");
        let down = admission_check(
            "team-a",
            Err(
                "Internal error occurred: failed calling webhook \"runners.mutate.beamstack.dev\": failed to call \
                 webhook: Post \"https://beam-webhook.beamstack.svc:443/mutate?timeout=5s\": no endpoints available \
                 for service \"beam-webhook\""
                    .into(),
            ),
        );
        assert_eq!(down.verdict, Verdict::Fail);
        assert!(down.fix.contains("get pods"), "{down:?}");
        let forbidden = admission_check("team-a", Err("flinkdeployments is forbidden".into()));
        assert_eq!(forbidden.verdict, Verdict::Warn);
    }
}
