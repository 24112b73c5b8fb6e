//! The command line's arguments: every command, its flags and their help, as clap reads them. kubectl forwards no
//! flags to plugins, so the global ones follow kubectl's conventions (`--kubeconfig`, `--context`, `-n`, `-A`, `-o`).

use super::policy::PolicyCommand;
use clap::{Args, Parser, Subcommand, ValueEnum};
use kubectl_beam::convert::versions::{self, Versions};
use kubectl_beam::defaults::Defaults;
use kubectl_beam::pods::Role;
use std::path::PathBuf;
use std::time::Duration;

/// The exit status of a command that could not do its work (usage errors get the same from clap); 1 is a "no"
/// answer, 0 success (the `Exit status` section of `--help`).
pub const EXIT_COULD_NOT_RUN: u8 = 2;

#[derive(Parser)]
#[command(
    name = "kubectl-beam",
    bin_name = "kubectl beam",
    version,
    about = "Run Beam YAML pipelines on the Flink and Spark Kubernetes operators",
    after_help = "Examples:\n  kubectl beam validate pipeline.yaml\n  kubectl beam run pipeline.yaml --dry-run=client -o yaml\n  \
                  kubectl beam run pipeline.yaml -n data --parallelism 4\n  kubectl beam policy test policies/\n\n\
                  Exit status (as kubectl diff's):\n  \
                  0  done\n  \
                  1  the answer is no: problems in the pipeline, a failed policy test case, an object a policy\n     \
                  denies, a failed job, a failed doctor check\n  \
                  2  the command could not run: a usage error, input it cannot read, an unreachable cluster,\n     \
                  an API error"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
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
pub enum Command {
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
pub enum ClusterCommand {
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
pub struct ClusterArgs {
    pub name: String,
    #[arg(long, default_value_t = 2)]
    pub task_managers: u32,
    #[arg(long, default_value_t = 2)]
    pub slots: u32,
    #[arg(long, default_value_t = 1.0)]
    pub task_manager_cpu: f64,
    /// A Flink memory size (2048m is 2048 MiB).
    #[arg(long, default_value = "2048m")]
    pub task_manager_memory: String,
    /// CPU cores for the JobManager's pod.
    #[arg(long, default_value_t = 1.0)]
    pub job_manager_cpu: f64,
    #[arg(long, default_value = "2048m")]
    pub job_manager_memory: String,
    /// Mount a PersistentVolumeClaim in every TaskManager's worker pool, where the Python steps of the cluster's
    /// jobs read and write files: CLAIM:/path, repeatable (`run --session --pvc` mounts it in the launcher).
    #[arg(long = "pvc", value_name = "CLAIM:PATH")]
    pub pvc: Vec<String>,
    #[command(flatten)]
    pub versions: VersionArgs,
    #[arg(long)]
    pub image: Option<String>,
    #[arg(long)]
    pub service_account: Option<String>,
    #[arg(long, value_enum, default_value = "none", num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: DryRun,
    /// Labels for the cluster's FlinkDeployment, key=value (comma-separated or repeated).
    #[arg(short = 'l', long = "labels", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
}

/// The versions a run or a cluster uses, resolved against the version table.
#[derive(Args, Clone)]
pub struct VersionArgs {
    /// Beam version [default: plugin defaults, else the newest in the version table]
    #[arg(long)]
    pub beam_version: Option<String>,
    /// Flink minor, such as 1.20 [default: plugin defaults, else the newest the Beam version supports]
    #[arg(long)]
    pub flink_version: Option<String>,
    /// The Python minor of the launcher and the SDK harness [default: plugin defaults, else 3.11]
    #[arg(long)]
    pub python_version: Option<String>,
}

impl VersionArgs {
    /// Flags first, then the plugin defaults, then the version table's own.
    pub fn resolve(&self, defaults: &Defaults) -> Result<Versions, String> {
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
pub struct ValidateArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DryRun {
    None,
    Client,
    Server,
}

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// flink or spark [default: plugin defaults, else flink]. samza is refused: Beam removed that runner.
    #[arg(long)]
    pub runner: Option<String>,
    /// Submit to this Flink session cluster (see `kubectl beam cluster create`) instead of an application cluster.
    #[arg(long)]
    pub session: Option<String>,
    /// Name of the job's resources (default: from the file name).
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub versions: VersionArgs,
    /// The runner image (default: Flink's official image for the Flink version, flink:<minor>).
    #[arg(long)]
    pub image: Option<String>,
    /// The image that runs Beam YAML's launcher (default: Beam's Python SDK image, apache/beam_python<py>_sdk).
    #[arg(long)]
    pub launcher_image: Option<String>,
    /// The image holding Beam's Flink job server (default: apache/beam_flink<minor>_job_server:<beam>).
    #[arg(long)]
    pub job_server_image: Option<String>,
    /// The image of the expansion service and the Java worker pool for Java-backed transforms (default:
    /// ghcr.io/beamstack/beam-java-transforms:<beam>).
    #[arg(long)]
    pub java_image: Option<String>,
    #[arg(long)]
    pub parallelism: Option<u32>,
    /// Mount a PersistentVolumeClaim where the pipeline's code runs (the launcher and the worker pool), for the
    /// files it reads and writes: CLAIM:/path, repeatable. With --session it goes to the launcher only: the session
    /// cluster's TaskManagers mount what `cluster create --pvc` gave them.
    #[arg(long = "pvc", value_name = "CLAIM:PATH")]
    pub pvc: Vec<String>,
    /// CPU cores for the JobManager's pod.
    #[arg(long, default_value_t = 1.0)]
    pub job_manager_cpu: f64,
    /// A Flink memory size for the JobManager (2048m is 2048 MiB).
    #[arg(long, default_value = "2048m")]
    pub job_manager_memory: String,
    /// CPU cores for each TaskManager's pod.
    #[arg(long, default_value_t = 1.0)]
    pub task_manager_cpu: f64,
    /// A Flink memory size for each TaskManager.
    #[arg(long, default_value = "2048m")]
    pub task_manager_memory: String,
    /// CPU cores the Spark driver's pod requests (its JVM gets one core: spark.driver.cores).
    #[arg(long, default_value_t = 1.0)]
    pub driver_cpu: f64,
    /// A Spark (JVM) memory size for the driver, such as 1g or 512m.
    #[arg(long, default_value = "1g")]
    pub driver_memory: String,
    /// CPU cores each Spark executor's pod requests (one task at a time: spark.executor.cores is 1).
    #[arg(long, default_value_t = 1.0)]
    pub executor_cpu: f64,
    /// A Spark (JVM) memory size for each executor, such as 2g.
    #[arg(long, default_value = "2g")]
    pub executor_memory: String,
    /// Task slots in each TaskManager (Flink application mode, default 1): the job's parallelism runs on
    /// parallelism / slots TaskManagers, rounded up, which share one worker pool each.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub slots: Option<u32>,
    #[arg(long, default_value = "stateless", value_parser = ["stateless", "last-state", "savepoint"])]
    pub upgrade_mode: String,
    /// Checkpoint every this often (Flink), such as 30s.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub checkpoint_interval: Option<Duration>,
    #[arg(long)]
    pub checkpoint_dir: Option<String>,
    #[arg(long)]
    pub savepoint_dir: Option<String>,
    /// Flink's high-availability storage, which a last-state upgrade resumes from (default: `ha` beside
    /// --checkpoint-dir). With --upgrade-mode last-state, high availability is turned on (kubernetes).
    #[arg(long)]
    pub ha_dir: Option<String>,
    #[arg(long)]
    pub service_account: Option<String>,
    /// Expansion services for Java-backed transforms, as JSON: {"<gradle target>": "host:port"}.
    #[arg(long)]
    pub beam_services: Option<String>,
    /// client: print the objects without a cluster; server: send them through the API server, storing nothing.
    #[arg(long, value_enum, default_value = "none", num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: DryRun,
    /// Follow the job until it runs or fails.
    #[arg(long)]
    pub wait: bool,
    /// Labels for the job's objects, key=value (comma-separated or repeated), such as the team label policies read.
    #[arg(short = 'l', long = "labels", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
}
