//! The record of a run: one SQLite database (WAL mode) in the work directory.
//!
//! `clone` writes it through a [`Recorder`], a thread that batches events into one transaction
//! every few hundred milliseconds, so recording never slows the copy. `list progress` reads it
//! from another process while the clone runs. It never holds a password: connection strings
//! are stored as host, port, database and user only.

use crate::estimate::Tally;
use anyhow::{Context, Result};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const STATE_FILE: &str = "state.db";

/// Seconds since the Unix epoch.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

const SCHEMA: &str = "
create table if not exists run (
    id integer primary key check (id = 1),
    command text not null,
    started_at real not null,
    ended_at real,
    status text not null,
    error text,
    source text not null,
    target text not null,
    settings text not null,
    snapshot text,
    pid integer not null,
    run_id text not null,
    table_jobs integer not null,
    index_jobs integer not null,
    restore_jobs integer not null
);
create table if not exists step (
    name text primary key,
    started_at real not null,
    ended_at real,
    transfer integer
);
create table if not exists unit (
    table_oid integer not null,
    part integer not null,
    parts integer not null,
    schema_name text not null,
    table_name text not null,
    est_bytes integer not null,
    est_rows integer not null,
    range text,
    state text not null default 'pending',
    rows integer,
    bytes integer,
    started_at real,
    ended_at real,
    attempts integer not null default 0,
    error text,
    primary key (table_oid, part)
);
create table if not exists idx (
    oid integer primary key,
    table_oid integer not null,
    schema_name text not null,
    name text not null,
    kind text not null,
    est_bytes integer not null default 0,
    state text not null default 'pending',
    started_at real,
    ended_at real,
    index_secs real,
    constraint_secs real
);
create index if not exists idx_by_table on idx (table_oid);
create table if not exists vacuum (
    table_oid integer primary key,
    state text not null,
    started_at real,
    ended_at real
);
create table if not exists worker (
    name text primary key,
    what text not null,
    bytes integer,
    rows integer,
    started_at real not null
);
create table if not exists sample (
    at real primary key,
    bytes integer not null,
    rows integer not null,
    work real not null default 0
);
create table if not exists session (
    started_at real primary key,
    seen_at real not null
);
create table if not exists compare_result (
    kind text not null,
    object text not null,
    status text not null,
    source text,
    target text,
    at real not null
);
create table if not exists counter (
    name text primary key,
    value integer not null
);
create table if not exists label (
    name text primary key,
    value text not null
);
";

/// What a new run clears of the record of the run before it.
const RESET: &str = "delete from run; delete from step; delete from unit; delete from idx; \
     delete from vacuum; delete from worker; delete from sample; delete from counter; \
     delete from label; delete from session;";

/// Columns added since the first release, for work directories written by an older neoncopy:
/// (table, column, declaration).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("idx", "est_bytes", "integer not null default 0"),
    ("worker", "rows", "integer"),
    ("sample", "work", "real not null default 0"),
];

/// Keeps a copy of the work directory's record, when it holds a run, in
/// `earlier-runs/<run id>.db` beside it, before a new run replaces it. Returns the copy's path.
pub fn keep_earlier_record(state: &Path, dir: &Path) -> Result<Option<std::path::PathBuf>> {
    if !state.exists() {
        return Ok(None);
    }
    let conn = Connection::open_with_flags(state, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("open run state {}", state.display()))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let run_id: Option<String> = conn
        .query_row("select run_id from run where id = 1", [], |r| r.get(0))
        .optional()
        .context("read run state")?;
    let Some(run_id) = run_id else {
        return Ok(None);
    };
    let earlier = dir.join("earlier-runs");
    crate::workdir::create_private_dir(&earlier)?;
    let copy = earlier.join(format!("{run_id}.db"));
    let _ = std::fs::remove_file(&copy);
    conn.execute("vacuum into ?1", [copy.display().to_string()])
        .with_context(|| format!("keep the earlier run's record in {}", copy.display()))?;
    Ok(Some(copy))
}

/// The SQLite database of one work directory.
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the state of a work directory for writing.
    pub fn open(path: &Path) -> Result<Store> {
        let conn =
            Connection::open(path).with_context(|| format!("open run state {}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "wal")?;
        conn.pragma_update(None, "synchronous", "normal")?;
        conn.set_prepared_statement_cache_capacity(64);
        conn.execute_batch(SCHEMA)
            .context("create run state tables")?;
        for (table, column, decl) in ADDED_COLUMNS {
            let present: bool = conn
                .query_row(
                    "select count(*) > 0 from pragma_table_info(?1) where name = ?2",
                    params![table, column],
                    |r| r.get(0),
                )
                .context("read run state tables")?;
            if !present {
                conn.execute_batch(&format!("alter table {table} add column {column} {decl}"))
                    .context("update run state tables")?;
            }
        }
        Ok(Store { conn })
    }

    /// Opens the state of a work directory for reading, while a clone may be writing it.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("open run state {}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        Ok(Store { conn })
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    fn apply(&mut self, events: &[Event]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        for e in events {
            apply_event(&tx, e)?;
        }
        tx.commit()
    }

    fn write_live(&mut self, live: &Live) -> rusqlite::Result<()> {
        let t = now();
        let tx = self.conn.transaction()?;
        tx.execute("delete from worker", [])?;
        for (name, w) in live.workers.lock().expect("live workers").iter() {
            let count = |f: fn(&UnitCounters) -> &AtomicU64| {
                w.counters
                    .as_ref()
                    .map(|c| f(c).load(Ordering::Relaxed) as i64)
            };
            tx.execute(
                "insert into worker (name, what, bytes, rows, started_at) values (?1, ?2, ?3, ?4, ?5)",
                params![
                    name,
                    w.what,
                    count(|c| &c.bytes),
                    count(|c| &c.rows),
                    w.started_at
                ],
            )?;
        }
        tx.execute(
            "insert or replace into sample (at, bytes, rows, work) values (?1, ?2, ?3, ?4)",
            params![
                t,
                live.copied_bytes.load(Ordering::Relaxed) as i64,
                live.rows() as i64,
                live.tally().work_done()
            ],
        )?;
        tx.execute("delete from sample where at < ?1", params![t - 120.0])?;
        // The session is alive until now: its active time.
        tx.execute(
            "update session set seen_at = ?1 where started_at = (select max(started_at) from session) \
               and exists (select 1 from run where ended_at is null)",
            params![t],
        )?;
        tx.commit()
    }

    /// Replaces the recorded results of one kind of comparison ("schema" or "data"): rows of
    /// (object, status, source, target).
    pub fn record_compare(
        &self,
        kind: &str,
        rows: &[(String, String, Option<String>, Option<String>)],
    ) -> Result<()> {
        let at = now();
        let tx = self.conn.unchecked_transaction()?;
        tx.execute("delete from compare_result where kind = ?1", params![kind])?;
        for (object, status, source, target) in rows {
            tx.execute(
                "insert into compare_result (kind, object, status, source, target, at) \
                 values (?1, ?2, ?3, ?4, ?5, ?6)",
                params![kind, object, status, source, target, at],
            )?;
        }
        if rows.is_empty() {
            tx.execute(
                "insert into compare_result (kind, object, status, at) values (?1, '', 'identical', ?2)",
                params![kind, at],
            )?;
        }
        tx.commit().context("record comparison")
    }

    /// The id of the recorded run (its connections' application_name is neoncopy-<id>).
    pub fn run_id(&self) -> Result<Option<String>> {
        self.conn
            .query_row("select run_id from run where id = 1", [], |r| r.get(0))
            .optional()
            .context("read run id")
    }

    /// The settings recorded by the run (JSON).
    pub fn settings(&self) -> Result<Option<String>> {
        self.conn
            .query_row("select settings from run where id = 1", [], |r| r.get(0))
            .optional()
            .context("read run settings")
    }

    /// What an earlier run finished, for --resume.
    pub fn progress_so_far(&self) -> Result<Done> {
        let strings = |sql: &str| -> Result<std::collections::HashSet<String>> {
            let mut stmt = self.conn.prepare(sql)?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        };
        let oids = |sql: &str| -> Result<std::collections::HashSet<u32>> {
            let mut stmt = self.conn.prepare(sql)?;
            let rows = stmt.query_map([], |r| r.get::<_, u32>(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        };
        let mut stmt = self
            .conn
            .prepare("select table_oid, part from unit where state = 'done'")?;
        let units = stmt
            .query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, u32>(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut plans: std::collections::HashMap<u32, Vec<(u32, u32, Option<String>)>> =
            Default::default();
        let mut stmt = self
            .conn
            .prepare("select table_oid, part, parts, range from unit order by table_oid, part")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, u32>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        for row in rows {
            let (oid, part, parts, range) = row?;
            plans.entry(oid).or_default().push((part, parts, range));
        }
        Ok(Done {
            plans,
            steps: strings("select name from step where ended_at is not null")?
                .iter()
                .filter_map(|name| Step::from_recorded(name))
                .collect(),
            units,
            indexes: oids("select oid from idx where state = 'done'")?,
            tables: oids("select table_oid from vacuum where state = 'done'")?,
            parts_schema: self.label(PARTS_SCHEMA_LABEL)?,
            follow: crate::follow::Migration::from_labels(|l| self.label(l))?,
        })
    }

    /// A label recorded by the run (see `Event::Label`).
    /// Records a label outside a run (a cutover).
    pub fn set_label(&self, name: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "insert or replace into label (name, value) values (?1, ?2)",
            params![name, value],
        )?;
        Ok(())
    }

    pub fn label(&self, name: &str) -> Result<Option<String>> {
        self.conn
            .query_row("select value from label where name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .context("read run state")
    }

    /// Where the data step stands as recorded; with `workers`, the units under way count too.
    /// Also the rows copied and the indexes built.
    pub fn tally(&self, workers: bool) -> Result<(Tally, u64, u64)> {
        let (done_copied, done_disk, total_disk, rows): (i64, i64, i64, i64) =
            self.conn.query_row(
                "select coalesce(sum(case when state = 'done' then bytes end), 0), \
                    coalesce(sum(case when state = 'done' then est_bytes end), 0), \
                    coalesce(sum(est_bytes), 0), \
                    coalesce(sum(case when state = 'done' then rows end), 0) from unit",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?;
        let (index_done, index_total, indexes): (i64, i64, i64) = self.conn.query_row(
            "select coalesce(sum(case when state = 'done' then est_bytes end), 0), \
                    coalesce(sum(est_bytes), 0), coalesce(sum(state = 'done'), 0) from idx",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let (in_flight, rows_in_flight): (i64, i64) = if workers {
            self.conn.query_row(
                "select coalesce(sum(bytes), 0), coalesce(sum(rows), 0) from worker",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
        } else {
            (0, 0)
        };
        let u = |v: i64| v.max(0) as u64;
        Ok((
            Tally {
                done_copied: u(done_copied),
                done_disk: u(done_disk),
                in_flight: u(in_flight),
                total_disk: u(total_disk),
                index_done: u(index_done),
                index_total: u(index_total),
            },
            u(rows) + u(rows_in_flight),
            u(indexes),
        ))
    }

    /// Seconds the run has been running, over all its sessions (a resume starts one), and
    /// the number of sessions.
    pub fn active_secs(&self) -> Result<(f64, u32)> {
        Ok(self.conn.query_row(
            "select coalesce(sum(seen_at - started_at), 0), count(*) from session",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    pub fn run_info(&self) -> Result<Option<RunRow>> {
        self.conn
            .query_row(
                "select command, started_at, ended_at, status, error, source, target, snapshot, pid, \
                        table_jobs, index_jobs, restore_jobs from run where id = 1",
                [],
                |r| {
                    Ok(RunRow {
                        command: r.get(0)?,
                        started_at: r.get(1)?,
                        ended_at: r.get(2)?,
                        status: r.get(3)?,
                        error: r.get(4)?,
                        source: r.get(5)?,
                        target: r.get(6)?,
                        snapshot: r.get(7)?,
                        pid: r.get(8)?,
                        table_jobs: r.get(9)?,
                        index_jobs: r.get(10)?,
                        restore_jobs: r.get(11)?,
                    })
                },
            )
            .optional()
            .context("read run state")
    }
}

/// The steps of a clone. The record keeps each under its key; the label is what the summary
/// shows (pgcopydb's wording) and may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    Catalog,
    Dump,
    Prepare,
    Data,
    Sequences,
    LargeObjects,
    Finalize,
}

impl Step {
    pub const ALL: [Step; 7] = [
        Step::Catalog,
        Step::Dump,
        Step::Prepare,
        Step::Data,
        Step::Sequences,
        Step::LargeObjects,
        Step::Finalize,
    ];

    /// The name the record keeps it under.
    pub fn key(self) -> &'static str {
        match self {
            Step::Catalog => "catalog",
            Step::Dump => "dump",
            Step::Prepare => "prepare",
            Step::Data => "data",
            Step::Sequences => "sequences",
            Step::LargeObjects => "large_objects",
            Step::Finalize => "finalize",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Step::Catalog => "Catalog Queries (table ordering, filtering, etc)",
            Step::Dump => "Dump Schema",
            Step::Prepare => "Prepare Schema",
            Step::Data => "COPY, INDEX, CONSTRAINTS, VACUUM (wall clock)",
            Step::Sequences => "Reset Sequences",
            Step::LargeObjects => "Large Objects (cumulative)",
            Step::Finalize => "Finalize Schema",
        }
    }

    /// A step as the record names it: by its key, or by its label as records written before
    /// keys did.
    pub fn from_recorded(name: &str) -> Option<Step> {
        Step::ALL
            .into_iter()
            .find(|s| s.key() == name || s.label() == name)
    }
}

/// How a run ended, or that it is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Done,
    Failed,
    Interrupted,
    /// The target refused the schema before anything was written: nothing to resume.
    Refused,
}

impl RunStatus {
    pub fn key(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Done => "done",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Refused => "refused",
        }
    }
}

/// Where a unit (a table or a part of one) is: the `unit` table's `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitState {
    Copying,
    Done,
    Failed,
}

impl UnitState {
    pub fn key(self) -> &'static str {
        match self {
            UnitState::Copying => "copying",
            UnitState::Done => "done",
            UnitState::Failed => "failed",
        }
    }
}

/// Where an index is: the `idx` table's `state` (and the `vacuum` table's, whose rows are
/// `Building` while a table is analyzed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkState {
    Building,
    Running,
    Done,
}

impl WorkState {
    pub fn key(self) -> &'static str {
        match self {
            WorkState::Building => "building",
            WorkState::Running => "running",
            WorkState::Done => "done",
        }
    }
}

/// What a run has finished.
#[derive(Debug, Default, Clone)]
pub struct Done {
    pub steps: std::collections::HashSet<Step>,
    /// (table oid, part)
    pub units: std::collections::HashSet<(u32, u32)>,
    pub indexes: std::collections::HashSet<u32>,
    /// Tables whose indexes, constraints and ANALYZE are all done.
    pub tables: std::collections::HashSet<u32>,
    /// The parts each table was cut into: (part, parts, condition).
    pub plans: std::collections::HashMap<u32, Vec<(u32, u32, Option<String>)>>,
    /// The schema neoncopy made on the target for its record of committed parts.
    pub parts_schema: Option<String>,
    /// What `clone --follow` made, when the run follows.
    pub follow: Option<crate::follow::Migration>,
}

/// The label under which the parts schema's name is recorded.
pub const PARTS_SCHEMA_LABEL: &str = "parts_schema";

#[derive(Debug, Clone)]
pub struct RunRow {
    pub command: String,
    pub started_at: f64,
    pub ended_at: Option<f64>,
    pub status: String,
    pub error: Option<String>,
    pub source: String,
    pub target: String,
    pub snapshot: Option<String>,
    pub pid: i64,
    pub table_jobs: i64,
    pub index_jobs: i64,
    pub restore_jobs: i64,
}

/// A unit of copy work as planned: a table, or one part of a split table.
#[derive(Debug, Clone)]
pub struct PlannedUnit {
    pub table_oid: u32,
    pub part: u32,
    pub parts: u32,
    pub schema: String,
    pub table: String,
    pub est_bytes: i64,
    pub est_rows: i64,
    pub range: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PlannedIndex {
    pub oid: u32,
    pub table_oid: u32,
    pub schema: String,
    pub name: String,
    pub kind: &'static str,
    /// Its size on disk at the source: the work of building it.
    pub est_bytes: i64,
}

/// Something that happened in a run.
#[derive(Debug)]
pub enum Event {
    RunStart {
        run_id: String,
        command: String,
        source: String,
        target: String,
        settings: String,
        snapshot: Option<String>,
        jobs: (usize, usize, usize),
    },
    /// A run continued with --resume: running again, by this process.
    RunResume {
        run_id: String,
    },
    RunEnd {
        status: RunStatus,
        error: Option<String>,
    },
    StepStart(Step),
    StepEnd {
        step: Step,
        transfer: Option<u64>,
    },
    Plan {
        units: Vec<PlannedUnit>,
        indexes: Vec<PlannedIndex>,
    },
    UnitStart {
        table_oid: u32,
        part: u32,
    },
    UnitDone {
        table_oid: u32,
        part: u32,
        rows: u64,
        bytes: u64,
        /// The unit's own copy time (several units may share one transaction).
        secs: f64,
    },
    UnitFailed {
        table_oid: u32,
        part: u32,
        error: String,
    },
    IndexStart(u32),
    IndexDone {
        oid: u32,
        index_secs: f64,
        constraint_secs: f64,
    },

    VacuumStart(u32),
    VacuumDone(u32),
    /// All of a table's work is done (its indexes, constraints and, unless skipped, ANALYZE).
    TableFinished(u32),
    Count {
        name: &'static str,
        value: u64,
    },
    /// A named text the run must find again when it is resumed.
    Label {
        name: &'static str,
        value: String,
    },
    Flush(mpsc::Sender<()>),
}

/// Runs a statement of the recorder, prepared once per connection (parsing them was most of
/// the recorder's work with thousands of tables).
fn exec(
    tx: &rusqlite::Transaction,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(sql)?.execute(params)
}

fn apply_event(tx: &rusqlite::Transaction, e: &Event) -> rusqlite::Result<()> {
    let t = now();
    match e {
        Event::RunStart { .. } | Event::RunResume { .. } | Event::RunEnd { .. } => {
            apply_run_event(tx, e, t)
        }
        Event::StepStart(step) => exec(
            tx,
            "insert or replace into step (name, started_at) values (?1, ?2)",
            params![step.key(), t],
        )
        .map(drop),
        Event::StepEnd { step, transfer } => exec(
            tx,
            "update step set ended_at = ?2, transfer = ?3 where name = ?1",
            params![step.key(), t, transfer.map(|b| b as i64)],
        )
        .map(drop),
        Event::Plan { units, indexes } => apply_plan(tx, units, indexes),
        Event::UnitStart { .. } | Event::UnitDone { .. } | Event::UnitFailed { .. } => {
            apply_unit_event(tx, e, t)
        }
        Event::IndexStart(_)
        | Event::IndexDone { .. }
        | Event::VacuumStart(_)
        | Event::VacuumDone(_)
        | Event::TableFinished(_) => apply_index_event(tx, e, t),
        Event::Label { name, value } => exec(
            tx,
            "insert or replace into label (name, value) values (?1, ?2)",
            params![name, value],
        )
        .map(drop),
        Event::Count { name, value } => exec(
            tx,
            "insert or replace into counter (name, value) values (?1, ?2)",
            params![name, *value as i64],
        )
        .map(drop),
        Event::Flush(_) => Ok(()),
    }
}

/// A run starts (replacing the record of the one before), resumes or ends.
fn apply_run_event(tx: &rusqlite::Transaction, e: &Event, t: f64) -> rusqlite::Result<()> {
    let new_session = |tx: &rusqlite::Transaction| {
        exec(
            tx,
            "insert or replace into session (started_at, seen_at) values (?1, ?1)",
            params![t],
        )
        .map(drop)
    };
    match e {
        Event::RunStart {
            run_id,
            command,
            source,
            target,
            settings,
            snapshot,
            jobs,
        } => {
            // A new run replaces the record of the one before (kept by keep_earlier_record).
            tx.execute_batch(RESET)?;
            exec(
                tx,
                "insert or replace into run (id, command, started_at, status, source, target, settings, \
                 snapshot, pid, table_jobs, index_jobs, restore_jobs, run_id) \
                 values (1, ?1, ?2, ?12, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    command,
                    t,
                    source,
                    target,
                    settings,
                    snapshot,
                    std::process::id(),
                    jobs.0 as i64,
                    jobs.1 as i64,
                    jobs.2 as i64,
                    run_id,
                    RunStatus::Running.key()
                ],
            )?;
            new_session(tx)
        }
        Event::RunResume { run_id } => {
            exec(
                tx,
                "update run set status = ?3, ended_at = null, error = null, pid = ?1, \
                 run_id = ?2 where id = 1",
                params![std::process::id(), run_id, RunStatus::Running.key()],
            )?;
            new_session(tx)
        }
        Event::RunEnd { status, error } => {
            exec(
                tx,
                "update run set ended_at = ?1, status = ?2, error = ?3 where id = 1",
                params![t, status.key(), error],
            )?;
            exec(
                tx,
                "update session set seen_at = ?1 where started_at = (select max(started_at) from session)",
                params![t],
            )?;
            // This process's peak memory (pg_dump and pg_restore are processes of their own),
            // the largest over the run's sessions.
            if let Some(kib) = peak_rss_kib() {
                exec(
                    tx,
                    "insert into counter (name, value) values (?1, ?2) \
                     on conflict (name) do update set value = max(value, excluded.value)",
                    params![PEAK_RSS_COUNTER, kib as i64],
                )?;
            }
            exec(tx, "delete from worker", []).map(drop)
        }
        _ => Ok(()),
    }
}

/// The units and indexes of the run, as planned (kept as they are on a resume).
fn apply_plan(
    tx: &rusqlite::Transaction,
    units: &[PlannedUnit],
    indexes: &[PlannedIndex],
) -> rusqlite::Result<()> {
    for u in units {
        exec(
            tx,
            "insert or ignore into unit (table_oid, part, parts, schema_name, table_name, \
             est_bytes, est_rows, range) values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                u.table_oid,
                u.part,
                u.parts,
                u.schema,
                u.table,
                u.est_bytes,
                u.est_rows,
                u.range
            ],
        )?;
    }
    for i in indexes {
        exec(
            tx,
            "insert or ignore into idx (oid, table_oid, schema_name, name, kind, est_bytes) \
             values (?1, ?2, ?3, ?4, ?5, ?6)",
            params![i.oid, i.table_oid, i.schema, i.name, i.kind, i.est_bytes],
        )?;
    }
    Ok(())
}

/// A unit starts, is done or fails.
fn apply_unit_event(tx: &rusqlite::Transaction, e: &Event, t: f64) -> rusqlite::Result<()> {
    match e {
        Event::UnitStart { table_oid, part } => exec(
            tx,
            "update unit set state = ?4, started_at = ?3, attempts = attempts + 1, error = null \
             where table_oid = ?1 and part = ?2",
            params![table_oid, part, t, UnitState::Copying.key()],
        ),
        Event::UnitDone {
            table_oid,
            part,
            rows,
            bytes,
            secs,
        } => exec(
            tx,
            "update unit set state = ?7, ended_at = ?3, started_at = ?3 - ?6, rows = ?4, \
             bytes = ?5 where table_oid = ?1 and part = ?2",
            params![
                table_oid,
                part,
                t,
                *rows as i64,
                *bytes as i64,
                secs,
                UnitState::Done.key()
            ],
        ),
        Event::UnitFailed {
            table_oid,
            part,
            error,
        } => exec(
            tx,
            "update unit set state = ?5, ended_at = ?3, error = ?4 \
             where table_oid = ?1 and part = ?2",
            params![table_oid, part, t, error, UnitState::Failed.key()],
        ),
        _ => Ok(0),
    }
    .map(drop)
}

/// An index is built, a table analyzed, or all of a table's work is finished.
fn apply_index_event(tx: &rusqlite::Transaction, e: &Event, t: f64) -> rusqlite::Result<()> {
    let (building, running, done) = (
        WorkState::Building.key(),
        WorkState::Running.key(),
        WorkState::Done.key(),
    );
    match e {
        Event::IndexStart(oid) => exec(
            tx,
            "update idx set state = ?3, started_at = ?2 where oid = ?1",
            params![oid, t, building],
        ),
        Event::IndexDone {
            oid,
            index_secs,
            constraint_secs,
        } => exec(
            tx,
            "update idx set state = ?5, ended_at = ?2, index_secs = ?3, constraint_secs = ?4 \
             where oid = ?1",
            params![oid, t, index_secs, constraint_secs, done],
        ),
        Event::VacuumStart(table_oid) => exec(
            tx,
            "insert or replace into vacuum (table_oid, state, started_at) values (?1, ?3, ?2)",
            params![table_oid, t, running],
        ),
        Event::VacuumDone(table_oid) => exec(
            tx,
            "update vacuum set state = ?3, ended_at = ?2 where table_oid = ?1",
            params![table_oid, t, done],
        ),
        Event::TableFinished(table_oid) => exec(
            tx,
            "insert into vacuum (table_oid, state) values (?1, ?2) \
             on conflict (table_oid) do update set state = ?2",
            params![table_oid, done],
        ),
        _ => Ok(0),
    }
    .map(drop)
}

/// The counter holding the run's peak memory, in KiB.
pub const PEAK_RSS_COUNTER: &str = "peak_rss_kib";

/// The most memory this process has held resident so far (Linux: VmHWM), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// What workers are doing right now, shared by the workers, the recorder and the progress bars.
#[derive(Default)]
pub struct Live {
    /// Bytes streamed so far, committed or not (attempts rolled back too): the rate of COPY.
    pub copied_bytes: AtomicU64,
    /// Of the units done (in this run and those it resumes): bytes moved, rows, size on disk.
    pub done_bytes: AtomicU64,
    pub done_rows: AtomicU64,
    pub done_disk: AtomicU64,
    /// Size on disk at the source of every unit to copy.
    pub total_disk: AtomicU64,
    /// Indexes and constraints built, and the size on disk of the indexes among them.
    pub indexes_done: AtomicU64,
    pub index_done_bytes: AtomicU64,
    /// Size on disk at the source of every index to build.
    pub index_total: AtomicU64,
    pub workers: Mutex<BTreeMap<String, WorkerLive>>,
}

/// What a copy worker's current batch has moved so far.
#[derive(Default)]
pub struct UnitCounters {
    pub bytes: AtomicU64,
    pub rows: AtomicU64,
}

pub struct WorkerLive {
    pub what: String,
    /// For copy workers: what the current batch has moved.
    pub counters: Option<Arc<UnitCounters>>,
    pub started_at: f64,
}

impl Live {
    /// Starts from what the run this one resumes had done.
    pub fn resuming(done: &Tally, rows: u64, indexes: u64) -> Live {
        let live = Live::default();
        live.done_bytes.store(done.done_copied, Ordering::Relaxed);
        live.done_disk.store(done.done_disk, Ordering::Relaxed);
        live.done_rows.store(rows, Ordering::Relaxed);
        live.index_done_bytes
            .store(done.index_done, Ordering::Relaxed);
        live.indexes_done.store(indexes, Ordering::Relaxed);
        live
    }

    /// Marks a worker busy; the returned counters (if asked for) are its batch's.
    pub fn busy(&self, worker: &str, what: String, counted: bool) -> Option<Arc<UnitCounters>> {
        let counters = counted.then(|| Arc::new(UnitCounters::default()));
        self.workers.lock().expect("live workers").insert(
            worker.to_string(),
            WorkerLive {
                what,
                counters: counters.clone(),
                started_at: now(),
            },
        );
        counters
    }

    pub fn idle(&self, worker: &str) {
        self.workers.lock().expect("live workers").remove(worker);
    }

    /// A unit is done: what it moved counts as done from now on.
    pub fn unit_done(&self, bytes: u64, rows: u64, disk: u64) {
        self.done_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.done_rows.fetch_add(rows, Ordering::Relaxed);
        self.done_disk.fetch_add(disk, Ordering::Relaxed);
    }

    /// An index or constraint is built.
    pub fn index_done(&self, disk: u64) {
        self.indexes_done.fetch_add(1, Ordering::Relaxed);
        self.index_done_bytes.fetch_add(disk, Ordering::Relaxed);
    }

    fn in_flight(&self, f: fn(&UnitCounters) -> &AtomicU64) -> u64 {
        self.workers
            .lock()
            .expect("live workers")
            .values()
            .filter_map(|w| w.counters.as_ref())
            .map(|c| f(c).load(Ordering::Relaxed))
            .sum()
    }

    /// Rows copied so far, done units and those under way.
    pub fn rows(&self) -> u64 {
        self.done_rows.load(Ordering::Relaxed) + self.in_flight(|c| &c.rows)
    }

    pub fn tally(&self) -> Tally {
        Tally {
            done_copied: self.done_bytes.load(Ordering::Relaxed),
            done_disk: self.done_disk.load(Ordering::Relaxed),
            in_flight: self.in_flight(|c| &c.bytes),
            total_disk: self.total_disk.load(Ordering::Relaxed),
            index_done: self.index_done_bytes.load(Ordering::Relaxed),
            index_total: self.index_total.load(Ordering::Relaxed),
        }
    }
}

/// Writes events to the store on a thread of its own, in batches.
pub struct Recorder {
    tx: mpsc::Sender<Event>,
    pub live: Arc<Live>,
}

const TICK: Duration = Duration::from_millis(300);

impl Recorder {
    pub fn start(mut store: Store, live: Arc<Live>) -> Result<Recorder> {
        let (tx, rx) = mpsc::channel::<Event>();
        let live2 = live.clone();
        std::thread::Builder::new()
            .name("state-recorder".into())
            .spawn(move || {
                let mut open = true;
                while open {
                    let mut batch = Vec::new();
                    match rx.recv_timeout(TICK) {
                        Ok(e) => batch.push(e),
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => open = false,
                    }
                    while let Ok(e) = rx.try_recv() {
                        batch.push(e);
                    }
                    if let Err(e) = store.apply(&batch) {
                        tracing::warn!("could not record run state: {e}");
                    }
                    if let Err(e) = store.write_live(&live2) {
                        tracing::debug!("could not record live progress: {e}");
                    }
                    for e in batch {
                        if let Event::Flush(ack) = e {
                            let _ = ack.send(());
                        }
                    }
                }
            })
            .context("start the state recorder thread")?;
        Ok(Recorder { tx, live })
    }

    pub fn send(&self, e: Event) {
        let _ = self.tx.send(e);
    }

    /// Waits until everything sent so far is written.
    pub fn flush(&self) {
        let (ack, done) = mpsc::channel();
        if self.tx.send(Event::Flush(ack)).is_ok() {
            let _ = done.recv_timeout(Duration::from_secs(30));
        }
    }
}
