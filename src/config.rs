//! The one place that turns the command line and the environment into validated settings,
//! one type per command, and raises usage errors about them. No other module reads `cli` or
//! the environment's connection strings.

use crate::cli::{self, CloneArgs, ConnectionArgs, SnapshotArgs};
use crate::error::usage;
use crate::filters::Filters;
use crate::pg::connstr::ConnParams;
use crate::pg::retry::RetryPolicy;
pub use crate::pg::snapshot::SnapshotMode;
use std::path::PathBuf;
use std::time::Duration;

/// What to run, with its settings.
pub enum Command {
    Clone(CloneConfig),
    Check(CheckConfig),
    CompareSchema(CompareSchemaConfig),
    CompareData(CompareDataConfig),
    Progress(ProgressConfig),
    List(ListConfig),
    Cutover(CutoverConfig),
}

/// `neoncopy cutover`.
pub struct CutoverConfig {
    pub source: ConnParams,
    pub target: ConnParams,
    pub dir: PathBuf,
    /// Writes to the source have stopped: do not ask.
    pub yes: bool,
    pub counts_only: bool,
    /// Abandon the migration instead.
    pub abort: bool,
    pub table_jobs: usize,
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
    /// `--follow`: after the copy, the target follows the source until `neoncopy cutover`.
    pub follow: Option<crate::follow::FollowConfig>,
    /// Both connection strings came from the environment, not the command line.
    pub connections_from_env: bool,
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
            usage("no source database: pass --source URI or set NEONCOPY_SOURCE_PGURI")
        })?;
    let target = args
        .target
        .clone()
        .or_else(|| env_uri(TARGET_ENV))
        .ok_or_else(|| {
            usage("no target database: pass --target URI or set NEONCOPY_TARGET_PGURI")
        })?;
    Ok((
        parse_connection("source", &source)?,
        parse_connection("target", &target)?,
    ))
}

fn parse_connection(side: &str, s: &str) -> anyhow::Result<ConnParams> {
    ConnParams::parse(s).map_err(|e| usage(format!("invalid {side} connection string: {e:#}")))
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
    pub fn check_options(&self) -> crate::preflight::Options {
        crate::preflight::Options {
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
        let follow = follow_config(&args.follow, &source)?;
        let own_snapshot = args.snapshot.not_consistent || args.snapshot.snapshot.is_some();
        if follow.is_some() && own_snapshot && !args.resume {
            return Err(usage(
                "--follow takes its snapshot from the replication slot it creates: drop \
                 --not-consistent and --snapshot",
            ));
        }
        let jobs = &args.jobs;
        let retry = &args.retry;
        Ok(CloneConfig {
            source,
            target,
            dir: dir(&args.dir),
            table_jobs: jobs.table_jobs as usize,
            index_jobs: jobs.index_jobs as usize,
            restore_jobs: jobs.restore_jobs as usize,
            no_owner: args.no_owner,
            no_acl: args.no_acl,
            no_comments: args.no_comments,
            skip_extensions: args.skip_extensions,
            skip_large_objects: args.skip_large_objects,
            skip_vacuum: args.skip_vacuum,
            skip_db_properties: args.skip_db_properties,
            drop_if_exists: args.drop_if_exists,
            snapshot: snapshot_mode(&args.snapshot)?,
            show_bars: false,
            resume: args.resume,
            restart: args.restart,
            split_threshold: args.split.split_tables_larger_than,
            split_max_parts: args.split.split_max_parts.unwrap_or(jobs.table_jobs),
            maintenance_work_mem: args.maintenance_work_mem,
            follow,
            connections_from_env: args.conn.source.is_none() && args.conn.target.is_none(),
            filters: Filters::load_optional(args.filters.filters.as_deref())?,
            retry: RetryPolicy {
                retries: retry.retries,
                first_delay: Duration::from_secs_f64(retry.retry_delay),
                max_delay: Duration::from_secs_f64(retry.retry_max_delay.max(retry.retry_delay)),
            },
        })
    }
}

fn follow_config(
    args: &cli::FollowArgs,
    source: &ConnParams,
) -> anyhow::Result<Option<crate::follow::FollowConfig>> {
    if !args.follow {
        return Ok(None);
    }
    let source_for_target = match &args.follow_source {
        Some(uri) => parse_connection("follow source", uri)?,
        None => source.clone(),
    };
    Ok(Some(crate::follow::FollowConfig {
        source_for_target,
        replica_identity_full: args.replica_identity_full,
    }))
}

fn dir(args: &cli::DirArgs) -> PathBuf {
    args.dir.clone().unwrap_or_else(default_dir)
}

fn snapshot_mode(args: &SnapshotArgs) -> anyhow::Result<SnapshotMode> {
    Ok(match (&args.snapshot, args.not_consistent) {
        (Some(id), _) if id.trim().is_empty() => {
            return Err(usage(
                "--snapshot needs a snapshot id such as 00000003-0000001B-1",
            ))
        }
        (Some(id), _) => SnapshotMode::Given(id.trim().to_string()),
        (None, true) => SnapshotMode::None,
        (None, false) => SnapshotMode::Export,
    })
}

/// `neoncopy check`: the connections and what the checks depend on.
pub struct CheckConfig {
    pub source: ConnParams,
    pub target: ConnParams,
    pub options: crate::preflight::Options,
    /// `check --follow`: also what online migration needs.
    pub follow: Option<crate::follow::FollowConfig>,
    pub json: bool,
}

/// `neoncopy compare schema`.
pub struct CompareSchemaConfig {
    pub source: ConnParams,
    pub target: ConnParams,
    pub filters: Option<Filters>,
    /// Where the result is recorded.
    pub dir: PathBuf,
    pub owners: bool,
    pub acl: bool,
    pub json: bool,
}

/// `neoncopy compare data`.
pub struct CompareDataConfig {
    pub source: ConnParams,
    pub target: ConnParams,
    pub filters: Option<Filters>,
    /// Where the result is recorded.
    pub dir: PathBuf,
    pub table_jobs: usize,
    pub split_threshold: u64,
    pub split_max_parts: u32,
    pub snapshot: SnapshotMode,
    /// Row counts only, no checksums.
    pub counts_only: bool,
    /// Checksum queries are tried again after a transient error (they change nothing).
    pub retry: RetryPolicy,
    pub json: bool,
}

/// `neoncopy list progress`.
pub struct ProgressConfig {
    pub dir: PathBuf,
    pub summary: bool,
    pub json: bool,
    /// The source the user says the clone reads, checked against the recorded one.
    pub source: Option<ConnParams>,
    /// The target, to show the replication of a clone --follow.
    pub target: Option<ConnParams>,
}

/// `neoncopy list tables|table-parts|indexes|sequences|extensions`: what the source holds.
pub struct ListConfig {
    pub what: ListWhat,
    pub source: ConnParams,
    pub filters: Option<Filters>,
    pub json: bool,
}

pub enum ListWhat {
    Tables,
    TableParts {
        split_threshold: u64,
        split_max_parts: u32,
        /// Only this table: (schema, if given; name).
        table: Option<(Option<String>, String)>,
    },
    Indexes,
    Sequences,
    Extensions,
}

impl Command {
    /// The validated settings of the command line's command.
    pub fn from_cli(command: &cli::Command, quiet: bool) -> anyhow::Result<Command> {
        Ok(match command {
            cli::Command::Clone(args) => {
                let mut cfg = CloneConfig::from_args(args)?;
                cfg.show_bars = crate::progress::wanted(quiet);
                Command::Clone(cfg)
            }
            cli::Command::Check(args) => {
                let cfg = CloneConfig::from_args(&args.clone)?;
                Command::Check(CheckConfig {
                    options: cfg.check_options(),
                    follow: cfg.follow,
                    source: cfg.source,
                    target: cfg.target,
                    json: args.output.json,
                })
            }
            cli::Command::Compare(cli::CompareCommand::Schema(a)) => {
                let (source, target, filters, dir) = compared(&a.conn, &a.filters, &a.dir)?;
                Command::CompareSchema(CompareSchemaConfig {
                    source,
                    target,
                    filters,
                    dir,
                    owners: a.compare_owners,
                    acl: a.compare_acl,
                    json: a.output.json,
                })
            }
            cli::Command::Compare(cli::CompareCommand::Data(a)) => {
                let (source, target, filters, dir) = compared(&a.conn, &a.filters, &a.dir)?;
                Command::CompareData(CompareDataConfig {
                    source,
                    target,
                    filters,
                    dir,
                    table_jobs: a.table_jobs as usize,
                    split_threshold: a.split.split_tables_larger_than,
                    split_max_parts: a.split.split_max_parts.unwrap_or(a.table_jobs),
                    snapshot: snapshot_mode(&a.snapshot)?,
                    counts_only: false,
                    retry: RetryPolicy::default(),
                    json: a.output.json,
                })
            }
            cli::Command::List(cli::ListCommand::Progress(a)) => {
                Command::Progress(ProgressConfig {
                    dir: dir(&a.dir),
                    summary: a.summary,
                    json: a.output.json,
                    source: a
                        .source
                        .clone()
                        .or_else(|| env_uri(SOURCE_ENV))
                        .map(|s| parse_connection("source", &s))
                        .transpose()?,
                    target: a
                        .target
                        .clone()
                        .or_else(|| env_uri(TARGET_ENV))
                        .map(|s| parse_connection("target", &s))
                        .transpose()?,
                })
            }
            cli::Command::List(cmd) => Command::List(list_config(cmd)?),
            cli::Command::Cutover(a) => {
                let (source, target) = connections(&a.conn)?;
                Command::Cutover(CutoverConfig {
                    source,
                    target,
                    dir: dir(&a.dir),
                    yes: a.yes,
                    counts_only: a.counts_only,
                    abort: a.abort,
                    table_jobs: a.table_jobs as usize,
                })
            }
        })
    }
}

/// What both compare commands take: the two databases, the filters, where to record.
fn compared(
    conn: &ConnectionArgs,
    filters: &cli::FilterArgs,
    dir_args: &cli::DirArgs,
) -> anyhow::Result<(ConnParams, ConnParams, Option<Filters>, PathBuf)> {
    let (source, target) = connections(conn)?;
    let filters = Filters::load_optional(filters.filters.as_deref())?;
    Ok((source, target, filters, dir(dir_args)))
}

fn list_config(cmd: &cli::ListCommand) -> anyhow::Result<ListConfig> {
    use cli::ListCommand as L;
    let (what, args) = match cmd {
        L::Progress(_) => unreachable!("list progress has its own settings"),
        L::Tables(a) => (ListWhat::Tables, a),
        L::Indexes(a) => (ListWhat::Indexes, a),
        L::Sequences(a) => (ListWhat::Sequences, a),
        L::Extensions(a) => (ListWhat::Extensions, a),
        L::TableParts(a) => (
            ListWhat::TableParts {
                split_threshold: a.split_tables_larger_than,
                split_max_parts: a.split_max_parts,
                table: a.table.as_deref().map(parse_table_name).transpose()?,
            },
            &a.list,
        ),
    };
    let source = args
        .conn
        .source
        .clone()
        .or_else(|| env_uri(SOURCE_ENV))
        .ok_or_else(|| {
            usage("no source database: pass --source URI or set NEONCOPY_SOURCE_PGURI")
        })?;
    Ok(ListConfig {
        what,
        source: parse_connection("source", &source)?,
        filters: Filters::load_optional(args.filters.filters.as_deref())?,
        json: args.output.json,
    })
}

/// Parses `schema.table` as SQL would: quoted parts kept as written, unquoted ones lowercased.
/// Without a schema, the table is looked for in every schema.
pub fn parse_table_name(s: &str) -> anyhow::Result<(Option<String>, String)> {
    let parts = crate::filters::parse_name_parts(s).map_err(|e| {
        usage(format!(
            "invalid table name {s:?} ({e}): write schema.table (quote odd names: \"My Schema\".\"My Table\")"
        ))
    })?;
    match parts.as_slice() {
        [name] => Ok((None, name.clone())),
        [schema, name] => Ok((Some(schema.clone()), name.clone())),
        _ => Err(usage(format!(
            "invalid table name {s:?}: write schema.table (quote odd names: \"My Schema\".\"My Table\")"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        assert_eq!(
            parse_table_name("Public.Orders").unwrap(),
            (Some("public".into()), "orders".into())
        );
        assert_eq!(
            parse_table_name(r#""My Schema"."Odd ""T""""#).unwrap(),
            (Some("My Schema".into()), r#"Odd "T""#.into())
        );
        assert_eq!(parse_table_name("t").unwrap(), (None, "t".into()));
        assert!(parse_table_name("a.b.c").is_err());
        assert!(parse_table_name("\"x").is_err());
        assert!(parse_table_name("").is_err());
    }
}
