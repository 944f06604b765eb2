//! Generates the man pages and shell completions from the clap definitions. Shared by
//! `cargo run --example gen-docs` (which writes them) and the docs test (which checks that the
//! files in the repository are what it would write).

#![allow(dead_code)]

use clap::CommandFactory;
use neoncopy::cli::Cli;

/// The command as documented: the version without the git commit, so that the generated files
/// do not change with every commit.
pub fn command() -> clap::Command {
    Cli::command().version(env!("CARGO_PKG_VERSION"))
}

/// (path relative to the repository, contents) of every generated file.
pub fn files() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let cmd = command();
    fn pages(cmd: &clap::Command, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) {
        let name = if prefix.is_empty() {
            cmd.get_name().to_string()
        } else {
            format!("{prefix}-{}", cmd.get_name())
        };
        let mut buf = Vec::new();
        let static_name: &'static str = Box::leak(name.clone().into_boxed_str());
        clap_mangen::Man::new(cmd.clone().name(static_name))
            .render(&mut buf)
            .expect("render man page");
        out.push((format!("man/{name}.1"), buf));
        for sub in cmd.get_subcommands() {
            if sub.get_name() != "help" {
                pages(sub, &name, out);
            }
        }
    }
    let mut built = cmd.clone();
    built.build();
    pages(&built, "", &mut out);
    for (shell, file) in [
        (clap_complete::Shell::Bash, "completions/neoncopy.bash"),
        (clap_complete::Shell::Zsh, "completions/_neoncopy"),
        (clap_complete::Shell::Fish, "completions/neoncopy.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut command(), "neoncopy", &mut buf);
        out.push((file.to_string(), buf));
    }
    out
}
