//! Validated settings built from the command line and the environment.

use crate::cli::{CloneArgs, ConnectionArgs};
use crate::pg::connstr::ConnParams;
use crate::pg::retry::RetryPolicy;
use std::path::PathBuf;
use std::time::Duration;

/// A mistake in how neoncopy was called: reported in one line, exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(msg: String) -> anyhow::Error {
    UsageError(msg).into()
}

#[derive(Clone, Debug)]
pub struct CloneConfig {
    pub source: ConnParams,
    pub target: ConnParams,
    pub dir: PathBuf,
    pub table_jobs: usize,
    pub index_jobs: usize,
    pub restore_jobs: usize,
    pub no_owner: bool,
    pub no_acl: bool,
    pub no_comments: bool,
    pub skip_extensions: bool,
    pub skip_large_objects: bool,
    pub skip_vacuum: bool,
    pub skip_db_properties: bool,
    pub drop_if_exists: bool,
    pub snapshot: SnapshotMode,
    /// Draw progress bars (a terminal, and not --quiet).
    pub show_bars: bool,
    pub resume: bool,
    pub restart: bool,
    pub retry: RetryPolicy,
    pub filters: Option<crate::filters::Filters>,
    /// Tables larger than this (bytes, heap and TOAST) are copied in parts; 0: never.
    pub split_threshold: u64,
    pub split_max_parts: u32,
    pub maintenance_work_mem: Option<u64>,
    /// Both connection strings came from the environment, not the command line.
    pub connections_from_env: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Export a snapshot and hold it open until the data is read.
    Export,
    /// Import a snapshot the caller exported and keeps open.
    Given(String),
    /// Every reader takes its own snapshot.
    None,
}

pub const SOURCE_ENV: &[&str] = &["NEONCOPY_SOURCE_PGURI", "PGCOPYDB_SOURCE_PGURI"];
pub const TARGET_ENV: &[&str] = &["NEONCOPY_TARGET_PGURI", "PGCOPYDB_TARGET_PGURI"];

/// The first of these environment variables that is set and not empty.
pub fn env_uri(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
}

/// Resolves --source/--target against the environment and parses them.
pub fn connections(args: &ConnectionArgs) -> anyhow::Result<(ConnParams, ConnParams)> {
    let source = args
        .source
        .clone()
        .or_else(|| env_uri(SOURCE_ENV))
        .ok_or_else(|| {
            usage("no source database: pass --source URI or set NEONCOPY_SOURCE_PGURI".into())
        })?;
    let target = args
        .target
        .clone()
        .or_else(|| env_uri(TARGET_ENV))
        .ok_or_else(|| {
            usage("no target database: pass --target URI or set NEONCOPY_TARGET_PGURI".into())
        })?;
    let source = ConnParams::parse(&source)
        .map_err(|e| usage(format!("invalid source connection string: {e:#}")))?;
    let target = ConnParams::parse(&target)
        .map_err(|e| usage(format!("invalid target connection string: {e:#}")))?;
    Ok((source, target))
}

pub fn default_dir() -> PathBuf {
    std::env::var_os("TMPDIR")
        .filter(|t| !t.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("neoncopy")
}

impl CloneConfig {
    /// What the pre-flight checks need to know.
    pub fn check_options(&self) -> crate::check::Options {
        crate::check::Options {
            table_jobs: self.table_jobs,
            index_jobs: self.index_jobs,
            restore_jobs: self.restore_jobs,
            no_owner: self.no_owner,
            no_acl: self.no_acl,
            skip_extensions: self.skip_extensions,
            skip_large_objects: self.skip_large_objects,
            drop_if_exists: self.drop_if_exists,
            filters: self.filters.clone(),
        }
    }

    pub fn from_args(args: &CloneArgs) -> anyhow::Result<CloneConfig> {
        let (source, target) = connections(&args.conn)?;
        let snapshot = match (&args.snapshot, args.not_consistent) {
            (Some(id), _) if id.trim().is_empty() => {
                return Err(usage(
                    "--snapshot needs a snapshot id such as 00000003-0000001B-1".into(),
                ))
            }
            (Some(id), _) => SnapshotMode::Given(id.trim().to_string()),
            (None, true) => SnapshotMode::None,
            (None, false) => SnapshotMode::Export,
        };
        Ok(CloneConfig {
            source,
            target,
            dir: args.dir.clone().unwrap_or_else(default_dir),
            table_jobs: args.table_jobs as usize,
            index_jobs: args.index_jobs as usize,
            restore_jobs: args.restore_jobs as usize,
            no_owner: args.no_owner,
            no_acl: args.no_acl,
            no_comments: args.no_comments,
            skip_extensions: args.skip_extensions,
            skip_large_objects: args.skip_large_objects,
            skip_vacuum: args.skip_vacuum,
            skip_db_properties: args.skip_db_properties,
            drop_if_exists: args.drop_if_exists,
            snapshot,
            show_bars: false,
            resume: args.resume,
            restart: args.restart,
            split_threshold: args.split_tables_larger_than,
            split_max_parts: args.split_max_parts.unwrap_or(args.table_jobs),
            maintenance_work_mem: args.maintenance_work_mem,
            connections_from_env: args.conn.source.is_none() && args.conn.target.is_none(),
            filters: crate::filters::Filters::load_optional(args.filters.as_deref())?,
            retry: RetryPolicy {
                retries: args.retries,
                first_delay: Duration::from_secs_f64(args.retry_delay),
                max_delay: Duration::from_secs_f64(args.retry_max_delay.max(args.retry_delay)),
            },
        })
    }
}

/// Parses a size as people write it: `500MB`, `1GB`, `10 GiB`, `2.5 GB`, or plain bytes.
/// kB, MB, GB and TB are powers of 1024, as PostgreSQL uses them.
pub fn parse_size(input: &str) -> Result<u64, String> {
    let s = input.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("invalid size \"{input}\": write it like 500MB, 1GB or 10GiB"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "invalid size unit in \"{input}\": use B, kB, MB, GB or TB (or KiB, MiB, GiB, TiB)"
            ))
        }
    };
    let bytes = number * factor as f64;
    if !bytes.is_finite() || bytes < 1.0 {
        return Err(format!(
            "invalid size \"{input}\": it must be at least 1 byte"
        ));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("500MB"), Ok(500 << 20));
        assert_eq!(parse_size("1GB"), Ok(1 << 30));
        assert_eq!(parse_size("10 GiB"), Ok(10 << 30));
        assert_eq!(parse_size("2.5 kB"), Ok(2560));
        assert_eq!(parse_size("1234"), Ok(1234));
        for bad in ["", "MB", "10 parsecs", "-5MB", "0", "1..2GB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
