//! The record of a run: one SQLite database (WAL mode) in the work directory.
//!
//! `clone` writes it through a [`Recorder`], a thread that batches events into one transaction
//! every few hundred milliseconds, so recording never slows the copy. `list progress` reads it
//! from another process while the clone runs. It never holds a password: connection strings
//! are stored as host, port, database and user only.

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
    started_at real not null
);
create table if not exists sample (
    at real primary key,
    bytes integer not null,
    rows integer not null
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
     delete from label;";

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
            tx.execute(
                "insert into worker (name, what, bytes, started_at) values (?1, ?2, ?3, ?4)",
                params![
                    name,
                    w.what,
                    w.bytes.as_ref().map(|b| b.load(Ordering::Relaxed) as i64),
                    w.started_at
                ],
            )?;
        }
        tx.execute(
            "insert or replace into sample (at, bytes, rows) values (?1, ?2, ?3)",
            params![
                t,
                live.copied_bytes.load(Ordering::Relaxed) as i64,
                live.copied_rows.load(Ordering::Relaxed) as i64
            ],
        )?;
        tx.execute("delete from sample where at < ?1", params![t - 120.0])?;
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
            steps: strings("select name from step where ended_at is not null")?,
            units,
            indexes: oids("select oid from idx where state = 'done'")?,
            tables: oids("select table_oid from vacuum where state = 'done'")?,
            parts_schema: self.label(PARTS_SCHEMA_LABEL)?,
        })
    }

    /// A label recorded by the run (see `Event::Label`).
    pub fn label(&self, name: &str) -> Result<Option<String>> {
        self.conn
            .query_row("select value from label where name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .context("read run state")
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

/// What a run has finished.
#[derive(Debug, Default, Clone)]
pub struct Done {
    pub steps: std::collections::HashSet<String>,
    /// (table oid, part)
    pub units: std::collections::HashSet<(u32, u32)>,
    pub indexes: std::collections::HashSet<u32>,
    /// Tables whose indexes, constraints and ANALYZE are all done.
    pub tables: std::collections::HashSet<u32>,
    /// The parts each table was cut into: (part, parts, condition).
    pub plans: std::collections::HashMap<u32, Vec<(u32, u32, Option<String>)>>,
    /// The schema neoncopy made on the target for its record of committed parts.
    pub parts_schema: Option<String>,
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
        status: &'static str,
        error: Option<String>,
    },
    StepStart(&'static str),
    StepEnd {
        name: &'static str,
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
                 values (1, ?1, ?2, 'running', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
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
                    run_id
                ],
            )?;
        }
        Event::RunResume { run_id } => {
            exec(
                tx,
                "update run set status = 'running', ended_at = null, error = null, pid = ?1, \
                 run_id = ?2 where id = 1",
                params![std::process::id(), run_id],
            )?;
        }
        Event::RunEnd { status, error } => {
            exec(
                tx,
                "update run set ended_at = ?1, status = ?2, error = ?3 where id = 1",
                params![t, status, error],
            )?;
            exec(tx, "delete from worker", [])?;
        }
        Event::StepStart(name) => {
            exec(
                tx,
                "insert or replace into step (name, started_at) values (?1, ?2)",
                params![name, t],
            )?;
        }
        Event::StepEnd { name, transfer } => {
            exec(
                tx,
                "update step set ended_at = ?2, transfer = ?3 where name = ?1",
                params![name, t, transfer.map(|b| b as i64)],
            )?;
        }
        Event::Plan { units, indexes } => {
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
                    "insert or ignore into idx (oid, table_oid, schema_name, name, kind) \
                     values (?1, ?2, ?3, ?4, ?5)",
                    params![i.oid, i.table_oid, i.schema, i.name, i.kind],
                )?;
            }
        }
        Event::UnitStart { table_oid, part } => {
            exec(
                tx,
                "update unit set state = 'copying', started_at = ?3, attempts = attempts + 1, error = null \
                 where table_oid = ?1 and part = ?2",
                params![table_oid, part, t],
            )?;
        }
        Event::UnitDone {
            table_oid,
            part,
            rows,
            bytes,
            secs,
        } => {
            exec(
                tx,
                "update unit set state = 'done', ended_at = ?3, started_at = ?3 - ?6, rows = ?4, \
                 bytes = ?5 where table_oid = ?1 and part = ?2",
                params![table_oid, part, t, *rows as i64, *bytes as i64, secs],
            )?;
        }
        Event::UnitFailed {
            table_oid,
            part,
            error,
        } => {
            exec(
                tx,
                "update unit set state = 'failed', ended_at = ?3, error = ?4 \
                 where table_oid = ?1 and part = ?2",
                params![table_oid, part, t, error],
            )?;
        }
        Event::IndexStart(oid) => {
            exec(
                tx,
                "update idx set state = 'building', started_at = ?2 where oid = ?1",
                params![oid, t],
            )?;
        }
        Event::IndexDone {
            oid,
            index_secs,
            constraint_secs,
        } => {
            exec(
                tx,
                "update idx set state = 'done', ended_at = ?2, index_secs = ?3, constraint_secs = ?4 \
                 where oid = ?1",
                params![oid, t, index_secs, constraint_secs],
            )?;
        }
        Event::VacuumStart(table_oid) => {
            exec(
                tx,
                "insert or replace into vacuum (table_oid, state, started_at) values (?1, 'running', ?2)",
                params![table_oid, t],
            )?;
        }
        Event::VacuumDone(table_oid) => {
            exec(
                tx,
                "update vacuum set state = 'done', ended_at = ?2 where table_oid = ?1",
                params![table_oid, t],
            )?;
        }
        Event::TableFinished(table_oid) => {
            exec(
                tx,
                "insert into vacuum (table_oid, state) values (?1, 'done') \
                 on conflict (table_oid) do update set state = 'done'",
                params![table_oid],
            )?;
        }
        Event::Label { name, value } => {
            exec(
                tx,
                "insert or replace into label (name, value) values (?1, ?2)",
                params![name, value],
            )?;
        }
        Event::Count { name, value } => {
            exec(
                tx,
                "insert or replace into counter (name, value) values (?1, ?2)",
                params![name, *value as i64],
            )?;
        }
        Event::Flush(_) => {}
    }
    Ok(())
}

/// What workers are doing right now, shared by the workers, the recorder and the progress bars.
#[derive(Default)]
pub struct Live {
    /// Bytes streamed so far, committed or not.
    pub copied_bytes: AtomicU64,
    /// Rows of committed units.
    pub copied_rows: AtomicU64,
    /// Indexes and constraints built.
    pub indexes_done: AtomicU64,
    pub workers: Mutex<BTreeMap<String, WorkerLive>>,
}

pub struct WorkerLive {
    pub what: String,
    /// Bytes of the current unit so far, for copy workers.
    pub bytes: Option<Arc<AtomicU64>>,
    pub started_at: f64,
}

impl Live {
    /// Marks a worker busy; the returned counter (if asked for) is the unit's byte count.
    pub fn busy(&self, worker: &str, what: String, with_bytes: bool) -> Option<Arc<AtomicU64>> {
        let bytes = with_bytes.then(|| Arc::new(AtomicU64::new(0)));
        self.workers.lock().expect("live workers").insert(
            worker.to_string(),
            WorkerLive {
                what,
                bytes: bytes.clone(),
                started_at: now(),
            },
        );
        bytes
    }

    pub fn idle(&self, worker: &str) {
        self.workers.lock().expect("live workers").remove(worker);
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
