//! `kubectl beam`: run Beam YAML pipelines on the Flink and Spark operators, and test Beamstack policies offline.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    if args.next().is_some_and(|first| first == "__complete") {
        return cli::complete(args.collect());
    }
    cli::run(cli::Cli::parse())
}
