//! `kubectl beam`: the Beamstack kubectl plugin. For now it reports its version; the pipeline commands follow.
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "kubectl-beam",
    version,
    about = "Run Beam YAML pipelines on the Flink and Spark operators"
)]
enum Cli {
    /// Print the plugin's version.
    Version,
}

fn main() {
    match Cli::parse() {
        Cli::Version => println!("kubectl-beam {}", beamstack::VERSION),
    }
}
