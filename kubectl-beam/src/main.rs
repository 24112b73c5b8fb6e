//! `kubectl beam`: run Beam YAML pipelines on the Flink and Spark operators, and test Beamstack policies offline.

mod cli;
mod policy;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    cli::run(cli::Cli::parse())
}
