//! `validate` and `run`: a pipeline read as Beam reads it, checked, and turned into the runner's objects.

use super::args::{DryRun, Global, Output, PipelineArgs, RunArgs};
use super::defaults;
use super::observe;
use super::output::{block_on_result, client, namespace, print_objects};
use kubectl_beam::convert::{self, RunSettings, Runner};
use kubectl_beam::defaults::Defaults;
use kubectl_beam::pipeline::{self, LoadOptions, kubernetes_name};
use serde_json::Value;
use std::process::ExitCode;

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
    pipeline::load(&args.file, &load_options(args)?).map_err(|errors| problems(args, &errors))
}

/// A pipeline's problems, one a line, under a line that counts them.
fn problems<E: ToString>(args: &PipelineArgs, errors: &[E]) -> String {
    let count = errors.len();
    let listed: Vec<String> = errors.iter().map(ToString::to_string).collect();
    format!(
        "{} has {count} problem{}:\n{}",
        args.file.display(),
        if count == 1 { "" } else { "s" },
        listed.join("\n")
    )
}

/// Problems found in the pipeline are the command's answer (exit 1); options it cannot read stop it (exit 2).
pub(super) fn validate(args: &PipelineArgs) -> Result<ExitCode, String> {
    let pipeline = match pipeline::load(&args.file, &load_options(args)?) {
        Ok(pipeline) => pipeline,
        Err(errors) => {
            eprintln!("error: {}", problems(args, &errors));
            return Ok(ExitCode::FAILURE);
        }
    };
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
    let runner = Runner::parse(args.runner.as_deref().or(defaults.runner.as_deref()).unwrap_or("flink"))
        .map_err(|error| error.to_string())?;
    // A Spark run has no Flink: a Flink version from the plugin defaults (or a flag) must not refuse it.
    let versions = if runner == Runner::Spark {
        let mut without_flink = args.versions.clone();
        without_flink.flink_version = None;
        let defaults_without_flink = Defaults {
            flink_version: None,
            ..defaults.clone()
        };
        without_flink.resolve(&defaults_without_flink)?
    } else {
        args.versions.resolve(defaults)?
    };
    let name = match &args.name {
        Some(name) => kubernetes_name(name),
        None => pipeline.name(),
    };
    let mut settings = RunSettings::new(&name, &namespace(global), versions);
    settings.runner = runner;
    settings.session = args.session.clone();
    settings.image = args.image.clone().or(defaults.image.clone());
    if let Some(repository) = &defaults.image_repository {
        settings.image_repository = repository.clone();
    }
    settings.launcher_image = args.launcher_image.clone().or(defaults.launcher_image.clone());
    settings.job_server_image = args.job_server_image.clone().or(defaults.job_server_image.clone());
    settings.java_image = args.java_image.clone().or(defaults.java_image.clone());
    for (flag, cpu) in [
        ("--job-manager-cpu", args.job_manager_cpu),
        ("--task-manager-cpu", args.task_manager_cpu),
        ("--driver-cpu", args.driver_cpu),
        ("--executor-cpu", args.executor_cpu),
    ] {
        if cpu.is_nan() || cpu <= 0.0 {
            return Err(format!("{flag} must be a positive number of cores, such as 0.5"));
        }
    }
    // Flink's memory sizes and Spark's (JVM) ones are read by different rules.
    let flink_memory = |text: &str| beamstack::units::flink_memory(text).map(drop);
    let spark_memory = |text: &str| beamstack::units::spark_memory(text).map(drop);
    for (flag, memory, parse) in [
        (
            "--job-manager-memory",
            &args.job_manager_memory,
            &flink_memory as &dyn Fn(&str) -> _,
        ),
        ("--task-manager-memory", &args.task_manager_memory, &flink_memory),
        ("--driver-memory", &args.driver_memory, &spark_memory),
        ("--executor-memory", &args.executor_memory, &spark_memory),
    ] {
        parse(memory).map_err(|error| format!("{flag}: {error}"))?;
    }
    settings.spark_driver = convert::Resources {
        cpu: args.driver_cpu,
        memory: args.driver_memory.clone(),
    };
    settings.spark_executor = convert::Resources {
        cpu: args.executor_cpu,
        memory: args.executor_memory.clone(),
    };
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
    if let Some(slots) = args.slots {
        if settings.runner != Runner::Flink || settings.session.is_some() {
            return Err(
                "--slots is for Flink application mode: a session cluster's slots are set by \
                        `kubectl beam cluster create --slots`"
                    .into(),
            );
        }
        settings.task_slots = slots;
    }
    Ok(settings)
}

/// `run`: with --dry-run=client no cluster is touched (user defaults only); otherwise the cluster's plugin defaults
/// apply too, and the objects go through server-side apply.
pub(super) fn run_pipeline(global: &Global, args: &RunArgs) -> Result<ExitCode, String> {
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
