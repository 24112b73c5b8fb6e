//! `kubectl beam policy test|eval`: the offline loop for platform teams, as good as `kyverno test`.

use beamstack::admission::Admission;
use beamstack::config::Config;
use beamstack::policy::load;
use beamstack::policy::usage::usage_from_json;
use beamstack::policy_test::{self, CaseResult};
use clap::{Args, Subcommand};
use comfy_table::{Cell, Color, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Run every PolicyTest below a folder and print a table; exits 1 on any mismatch.
    #[command(
        after_help = "Examples:\n  kubectl beam policy test policies/\n  kubectl beam policy test policies/tests/budget.test.yaml -o json"
    )]
    Test(TestArgs),
    /// Print what the policies (and the webhook's built-in rules and defaults) say about resources.
    #[command(
        after_help = "Examples:\n  kubectl beam policy eval --policies policies/ job.yaml\n  \
                            kubectl beam policy eval --policies policies/ --usage usage.yaml -o json job.yaml"
    )]
    Eval(EvalArgs),
}

#[derive(Args)]
pub struct TestArgs {
    /// A folder (searched recursively) or a single test file.
    #[arg(default_value = "policies")]
    path: PathBuf,
}

#[derive(Args)]
pub struct EvalArgs {
    /// Folder of RunnerPolicy and Tenant files.
    #[arg(long)]
    policies: PathBuf,
    /// YAML map of what tenants already run: `team-a: {cpu: "12", memory: 40Gi, jobs: 3, workers: 10}`.
    #[arg(long)]
    usage: Option<PathBuf>,
    /// The webhook's configuration file, for its defaults; built-in defaults when absent.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Resource files (FlinkDeployment, SparkApplication, ...); several documents per file are fine.
    #[arg(required = true)]
    resources: Vec<PathBuf>,
}

/// `-o json` gives machine-readable reports; anything else a table.
pub fn run(command: PolicyCommand, output: Option<super::Output>) -> ExitCode {
    let json = output == Some(super::Output::Json);
    let result = match command {
        PolicyCommand::Test(args) => test(args, json),
        PolicyCommand::Eval(args) => eval(args, json),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            super::args::EXIT_COULD_NOT_RUN.into()
        }
    }
}

fn table() -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    if !std::io::stdout().is_terminal() {
        table.force_no_tty();
    }
    table
}

fn test(args: TestArgs, json: bool) -> Result<ExitCode, String> {
    let results = policy_test::run_folder(&args.path)
        .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))?;
    let failed = results.iter().filter(|result| !result.passed).count();
    match json {
        true => {
            let cases: Vec<Value> = results.iter().map(case_json).collect();
            let report = json!({"passed": results.len() - failed, "failed": failed, "cases": cases});
            println!(
                "{}",
                serde_json::to_string_pretty(&report).map_err(|error| error.to_string())?
            );
        }
        false => {
            let mut table = table();
            table.set_header(["TEST", "CASE", "EXPECTED", "GOT", "RESULT"]);
            for result in &results {
                let verdict = if result.passed {
                    Cell::new("pass").fg(Color::Green)
                } else {
                    Cell::new("FAIL").fg(Color::Red)
                };
                table.add_row(vec![
                    Cell::new(&result.test),
                    Cell::new(&result.case),
                    Cell::new(&result.expected),
                    Cell::new(&result.got),
                    verdict,
                ]);
            }
            println!("{table}");
            for result in results.iter().filter(|result| !result.passed) {
                println!("\nFAIL {} / {}:\n{}", result.test, result.case, indent(&result.detail));
            }
            println!("\n{} passed, {} failed", results.len() - failed, failed);
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn case_json(result: &CaseResult) -> Value {
    json!({"test": result.test, "case": result.case, "expected": result.expected, "got": result.got,
           "passed": result.passed, "detail": result.detail})
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn eval(args: EvalArgs, json: bool) -> Result<ExitCode, String> {
    let config = match &args.config {
        Some(path) => Config::from_file(path).map_err(|error| error.to_string())?,
        None => Config::default(),
    };
    let (admission, _, loaded) = Admission::with_policy_folder(config, &args.policies).map_err(join_errors)?;
    let engine = admission.engine().expect("a policy-backed admission has an engine");
    if let Some(path) = &args.usage {
        let text = std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))?;
        let usage: serde_json::Map<String, Value> =
            serde_saphyr::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))?;
        for (tenant, amounts) in &usage {
            let demand = usage_from_json(amounts).map_err(|error| format!("{}: {tenant}: {error}", path.display()))?;
            engine.state_usage(tenant, demand);
        }
    }
    eprintln!(
        "{} policies, {} tenants from {}",
        loaded.policies,
        loaded.tenants,
        args.policies.display()
    );
    let mut any_denied = false;
    let mut reports = Vec::new();
    for file in &args.resources {
        let text = std::fs::read_to_string(file).map_err(|error| format!("{}: {error}", file.display()))?;
        for document in load::documents(file, &text).map_err(|error| error.to_string())? {
            let object = &document.value;
            let evaluation = policy_test::evaluate(&admission, object, None, "CREATE")
                .map_err(|error| format!("{}:{}: {error}", file.display(), document.line))?;
            any_denied |= !evaluation.allowed;
            let name = format!(
                "{} {}/{}",
                object.get("kind").and_then(Value::as_str).unwrap_or("?"),
                object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("default"),
                object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?")
            );
            reports.push(json!({
                "resource": name,
                "file": format!("{}:{}", file.display(), document.line),
                "allowed": evaluation.allowed,
                "violations": evaluation.policy_violations.iter().chain(&evaluation.builtin_violations).collect::<Vec<_>>(),
                "warnings": evaluation.warnings,
                "audit": evaluation.audit,
                "patch": evaluation.patch,
            }));
        }
    }
    match json {
        true => println!(
            "{}",
            serde_json::to_string_pretty(&reports).map_err(|error| error.to_string())?
        ),
        false => {
            for report in &reports {
                let verdict = if report["allowed"] == true { "allowed" } else { "DENIED" };
                println!(
                    "{} ({}): {verdict}",
                    report["resource"].as_str().unwrap_or(""),
                    report["file"].as_str().unwrap_or("")
                );
                for violation in report["violations"].as_array().into_iter().flatten() {
                    println!("  deny:    {}", violation.as_str().unwrap_or(""));
                }
                for warning in report["warnings"].as_array().into_iter().flatten() {
                    println!("  warning: {}", warning.as_str().unwrap_or(""));
                }
                for (key, value) in report["audit"].as_object().into_iter().flatten() {
                    println!("  audit:   {key}: {}", value.as_str().unwrap_or(""));
                }
                let mut table = table();
                table.set_header(["PATCH", "PATH", "VALUE"]);
                let mut rows = 0;
                for operation in report["patch"].as_array().into_iter().flatten() {
                    let value = operation.get("value").map(Value::to_string).unwrap_or_default();
                    let shown: String = if value.chars().count() > 80 {
                        value.chars().take(77).chain("...".chars()).collect()
                    } else {
                        value
                    };
                    table.add_row(vec![
                        operation["op"].as_str().unwrap_or("").to_owned(),
                        operation["path"].as_str().unwrap_or("").to_owned(),
                        shown,
                    ]);
                    rows += 1;
                }
                if rows > 0 {
                    println!("{table}");
                }
            }
        }
    }
    Ok(if any_denied {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn join_errors(errors: Vec<load::LoadError>) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}
