//! `kubectl beam __complete ARGS... WORD`: completions in cobra's protocol, which kubectl speaks to plugins through
//! the `kubectl_complete-beam` helper (plugins/kubectl_complete-beam): one candidate per line (`value<TAB>help`),
//! then `:<directive>`.

use super::Cli;
use clap::CommandFactory;
use std::ffi::OsString;

/// Cobra's directives: let the shell complete file names, or not.
const DIRECTIVE_DEFAULT: u8 = 0;
const DIRECTIVE_NO_FILE_COMPLETION: u8 = 4;

/// The completion lines for the words after `__complete` (the last one is the word being completed, maybe empty).
pub fn lines(words: Vec<OsString>) -> Vec<String> {
    let mut args = vec![OsString::from("kubectl-beam")];
    let index = words.len().max(1);
    args.extend(words);
    if args.len() == 1 {
        args.push(OsString::new());
    }
    let current_dir = std::env::current_dir().ok();
    let candidates =
        clap_complete::engine::complete(&mut Cli::command(), args, index, current_dir.as_deref()).unwrap_or_default();
    let mut lines: Vec<String> = candidates
        .iter()
        .filter(|candidate| !candidate.is_hide_set())
        .map(|candidate| {
            let value = candidate.get_value().to_string_lossy();
            match candidate.get_help() {
                Some(help) => format!("{value}\t{}", help.to_string().lines().next().unwrap_or("")),
                None => value.into_owned(),
            }
        })
        .collect();
    let directive = if lines.is_empty() {
        DIRECTIVE_DEFAULT
    } else {
        DIRECTIVE_NO_FILE_COMPLETION
    };
    lines.push(format!(":{directive}"));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(words: &[&str]) -> Vec<String> {
        lines(words.iter().map(OsString::from).collect())
    }

    #[test]
    fn subcommands_then_flags_then_values() {
        let top = complete(&[""]);
        assert!(top.iter().any(|line| line.starts_with("run\t")), "{top:?}");
        assert!(top.iter().any(|line| line.starts_with("doctor\t")), "{top:?}");
        assert_eq!(top.last().map(String::as_str), Some(":4"));
        let flags = complete(&["run", "--dry"]);
        assert!(flags.iter().any(|line| line.starts_with("--dry-run")), "{flags:?}");
        let roles = complete(&["logs", "wordcount", "--role", ""]);
        assert!(roles.iter().any(|line| line.starts_with("taskmanager")), "{roles:?}");
        assert!(!complete(&["__complete"]).is_empty());
    }
}
