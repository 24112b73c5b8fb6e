//! `kubectl beam`: the Beamstack kubectl plugin.
//!
//! Today: `version` and the offline policy loop (`policy test`, `policy eval`), which run the very admission code
//! the webhook runs. Pipeline commands (`run`, `status`, ...) follow.

mod policy;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "kubectl-beam",
    bin_name = "kubectl beam",
    version,
    about = "Run Beam YAML pipelines on the Flink and Spark operators, and test Beamstack policies offline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the plugin's version.
    Version,
    /// Test and evaluate RunnerPolicies offline, with the webhook's own engine.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Version => {
            println!("kubectl-beam {}", beamstack::VERSION);
            ExitCode::SUCCESS
        }
        Command::Policy(command) => policy::run(command),
    }
}
