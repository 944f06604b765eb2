//! pg_dump and pg_restore: finding a version that can read the source, and running them as
//! child processes with the password in their environment, never in their arguments.

use super::connstr::ConnParams;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// A pg_dump and the pg_restore beside it.
#[derive(Clone, Debug)]
pub struct PgTools {
    pub pg_dump: PathBuf,
    pub pg_restore: PathBuf,
    pub major: u32,
    pub version: String,
    /// Why these were chosen.
    pub reason: String,
}

/// Reads `pg_dump (PostgreSQL) 15.18 (Debian ...)` into (15, "15.18").
fn parse_version(output: &str) -> Option<(u32, String)> {
    let token = output
        .split_whitespace()
        .find(|t| t.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    let major = token
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((major, token.to_string()))
}

fn version_of(pg_dump: &Path) -> Option<(u32, String)> {
    let out = std::process::Command::new(pg_dump)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_version(&String::from_utf8_lossy(&out.stdout))
}

/// Directories that may hold pg_dump: $NEONCOPY_PG_BINDIR alone when set; else PATH first, then
/// pg_config's bindir, then the usual package locations.
fn candidate_dirs() -> Vec<PathBuf> {
    // An explicit choice wins over any search.
    if let Some(dir) = std::env::var_os("NEONCOPY_PG_BINDIR").filter(|d| !d.is_empty()) {
        return vec![PathBuf::from(dir)];
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    if let Ok(out) = std::process::Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    {
        if out.status.success() {
            dirs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
        }
    }
    for pattern_dir in ["/usr/lib/postgresql", "/usr/local/pgsql", "/opt/postgresql"] {
        if let Ok(entries) = std::fs::read_dir(pattern_dir) {
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect();
            found.sort();
            dirs.extend(found);
        }
    }
    if let Ok(entries) = std::fs::read_dir("/usr") {
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("pgsql-"))
            .map(|e| e.path().join("bin"))
            .collect();
        found.sort();
        dirs.extend(found);
    }
    dirs
}

/// Finds the pg_dump/pg_restore pair to use between a source and a target server: one whose
/// major is at least the source's (an older pg_dump refuses to dump a newer server); among
/// those, the target's own major (its output is written for that version), else the newest
/// that is not newer than the target, else the oldest newer one. `reason` says which rule
/// chose it.
pub fn find(source_major: u32, target_major: u32) -> Result<PgTools> {
    find_in(candidate_dirs(), source_major, target_major)
}

fn find_in(dirs: Vec<PathBuf>, source_major: u32, target_major: u32) -> Result<PgTools> {
    let mut seen = Vec::new();
    let mut usable: Vec<PgTools> = Vec::new();
    for dir in dirs {
        let pg_dump = dir.join("pg_dump");
        let pg_restore = dir.join("pg_restore");
        if !pg_dump.is_file() || !pg_restore.is_file() {
            continue;
        }
        let Some((major, version)) = version_of(&pg_dump) else {
            continue;
        };
        let described = format!("{} ({version})", pg_dump.display());
        if seen.contains(&described) {
            continue;
        }
        seen.push(described);
        if major < source_major || usable.iter().any(|t| t.major == major) {
            continue;
        }
        usable.push(PgTools {
            pg_dump,
            pg_restore,
            major,
            version,
            reason: String::new(),
        });
    }
    let pick = |pred: &dyn Fn(u32) -> bool, newest: bool| {
        let mut fit: Vec<&PgTools> = usable.iter().filter(|t| pred(t.major)).collect();
        fit.sort_by_key(|t| t.major);
        if newest {
            fit.last().copied().cloned()
        } else {
            fit.first().copied().cloned()
        }
    };
    let chosen = if let Some(mut t) = pick(&|m| m == target_major, false) {
        t.reason = format!("the target's own major version ({target_major})");
        Some(t)
    } else if let Some(mut t) = pick(&|m| m < target_major, true) {
        t.reason = format!(
            "no pg_dump {target_major} (the target's version) was found; this is the newest that \
             can read the source ({source_major}) and is not newer than the target"
        );
        Some(t)
    } else if let Some(mut t) = pick(&|_| true, false) {
        t.reason = format!(
            "no pg_dump between the source's version ({source_major}) and the target's \
             ({target_major}) was found; this is the oldest newer one"
        );
        Some(t)
    } else {
        None
    };
    match chosen {
        Some(t) => Ok(t),
        None if seen.is_empty() => bail!(
            "pg_dump and pg_restore not found (looked in PATH, pg_config --bindir and /usr/lib/postgresql/*/bin): \
             install the PostgreSQL {target_major} client, e.g. apt-get install postgresql-client-{target_major}"
        ),
        None => bail!(
            "the source server is PostgreSQL {source_major} but every pg_dump found is older: {}; \
             install postgresql-client-{target_major} (the target's version)",
            seen.join(", ")
        ),
    }
}

/// A client program that failed, with whether its failure looks like a lost connection (worth
/// running it again) rather than a problem with what it was asked to do.
#[derive(Debug)]
pub struct ToolError {
    pub message: String,
    pub transient: bool,
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ToolError {}

/// Messages of libpq and the server that mean the connection, not the work, failed.
const CONNECTION_LOST: &[&str] = &[
    "server closed the connection unexpectedly",
    "could not connect to server",
    "connection to server at",
    "terminating connection due to administrator command",
    "terminating connection because of crash of another server process",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "could not receive data from server",
    "could not send data to server",
    "no connection to the server",
    "connection reset by peer",
    "ssl syscall error",
    "connection timed out",
];

fn looks_transient(stderr: &str) -> bool {
    let lower = stderr.to_ascii_lowercase();
    CONNECTION_LOST.iter().any(|p| lower.contains(p))
}

/// Runs a PostgreSQL client program. `conn` supplies the secrets through the environment;
/// `args` must hold no secret. Returns standard output; on failure the error carries the
/// program's last lines of standard error.
pub async fn run(program: &Path, args: &[String], conn: &ConnParams, what: &str) -> Result<String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_remove("PGPASSWORD")
        .env_remove("PGAPPNAME")
        .envs(conn.child_env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    tracing::debug!("running {} {}", program.display(), args.join(" "));
    let mut child = cmd
        .spawn()
        .with_context(|| format!("start {}", program.display()))?;
    // Known to the signal handler, which ends it should the process have to exit at once.
    let _running = child.id().map(crate::signals::Child::register);
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let mut out = String::new();
    let mut err = String::new();
    let (r1, r2, status) = tokio::join!(
        stdout.read_to_string(&mut out),
        stderr.read_to_string(&mut err),
        child.wait()
    );
    r1.with_context(|| format!("read output of {what}"))?;
    r2.with_context(|| format!("read errors of {what}"))?;
    let status = status.with_context(|| format!("wait for {what}"))?;
    for line in err.lines().filter(|l| !l.trim().is_empty()) {
        tracing::warn!("{what}: {line}");
    }
    if !status.success() {
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = &lines[lines.len().saturating_sub(4)..];
        let status = match status.code() {
            Some(c) => format!("exit code {c}"),
            None => "killed by a signal".to_string(),
        };
        return Err(ToolError {
            message: format!("{what} failed ({status}): {}", tail.join(" / ")),
            transient: looks_transient(&err),
        }
        .into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_tools(root: &Path, name: &str, version: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for tool in ["pg_dump", "pg_restore"] {
            let path = dir.join(tool);
            std::fs::write(
                &path,
                format!("#!/bin/sh\necho \"{tool} (PostgreSQL) {version}\"\n"),
            )
            .unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    }

    #[test]
    fn picks_the_targets_version_else_the_closest_below_it() {
        let root = tempfile::tempdir().unwrap();
        let dirs = vec![
            fake_tools(root.path(), "a", "17.2"),
            fake_tools(root.path(), "b", "13.9"),
            fake_tools(root.path(), "c", "15.4"),
            fake_tools(root.path(), "d", "18.1"),
            root.path().join("missing"),
        ];
        let major = |s, t| find_in(dirs.clone(), s, t).unwrap().major;
        // The target's own version.
        assert_eq!(major(13, 17), 17);
        assert_eq!(major(15, 15), 15);
        let t = find_in(dirs.clone(), 15, 18).unwrap();
        assert_eq!((t.major, t.version.as_str()), (18, "18.1"));
        assert_eq!(t.pg_restore, dirs[3].join("pg_restore"));
        assert!(t.reason.contains("target's own"), "{}", t.reason);
        // Else the newest not newer than the target that reads the source.
        assert_eq!(major(12, 16), 15);
        assert!(find_in(dirs.clone(), 12, 16)
            .unwrap()
            .reason
            .contains("not newer"));
        // Else the oldest newer one.
        assert_eq!(major(16, 16), 17);
        assert_eq!(major(14, 14), 15);
        let err = find_in(dirs.clone(), 19, 19).unwrap_err().to_string();
        assert!(
            err.contains("PostgreSQL 19") && err.contains("older"),
            "{err}"
        );
        assert!(err.contains("postgresql-client-19"), "{err}");
        let err = find_in(vec![root.path().join("none")], 15, 17)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not found"), "{err}");
    }

    #[test]
    fn versions() {
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some((15, "15.18".to_string()))
        );
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 17beta1"),
            Some((17, "17beta1".to_string()))
        );
        assert_eq!(parse_version("nothing here"), None);
    }
}
