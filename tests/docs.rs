//! The documentation stays true to the command line: generated man pages and completions are
//! up to date, and every flag of every command is in its --help and in docs/usage.md.

mod docs_gen;

use std::path::Path;

#[test]
fn man_pages_and_completions_are_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (path, contents) in docs_gen::files() {
        let on_disk = std::fs::read(root.join(&path))
            .unwrap_or_else(|_| panic!("{path} is missing: run cargo run --example gen-docs"));
        assert!(
            on_disk == contents,
            "{path} is out of date: run cargo run --example gen-docs"
        );
    }
}

/// Every subcommand path with its long flags.
fn commands() -> Vec<(Vec<String>, Vec<String>)> {
    fn walk(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<(Vec<String>, Vec<String>)>) {
        let flags: Vec<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .filter(|l| l != "--help" && l != "--version")
            .collect();
        out.push((path.clone(), flags));
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            let mut p = path.clone();
            p.push(sub.get_name().to_string());
            walk(sub, p, out);
        }
    }
    let mut out = Vec::new();
    let mut cmd = docs_gen::command();
    cmd.build();
    walk(&cmd, Vec::new(), &mut out);
    out
}

#[test]
fn every_flag_is_in_help_and_in_the_usage_page() {
    let usage =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/usage.md"))
            .expect("read docs/usage.md");
    let mut checked = 0;
    for (path, flags) in commands() {
        let mut args = path.clone();
        args.push("--help".into());
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_neoncopy"))
            .args(&args)
            .output()
            .expect("run neoncopy --help");
        assert!(out.status.success(), "{args:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        for flag in flags {
            assert!(
                help.contains(&flag),
                "{flag} missing from `neoncopy {}`",
                args.join(" ")
            );
            assert!(
                usage.contains(&format!("`{flag}")),
                "{flag} of `neoncopy {}` missing from docs/usage.md",
                path.join(" ")
            );
            checked += 1;
        }
        if !path.is_empty() {
            assert!(
                usage.contains(&format!("`{}", path.join(" ")))
                    || usage.contains(&format!("neoncopy {}", path.join(" "))),
                "command `{}` missing from docs/usage.md",
                path.join(" ")
            );
        }
    }
    assert!(checked > 60, "only {checked} flags found");
}

#[test]
fn version_names_the_commit() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_neoncopy"))
        .arg("--version")
        .output()
        .unwrap();
    let v = String::from_utf8_lossy(&out.stdout);
    assert!(
        v.starts_with(&format!("neoncopy {} (", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
}

#[test]
fn defaults_and_environment_variables_are_in_help() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_neoncopy"))
        .args(["clone", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "[default: 4]",
        "[default: 1GB]",
        "NEONCOPY_SOURCE_PGURI",
        "PGCOPYDB_TARGET_PGURI",
        "Example",
    ] {
        assert!(help.contains(needle), "{needle} missing from clone --help");
    }
}

/// Every neoncopy command the guides show in a shell block is one the command line accepts:
/// a renamed or removed flag cannot stay behind in a guide a user follows word for word.
#[test]
fn every_command_in_the_guides_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for page in [
        "README.md",
        "docs/neon.md",
        "docs/usage.md",
        "docs/troubleshooting.md",
    ] {
        let text = std::fs::read_to_string(root.join(page)).expect("read a guide");
        let mut in_shell = false;
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with("```") {
                in_shell = !in_shell && trimmed.trim_start_matches('`').starts_with("sh");
                continue;
            }
            if !in_shell || !trimmed.starts_with("neoncopy ") {
                continue;
            }
            let command = trimmed.split(" # ").next().unwrap_or(trimmed);
            let words: Vec<String> = command
                .split_whitespace()
                .map(|w| w.trim_matches(|c| c == '"' || c == '\'').to_string())
                .collect();
            match docs_gen::command().try_get_matches_from(&words) {
                Ok(_) => {}
                Err(e) if e.kind() == clap::error::ErrorKind::DisplayVersion => {}
                Err(e) => panic!("{page}: `{command}` is not accepted:\n{e}"),
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} commands found in the guides");
}
