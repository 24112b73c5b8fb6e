//! The command line: kubectl's conventions (`--kubeconfig`, `--context`, `-n`, `-A`, `-o`, `--dry-run`), since
//! kubectl forwards no flags to plugins.

use crate::policy::{self, PolicyCommand};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use kubectl_beam::convert::versions::{self, Versions};
use kubectl_beam::convert::{self, RunSettings, Runner};
use kubectl_beam::pipeline::{self, LoadOptions, kubernetes_name};
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
    /// One phase for a pipeline's job, with why; -w follows it until it ends.
    #[command(after_help = "Examples:\n  kubectl beam status wordcount\n  kubectl beam status wordcount -w -o json")]
    Status {
        name: String,
        #[arg(short = 'w', long)]
        watch: bool,
    },
    /// The pipelines kubectl beam runs (NAME, RUNNER, PHASE, AGE, PARALLELISM, TENANT).
    #[command(after_help = "Examples:\n  kubectl beam list\n  kubectl beam list -A -o wide")]
    List,
    /// Delete a pipeline's job (its ConfigMap goes with it).
    Delete { name: String },
    /// Flink session clusters, for `run --session`.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Print the plugin's version.
    Version,
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
    List,
    /// Delete a session cluster.
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
    #[arg(long, default_value = "2048m")]
    job_manager_memory: String,
    #[command(flatten)]
    versions: VersionArgs,
    #[arg(long)]
    image: Option<String>,
    #[arg(long)]
    service_account: Option<String>,
    #[arg(long, value_enum, default_value = "none", num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    dry_run: DryRun,
}

/// The versions a run or a cluster uses, resolved against the version table.
#[derive(Args)]
struct VersionArgs {
    #[arg(long, default_value = versions::DEFAULT_BEAM)]
    beam_version: String,
    #[arg(long, default_value = versions::DEFAULT_FLINK)]
    flink_version: String,
    /// The Python minor of the launcher and the SDK harness.
    #[arg(long, default_value = versions::DEFAULT_PYTHON)]
    python_version: String,
}

impl VersionArgs {
    fn resolve(&self) -> Result<Versions, String> {
        Versions::resolve(&self.beam_version, &self.flink_version, &self.python_version)
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
    /// flink (default) or spark. samza is refused: Beam removed that runner.
    #[arg(long, default_value = "flink")]
    runner: String,
    /// Submit to this Flink session cluster (see `kubectl beam cluster create`) instead of an application cluster.
    #[arg(long)]
    session: Option<String>,
    /// Name of the job's resources (default: from the file name).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    versions: VersionArgs,
    /// The runner image (default: derived from the versions).
    #[arg(long)]
    image: Option<String>,
    /// The launcher image (session mode, Spark's pipeline-jar builder).
    #[arg(long)]
    launcher_image: Option<String>,
    #[arg(long)]
    parallelism: Option<u32>,
    #[arg(long, default_value = "stateless", value_parser = ["stateless", "last-state", "savepoint"])]
    upgrade_mode: String,
    /// Checkpoint every this often (Flink), such as 30s.
    #[arg(long, value_parser = humantime::parse_duration)]
    checkpoint_interval: Option<Duration>,
    #[arg(long)]
    checkpoint_dir: Option<String>,
    #[arg(long)]
    savepoint_dir: Option<String>,
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
}

pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Validate(args) => validate(&args.pipeline),
        Command::Run(args) => run_pipeline(&cli.global, &args),
        Command::Status { name, watch } => block_on(status(&cli.global, &name, watch)),
        Command::List => block_on(list(&cli.global)),
        Command::Delete { name } => block_on(delete(&cli.global, &name)),
        Command::Cluster(command) => cluster(&cli.global, command),
        Command::Version => {
            println!("kubectl-beam {}", beamstack::VERSION);
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy(command) => return policy::run(command, cli.global.output),
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

/// The namespace: -n, else the kubeconfig context's, else `default`.
fn namespace(global: &Global) -> String {
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

fn settings(global: &Global, args: &RunArgs, pipeline: &pipeline::Pipeline) -> Result<RunSettings, String> {
    let versions = args.versions.resolve()?;
    let name = match &args.name {
        Some(name) => kubernetes_name(name),
        None => pipeline.name(),
    };
    let mut settings = RunSettings::new(&name, &namespace(global), versions);
    settings.runner = Runner::parse(&args.runner)?;
    settings.session = args.session.clone();
    settings.image = args.image.clone();
    settings.launcher_image = args.launcher_image.clone();
    settings.parallelism = args.parallelism;
    settings.upgrade_mode = args.upgrade_mode.clone();
    settings.checkpoint_interval_ms = args.checkpoint_interval.map(|interval| interval.as_millis() as u64);
    settings.checkpoint_dir = args.checkpoint_dir.clone();
    settings.savepoint_dir = args.savepoint_dir.clone();
    settings.service_account = args.service_account.clone();
    if let Some(services) = &args.beam_services {
        settings.beam_services = serde_json::from_str(services)
            .map_err(|error| format!("--beam-services must be a JSON object of target -> host:port: {error}"))?;
    }
    if settings.session.is_some() && settings.runner != Runner::Flink {
        return Err("--session is for the Flink runner".into());
    }
    Ok(settings)
}

fn run_pipeline(global: &Global, args: &RunArgs) -> Result<ExitCode, String> {
    let pipeline = load(&args.pipeline)?;
    let settings = settings(global, args, &pipeline)?;
    let objects = convert::objects(&pipeline, &settings)?;
    match args.dry_run {
        DryRun::Client => {
            print_objects(&objects, global.output.unwrap_or(Output::Yaml))?;
            Ok(ExitCode::SUCCESS)
        }
        DryRun::None | DryRun::Server => {
            let server = args.dry_run == DryRun::Server;
            let applied = block_on_result(async {
                let client =
                    kubectl_beam::cluster::client(global.kubeconfig.as_deref(), global.context.as_deref()).await?;
                kubectl_beam::cluster::apply(&client, &settings.namespace, &objects, server).await
            })?;
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
                return block_on(follow(global, &settings.name, true));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
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
            let settings = convert::ClusterSettings {
                name: kubernetes_name(&args.name),
                namespace: namespace(global),
                versions: args.versions.resolve()?,
                image: args.image.clone(),
                image_repository: "ghcr.io/beamstack/flink-beam".into(),
                task_managers: args.task_managers,
                task_slots: args.slots,
                task_manager_cpu: args.task_manager_cpu,
                task_manager_memory: args.task_manager_memory.clone(),
                job_manager_memory: args.job_manager_memory.clone(),
                service_account: args.service_account.clone(),
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

fn block_on(future: impl std::future::Future<Output = Result<ExitCode, String>>) -> Result<ExitCode, String> {
    block_on_result(future)
}

fn block_on_result<T>(future: impl std::future::Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?
        .block_on(future)
}

async fn client(global: &Global) -> Result<kube::Client, String> {
    kubectl_beam::cluster::client(global.kubeconfig.as_deref(), global.context.as_deref()).await
}

fn age(object: &Value) -> String {
    let Some(created) = object.pointer("/metadata/creationTimestamp").and_then(Value::as_str) else {
        return "-".into();
    };
    let Ok(created) = created.parse::<k8s_openapi::jiff::Timestamp>() else {
        return "-".into();
    };
    let seconds = (k8s_openapi::jiff::Timestamp::now().as_second() - created.as_second()).max(0);
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        3600..86400 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86400),
    }
}

fn row(object: &Value, status: &kubectl_beam::status::JobStatus) -> Value {
    serde_json::json!({
        "name": object.pointer("/metadata/labels/beamstack.dev~1pipeline").cloned().unwrap_or(Value::Null),
        "namespace": object.pointer("/metadata/namespace").cloned().unwrap_or(Value::Null),
        "runner": object.pointer("/metadata/labels/beamstack.dev~1runner").cloned().unwrap_or(Value::Null),
        "kind": object["kind"],
        "phase": status.phase.as_str(),
        "reason": status.reason,
        "message": status.message,
        "age": age(object),
        "parallelism": object.pointer("/spec/job/parallelism").or_else(|| object.pointer("/spec/executor/instances")).cloned().unwrap_or(Value::Null),
        "tenant": object.pointer("/metadata/labels/beamstack.dev~1tenant").cloned().unwrap_or(Value::Null),
    })
}

fn show(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

async fn status(global: &Global, name: &str, watch: bool) -> Result<ExitCode, String> {
    follow(global, name, watch).await
}

/// Prints a pipeline's phase; with `watch`, every change until a terminal phase. Exit 1 if it failed.
async fn follow(global: &Global, name: &str, watch: bool) -> Result<ExitCode, String> {
    let client = client(global).await?;
    let namespace = namespace(global);
    let mut last: Option<(String, String)> = None;
    loop {
        let found = kubectl_beam::cluster::find(&client, Some(&namespace), Some(name)).await?;
        let Some((object, status)) = found.into_iter().next() else {
            return Err(format!(
                "no pipeline {name:?} in namespace {namespace} (kubectl beam list shows what runs)"
            ));
        };
        let current = (status.phase.as_str().to_owned(), status.reason.clone());
        if last.as_ref() != Some(&current) {
            let row = row(&object, &status);
            match global.output {
                Some(Output::Json) => println!("{}", serde_json::to_string(&row).map_err(|e| e.to_string())?),
                Some(Output::Yaml) => println!("{}---", serde_saphyr::to_string(&row).map_err(|e| e.to_string())?),
                _ => {
                    println!(
                        "{name}\t{}\t{}\t{}",
                        status.phase,
                        status.reason,
                        row["age"].as_str().unwrap_or("-")
                    );
                    if let Some(message) = &status.message {
                        println!("  error: {message}");
                    }
                }
            }
            last = Some(current);
        }
        if !watch || status.phase.is_terminal() {
            return Ok(if status.phase == kubectl_beam::status::Phase::Failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            });
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn list(global: &Global) -> Result<ExitCode, String> {
    let client = client(global).await?;
    let namespace = (!global.all_namespaces).then(|| namespace(global));
    let rows: Vec<Value> = kubectl_beam::cluster::find(&client, namespace.as_deref(), None)
        .await?
        .iter()
        .map(|(object, status)| row(object, status))
        .collect();
    match global.output {
        Some(Output::Json) => println!("{}", serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?),
        Some(Output::Yaml) => print!("{}", serde_saphyr::to_string(&rows).map_err(|e| e.to_string())?),
        Some(Output::Name) => rows.iter().for_each(|row| println!("{}", show(&row["name"]))),
        _ => {
            let mut table = comfy_table::Table::new();
            table.load_style(comfy_table::presets::NOTHING);
            let mut header = vec!["NAME"];
            if global.all_namespaces {
                header.push("NAMESPACE");
            }
            header.extend(["RUNNER", "PHASE", "AGE", "PARALLELISM", "TENANT"]);
            if global.output == Some(Output::Wide) {
                header.push("REASON");
            }
            table.set_header(header);
            for row in &rows {
                let mut cells = vec![show(&row["name"])];
                if global.all_namespaces {
                    cells.push(show(&row["namespace"]));
                }
                cells.extend(["runner", "phase", "age", "parallelism", "tenant"].map(|key| show(&row[key])));
                if global.output == Some(Output::Wide) {
                    cells.push(show(&row["reason"]));
                }
                table.add_row(cells);
            }
            println!("{table}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn delete(global: &Global, name: &str) -> Result<ExitCode, String> {
    let client = client(global).await?;
    let deleted = kubectl_beam::cluster::delete(&client, &namespace(global), name).await?;
    if deleted.is_empty() {
        return Err(format!("no pipeline {name:?} in namespace {}", namespace(global)));
    }
    for object in deleted {
        println!("{object} deleted");
    }
    Ok(ExitCode::SUCCESS)
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
