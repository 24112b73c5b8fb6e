//! Prometheus metrics of the webhook, served as text on the admin port's `/metrics`.

use beamstack::admission::{Endpoint, Record};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdmissionLabels {
    endpoint: &'static str,
    kind: String,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyOutcomeLabels {
    policy: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: String,
    resource: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// Latency buckets from 50 µs: the webhook answers in microseconds, and the API server's timeout is seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

pub struct Metrics {
    registry: Registry,
    admissions: Family<AdmissionLabels, Counter>,
    latency: Family<EndpointLabels, Histogram>,
    handling: Family<EndpointLabels, Histogram>,
    patches: Family<KindLabels, Counter>,
    denials: Family<RuleLabels, Counter>,
    bad_requests: Family<ReasonLabels, Counter>,
    certificate_reloads: Family<ResultLabels, Counter>,
    tls_handshake_failures: Counter,
    policy_evaluations: Family<PolicyOutcomeLabels, Counter>,
    policy_latency: Family<PolicyLabels, Histogram>,
    policy_reloads: Family<ResultLabels, Counter>,
    tenant_usage: Family<TenantLabels, Gauge<f64, AtomicU64>>,
    tenant_budget: Family<TenantLabels, Gauge<f64, AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("beamstack_webhook");
        let admissions = Family::<AdmissionLabels, Counter>::default();
        registry.register(
            "admissions",
            "Admission reviews answered, by endpoint, kind, operation and outcome (allowed, patched, denied)",
            admissions.clone(),
        );
        let latency = Family::<EndpointLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(LATENCY_BUCKETS.iter().copied())
        });
        registry.register(
            "admission_duration_seconds",
            "Time to review an admission request, from its body received to its answer decided (before encoding)",
            latency.clone(),
        );
        let handling = Family::<EndpointLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(LATENCY_BUCKETS.iter().copied())
        });
        registry.register(
            "handling_duration_seconds",
            "Time to handle an admission request, from its body received to its answer ready: the review, the \
             metrics and encoding the answer (not TLS, the socket, nor the log line, written after the answer)",
            handling.clone(),
        );
        let patches = Family::<KindLabels, Counter>::default();
        registry.register(
            "patches",
            "Mutations that returned a non-empty patch, by kind",
            patches.clone(),
        );
        let denials = Family::<RuleLabels, Counter>::default();
        registry.register("denials", "Violations in denied admissions, by rule", denials.clone());
        let bad_requests = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "bad_requests",
            "Requests answered with an HTTP error instead of an admission review, by reason",
            bad_requests.clone(),
        );
        let certificate_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "certificate_reloads",
            "Serving certificate reloads, by result (loaded, rejected)",
            certificate_reloads.clone(),
        );
        let tls_handshake_failures = Counter::default();
        registry.register(
            "tls_handshake_failures",
            "Connections dropped during the TLS handshake (plain HTTP, unknown CA, no client certificate)",
            tls_handshake_failures.clone(),
        );
        let policy_evaluations = Family::<PolicyOutcomeLabels, Counter>::default();
        registry.register(
            "policy_evaluations",
            "RunnerPolicy evaluations, by policy and outcome (passed, denied, warned, audited, mutated, not-matched, error)",
            policy_evaluations.clone(),
        );
        let policy_latency =
            Family::<PolicyLabels, Histogram>::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS.iter().copied()));
        registry.register(
            "policy_duration_seconds",
            "Time to evaluate one RunnerPolicy for one request",
            policy_latency.clone(),
        );
        let tenant_usage = Family::<TenantLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "tenant_usage",
            "What a tenant runs now, by resource (cpu in cores, memory in bytes, jobs, workers), from the usage ledger",
            tenant_usage.clone(),
        );
        let tenant_budget = Family::<TenantLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "tenant_budget",
            "A tenant's budget, by resource (only the resources its Tenant limits)",
            tenant_budget.clone(),
        );
        let policy_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "policy_reloads",
            "Policy folder reloads, by result (loaded, rejected: the previous set stays in force)",
            policy_reloads.clone(),
        );
        Self {
            policy_evaluations,
            policy_latency,
            policy_reloads,
            tenant_usage,
            tenant_budget,
            registry,
            admissions,
            latency,
            handling,
            patches,
            denials,
            bad_requests,
            certificate_reloads,
            tls_handshake_failures,
        }
    }

    /// Replaces the tenant gauges with the engine's current view (called at each scrape, so deleted tenants vanish).
    pub fn set_tenants(
        &self,
        tenants: &[(
            String,
            beamstack::policy::demand::Demand,
            beamstack::policy::model::Budget,
        )],
    ) {
        self.tenant_usage.clear();
        self.tenant_budget.clear();
        for (tenant, usage, budget) in tenants {
            let label = |resource| TenantLabels {
                tenant: tenant.clone(),
                resource,
            };
            let quantity = |q: &Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>| {
                let parsed = beamstack::units::Quantity::parse(&q.as_ref()?.0).ok()?;
                rust_decimal::prelude::ToPrimitive::to_f64(&parsed.value())
            };
            for (resource, used, limit) in [
                ("cpu", usage.cpu.0 as f64 / 1000.0, quantity(&budget.cpu)),
                ("memory", usage.memory.0 as f64, quantity(&budget.memory)),
                ("jobs", usage.jobs as f64, budget.jobs.map(|j| j as f64)),
                ("workers", usage.workers as f64, budget.workers.map(|w| w as f64)),
            ] {
                self.tenant_usage.get_or_create(&label(resource)).set(used);
                if let Some(limit) = limit {
                    self.tenant_budget.get_or_create(&label(resource)).set(limit);
                }
            }
        }
    }

    /// One admission request's handling time (`handling_duration_seconds`).
    pub fn record_handling(&self, endpoint: Endpoint, elapsed: Duration) {
        self.handling
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.as_str(),
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn record_admission(&self, endpoint: Endpoint, record: &Record, elapsed: Duration) {
        let kind = if record.ours {
            record.kind.clone()
        } else {
            "other".to_owned()
        };
        self.admissions
            .get_or_create(&AdmissionLabels {
                endpoint: endpoint.as_str(),
                kind: kind.clone(),
                operation: record.operation,
                outcome: record.outcome(),
            })
            .inc();
        self.latency
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.as_str(),
            })
            .observe(elapsed.as_secs_f64());
        if record.patched {
            self.patches.get_or_create(&KindLabels { kind }).inc();
        }
        for stat in &record.policy_stats {
            self.policy_evaluations
                .get_or_create(&PolicyOutcomeLabels {
                    policy: stat.policy.clone(),
                    outcome: stat.outcome.as_str(),
                })
                .inc();
            self.policy_latency
                .get_or_create(&PolicyLabels {
                    policy: stat.policy.clone(),
                })
                .observe(stat.elapsed.as_secs_f64());
        }
        for rule in &record.denied_by {
            self.denials.get_or_create(&RuleLabels { rule: rule.clone() }).inc();
        }
    }

    pub fn record_bad_request(&self, reason: &'static str) {
        self.bad_requests.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub fn record_certificate_reload(&self, loaded: bool) {
        let result = if loaded { "loaded" } else { "rejected" };
        self.certificate_reloads.get_or_create(&ResultLabels { result }).inc();
    }

    pub fn record_policy_reload(&self, loaded: bool) {
        let result = if loaded { "loaded" } else { "rejected" };
        self.policy_reloads.get_or_create(&ResultLabels { result }).inc();
    }

    pub fn record_handshake_failure(&self) {
        self.tls_handshake_failures.inc();
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
