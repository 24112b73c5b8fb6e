//! The command line: kubectl's conventions (`--kubeconfig`, `--context`, `-n`, `-A`, `-o`, `--dry-run`), since
//! kubectl forwards no flags to plugins.

mod complete;
mod doctor;
mod observe;
mod output;

use crate::policy::{self, PolicyCommand};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use kubectl_beam::convert::versions::{self, Versions};
use kubectl_beam::convert::{self, RunSettings, Runner};
use kubectl_beam::defaults::{self, Defaults};
use kubectl_beam::pipeline::{self, LoadOptions, kubernetes_name};
use kubectl_beam::pods::Role;
use output::{block_on, block_on_result, client, namespace, print_objects};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "kubectl-beam",
    bin_name = "kubectl beam",
    version,
    about = "Run Beam YAML pipelines on the Flink and Spark Kubernetes operators",
    after_help = "Examples:\n  kubectl beam validate pipeline.yaml\n  kubectl beam run pipeline.yaml --dry-run=client -o yaml\n  \
                  kubectl beam run pipeline.yaml -n data --parallelism 4\n  kubectl beam policy test policies/"
)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
pub struct Global {
    /// Path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, global = true, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Namespace (default: the context's, else `default`).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// All namespaces (list, status).
    #[arg(short = 'A', long = "all-namespaces", global = true)]
    pub all_namespaces: bool,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum)]
    pub output: Option<Output>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Wide,
    Yaml,
    Json,
    Name,
}

#[derive(Subcommand)]
enum Command {
    /// Render and check a pipeline offline, as Beam would before running it.
    #[command(after_help = "Examples:\n  kubectl beam validate pipeline.yaml\n  \
                            kubectl beam validate pipeline.yaml --set input=/data/in.txt --jinja-variables vars.json")]
    Validate(ValidateArgs),
    /// Turn a pipeline into the runner's resources and apply them (or print them with --dry-run=client).
    #[command(
        after_help = "Examples:\n  kubectl beam run pipeline.yaml --dry-run=client -o yaml\n  \
                            kubectl beam run pipeline.yaml --runner spark\n  kubectl beam run pipeline.yaml --session my-cluster"
    )]
    Run(Box<RunArgs>),
    /// One phase for a pipeline's job, with why: pods, warnings, UI and metrics; -w follows it until it ends.
    #[command(
        after_help = "Examples:\n  kubectl beam status wordcount\n  kubectl beam status wordcount -w -o json\n  \
                      kubectl beam status wordcount --prometheus http://localhost:9090"
    )]
    Status {
        name: String,
        #[arg(short = 'w', long)]
        watch: bool,
        /// Prometheus to read throughput, backpressure and checkpoint age from (default: the plugin defaults').
        #[arg(long)]
        prometheus: Option<String>,
    },
    /// The pipelines kubectl beam runs (NAME, RUNNER, PHASE, AGE, PARALLELISM, TENANT).
    #[command(
        after_help = "Examples:\n  kubectl beam list\n  kubectl beam list -A -o wide\n  kubectl beam list -l team=a"
    )]
    List {
        /// Only pipelines whose runner objects match this label selector, such as team=a.
        #[arg(short = 'l', long = "selector")]
        selector: Option<String>,
    },
    /// The logs of a pipeline's pods (default: the JobManager, the Spark driver, or the launcher).
    #[command(
        after_help = "Examples:\n  kubectl beam logs wordcount\n  kubectl beam logs wordcount --role harness -f\n  \
                      kubectl beam logs wordcount --role taskmanager --tail 100"
    )]
    Logs {
        name: String,
        #[arg(long, value_enum)]
        role: Option<Role>,
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only the last this many lines of each pod.
        #[arg(long)]
        tail: Option<i64>,
    },
    /// The events of a pipeline's runner object and pods, oldest first.
    #[command(after_help = "Examples:\n  kubectl beam events wordcount\n  kubectl beam events wordcount -o json")]
    Events { name: String },
    /// Delete a pipeline's job (its ConfigMap goes with it).
    #[command(after_help = "Examples:\n  kubectl beam delete wordcount\n  kubectl beam delete wordcount --wait")]
    Delete {
        name: String,
        /// Return once the runner object is gone.
        #[arg(long)]
        wait: bool,
    },
    /// Check the installation: operators' CRDs, webhook configurations, certificates, namespace coverage, Prometheus.
    #[command(after_help = "Examples:\n  kubectl beam doctor\n  kubectl beam doctor -n data -o json")]
    Doctor {
        #[arg(long)]
        prometheus: Option<String>,
    },
    /// Flink session clusters, for `run --session`.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Print the plugin's version, and the API server's and the webhook's when a cluster is reachable.
    #[command(after_help = "Examples:\n  kubectl beam version\n  kubectl beam version --client -o json")]
    Version {
        /// The plugin's version only; no cluster is contacted.
        #[arg(long)]
        client: bool,
    },
    /// Test and evaluate RunnerPolicies offline, with the webhook's own engine.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  source <(kubectl beam completion bash)\n  kubectl beam completion zsh > \"${fpath[1]}/_kubectl-beam\""
    )]
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Create a Flink session cluster (a FlinkDeployment without a job, with the worker pool in its TaskManagers).
    #[command(
        after_help = "Examples:\n  kubectl beam cluster create shared --task-managers 3 --slots 4\n  \
                            kubectl beam cluster create shared --dry-run=client -o yaml"
    )]
    Create(Box<ClusterArgs>),
    /// The session clusters kubectl beam made.
    #[command(after_help = "Examples:\n  kubectl beam cluster list\n  kubectl beam cluster list -A")]
    List,
    /// Delete a session cluster.
    #[command(after_help = "Examples:\n  kubectl beam cluster delete shared -n data")]
    Delete { name: String },
}

#[derive(Args)]
struct ClusterArgs {
    name: String,
    #[arg(long, default_value_t = 2)]
    task_managers: u32,
    #[arg(long, default_value_t = 2)]
    slots: u32,
    #[arg(long, default_value_t = 1.0)]
    task_manager_cpu: f64,
    /// A Flink memory size (2048m is 2048 MiB).
    #[arg(long, default_value = "2048m")]
    task_manager_memory: String,
    /// CPU cores for the JobManager's pod.
    #[arg(long, default_value_t = 1.0)]
    job_manager_cpu: f64,
    #[arg(long, default_value = "2048m")]
    job_manager_memory: String,
    /// Mount a PersistentVolumeClaim in every TaskManager's worker pool, where the Python steps of the cluster's
    /// jobs read and write files: CLAIM:/path, repeatable (`run --session --pvc` mounts it in the launcher).
    #[arg(long = "pvc", value_name = "CLAIM:PATH")]
    pvc: Vec<String>,
    #[command(flatten)]
    versions: VersionArgs,
    #[arg(long)]
    image: Option<String>,
    #[arg(long)]
    service_account: Option<String>,
    #[arg(long, value_enum, default_value = "none", num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    dry_run: DryRun,
    /// Labels for the cluster's FlinkDeployment, key=value (comma-separated or repeated).
    #[arg(short = 'l', long = "labels", value_name = "KEY=VALUE")]
    labels: Vec<String>,
}

/// The versions a run or a cluster uses, resolved against the version table.
#[derive(Args)]
struct VersionArgs {
    /// Beam version [default: plugin defaults, else the newest in the version table]
    #[arg(long)]
    beam_version: Option<String>,
    /// Flink minor, such as 1.20 [default: plugin defaults, else the newest the Beam version supports]
    #[arg(long)]
    flink_version: Option<String>,
    /// The Python minor of the launcher and the SDK harness [default: plugin defaults, else 3.11]
    #[arg(long)]
    python_version: Option<String>,
}

impl VersionArgs {
    /// Flags first, then the plugin defaults, then the version table's own.
    fn resolve(&self, defaults: &Defaults) -> Result<Versions, String> {
        let pick = |flag: &Option<String>, default: &Option<String>, builtin: &str| {
            flag.clone()
                .or_else(|| default.clone())
                .unwrap_or_else(|| builtin.to_owned())
        };
        let beam = pick(&self.beam_version, &defaults.beam_version, versions::DEFAULT_BEAM);
        // An older release without the default Flink minor (2.62.0 has no 1.20) gets its newest one.
        let flink_default = match versions::release(&beam) {
            Ok(release) if !release.flink_minors.contains(&versions::DEFAULT_FLINK) => {
                release.flink_minors.last().copied().unwrap_or(versions::DEFAULT_FLINK)
            }
            _ => versions::DEFAULT_FLINK,
        };
        Versions::resolve(
            &beam,
            &pick(&self.flink_version, &defaults.flink_version, flink_default),
            &pick(&self.python_version, &defaults.python_version, versions::DEFAULT_PYTHON),
        )
    }
}

#[derive(Args, Clone)]
pub struct PipelineArgs {
    /// The Beam YAML pipeline file.
    pub file: PathBuf,
    /// JSON or YAML file of Jinja variables (Beam's --jinja_variables).
    #[arg(long)]
    pub jinja_variables: Option<PathBuf>,
    /// A Jinja variable, name=value (repeatable; dotted names nest).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// More folders to look up Jinja includes in (Beam also looks in its install folder).
    #[arg(long = "jinja-search-path")]
    pub search_path: Vec<PathBuf>,
}

#[derive(Args)]
struct ValidateArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DryRun {
    None,
    Client,
    Server,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// flink or spark [default: plugin defaults, else flink]. samza is refused: Beam removed that runner.
    #[arg(long)]
    runner: Option<String>,
    /// Submit to this Flink session cluster (see `kubectl beam cluster create`) instead of an application cluster.
    #[arg(long)]
    session: Option<String>,
    /// Name of the job's resources (default: from the file name).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    versions: VersionArgs,
    /// The runner image (default: Flink's official image for the Flink version, flink:<minor>).
    #[arg(long)]
    image: Option<String>,
    /// The image that runs Beam YAML's launcher (default: Beam's Python SDK image, apache/beam_python<py>_sdk).
    #[arg(long)]
    launcher_image: Option<String>,
    /// The image holding Beam's Flink job server (default: apache/beam_flink<minor>_job_server:<beam>).
    #[arg(long)]
    job_server_image: Option<String>,
    #[arg(long)]
    parallelism: Option<u32>,
    /// Mount a PersistentVolumeClaim where the pipeline's code runs (the launcher and the worker pool), for the
    /// files it reads and writes: CLAIM:/path, repeatable. With --session it goes to the launcher only: the session
    /// cluster's TaskManagers mount what `cluster create --pvc` gave them.
    #[arg(long = "pvc", value_name = "CLAIM:PATH")]
    pvc: Vec<String>,
    /// CPU cores for the JobManager's pod.
    #[arg(long, default_value_t = 1.0)]
    job_manager_cpu: f64,
    /// A Flink memory size for the JobManager (2048m is 2048 MiB).
    #[arg(long, default_value = "2048m")]
    job_manager_memory: String,
    /// CPU cores for each TaskManager's pod.
    #[arg(long, default_value_t = 1.0)]
    task_manager_cpu: f64,
    /// A Flink memory size for each TaskManager.
    #[arg(long, default_value = "2048m")]
    task_manager_memory: String,
    #[arg(long, default_value = "stateless", value_parser = ["stateless", "last-state", "savepoint"])]
    upgrade_mode: String,
    /// Checkpoint every this often (Flink), such as 30s.
    #[arg(long, value_parser = humantime::parse_duration)]
    checkpoint_interval: Option<Duration>,
    #[arg(long)]
    checkpoint_dir: Option<String>,
    #[arg(long)]
    savepoint_dir: Option<String>,
    /// Flink's high-availability storage, which a last-state upgrade resumes from (default: `ha` beside
    /// --checkpoint-dir). With --upgrade-mode last-state, high availability is turned on (kubernetes).
    #[arg(long)]
    ha_dir: Option<String>,
    #[arg(long)]
    service_account: Option<String>,
    /// Expansion services for Java-backed transforms, as JSON: {"<gradle target>": "host:port"}.
    #[arg(long)]
    beam_services: Option<String>,
    /// client: print the objects without a cluster; server: send them through the API server, storing nothing.
    #[arg(long, value_enum, default_value = "none", num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    dry_run: DryRun,
    /// Follow the job until it runs or fails.
    #[arg(long)]
    wait: bool,
    /// Labels for the job's objects, key=value (comma-separated or repeated), such as the team label policies read.
    #[arg(short = 'l', long = "labels", value_name = "KEY=VALUE")]
    labels: Vec<String>,
}

pub fn run(cli: Cli) -> ExitCode {
    let global = &cli.global;
    let result = match cli.command {
        Command::Validate(args) => validate(&args.pipeline),
        Command::Run(args) => run_pipeline(global, &args),
        Command::Status {
            name,
            watch,
            prometheus,
        } => block_on(async {
            let prometheus = match prometheus {
                Some(url) => Some(url),
                None => defaults(client(global).await.ok().as_ref()).await?.prometheus,
            };
            observe::status(global, &name, watch, prometheus.as_deref()).await
        }),
        Command::List { selector } => block_on(observe::list(global, selector.as_deref())),
        Command::Logs {
            name,
            role,
            follow,
            tail,
        } => block_on(observe::logs(global, &name, role, follow, tail)),
        Command::Events { name } => block_on(observe::events(global, &name)),
        Command::Delete { name, wait } => block_on(observe::delete(global, &name, wait)),
        Command::Doctor { prometheus } => block_on(doctor::doctor(global, prometheus)),
        Command::Cluster(command) => cluster(global, command),
        Command::Version { client } => block_on(doctor::version(global, client)),
        Command::Policy(command) => return policy::run(command, global.output),
        Command::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "kubectl-beam", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `kubectl beam __complete ...`, answered before clap parses anything (the words may be any partial command).
pub fn complete(words: Vec<std::ffi::OsString>) -> ExitCode {
    for line in complete::lines(words) {
        println!("{line}");
    }
    ExitCode::SUCCESS
}

/// The plugin defaults: the chart's ConfigMap when a cluster is at hand, under the user's config file.
async fn defaults(client: Option<&kube::Client>) -> Result<Defaults, String> {
    let mut merged = Defaults::default();
    if let Some(client) = client {
        let namespace = defaults::chart_namespace();
        // The cluster's defaults are a convenience: a cluster we cannot read them from is not an error here. The
        // chart lets every authenticated user `get` this one ConfigMap, and nothing more.
        if let Ok(Some(data)) =
            kubectl_beam::cluster::config_map_data(client, &namespace, defaults::CONFIG_MAP_NAME).await
            && let Some(text) = data.get(defaults::CONFIG_MAP_KEY).and_then(Value::as_str)
        {
            let origin = format!("ConfigMap {namespace}/{}", defaults::CONFIG_MAP_NAME);
            merged = Defaults::parse(text, &origin)?;
        }
    }
    Ok(merged.overlaid_with(defaults::read_user_file(defaults::user_file().as_deref())?))
}

fn load_options(args: &PipelineArgs) -> Result<LoadOptions, String> {
    let mut variables = match &args.jinja_variables {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))?;
            serde_saphyr::from_str::<Value>(&text).map_err(|error| format!("{}: {error}", path.display()))?
        }
        None => Value::Object(Default::default()),
    };
    for assignment in &args.set {
        pipeline::render::set_variable(&mut variables, assignment)?;
    }
    Ok(LoadOptions {
        variables,
        search_path: args.search_path.clone(),
    })
}

fn load(args: &PipelineArgs) -> Result<pipeline::Pipeline, String> {
    pipeline::load(&args.file, &load_options(args)?).map_err(|errors| {
        let count = errors.len();
        let listed: Vec<String> = errors.iter().map(ToString::to_string).collect();
        format!(
            "{} has {count} problem{}:\n{}",
            args.file.display(),
            if count == 1 { "" } else { "s" },
            listed.join("\n")
        )
    })
}

fn validate(args: &PipelineArgs) -> Result<ExitCode, String> {
    let pipeline = load(args)?;
    let java = pipeline.java_transforms();
    println!(
        "{}: valid Beam YAML ({} transforms{})",
        args.file.display(),
        pipeline.transforms.len(),
        if java.is_empty() {
            ", all Python".to_owned()
        } else {
            format!(
                ", Java-backed: {}",
                java.iter()
                    .map(|t| t.transform_type.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn settings(
    global: &Global,
    args: &RunArgs,
    pipeline: &pipeline::Pipeline,
    defaults: &Defaults,
) -> Result<RunSettings, String> {
    let versions = args.versions.resolve(defaults)?;
    let name = match &args.name {
        Some(name) => kubernetes_name(name),
        None => pipeline.name(),
    };
    let mut settings = RunSettings::new(&name, &namespace(global), versions);
    settings.runner = Runner::parse(args.runner.as_deref().or(defaults.runner.as_deref()).unwrap_or("flink"))?;
    settings.session = args.session.clone();
    settings.image = args.image.clone().or(defaults.image.clone());
    if let Some(repository) = &defaults.image_repository {
        settings.image_repository = repository.clone();
    }
    settings.launcher_image = args.launcher_image.clone().or(defaults.launcher_image.clone());
    settings.job_server_image = args.job_server_image.clone().or(defaults.job_server_image.clone());
    for (flag, cpu) in [
        ("--job-manager-cpu", args.job_manager_cpu),
        ("--task-manager-cpu", args.task_manager_cpu),
    ] {
        if cpu.is_nan() || cpu <= 0.0 {
            return Err(format!("{flag} must be a positive number of cores, such as 0.5"));
        }
    }
    for (flag, memory) in [
        ("--job-manager-memory", &args.job_manager_memory),
        ("--task-manager-memory", &args.task_manager_memory),
    ] {
        beamstack::units::flink_memory(memory).map_err(|error| format!("{flag}: {error}"))?;
    }
    settings.job_manager = convert::Resources {
        cpu: args.job_manager_cpu,
        memory: args.job_manager_memory.clone(),
    };
    settings.task_manager = convert::Resources {
        cpu: args.task_manager_cpu,
        memory: args.task_manager_memory.clone(),
    };
    settings.claims = args
        .pvc
        .iter()
        .map(|text| convert::ClaimMount::parse(text))
        .collect::<Result<_, _>>()?;
    settings.parallelism = args.parallelism;
    settings.upgrade_mode = args.upgrade_mode.clone();
    settings.checkpoint_interval_ms = args.checkpoint_interval.map(|interval| interval.as_millis() as u64);
    settings.checkpoint_dir = args.checkpoint_dir.clone();
    settings.savepoint_dir = args.savepoint_dir.clone();
    settings.ha_dir = args.ha_dir.clone();
    settings.service_account = args.service_account.clone().or(defaults.service_account.clone());
    if let Some(services) = &args.beam_services {
        settings.beam_services = serde_json::from_str(services)
            .map_err(|error| format!("--beam-services must be a JSON object of target -> host:port: {error}"))?;
    } else if let Some(services) = &defaults.beam_services {
        settings.beam_services = services
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect();
    }
    settings.labels = convert::parse_labels(&args.labels)?;
    if settings.session.is_some() && settings.runner != Runner::Flink {
        return Err("--session is for the Flink runner".into());
    }
    if settings.runner == Runner::Spark && !settings.claims.is_empty() {
        return Err("--pvc is not supported for the Spark runner yet: mount the claim in the SparkApplication".into());
    }
    Ok(settings)
}

/// `run`: with --dry-run=client no cluster is touched (user defaults only); otherwise the cluster's plugin defaults
/// apply too, and the objects go through server-side apply.
fn run_pipeline(global: &Global, args: &RunArgs) -> Result<ExitCode, String> {
    let pipeline = load(&args.pipeline)?;
    block_on_result(async {
        let client = match args.dry_run {
            DryRun::Client => None,
            DryRun::None | DryRun::Server => Some(client(global).await?),
        };
        let defaults = defaults(client.as_ref()).await?;
        let settings = settings(global, args, &pipeline, &defaults)?;
        let objects = convert::objects(&pipeline, &settings)?;
        let Some(client) = client else {
            print_objects(&objects, global.output.unwrap_or(Output::Yaml))?;
            return Ok(ExitCode::SUCCESS);
        };
        let server = args.dry_run == DryRun::Server;
        let applied = kubectl_beam::cluster::apply(&client, &settings.namespace, &objects, server).await?;
        match global.output {
            Some(output @ (Output::Yaml | Output::Json)) => print_objects(&applied, output)?,
            _ => {
                let suffix = if server { " (server dry run)" } else { "" };
                for object in &applied {
                    println!(
                        "{}/{} applied{suffix}",
                        object["kind"].as_str().unwrap_or("").to_lowercase(),
                        object["metadata"]["name"].as_str().unwrap_or("")
                    );
                }
            }
        }
        if args.wait && !server {
            return observe::wait_until_running(global, &settings.name).await;
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn cluster(global: &Global, command: ClusterCommand) -> Result<ExitCode, String> {
    match command {
        ClusterCommand::Create(args) => {
            if args.task_managers == 0
                || args.slots == 0
                || args.task_manager_cpu.is_nan()
                || args.task_manager_cpu <= 0.0
            {
                return Err("--task-managers, --slots and --task-manager-cpu must be positive".into());
            }
            for (flag, memory) in [
                ("--task-manager-memory", &args.task_manager_memory),
                ("--job-manager-memory", &args.job_manager_memory),
            ] {
                beamstack::units::flink_memory(memory).map_err(|error| format!("{flag}: {error}"))?;
            }
            // As for `run`: the user's defaults always, the cluster's unless this is a client-side dry run.
            let defaults = block_on_result(async {
                match args.dry_run {
                    DryRun::Client => defaults(None).await,
                    _ => defaults(client(global).await.ok().as_ref()).await,
                }
            })?;
            let settings = convert::ClusterSettings {
                name: kubernetes_name(&args.name),
                namespace: namespace(global),
                versions: args.versions.resolve(&defaults)?,
                image: args.image.clone().or(defaults.image.clone()),
                image_repository: defaults
                    .image_repository
                    .clone()
                    .unwrap_or_else(|| convert::DEFAULT_FLINK_REPOSITORY.into()),
                task_managers: args.task_managers,
                task_slots: args.slots,
                task_manager_cpu: args.task_manager_cpu,
                task_manager_memory: args.task_manager_memory.clone(),
                job_manager_cpu: args.job_manager_cpu,
                job_manager_memory: args.job_manager_memory.clone(),
                service_account: args.service_account.clone(),
                labels: convert::parse_labels(&args.labels)?,
                claims: args
                    .pvc
                    .iter()
                    .map(|text| convert::ClaimMount::parse(text))
                    .collect::<Result<_, _>>()?,
            };
            let object = convert::session_cluster(&settings);
            if args.dry_run == DryRun::Client {
                print_objects(&[object], global.output.unwrap_or(Output::Yaml))?;
                return Ok(ExitCode::SUCCESS);
            }
            let server = args.dry_run == DryRun::Server;
            let applied = block_on_result(async {
                let client = client(global).await?;
                kubectl_beam::cluster::apply(&client, &settings.namespace, &[object], server).await
            })?;
            for object in applied {
                println!(
                    "flinkdeployment.flink.apache.org/{} applied",
                    object["metadata"]["name"].as_str().unwrap_or("")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::List => block_on(async {
            let client = client(global).await?;
            let namespace = (!global.all_namespaces).then(|| namespace(global));
            for (object, status) in kubectl_beam::cluster::session_clusters(&client, namespace.as_deref()).await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    object["metadata"]["name"].as_str().unwrap_or(""),
                    object["metadata"]["namespace"].as_str().unwrap_or(""),
                    status.phase,
                    object
                        .pointer("/spec/taskManager/replicas")
                        .map(Value::to_string)
                        .unwrap_or_else(|| "-".into())
                );
            }
            Ok(ExitCode::SUCCESS)
        }),
        ClusterCommand::Delete { name } => block_on(async {
            let client = client(global).await?;
            kubectl_beam::cluster::delete_session_cluster(&client, &namespace(global), &name).await?;
            println!("flinkdeployment.flink.apache.org/{name} deleted");
            Ok(ExitCode::SUCCESS)
        }),
    }
}
