//! What `list progress` and the end of `clone` show, computed from the run state alone, so that
//! another process sees the same numbers as the clone itself.

use crate::estimate;
use crate::fmt;
use crate::state::{now, RunRow, Step, Store};
use anyhow::{Context, Result};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// Step names, in the order the summary lists them.
pub const STEP_COPY: &str = "COPY (cumulative)";
pub const STEP_INDEX: &str = "CREATE INDEX (cumulative)";
pub const STEP_CONSTRAINTS: &str = "CONSTRAINTS (cumulative)";
pub const STEP_VACUUM: &str = "VACUUM (cumulative)";
pub const STEP_TOTAL: &str = "Total Wall Clock Duration";
pub const STEP_ACTIVE: &str = "Total Active Duration (runs only)";

/// Counters the run records (Event::Count).
pub const COUNT_SEQUENCES: &str = "sequences";
pub const COUNT_LARGE_OBJECTS: &str = "large_objects";

#[derive(Debug, Clone, Serialize)]
pub struct StepLine {
    pub step: &'static str,
    pub connection: &'static str,
    /// None when the step has not started.
    pub duration_secs: Option<f64>,
    pub transfer_bytes: Option<u64>,
    pub concurrency: String,
    pub running: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableLine {
    pub table: String,
    pub parts: u32,
    pub state: String,
    pub rows: u64,
    pub bytes: u64,
    pub copy_secs: f64,
    pub indexes: u32,
    pub index_secs: f64,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub status: String,
    pub error: Option<String>,
    pub source: String,
    pub target: String,
    pub steps: Vec<StepLine>,
    pub tables: Vec<TableLine>,
    /// From the first run's start to the end (or now), pauses between runs included.
    pub wall_secs: f64,
    /// The time processes spent on the clone, over all its runs.
    pub active_secs: f64,
    /// The first run and one per resume.
    pub sessions: u32,
    pub rows: u64,
    pub bytes: u64,
    pub indexes: u64,
    pub sequences: u64,
    pub large_objects: u64,
    /// The most memory neoncopy's own process held, over the run's sessions (pg_dump and
    /// pg_restore not included); once a session has ended.
    pub peak_memory_bytes: Option<u64>,
}

#[derive(Debug, Default, Serialize)]
pub struct Counts {
    pub total: u64,
    pub in_progress: u64,
    pub done: u64,
    pub failed: u64,
}

#[derive(Debug, Serialize)]
pub struct WorkerLine {
    pub worker: String,
    pub doing: String,
    pub bytes: Option<u64>,
    pub secs: f64,
}

#[derive(Debug, Serialize)]
pub struct Progress {
    pub status: String,
    /// Whether the process that writes this run is still alive.
    pub alive: bool,
    pub pid: i64,
    pub error: Option<String>,
    pub elapsed_secs: f64,
    pub current_step: Option<String>,
    pub tables: Counts,
    pub parts: Counts,
    pub indexes: Counts,
    pub bytes_copied: u64,
    pub rows_copied: u64,
    /// Bytes per second over the last ten seconds or so, while running.
    pub rate_bytes_per_sec: Option<f64>,
    /// The bytes the COPY will transfer in all (crate::estimate).
    pub estimated_total_bytes: u64,
    /// Whether that is still partly estimated from the size on disk of tables not yet copied.
    pub total_is_estimate: bool,
    /// Seconds until the copies and index builds are done, at the rate of late.
    pub eta_secs: Option<f64>,
    /// Seconds the run has been running, over all its sessions.
    pub active_secs: f64,
    /// Processes that have worked on the run: the first, and one per resume.
    pub sessions: u32,
    pub workers: Vec<WorkerLine>,
}

fn end_or_now(run: &RunRow) -> f64 {
    run.ended_at.unwrap_or_else(now)
}

fn no_run() -> anyhow::Error {
    anyhow::anyhow!(
        "no clone has run in this work directory yet: give the --dir of the clone to look at"
    )
}

/// Whether a process with this id exists (Linux: /proc).
pub fn process_alive(pid: i64) -> bool {
    pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// A step's start, end (if it ended) and transfer (if any).
type StepTime = (f64, Option<f64>, Option<u64>);

fn step_time(store: &Store, step: Step) -> Result<Option<StepTime>> {
    // By key; by label in records written before steps had keys.
    let mut stmt = store
        .conn()
        .prepare_cached("select started_at, ended_at, transfer from step where name in (?1, ?2)")?;
    let mut rows = stmt.query(params![step.key(), step.label()])?;
    Ok(match rows.next()? {
        Some(r) => Some((
            r.get(0)?,
            r.get(1)?,
            r.get::<_, Option<i64>>(2)?.map(|b| b as u64),
        )),
        None => None,
    })
}

fn scalar_f64(store: &Store, sql: &str) -> Result<f64> {
    Ok(store
        .conn()
        .query_row(sql, [], |r| r.get::<_, Option<f64>>(0))?
        .unwrap_or(0.0))
}

fn scalar_u64(store: &Store, sql: &str) -> Result<u64> {
    Ok(store
        .conn()
        .query_row(sql, [], |r| r.get::<_, Option<i64>>(0))?
        .unwrap_or(0) as u64)
}

pub fn summary(store: &Store) -> Result<Summary> {
    let run = store.run_info()?.ok_or_else(no_run)?;
    let alive = run.ended_at.is_none() && process_alive(run.pid);
    let t = end_or_now(&run);
    let (active_secs, sessions) = store.active_secs()?;
    let copy_bytes = scalar_u64(store, "select sum(bytes) from unit where state = 'done'")?;
    let steps = step_lines(store, &run, (alive, t, active_secs), copy_bytes)?;
    let tables = table_lines(store)?;
    let counter = |name: &str| -> Result<u64> {
        Ok(store
            .conn()
            .query_row("select value from counter where name = ?1", [name], |r| {
                r.get::<_, i64>(0)
            })
            .optional()?
            .unwrap_or(0)
            .max(0) as u64)
    };
    Ok(Summary {
        status: status_of(&run, alive),
        error: run.error.clone(),
        source: run.source.clone(),
        target: run.target.clone(),
        steps,
        wall_secs: t - run.started_at,
        active_secs,
        sessions,
        rows: tables.iter().map(|t| t.rows).sum(),
        bytes: copy_bytes,
        indexes: scalar_u64(store, "select count(*) from idx where state = 'done'")?,
        sequences: counter(COUNT_SEQUENCES)?,
        large_objects: counter(COUNT_LARGE_OBJECTS)?,
        peak_memory_bytes: Some(counter(crate::state::PEAK_RSS_COUNTER)? * 1024).filter(|b| *b > 0),
        tables,
    })
}

/// The summary's steps: each timed step, the cumulative work of the data step's workers, and
/// the totals.
fn step_lines(
    store: &Store,
    run: &RunRow,
    (alive, t, active_secs): (bool, f64, f64),
    copy_bytes: u64,
) -> Result<Vec<StepLine>> {
    let (tj, ij, rj) = (run.table_jobs, run.index_jobs, run.restore_jobs);
    let timed = |step: Step, conn: &'static str, conc: String| -> Result<StepLine> {
        let name = step.label();
        let found = step_time(store, step)?;
        Ok(match found {
            Some((start, end, transfer)) => StepLine {
                step: name,
                connection: conn,
                duration_secs: Some(end.unwrap_or(t) - start),
                transfer_bytes: transfer,
                concurrency: conc,
                running: end.is_none() && alive,
            },
            None => StepLine {
                step: name,
                connection: conn,
                duration_secs: None,
                transfer_bytes: None,
                concurrency: conc,
                running: false,
            },
        })
    };
    let cumulative = |name: &'static str,
                      conn: &'static str,
                      conc: String,
                      secs: f64,
                      transfer: Option<u64>|
     -> StepLine {
        StepLine {
            step: name,
            connection: conn,
            duration_secs: Some(secs),
            transfer_bytes: transfer,
            concurrency: conc,
            running: false,
        }
    };
    let copy_secs = scalar_f64(
        store,
        "select sum(ended_at - started_at) from unit where state = 'done'",
    )?;
    let index_secs = scalar_f64(store, "select sum(index_secs) from idx")?;
    let constraint_secs = scalar_f64(store, "select sum(constraint_secs) from idx")?;
    let vacuum_secs = scalar_f64(
        store,
        "select sum(ended_at - started_at) from vacuum where state = 'done'",
    )?;
    Ok(vec![
        timed(Step::Catalog, "source", "1".into())?,
        timed(Step::Dump, "source", "1".into())?,
        timed(Step::Prepare, "target", "1".into())?,
        timed(Step::Data, "both", format!("{tj} + {ij}"))?,
        cumulative(
            STEP_COPY,
            "both",
            tj.to_string(),
            copy_secs,
            Some(copy_bytes),
        ),
        cumulative(STEP_INDEX, "target", ij.to_string(), index_secs, None),
        cumulative(
            STEP_CONSTRAINTS,
            "target",
            ij.to_string(),
            constraint_secs,
            None,
        ),
        cumulative(STEP_VACUUM, "target", ij.to_string(), vacuum_secs, None),
        timed(Step::Sequences, "both", tj.to_string())?,
        timed(Step::LargeObjects, "both", "1".into())?,
        timed(Step::Finalize, "target", rj.to_string())?,
        StepLine {
            step: STEP_TOTAL,
            connection: "both",
            duration_secs: Some(t - run.started_at),
            transfer_bytes: None,
            concurrency: format!("{tj} + {ij}"),
            running: alive,
        },
        StepLine {
            step: STEP_ACTIVE,
            connection: "both",
            duration_secs: Some(active_secs),
            transfer_bytes: None,
            concurrency: format!("{tj} + {ij}"),
            running: alive,
        },
    ])
}

/// One line per table of the run, largest first.
fn table_lines(store: &Store) -> Result<Vec<TableLine>> {
    let mut stmt = store.conn().prepare(
        "select u.schema_name, u.table_name, max(u.parts), \
                case when sum(u.state = 'done') = count(*) then 'done' \
                     when sum(u.state = 'failed') > 0 then 'failed' \
                     when sum(u.state = 'copying') > 0 or sum(u.state = 'done') > 0 then 'copying' \
                     else 'pending' end, \
                coalesce(sum(u.rows), 0), coalesce(sum(u.bytes), 0), \
                coalesce(sum(case when u.state = 'done' then u.ended_at - u.started_at end), 0), \
                (select count(*) from idx i where i.table_oid = u.table_oid), \
                (select coalesce(sum(coalesce(i.index_secs, 0) + coalesce(i.constraint_secs, 0)), 0) \
                 from idx i where i.table_oid = u.table_oid) \
         from unit u group by u.table_oid, u.schema_name, u.table_name \
         order by max(u.est_bytes) desc, u.schema_name, u.table_name",
    )?;
    let tables = stmt
        .query_map([], |r| {
            Ok(TableLine {
                table: format!(
                    "{}.{}",
                    crate::catalog::display_ident(&r.get::<_, String>(0)?),
                    crate::catalog::display_ident(&r.get::<_, String>(1)?)
                ),
                parts: r.get(2)?,
                state: r.get(3)?,
                rows: r.get::<_, i64>(4)? as u64,
                bytes: r.get::<_, i64>(5)? as u64,
                copy_secs: r.get(6)?,
                indexes: r.get(7)?,
                index_secs: r.get(8)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()
        .context("read tables of the run")?;
    Ok(tables)
}

/// The line that ends a clone's log: what the whole clone did (earlier runs included), in the
/// summary's numbers.
pub fn done_line(s: &Summary) -> String {
    let time = if s.sessions > 1 {
        format!(
            "{} active over {} runs ({} wall clock since the first began)",
            fmt::duration(s.active_secs),
            s.sessions,
            fmt::duration(s.wall_secs)
        )
    } else {
        fmt::duration(s.wall_secs)
    };
    format!(
        "clone done in {time}: {} tables, {} rows, {} copied, {} indexes and constraints, {} sequences, {} large objects",
        s.tables.len(),
        fmt::count(s.rows),
        fmt::bytes(s.bytes),
        s.indexes,
        s.sequences,
        s.large_objects
    )
}

fn status_of(run: &RunRow, alive: bool) -> String {
    if run.status == "running" && !alive {
        "interrupted".into()
    } else {
        run.status.clone()
    }
}

/// The summary as a clone prints it at its end: the steps, and the slowest tables only (the
/// whole list is `neoncopy list progress --summary`, which says so).
pub fn render_clone_summary(s: &Summary, dir: &std::path::Path) -> String {
    const SLOWEST: usize = 10;
    if s.tables.len() <= SLOWEST {
        return render_summary(s);
    }
    let mut tables: Vec<&TableLine> = s.tables.iter().collect();
    tables.sort_by(|a, b| {
        (b.copy_secs + b.index_secs)
            .total_cmp(&(a.copy_secs + a.index_secs))
            .then_with(|| a.table.cmp(&b.table))
    });
    let short = Summary {
        status: s.status.clone(),
        error: s.error.clone(),
        source: s.source.clone(),
        target: s.target.clone(),
        steps: s.steps.clone(),
        tables: tables.into_iter().take(SLOWEST).cloned().collect(),
        ..*s
    };
    let mut out = render_summary(&short);
    out.push_str(&format!(
        "The {SLOWEST} slowest of {} tables; all of them: neoncopy list progress --summary --dir {}\n",
        s.tables.len(),
        dir.display()
    ));
    out
}

pub fn render_summary(s: &Summary) -> String {
    let steps: Vec<Vec<String>> = s
        .steps
        .iter()
        .map(|l| {
            vec![
                l.step.to_string(),
                l.connection.to_string(),
                match l.duration_secs {
                    Some(d) if l.running => format!("{} (running)", fmt::duration(d)),
                    Some(d) => fmt::duration(d),
                    None => "-".into(),
                },
                l.transfer_bytes.map(fmt::bytes).unwrap_or_default(),
                l.concurrency.clone(),
            ]
        })
        .collect();
    let mut out = fmt::table(
        &["Step", "Connection", "Duration", "Transfer", "Concurrency"],
        &[false, false, true, true, true],
        &steps,
    );
    out.push('\n');
    let tables: Vec<Vec<String>> = s
        .tables
        .iter()
        .map(|t| {
            vec![
                t.table.clone(),
                t.parts.to_string(),
                t.state.clone(),
                fmt::count(t.rows),
                fmt::bytes(t.bytes),
                fmt::duration(t.copy_secs),
                t.indexes.to_string(),
                fmt::duration(t.index_secs),
            ]
        })
        .collect();
    out.push_str(&fmt::table(
        &[
            "Table",
            "Parts",
            "State",
            "Rows",
            "Copied",
            "Copy time",
            "Indexes",
            "Index time",
        ],
        &[false, true, false, true, true, true, true, true],
        &tables,
    ));
    if let Some(e) = &s.error {
        out.push_str(&format!("\nThe run failed: {e}\n"));
    }
    out
}

fn counts(store: &Store, sql: &str) -> Result<Counts> {
    Ok(store.conn().query_row(sql, [], |r| {
        Ok(Counts {
            total: r.get::<_, Option<i64>>(0)?.unwrap_or(0) as u64,
            in_progress: r.get::<_, Option<i64>>(1)?.unwrap_or(0) as u64,
            done: r.get::<_, Option<i64>>(2)?.unwrap_or(0) as u64,
            failed: r.get::<_, Option<i64>>(3)?.unwrap_or(0) as u64,
        })
    })?)
}

pub fn progress(store: &Store) -> Result<Progress> {
    let run = store.run_info()?.ok_or_else(no_run)?;
    let alive = run.ended_at.is_none() && process_alive(run.pid);
    let t = end_or_now(&run);
    let current_step: Option<String> = store
        .conn()
        .query_row(
            "select name from step where ended_at is null order by started_at desc limit 1",
            [],
            |r| r.get::<_, String>(0),
        )
        .ok()
        .filter(|_| alive)
        .map(|name| {
            Step::from_recorded(&name)
                .map(|s| s.label().to_string())
                .unwrap_or(name)
        });
    let tables = counts(
        store,
        "select count(*), sum(st = 'copying'), sum(st = 'done'), sum(st = 'failed') from ( \
           select case when sum(state = 'done') = count(*) then 'done' \
                       when sum(state = 'failed') > 0 then 'failed' \
                       when sum(state in ('copying', 'done')) > 0 then 'copying' \
                       else 'pending' end as st \
           from unit group by table_oid)",
    )?;
    let parts = counts(
        store,
        "select count(*), sum(state = 'copying'), sum(state = 'done'), sum(state = 'failed') from unit",
    )?;
    let indexes = counts(
        store,
        "select count(*), sum(state = 'building'), sum(state = 'done'), sum(state = 'failed') from idx",
    )?;
    let mut workers = Vec::new();
    if alive {
        let mut stmt = store
            .conn()
            .prepare("select name, what, bytes, started_at from worker order by name")?;
        let rows = stmt.query_map([], |r| {
            Ok(WorkerLine {
                worker: r.get(0)?,
                doing: r.get(1)?,
                bytes: r.get::<_, Option<i64>>(2)?.map(|b| b as u64),
                secs: t - r.get::<_, f64>(3)?,
            })
        })?;
        for w in rows {
            workers.push(w?);
        }
    }
    // The same estimate as the bars draw (crate::estimate), from the recorded state.
    let (tally, rows_copied, _) = store.tally(alive)?;
    let samples = |column: &str| -> Result<Vec<(f64, f64)>> {
        let mut stmt = store.conn().prepare(&format!(
            "select at, {column} from sample where at >= ?1 order by at"
        ))?;
        let rows = stmt.query_map(params![t - estimate::RATE_WINDOW - 1.0], |r| {
            Ok((r.get::<_, f64>(0)?, r.get::<_, f64>(1)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    };
    let (rate, work_rate) = if alive {
        (
            estimate::rate(&samples("bytes")?, estimate::RATE_WINDOW),
            estimate::rate(&samples("work")?, estimate::RATE_WINDOW),
        )
    } else {
        (None, None)
    };
    let (active_secs, sessions) = store.active_secs()?;
    Ok(Progress {
        status: status_of(&run, alive),
        alive,
        pid: run.pid,
        error: run.error.clone(),
        elapsed_secs: t - run.started_at,
        current_step,
        tables,
        parts,
        indexes,
        bytes_copied: tally.copied(),
        rows_copied,
        rate_bytes_per_sec: rate,
        estimated_total_bytes: tally.copy_total(),
        total_is_estimate: tally.estimated(),
        eta_secs: tally.eta(work_rate).filter(|_| tally.work_total() > 0.0),
        active_secs,
        sessions,
        workers,
    })
}

pub fn render_progress(p: &Progress) -> String {
    let mut out = String::new();
    // After a resume, the wall clock holds the pauses between the runs too.
    let active = if p.sessions > 1 {
        format!(
            ", {} of it active over {} runs",
            fmt::duration(p.active_secs),
            p.sessions
        )
    } else {
        String::new()
    };
    let state = match p.status.as_str() {
        "running" => format!(
            "running for {}{active} (pid {})",
            fmt::duration(p.elapsed_secs),
            p.pid
        ),
        "done" => format!("done in {}{active}", fmt::duration(p.elapsed_secs)),
        "interrupted" => format!(
            "interrupted after {}{active} (pid {} is gone)",
            fmt::duration(p.elapsed_secs),
            p.pid
        ),
        other => format!("{other} after {}{active}", fmt::duration(p.elapsed_secs)),
    };
    out.push_str(&format!("Clone:    {state}\n"));
    if let Some(step) = &p.current_step {
        out.push_str(&format!("Step:     {step}\n"));
    }
    let c = |c: &Counts| {
        let mut s = format!(
            "{} total, {} in progress, {} done",
            c.total, c.in_progress, c.done
        );
        if c.failed > 0 {
            s.push_str(&format!(", {} failed", c.failed));
        }
        s
    };
    out.push_str(&format!("Tables:   {}\n", c(&p.tables)));
    if p.parts.total != p.tables.total {
        out.push_str(&format!("Parts:    {}\n", c(&p.parts)));
    }
    out.push_str(&format!("Indexes:  {}\n", c(&p.indexes)));
    let mut copied = format!(
        "Copied:   {} of {}{}, {} rows",
        fmt::bytes(p.bytes_copied),
        if p.total_is_estimate { "about " } else { "" },
        fmt::bytes(p.estimated_total_bytes),
        fmt::count(p.rows_copied)
    );
    if let Some(r) = p.rate_bytes_per_sec {
        copied.push_str(&format!(", {}/s", fmt::bytes(r as u64)));
    }
    out.push_str(&copied);
    out.push('\n');
    if let Some(eta) = p.eta_secs {
        out.push_str(&format!(
            "Left:     about {} (copies and index builds)\n",
            fmt::duration(eta)
        ));
    }
    if let Some(e) = &p.error {
        out.push_str(&format!("Error:    {e}\n"));
    }
    if !p.workers.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = p
            .workers
            .iter()
            .map(|w| {
                vec![
                    w.worker.clone(),
                    w.doing.clone(),
                    w.bytes.map(fmt::bytes).unwrap_or_default(),
                    fmt::duration(w.secs),
                ]
            })
            .collect();
        out.push_str(&fmt::table(
            &["Worker", "Doing", "Bytes", "For"],
            &[false, false, true, true],
            &rows,
        ));
    }
    out
}
