//! The command line: clap types only. Doc comments become --help.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Copy a whole PostgreSQL database to another server (Neon first): schema, data, indexes,
/// constraints, sequences and large objects, from one consistent snapshot.
/// The version and the git commit the binary was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("NEONCOPY_GIT_COMMIT"),
    ")"
);

#[derive(Parser, Debug)]
#[command(name = "neoncopy", version = VERSION, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// How log lines are written: human-readable text, or one JSON object per line
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Print more detail (debug logs); RUST_LOG overrides both --verbose and --quiet
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,

    /// Print only warnings and errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Copy a database: schema, data, indexes, constraints, sequences, large objects
    #[command(long_about = CLONE_LONG_ABOUT)]
    Clone(CloneArgs),

    /// Show a clone's progress, or what the source database holds
    #[command(subcommand)]
    List(ListCommand),

    /// Prove the copy: compare the schema or the data of source and target
    #[command(subcommand)]
    Compare(CompareCommand),

    /// Check before cloning: connections, versions, pg_dump, extensions, roles, connection
    /// limits, poolers; prints each check with a fix and exits 1 if any fails
    #[command(long_about = CHECK_LONG_ABOUT)]
    Check(CheckArgs),

    /// End an online migration started with clone --follow: wait for the target to catch up,
    /// carry sequences and large objects, compare, and release the replication
    #[command(long_about = CUTOVER_LONG_ABOUT)]
    Cutover(CutoverArgs),
}

const CUTOVER_LONG_ABOUT: &str = "\
End an online migration started with `neoncopy clone --follow`, from the same --dir.

Once writes to the source have stopped (the command asks, unless --yes): reads the source's
current WAL position and waits until the target's subscription has applied everything up to
it; sets every sequence from the source; copies the large objects again; compares schema and
data (--counts-only: row counts only, for very large databases); then drops the subscription,
the replication slot and the publication, and prints how long writes were stopped.
When the comparison finds differences, the replication is left in place and the exit code
is 1. With --abort: drops the subscription, the slot and the publication without cutting
over, and puts back the replica identity of tables clone --follow changed.

Exit codes as compare's: 0 cut over, 1 differences found, 2 could not cut over.

Example:
  neoncopy cutover --dir /tmp/neoncopy --yes";

#[derive(Args, Debug, Clone)]
pub struct CutoverArgs {
    #[command(flatten)]
    pub conn: ConnectionArgs,

    #[command(flatten)]
    pub dir: DirArgs,

    /// Do not ask whether writes to the source have stopped: they have
    #[arg(long)]
    pub yes: bool,

    /// Compare row counts only, not checksums of every row
    #[arg(long, conflicts_with = "abort")]
    pub counts_only: bool,

    /// Abandon the migration: drop the subscription, the replication slot and the publication
    /// without cutting over, leaving the source as it was
    #[arg(long)]
    pub abort: bool,

    /// Tables checksummed at the same time on each server
    #[arg(long, default_value_t = 4, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub table_jobs: u32,
}

const CHECK_LONG_ABOUT: &str = "\
Check that a clone from --source to --target can work, before the first byte moves: both
connections (and whether they are encrypted), server and pg_dump versions, pooler endpoints,
whether the target is empty, the target role and the --no-owner/--no-acl it needs, roles the
target lacks, extensions the target cannot create, large objects, and the target's
max_connections against the job counts. Give it the same options as the clone.

Each check prints pass, warning or FAIL with a fix; the exit code is 1 when any check fails.
clone runs the cheap checks itself and stops at the first failure.

Example:
  neoncopy check --source \"$SRC\" --target \"$DST\" --no-owner --no-acl";

#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// Every option of clone: those that shape the copy shape the checks.
    #[command(flatten)]
    pub clone: CloneArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Subcommand, Debug)]
pub enum ListCommand {
    /// Progress of a running or finished clone, read from its work directory
    #[command(long_about = PROGRESS_LONG_ABOUT)]
    Progress(ProgressArgs),
    /// Tables of the source whose rows a clone copies, largest first
    Tables(SourceListArgs),
    /// How --split-tables-larger-than would split the source's big tables into parts
    TableParts(TablePartsArgs),
    /// Indexes and index-backed constraints of the source, and which step builds each
    Indexes(SourceListArgs),
    /// Sequences of the source with their current values
    Sequences(SourceListArgs),
    /// Extensions installed in the source database
    Extensions(SourceListArgs),
}

const PROGRESS_LONG_ABOUT: &str = "\
Progress of a running or finished clone, read from its work directory (another terminal can
watch a clone while it runs).

Without --summary: tables and indexes in progress and done, bytes and rows copied, the current
rate and an estimate of the time left, and what each worker is doing now.
With --summary: the time each step took, bytes transferred and concurrency, then one line per
table; the same table clone prints when it ends.

Examples:
  neoncopy list progress --dir /tmp/neoncopy
  watch -n 2 neoncopy list progress
  neoncopy list progress --summary --json";

// Flag groups shared by several commands, flattened into each: one definition, one help text.

/// --source and --target.
#[derive(Args, Debug, Clone)]
pub struct ConnectionArgs {
    /// Source connection string (postgresql:// URI or key=value); also read from
    /// NEONCOPY_SOURCE_PGURI, then PGCOPYDB_SOURCE_PGURI
    #[arg(long, value_name = "URI")]
    pub source: Option<String>,

    /// Target connection string (postgresql:// URI or key=value); also read from
    /// NEONCOPY_TARGET_PGURI, then PGCOPYDB_TARGET_PGURI
    #[arg(long, value_name = "URI")]
    pub target: Option<String>,
}

/// --source alone, for the commands that read only the source.
#[derive(Args, Debug, Clone)]
pub struct SourceArgs {
    /// Source connection string (postgresql:// URI or key=value); also read from
    /// NEONCOPY_SOURCE_PGURI, then PGCOPYDB_SOURCE_PGURI
    #[arg(long, value_name = "URI")]
    pub source: Option<String>,
}

/// --filters.
#[derive(Args, Debug, Clone)]
pub struct FilterArgs {
    /// Only what these filters select: an INI file with sections include-only-schema,
    /// exclude-schema, include-only-table, exclude-table, exclude-index, exclude-table-data,
    /// include-only-extension, exclude-extension (pgcopydb's format; ~/regex/ patterns)
    #[arg(long, value_name = "FILE")]
    pub filters: Option<PathBuf>,
}

/// --dir.
#[derive(Args, Debug, Clone)]
pub struct DirArgs {
    /// Work directory: a clone's schema archive, its record (state.db, which list progress
    /// reads and compare adds its results to) and its log (neoncopy.log) [default:
    /// $TMPDIR/neoncopy, else /tmp/neoncopy]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// --json.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// --not-consistent and --snapshot: which snapshot the source is read in.
#[derive(Args, Debug, Clone)]
pub struct SnapshotArgs {
    /// Do not read the source in one snapshot: faster to start, but not consistent if the
    /// source is being written to
    #[arg(long, conflicts_with = "snapshot")]
    pub not_consistent: bool,

    /// Use this already exported snapshot (from pg_export_snapshot() in a transaction the
    /// caller keeps open) instead of exporting one
    #[arg(long, value_name = "ID")]
    pub snapshot: Option<String>,
}

/// --split-tables-larger-than and --split-max-parts.
#[derive(Args, Debug, Clone)]
pub struct SplitArgs {
    /// Tables larger than this (heap plus TOAST) are worked on in parts at the same time:
    /// 500MB, 1GB, 10GiB, or bytes; 0 never splits
    #[arg(long, default_value = "1GB", value_name = "SIZE", value_parser = parse_size_or_zero)]
    pub split_tables_larger_than: u64,

    /// Most parts one table is split into [default: --table-jobs]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub split_max_parts: Option<u32>,
}

/// --table-jobs, --index-jobs and --restore-jobs.
#[derive(Args, Debug, Clone)]
pub struct JobArgs {
    /// Number of tables copied at the same time
    #[arg(long, default_value_t = 4, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub table_jobs: u32,

    /// Number of indexes and constraints built at the same time
    #[arg(long, default_value_t = 4, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub index_jobs: u32,

    /// Sessions creating the schema side by side (tables and what they need, in independent
    /// groups) and validating foreign keys on big tables side by side in the final schema step
    #[arg(long, default_value_t = 4, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub restore_jobs: u32,
}

/// --follow and its companions: online migration.
#[derive(Args, Debug, Clone)]
pub struct FollowArgs {
    /// After the copy, keep the target following the source: changes committed after the
    /// clone's snapshot are streamed by a subscription on the target from a replication slot
    /// and publication made on the source, until `neoncopy cutover`
    #[arg(long)]
    pub follow: bool,

    /// The source as the target reaches it, for the subscription, when that differs from
    /// --source. The target stores this connection string, password included, in its
    /// pg_subscription catalog until cutover
    #[arg(long, value_name = "URI", requires = "follow")]
    pub follow_source: Option<String>,

    /// Set REPLICA IDENTITY FULL on the selected tables that have no primary key and no
    /// replica identity (without one, UPDATE and DELETE on them fail on the source once they
    /// are published); put back by cutover
    #[arg(long, requires = "follow")]
    pub replica_identity_full: bool,
}

/// --retries, --retry-delay and --retry-max-delay.
#[derive(Args, Debug, Clone)]
pub struct RetryArgs {
    /// How many times a failed step, table or index is tried again after a transient error
    /// (lost connection, server restart, a serverless compute waking up)
    #[arg(long, default_value_t = 6, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=100))]
    pub retries: u32,

    /// Seconds to wait before the first retry; the wait doubles each time (with jitter)
    #[arg(long, default_value_t = 0.5, value_name = "SECS", value_parser = parse_seconds)]
    pub retry_delay: f64,

    /// Longest wait between two retries, in seconds
    #[arg(long, default_value_t = 30.0, value_name = "SECS", value_parser = parse_seconds)]
    pub retry_max_delay: f64,
}

#[derive(Args, Debug, Clone)]
pub struct ProgressArgs {
    #[command(flatten)]
    pub dir: DirArgs,

    /// Show the step-by-step summary instead of the live view
    #[arg(long)]
    pub summary: bool,

    #[command(flatten)]
    pub output: OutputArgs,

    /// Source connection string of the clone (optional; checked against the one recorded, so
    /// that pgcopydb's `list progress --source ...` works unchanged); also read from
    /// NEONCOPY_SOURCE_PGURI, then PGCOPYDB_SOURCE_PGURI
    #[arg(long, value_name = "URI")]
    pub source: Option<String>,

    /// Target connection string: with --source, shows the replication of a clone --follow
    /// (lag, WAL kept on the source, the subscription's state); also read from
    /// NEONCOPY_TARGET_PGURI, then PGCOPYDB_TARGET_PGURI
    #[arg(long, value_name = "URI")]
    pub target: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct SourceListArgs {
    #[command(flatten)]
    pub filters: FilterArgs,

    #[command(flatten)]
    pub conn: SourceArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug, Clone)]
pub struct TablePartsArgs {
    #[command(flatten)]
    pub list: SourceListArgs,

    /// Tables larger than this (heap plus TOAST) are split: 500MB, 1GB, 10GiB, or bytes
    #[arg(long, value_name = "SIZE", value_parser = parse_size_arg)]
    pub split_tables_larger_than: u64,

    /// Most parts one table is split into
    #[arg(long, default_value_t = 4, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub split_max_parts: u32,

    /// Only this table (schema.table; quote odd names as in SQL)
    #[arg(long, value_name = "NAME")]
    pub table: Option<String>,
}

fn parse_size_or_zero(s: &str) -> Result<u64, String> {
    if s.trim() == "0" {
        return Ok(0);
    }
    crate::fmt::parse_size(s)
}

fn parse_size_arg(s: &str) -> Result<u64, String> {
    crate::fmt::parse_size(s)
}

const CLONE_LONG_ABOUT: &str = "\
Copy a database from --source to --target.

Steps: read the source catalog; dump the schema with pg_dump; create tables and types on the
target with pg_restore (pre-data); copy every table with --table-jobs parallel COPY workers,
largest first; build each table's indexes and constraints with --index-jobs workers as soon as
its rows are in; analyze; set sequences; copy large objects; then pg_restore the rest of the
schema (foreign keys, triggers, rules, policies, materialized view data, comments).
All readers share one exported snapshot of the source, so the copy is consistent.

Example (into Neon, connecting as a non-superuser role):
  export NEONCOPY_SOURCE_PGURI='postgresql://app@old-db.example.com/app'
  host=ep-cool-1.eu-central-1.aws.neon.tech
  export NEONCOPY_TARGET_PGURI=\"postgresql://neondb_owner@$host/neondb\"
  neoncopy clone --no-owner --no-acl";

#[derive(Args, Debug, Clone)]
pub struct CloneArgs {
    #[command(flatten)]
    pub conn: ConnectionArgs,

    #[command(flatten)]
    pub dir: DirArgs,

    #[command(flatten)]
    pub jobs: JobArgs,

    #[command(flatten)]
    pub split: SplitArgs,

    /// maintenance_work_mem of the index builds (e.g. 1GB; the server's default otherwise)
    #[arg(long, value_name = "SIZE", value_parser = parse_size_arg)]
    pub maintenance_work_mem: Option<u64>,

    /// Do not set ownership of objects to match the source (needed when the target role is
    /// not a superuser, as on Neon)
    #[arg(long)]
    pub no_owner: bool,

    /// Do not copy privileges (GRANT/REVOKE)
    #[arg(long)]
    pub no_acl: bool,

    /// Do not copy comments
    #[arg(long)]
    pub no_comments: bool,

    /// Do not create extensions (they must already exist on the target)
    #[arg(long)]
    pub skip_extensions: bool,

    /// Do not copy large objects
    #[arg(long)]
    pub skip_large_objects: bool,

    /// Do not analyze tables after loading them
    #[arg(long)]
    pub skip_vacuum: bool,

    /// Do not copy database-level settings (ALTER DATABASE ... SET) and the database comment
    #[arg(long)]
    pub skip_db_properties: bool,

    #[command(flatten)]
    pub filters: FilterArgs,

    /// Drop the source's objects from the target first (DROP ... IF EXISTS), allowing a
    /// target that already holds tables
    #[arg(long)]
    pub drop_if_exists: bool,

    #[command(flatten)]
    pub snapshot: SnapshotArgs,

    /// Continue the interrupted clone recorded in --dir: what is done is skipped, what was
    /// under way is redone from scratch. Its snapshot ended with it, so add --not-consistent
    /// (or --snapshot ID) unless it was not consistent itself
    #[arg(long, conflicts_with_all = ["restart", "drop_if_exists"])]
    pub resume: bool,

    /// Forget the clone recorded in --dir and start over
    #[arg(long)]
    pub restart: bool,

    #[command(flatten)]
    pub follow: FollowArgs,

    #[command(flatten)]
    pub retry: RetryArgs,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.trim().trim_end_matches('s').parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=86400.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "invalid number of seconds \"{s}\": write it like 0.5 or 30"
        )),
    }
}

#[derive(Subcommand, Debug)]
pub enum CompareCommand {
    /// Object by object: schemas, tables and columns, indexes, constraints, sequences (and
    /// their values), views, functions, triggers, policies, rules, types, extensions, comments,
    /// database settings. Exit 0 identical, 1 differences, 2 could not compare
    #[command(long_about = COMPARE_SCHEMA_LONG_ABOUT)]
    Schema(CompareSchemaArgs),
    /// Per table: row count and a checksum of all rows computed on the servers, the source read
    /// in one snapshot. Exit 0 identical, 1 differences, 2 could not compare
    #[command(long_about = COMPARE_DATA_LONG_ABOUT)]
    Data(CompareDataArgs),
}

const COMPARE_SCHEMA_LONG_ABOUT: &str = "\
Compare the catalogs of --source and --target object by object: schemas, tables (kind,
persistence, partitioning, inheritance, row security, options), columns (type, nullability,
default, identity, generated expression, collation, position), indexes, constraints (with
deferrability and validity), sequences (definition, last_value and is_called), views and
materialized views (definition, populated), functions, procedures and aggregates, triggers
(and whether enabled), policies, rules, types (enums, domains, composites, ranges),
extensions and their versions, comments and database settings. Owners and privileges only
with --compare-owners and --compare-acl (a --no-owner --no-acl clone differs there by design).

Each difference is one line naming the object; then a verdict line.
Exit codes as diff: 0 identical, 1 differences found, 2 could not compare.

Example:
  neoncopy compare schema && neoncopy compare data";

const COMPARE_DATA_LONG_ABOUT: &str = "\
Compare every table's rows: the row count and a checksum computed on each server (a 64-bit
hash of each row's text, summed exactly: independent of row order, changed by a single
changed byte, a missing row or a duplicated row), and the large objects. The source is read in one
snapshot. --table-jobs sessions work on each server at once; tables larger than
--split-tables-larger-than are checksummed in parts.

Exit codes as diff: 0 identical, 1 differences found, 2 could not compare.";

#[derive(Args, Debug, Clone)]
pub struct CompareSchemaArgs {
    #[command(flatten)]
    pub conn: ConnectionArgs,

    #[command(flatten)]
    pub filters: FilterArgs,

    #[command(flatten)]
    pub dir: DirArgs,

    /// Compare owners too
    #[arg(long)]
    pub compare_owners: bool,

    /// Compare privileges (GRANTs) too
    #[arg(long)]
    pub compare_acl: bool,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug, Clone)]
pub struct CompareDataArgs {
    #[command(flatten)]
    pub conn: ConnectionArgs,

    #[command(flatten)]
    pub filters: FilterArgs,

    #[command(flatten)]
    pub dir: DirArgs,

    /// Tables checksummed at the same time on each server
    #[arg(long, default_value_t = 4, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub table_jobs: u32,

    #[command(flatten)]
    pub split: SplitArgs,

    #[command(flatten)]
    pub snapshot: SnapshotArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every line of an example in a command's long help, as written here.
    fn example_lines(text: &str) -> Vec<&str> {
        text.lines()
            .skip_while(|l| !l.starts_with("Example"))
            .filter(|l| l.starts_with("  "))
            .collect()
    }

    #[test]
    fn examples_are_printed_verbatim_at_80_columns_and_more() {
        let mut checked = 0;
        for width in [80, 100, 200] {
            let mut cli = Cli::command().term_width(width);
            cli.build();
            let mut commands: Vec<clap::Command> = cli.get_subcommands().cloned().collect();
            while let Some(mut cmd) = commands.pop() {
                commands.extend(cmd.get_subcommands().cloned());
                let Some(about) = cmd.get_long_about().map(|a| a.to_string()) else {
                    continue;
                };
                let help = cmd.render_long_help().to_string();
                for line in example_lines(&about) {
                    assert!(
                        help.lines().any(|h| h == line),
                        "{} --help at {width} columns does not show {line:?} as written:\n{help}",
                        cmd.get_name()
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= 10, "{checked}");
    }
}
