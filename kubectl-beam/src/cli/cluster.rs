//! `cluster create|delete|list`: Flink session clusters for `run --session`.

use super::args::{ClusterCommand, DryRun, Global, Output};
use super::defaults;
use super::output::{block_on, block_on_result, client, namespace, print_objects};
use kubectl_beam::convert;
use kubectl_beam::pipeline::kubernetes_name;
use serde_json::Value;
use std::process::ExitCode;

pub(super) fn cluster(global: &Global, command: ClusterCommand) -> Result<ExitCode, String> {
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
