//! The command line: kubectl's conventions (`--kubeconfig`, `--context`, `-n`, `-A`, `-o`, `--dry-run`), since
//! kubectl forwards no flags to plugins. `args` declares every command; this module dispatches them, one module per
//! command group does the work.

mod args;
mod cluster;
mod complete;
mod doctor;
mod observe;
mod output;
mod pipeline;
mod policy;

use args::Command;
pub use args::{Cli, Global, Output};
use clap::CommandFactory;
use kubectl_beam::defaults::{self, Defaults};
use output::{block_on, client};
use serde_json::Value;
use std::process::ExitCode;

pub fn run(cli: Cli) -> ExitCode {
    let global = &cli.global;
    let result = match cli.command {
        Command::Validate(args) => pipeline::validate(&args.pipeline),
        Command::Run(args) => pipeline::run_pipeline(global, &args),
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
        Command::Cluster(command) => cluster::cluster(global, command),
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
            args::EXIT_COULD_NOT_RUN.into()
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
pub(super) async fn defaults(client: Option<&kube::Client>) -> Result<Defaults, String> {
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
