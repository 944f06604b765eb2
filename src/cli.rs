//! The command line: clap types only. Doc comments become --help.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Copy a whole PostgreSQL database to another server (Neon first): schema, data, indexes,
/// constraints, sequences and large objects, from one consistent snapshot.
#[derive(Parser, Debug)]
#[command(name = "neoncopy", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Print more detail (debug logs); RUST_LOG overrides both --verbose and --quiet
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,

    /// Print only warnings and errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Copy a database: schema, data, indexes, constraints, sequences, large objects
    #[command(long_about = CLONE_LONG_ABOUT)]
    Clone(CloneArgs),
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
  export NEONCOPY_TARGET_PGURI='postgresql://neondb_owner@ep-cool-1.eu-central-1.aws.neon.tech/neondb?sslmode=require'
  neoncopy clone --no-owner --no-acl";

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

#[derive(Args, Debug, Clone)]
pub struct CloneArgs {
    #[command(flatten)]
    pub conn: ConnectionArgs,

    /// Work directory for the schema archive, restore lists and logs
    /// [default: $TMPDIR/neoncopy, else /tmp/neoncopy]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Number of tables copied at the same time
    #[arg(long, default_value_t = 4, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub table_jobs: u32,

    /// Number of indexes and constraints built at the same time
    #[arg(long, default_value_t = 4, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub index_jobs: u32,

    /// Number of pg_restore jobs for the final schema step (foreign keys, triggers, ...)
    #[arg(long, default_value_t = 4, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub restore_jobs: u32,

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

    /// Drop the source's objects from the target first (DROP ... IF EXISTS), allowing a
    /// target that already holds tables
    #[arg(long)]
    pub drop_if_exists: bool,

    /// Do not use one snapshot for all readers: faster to start, but the copy is not
    /// consistent if the source is being written to
    #[arg(long, conflicts_with = "snapshot")]
    pub not_consistent: bool,

    /// Use this already exported snapshot (from pg_export_snapshot() in a transaction the
    /// caller keeps open) instead of exporting one
    #[arg(long, value_name = "ID")]
    pub snapshot: Option<String>,
}
