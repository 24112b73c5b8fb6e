//! `beam-webhook`: the Beamstack admission webhook server, plus the small tools that go with it.

use beamstack::admission::{Admission, Endpoint};
use beamstack::config::Config;
use beamstack::policy::engine::Engine;
use beamstack::policy::load::DirectorySource;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use webhook::certs::{self, ServingCertRequest};
use webhook::self_managed::RenewalPolicy;
use webhook::self_managed::controller::SelfManaged;
use webhook::server::{ServeOptions, Server};
use webhook::telemetry::{self, LogFormat};

/// mimalloc rather than glibc's malloc: an admission allocates and frees thousands of small objects (the JSON tree,
/// its CEL form, the patch), and glibc's malloc and free were about a third of the server's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "beam-webhook",
    version,
    about = "Admission webhook for Beam pipelines on the Flink and Spark Kubernetes operators",
    long_about = "Mutating and validating admission webhook for FlinkDeployment, FlinkSessionJob, SparkApplication \
                  and ScheduledSparkApplication: fills in defaults (resources, service account, tolerations, node \
                  placement, Volcano queue), injects the Beam SDK harness (worker pool) into annotated pipelines, and \
                  refuses invalid objects with every problem listed. Without a subcommand it serves.",
    args_conflicts_with_subcommands = true,
    after_help = "Every flag can also be set through the environment variable shown with it.\n\
                  Examples:\n  beam-webhook --tls-cert certs/dev/tls.crt --tls-key certs/dev/tls.key --log-format text\n  \
                  beam-webhook certs --out certs/dev --service beam-webhook --namespace beamstack --name localhost --name 127.0.0.1\n  \
                  beam-webhook review --endpoint mutate testdata/fixtures/reviews/flink-create.json"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve admission reviews over HTTPS (the default).
    Serve(Box<ServeArgs>),
    /// Generate a CA and a serving certificate for the webhook's Service (dev setups, tests, self-managed mode).
    Certs(CertArgs),
    /// Answer one AdmissionReview read from a file (or - for stdin) and print the answer, without a server.
    Review(ReviewArgs),
    /// Print the CustomResourceDefinitions of RunnerPolicy and Tenant (beamstack.dev/v1alpha1).
    Crds,
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address of the HTTPS admission endpoints (/mutate, /validate).
    #[arg(long, env = "BEAM_WEBHOOK_LISTEN", default_value = "0.0.0.0:9443")]
    listen: SocketAddr,
    /// PEM certificate chain served on the admission port; re-read when it changes.
    #[arg(long, env = "BEAM_WEBHOOK_TLS_CERT", default_value = "/etc/beamstack/tls/tls.crt")]
    tls_cert: PathBuf,
    /// PEM private key of that certificate.
    #[arg(long, env = "BEAM_WEBHOOK_TLS_KEY", default_value = "/etc/beamstack/tls/tls.key")]
    tls_key: PathBuf,
    /// PEM CA bundle: when given, clients (the API server) must present a certificate signed by it.
    #[arg(long, env = "BEAM_WEBHOOK_CLIENT_CA")]
    client_ca: Option<PathBuf>,
    /// How often the certificate files are checked for a change (they are polled, so Secret symlink swaps are seen).
    #[arg(long, env = "BEAM_WEBHOOK_TLS_RELOAD_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    tls_reload_interval: Duration,
    /// Address of the plain-HTTP admin endpoints (/healthz, /readyz, /metrics).
    #[arg(long, env = "BEAM_WEBHOOK_ADMIN_LISTEN", default_value = "0.0.0.0:8080")]
    admin_listen: SocketAddr,
    /// YAML configuration of defaults, harness and validation (see docs/webhook.md, "Defaults"); built-in defaults when absent.
    #[arg(long, env = "BEAM_WEBHOOK_CONFIG")]
    config: Option<PathBuf>,
    /// Folder of RunnerPolicy and Tenant YAML files (any depth); changes take effect without a restart. A change that
    /// does not compile is refused and shown in /readyz; the previous set stays in force.
    #[arg(long, env = "BEAM_WEBHOOK_POLICIES")]
    policies: Option<PathBuf>,
    /// Watch the cluster (in-cluster config, or KUBECONFIG): RunnerPolicy and Tenant objects, namespace labels, and
    /// every runner CR for tenants' usage. /readyz waits until every watch has listed once.
    #[arg(long, env = "BEAM_WEBHOOK_CLUSTER")]
    cluster: bool,
    /// How often the policy folder is checked for changes.
    #[arg(long, env = "BEAM_WEBHOOK_POLICY_RELOAD_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    policy_reload_interval: Duration,
    /// After SIGTERM, how long in-flight requests may take before connections are closed.
    #[arg(long, env = "BEAM_WEBHOOK_DRAIN_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,
    /// Benchmarks only: answer every review with the no-op admission (allow; on /mutate a JSON patch of this many
    /// bytes that changes nothing), reading nothing but the envelope, and ignore policies and the cluster. The
    /// API-server benchmark (bench/apiserver) runs it beside beam-webhook as the limit for any webhook on this stack.
    #[arg(long, env = "BEAM_WEBHOOK_NOOP_PATCH_BYTES")]
    noop_patch_bytes: Option<usize>,
    /// Log format: one JSON object per line, or text for a terminal.
    #[arg(long, env = "BEAM_WEBHOOK_LOG_FORMAT", value_enum, default_value = "json")]
    log_format: LogFormat,
    /// Log filter in RUST_LOG syntax, such as `info` or `beamstack=debug,info`.
    #[arg(long, env = "BEAM_WEBHOOK_LOG_LEVEL", default_value = "info")]
    log_level: String,
    #[command(flatten)]
    self_managed: SelfManagedArgs,
}

/// Self-managed certificates (the chart's `certificates.mode: selfManaged`).
#[derive(Args, Clone)]
struct SelfManagedArgs {
    /// Keep a CA and serving certificate in a Secret, renew them before they expire, write the serving pair to
    /// --tls-cert/--tls-key, and set the caBundle of the webhook configurations (needs the API server: in-cluster
    /// config or KUBECONFIG).
    #[arg(long, env = "BEAM_WEBHOOK_SELF_MANAGED_CERTS", requires = "cert_secret")]
    self_managed_certs: bool,
    /// The Secret that holds them, as NAMESPACE/NAME; its namespace is also the Service's.
    #[arg(long, env = "BEAM_WEBHOOK_CERT_SECRET", value_parser = parse_namespaced)]
    cert_secret: Option<(String, String)>,
    /// Name of the MutatingWebhookConfiguration and ValidatingWebhookConfiguration whose caBundle is kept.
    #[arg(long, env = "BEAM_WEBHOOK_CONFIGURATION", default_value = "beamstack")]
    webhook_configuration: String,
    /// The webhook Service's name, for the certificate's DNS names.
    #[arg(long, env = "BEAM_WEBHOOK_SERVICE", default_value = "beam-webhook")]
    cert_service: String,
    /// More DNS names or IP addresses for the serving certificate (repeatable).
    #[arg(long = "cert-name", env = "BEAM_WEBHOOK_CERT_NAMES", value_delimiter = ',')]
    cert_names: Vec<String>,
    /// Lifetime of a serving certificate.
    #[arg(long, env = "BEAM_WEBHOOK_CERT_VALIDITY", default_value = "365days", value_parser = humantime::parse_duration)]
    cert_validity: Duration,
    /// Lifetime of a new CA (ten times --cert-validity when not given). A CA is replaced when less than one serving
    /// lifetime plus --cert-renew-before is left; the old one stays trusted until it expires.
    #[arg(long, env = "BEAM_WEBHOOK_CA_VALIDITY", value_parser = humantime::parse_duration)]
    ca_validity: Option<Duration>,
    /// Renew the serving certificate when less than this is left.
    #[arg(long, env = "BEAM_WEBHOOK_CERT_RENEW_BEFORE", default_value = "30days", value_parser = humantime::parse_duration)]
    cert_renew_before: Duration,
    /// How often the Secret and the caBundles are checked (and drift repaired).
    #[arg(long, env = "BEAM_WEBHOOK_CERT_CHECK_INTERVAL", default_value = "1m", value_parser = humantime::parse_duration)]
    cert_check_interval: Duration,
}

fn parse_namespaced(text: &str) -> Result<(String, String), String> {
    match text.split_once('/') {
        Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((namespace.to_string(), name.to_string()))
        }
        _ => Err(format!(
            "`{text}` is not NAMESPACE/NAME, such as beamstack/beam-webhook-tls"
        )),
    }
}

impl SelfManagedArgs {
    /// The controller, when the mode is on.
    fn controller(&self, serve: &ServeArgs) -> Result<Option<SelfManaged>, String> {
        let (true, Some((namespace, name))) = (self.self_managed_certs, self.cert_secret.clone()) else {
            return Ok(None);
        };
        let valid_for = time::Duration::try_from(self.cert_validity)
            .map_err(|error| format!("--cert-validity: certificate lifetime: {error}"))?;
        let serving = ServingCertRequest {
            service: self.cert_service.clone(),
            namespace: namespace.clone(),
            extra_names: self.cert_names.clone(),
            valid_for,
        };
        let policy =
            RenewalPolicy::new(serving, self.cert_renew_before, self.ca_validity).map_err(|error| error.to_string())?;
        Ok(Some(SelfManaged {
            secret_namespace: namespace,
            secret_name: name,
            configuration: self.webhook_configuration.clone(),
            policy,
            cert_path: serve.tls_cert.clone(),
            key_path: serve.tls_key.clone(),
            check_interval: self.cert_check_interval,
        }))
    }
}

#[derive(Args)]
struct CertArgs {
    /// Folder to write ca.crt, ca.key, tls.crt and tls.key into.
    #[arg(long)]
    out: PathBuf,
    /// Name of the webhook's Service.
    #[arg(long, default_value = "beam-webhook")]
    service: String,
    /// Namespace of that Service.
    #[arg(long, default_value = "beamstack")]
    namespace: String,
    /// More DNS names or IP addresses for the certificate (repeatable), such as localhost or 127.0.0.1.
    #[arg(long = "name")]
    names: Vec<String>,
    /// Validity of the serving certificate in days (the CA lives ten times as long).
    #[arg(long, default_value_t = 365)]
    days: i64,
}

#[derive(Args)]
struct ReviewArgs {
    /// Which endpoint answers.
    #[arg(long, value_enum, default_value = "mutate")]
    endpoint: EndpointArg,
    /// The webhook configuration to use; built-in defaults when absent.
    #[arg(long, env = "BEAM_WEBHOOK_CONFIG")]
    config: Option<PathBuf>,
    /// AdmissionReview JSON file, or - for standard input.
    file: PathBuf,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum EndpointArg {
    Mutate,
    Validate,
}

fn load_config(path: Option<&PathBuf>) -> Result<Config, String> {
    match path {
        Some(path) => Config::from_file(path).map_err(|error| error.to_string()),
        None => Ok(Config::default()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve(cli.serve),
        Some(Command::Serve(args)) => serve(*args),
        Some(Command::Certs(args)) => generate_certs(args),
        Some(Command::Review(args)) => review(args),
        Some(Command::Crds) => {
            print!("{}", beamstack::policy::model::crds_yaml());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("beam-webhook: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    telemetry::init(args.log_format, &args.log_level)?;
    let config = load_config(args.config.as_ref())?;
    let self_managed = args.self_managed.controller(&args)?;
    let options = ServeOptions {
        listen: args.listen,
        admin_listen: args.admin_listen,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        client_ca: args.client_ca,
        reload_interval: args.tls_reload_interval,
        drain_timeout: args.drain_timeout,
        policy_reload_interval: args.policy_reload_interval,
        noop_patch_bytes: args.noop_patch_bytes,
    };
    // The no-op admission (benchmarks) reads no policies and watches nothing: only the server stack is measured.
    let (policies, watch_cluster) = match args.noop_patch_bytes {
        Some(patch_bytes) => {
            tracing::warn!(
                patch_bytes,
                "serving the no-op admission (benchmarks only): no defaults, rules or policies"
            );
            (None, false)
        }
        None => (args.policies.as_deref(), args.cluster),
    };
    let (admission, source) = admission_with_policies(config, policies, watch_cluster)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the runtime: {error}"))?;
    runtime.block_on(async {
        let client = if watch_cluster || self_managed.is_some() {
            let client = kube::Client::try_default()
                .await
                .map_err(|error| format!("cannot reach the API server (--cluster, --self-managed-certs): {error}"))?;
            Some(client)
        } else {
            None
        };
        if let (Some(controller), Some(client)) = (self_managed, &client) {
            // The server needs its certificate before it can start: the first pass makes or reads it.
            let pass = controller.first_pass(client).await;
            tracing::info!(
                change = pass.change.as_deref().unwrap_or("none"),
                missing = ?pass.missing,
                "self-managed certificates in place"
            );
            tokio::spawn(controller.run(client.clone()));
        }
        let cluster = match (watch_cluster, admission.engine(), client) {
            (true, Some(engine), Some(client)) => Some(webhook::cluster::start(client, Arc::clone(engine))),
            _ => None,
        };
        let server = Server::start(&options, admission, source, cluster)
            .await
            .map_err(|error| error.to_string())?;
        wait_for_signal().await;
        tracing::info!("shutdown requested: draining");
        server.shutdown().await;
        Ok(())
    })
}

/// The admission logic, with the policy folder's set in force when one is given. At start-up there is no previous
/// set to fall back to, so a folder that does not compile stops the webhook with every error listed.
fn admission_with_policies(
    config: Config,
    policies: Option<&std::path::Path>,
    cluster: bool,
) -> Result<(Admission, Option<DirectorySource>), String> {
    let Some(dir) = policies else {
        // Policies and tenants may come from the cluster alone.
        let admission = if cluster {
            Admission::with_engine(config, Engine::standard())
        } else {
            Admission::new(config)
        };
        return Ok((admission, None));
    };
    match Admission::with_policy_folder(config, dir) {
        Ok((admission, source, loaded)) => {
            tracing::info!(policies = loaded.policies, tenants = loaded.tenants, dir = %dir.display(), "policies loaded");
            Ok((admission, Some(source)))
        }
        Err(errors) => {
            let listed: Vec<String> = errors.iter().map(|error| format!("  {error}")).collect();
            Err(format!(
                "the policies in {} do not load:\n{}",
                dir.display(),
                listed.join("\n")
            ))
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn generate_certs(args: CertArgs) -> Result<(), String> {
    if args.days < 1 {
        return Err("--days must be at least 1".into());
    }
    let request = ServingCertRequest {
        service: args.service,
        namespace: args.namespace,
        extra_names: args.names,
        valid_for: time::Duration::days(args.days),
    };
    let bundle = certs::generate(&request).map_err(|error| error.to_string())?;
    bundle.write_to(&args.out).map_err(|error| error.to_string())?;
    println!(
        "wrote {}/{{ca.crt,ca.key,tls.crt,tls.key}} for {}",
        args.out.display(),
        request.names().join(", ")
    );
    Ok(())
}

fn review(args: ReviewArgs) -> Result<(), String> {
    let config = load_config(args.config.as_ref())?;
    let body = if args.file.as_os_str() == "-" {
        let mut buffer = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buffer).map_err(|error| error.to_string())?;
        buffer
    } else {
        std::fs::read(&args.file).map_err(|error| format!("{}: {error}", args.file.display()))?
    };
    let endpoint = match args.endpoint {
        EndpointArg::Mutate => Endpoint::Mutate,
        EndpointArg::Validate => Endpoint::Validate,
    };
    let outcome = Admission::new(config)
        .review(endpoint, &body)
        .map_err(|error| error.to_string())?;
    let mut answer = serde_json::to_value(&outcome.review).map_err(|error| error.to_string())?;
    if let Some(patch) = outcome.review.decoded_patch() {
        // Shown decoded beside the base64 the API server reads, so a person can see what would change.
        answer["decodedPatch"] = serde_json::to_value(patch).map_err(|error| error.to_string())?;
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&answer).map_err(|error| error.to_string())?
    );
    Ok(())
}
