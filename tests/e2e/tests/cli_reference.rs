//! The command-line references in docs/reference/ are the binaries' own `--help`, command by command, as clap
//! renders it (every flag, its default and its environment variable): this test renders them again from the built
//! binaries and fails when a committed page differs, so the references cannot drift from the code.
//!
//!   BEAMSTACK_UPDATE_DOCS=1 cargo test -p e2e --test cli_reference   # rewrite the pages after changing a flag
//!
//! Needs no cluster: only `cargo build --workspace --bins` (which `cargo test --workspace` does).

use e2e::root;
use std::path::Path;
use std::process::Command;

/// `binary [path...] --help`, at the width clap uses when the output is not a terminal.
fn help(binary: &Path, path: &[String]) -> String {
    let output = Command::new(binary)
        .args(path)
        .arg("--help")
        // Nothing of the caller's: clap shows the values of the flags' environment variables (KUBECONFIG,
        // BEAM_WEBHOOK_*), and wraps at the smaller of $COLUMNS and 100.
        .env_clear()
        .env("COLUMNS", "100")
        .output()
        .unwrap_or_else(|error| panic!("{}: {error} (cargo build --workspace --bins first)", binary.display()));
    assert!(output.status.success(), "{} {path:?} --help failed", binary.display());
    String::from_utf8(output.stdout).unwrap()
}

/// The subcommands a help page lists under `Commands:`, without clap's own `help`.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| line.trim_end() != "Commands:")
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// Every command's page, the top one first, depth first in the order `--help` lists them.
fn reference(binary: &Path, shown_as: &str) -> String {
    let mut page = format!(
        "# `{shown_as}` command-line reference\n\n<!-- Generated from `{shown_as} --help` by tests/e2e/tests/cli_reference.rs \
         (BEAMSTACK_UPDATE_DOCS=1 cargo test -p e2e --test cli_reference); do not edit by hand. -->\n"
    );
    let mut pending = vec![Vec::<String>::new()];
    while let Some(path) = pending.pop() {
        let text = help(binary, &path);
        let title = std::iter::once(shown_as.to_owned())
            .chain(path.iter().cloned())
            .collect::<Vec<_>>();
        page.push_str(&format!("\n## `{}`\n\n```text\n{}```\n", title.join(" "), text));
        for name in subcommands(&text).into_iter().rev() {
            let mut child = path.clone();
            child.push(name);
            pending.push(child);
        }
    }
    page
}

fn check(binary: &str, shown_as: &str, page: &str) {
    let rendered = reference(&root().join("target/debug").join(binary), shown_as);
    let file = root().join("docs/reference").join(page);
    if std::env::var_os("BEAMSTACK_UPDATE_DOCS").is_some() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, &rendered).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&file).unwrap_or_default();
    if committed != rendered {
        let first_difference = committed
            .lines()
            .zip(rendered.lines())
            .position(|(old, new)| old != new)
            .map_or_else(|| "its length".to_owned(), |line| format!("line {}", line + 1));
        panic!(
            "{} is stale (first difference at {first_difference}): rewrite it with \
             BEAMSTACK_UPDATE_DOCS=1 cargo test -p e2e --test cli_reference",
            file.display()
        );
    }
}

#[test]
fn the_plugin_reference_is_its_help() {
    check("kubectl-beam", "kubectl beam", "kubectl-beam.md");
}

#[test]
fn the_webhook_reference_is_its_help() {
    check("beam-webhook", "beam-webhook", "beam-webhook.md");
}

#[test]
fn subcommands_are_read_from_the_commands_section() {
    let help = "Usage: x <COMMAND>\n\nCommands:\n  run     Run it\n          on two lines\n  cluster  Clusters\n  help    Print this\n\nOptions:\n  -h, --help  Help\n";
    assert_eq!(subcommands(help), ["run", "cluster"]);
}
