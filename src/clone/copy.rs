//! The copy workers of the data step: `--table-jobs` workers take units (whole tables, parts
//! of split tables) largest first and stream their rows from source to target, each in one
//! target transaction; small whole tables go several to a transaction, their round trips
//! pipelined. A worker keeps a source reader (tokio-postgres) and a target writer (a
//! [`WireConn`], so that a COPY's rows follow its statement without waiting for the server's
//! answer: over a wide-area link that round trip per table was what small tables cost). After a
//! transient failure
//! both are opened again (ending the old server processes) and the unit, or the batch, is
//! copied again whole. As a table's last unit commits, its index jobs go to the index workers.

use super::data::Unit;
use super::schedule::{self, IndexJob, Schedule};
use super::Ctx;
use crate::fmt;
use crate::pg::connect::terminate_backend;
use crate::pg::session::{Connections, Session, Sessions};
use crate::pg::snapshot::READS_PER_SNAPSHOT_TXN;
use crate::pg::wire::{first_value, PipeWriter, WireConn};
use crate::pg::{sql, DbResultExt, PgError};
use crate::pool::{Feeder, Queue};
use crate::state::{Event, UnitCounters};
use anyhow::{bail, Context, Result};
use futures::TryStreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::{Client, CopyOutStream, Statement};
use tracing::{info, warn};

/// A copy worker's sessions: a source reader and a target writer.
struct Conns {
    source: Session,
    target: TargetWriter,
    /// Tables read in the source session's current transaction: each holds a lock until it
    /// ends.
    read_in_txn: usize,
}

impl Connections for Conns {
    type Pids = (i32, i32);
    fn pids(&self) -> (i32, i32) {
        (self.source.pid, self.target.pid)
    }
}

/// The target session of a copy worker, and its server process.
struct TargetWriter {
    conn: WireConn,
    pid: i32,
}

impl TargetWriter {
    /// Opens the session; `stale` is the server process of the one it replaces, ended first
    /// (over a connection of its own: it may still be loading rows that would collide with the
    /// retry).
    async fn open(ctx: &Ctx, stale: Option<i32>) -> Result<TargetWriter> {
        let (conn, pid) = ctx
            .target
            .connect_wire_for_data(Some(&ctx.catalog.lc_monetary))
            .await?;
        if let Some(old) = stale {
            let ended = async { terminate_backend(&ctx.target.connect().await?, old).await };
            if let Err(e) = ended.await {
                warn!("{e:#}");
            }
        }
        Ok(TargetWriter { conn, pid })
    }
}

async fn connect_pair(ctx: &Ctx, worker: usize, stale: Option<(i32, i32)>) -> Result<Conns> {
    let (source, target) = tokio::try_join!(
        Session::open(ctx.source_reader(), stale.map(|s| s.0)),
        TargetWriter::open(ctx, stale.map(|s| s.1))
    )
    .with_context(|| format!("start COPY worker {}", worker + 1))?;
    Ok(Conns {
        source,
        target,
        read_in_txn: 0,
    })
}

/// A copy worker: takes units (or batches of them) until there are none left, and hands
/// each copied table to the index workers.
pub async fn worker(
    worker: usize,
    ctx: Arc<Ctx>,
    sched: Arc<Schedule>,
    queue: Arc<Queue<usize>>,
    index_jobs: Feeder<IndexJob>,
) -> Result<()> {
    let w = Worker {
        ctx: &ctx,
        number: worker,
        name: format!("copy {}", worker + 1),
    };
    let mut sessions = Sessions::new(ctx.cfg.retry);
    let table_jobs = ctx.cfg.table_jobs;
    while let Some(first) = queue.next().await {
        let batch = queue.take_more(|q| schedule::take_batch(*first, q, &sched.units, table_jobs));
        let units: Vec<&Unit> = batch.iter().map(|k| &ctx.units[*k]).collect();
        let copied = w.copy_batch(&mut sessions, &units).await?;
        for ((k, unit), c) in batch.iter().zip(&units).zip(copied) {
            w.record(unit, &c);
            for job in sched.unit_copied(*k) {
                index_jobs.push(job);
            }
        }
    }
    Ok(())
}

/// A copy worker's name and number.
struct Worker<'a> {
    ctx: &'a Ctx,
    number: usize,
    name: String,
}

impl Worker<'_> {
    /// Copies `units` in one target transaction, again from scratch after a transient failure.
    async fn copy_batch(
        &self,
        sessions: &mut Sessions<Conns>,
        units: &[&Unit],
    ) -> Result<Vec<Copied>> {
        let then = if units.len() == 1 {
            "the table is copied again from scratch"
        } else {
            "the tables are copied again from scratch"
        };
        let result = sessions
            .run(then, |mut sessions, attempt| async move {
                let result = self.attempt(&mut sessions, units, attempt).await;
                (sessions, result)
            })
            .await;
        if let Err(e) = &result {
            self.failed(units, e);
        }
        result
    }

    /// One attempt at copying `units`, shown in the live view and recorded as started.
    async fn attempt(
        &self,
        sessions: &mut Sessions<Conns>,
        units: &[&Unit],
        attempt: u32,
    ) -> Result<Vec<Copied>> {
        let (ctx, live) = (self.ctx, &self.ctx.rec.live);
        let label = batch_label(ctx, units);
        let counters = live
            .busy(&self.name, format!("COPY {label}"), true)
            .unwrap_or_default();
        for unit in units {
            ctx.rec.send(Event::UnitStart {
                table_oid: ctx.catalog.tables[unit.table].oid,
                part: unit.part,
            });
        }
        let result = async {
            let conns = sessions
                .get(|stale| connect_pair(ctx, self.number, stale))
                .await?;
            if conns.read_in_txn >= READS_PER_SNAPSHOT_TXN {
                if let Some(id) = ctx.snapshot.as_deref() {
                    crate::pg::snapshot::renew(&conns.source.client, id).await?;
                }
                conns.read_in_txn = 0;
            }
            let mut io = CopyIo {
                source: &conns.source.client,
                target: &mut conns.target.conn,
                worker: &counters,
                all_bytes: &live.copied_bytes,
            };
            let copied = copy_units(ctx, &mut io, units, attempt > 0).await?;
            conns.read_in_txn += units.len();
            Ok(copied)
        }
        .await;
        if let Ok(copied) = &result {
            // Counted as done before the worker's own counters go, so that the totals never
            // dip.
            for (unit, c) in units.iter().zip(copied) {
                live.unit_done(c.bytes, c.rows, unit.est_bytes.max(0) as u64);
            }
        }
        live.idle(&self.name);
        result
    }

    /// Records the failure of `units`, copied together.
    fn failed(&self, units: &[&Unit], e: &anyhow::Error) {
        let error = format!("{e:#}");
        let culprit = e.downcast_ref::<UnitFailure>().map(|f| f.index);
        for (k, unit) in units.iter().enumerate() {
            let table = &self.ctx.catalog.tables[unit.table];
            // The others of a batch are not at fault: they rolled back with it.
            let at_fault = units.len() == 1 || culprit == Some(k);
            self.ctx.rec.send(Event::UnitFailed {
                table_oid: table.oid,
                part: unit.part,
                error: if at_fault {
                    error.clone()
                } else {
                    format!("rolled back with its batch: {error}")
                },
            });
        }
    }

    /// Records a unit copied.
    fn record(&self, unit: &Unit, c: &Copied) {
        let table = &self.ctx.catalog.tables[unit.table];
        self.ctx.rec.send(Event::UnitDone {
            table_oid: table.oid,
            part: unit.part,
            rows: c.rows,
            bytes: c.bytes,
            secs: c.secs,
        });
        info!(
            target: crate::progress::TABLE_LOG,
            "copied {}: {} rows, {} in {}",
            unit.label(table),
            fmt::count(c.rows),
            fmt::bytes(c.bytes),
            fmt::duration(c.secs)
        );
    }
}

/// What a worker shows while it copies `units`.
fn batch_label(ctx: &Ctx, units: &[&Unit]) -> String {
    let first = units[0].label(&ctx.catalog.tables[units[0].table]);
    match units.len() {
        1 => first,
        n => format!("{n} tables ({first}, ...)"),
    }
}

/// A copy worker's two sessions and its byte counters.
struct CopyIo<'a> {
    source: &'a Client,
    target: &'a mut WireConn,
    /// What the worker's current batch has moved, for the live view.
    worker: &'a UnitCounters,
    /// Bytes streamed by all workers, committed or not.
    all_bytes: &'a AtomicU64,
}

/// What one unit's copy came to.
struct Copied {
    rows: u64,
    bytes: u64,
    secs: f64,
}

/// Copies units in one target transaction. A whole table: TRUNCATE, COPY ... FREEZE (a tiny
/// one: LOCK, DELETE, COPY; see `freeze`). A part
/// of a split table: COPY of its rows, and its row in neoncopy.parts, committed together.
/// Either way a failure leaves nothing behind, and running it again never duplicates a row.
/// `again` says an earlier attempt failed: a part whose commit went through although its
/// answer was lost is then not copied a second time.
async fn copy_units(
    ctx: &Ctx,
    io: &mut CopyIo<'_>,
    units: &[&Unit],
    again: bool,
) -> Result<Vec<Copied>> {
    if let [unit] = units {
        if again && unit.parts > 1 {
            let table = &ctx.catalog.tables[unit.table];
            let rows = io
                .target
                .simple_query(&sql::committed_part_rows(
                    ctx.parts_schema()?,
                    table.oid,
                    unit.part,
                ))
                .await
                .context("look for the part in neoncopy's record of committed parts")?;
            if let Some(n) = first_value(&rows) {
                info!("{} was committed by the failed attempt", unit.label(table));
                return Ok(vec![Copied {
                    rows: n.parse().context("the recorded rows of a part")?,
                    bytes: 0,
                    secs: 0.0,
                }]);
            }
        }
    }
    let counted: Vec<UnitCounters> = units.iter().map(|_| UnitCounters::default()).collect();
    let result = copy_pipelined(ctx, io, units, &counted).await;
    if result.is_err() {
        // A connection the pipeline left unusable refuses this at once; it is not reused.
        let _ = io.target.simple_query("rollback").await;
        // The streamed bytes were not kept.
        let lost: u64 = counted
            .iter()
            .map(|c| c.bytes.load(Ordering::Relaxed))
            .sum();
        io.all_bytes.fetch_sub(lost, Ordering::Relaxed);
    }
    result
}

/// The context of an error in one unit of a batch: which one (its place in the batch), and
/// what failed.
#[derive(Debug)]
struct UnitFailure {
    index: usize,
    label: String,
    what: &'static str,
}

impl std::fmt::Display for UnitFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "copy table {}: {}", self.label, self.what)
    }
}

/// Prepares one statement per unit on the source, all in one round trip (pipelined).
async fn prepare_each(
    client: &Client,
    texts: &[String],
    fail: &(dyn Fn(usize, &'static str) -> UnitFailure + Sync),
) -> Result<Vec<Statement>> {
    futures::future::try_join_all(texts.iter().enumerate().map(|(i, text)| async move {
        client
            .prepare(text)
            .await
            .db()
            .with_context(|| fail(i, "prepare COPY on the source"))
    }))
    .await
}

/// A batch's statements: BEGIN with what empties its whole tables first, and each unit's COPY
/// on the target and on the source.
struct BatchSql {
    begin: String,
    copy_in: Vec<String>,
    copy_out: Vec<String>,
}

impl BatchSql {
    fn new(ctx: &Ctx, units: &[&Unit]) -> BatchSql {
        let tables = &ctx.catalog.tables;
        let mut begin = String::from("begin");
        for u in units.iter().filter(|u| u.parts == 1) {
            let t = &tables[u.table];
            begin.push_str("; ");
            match &t.extension_config {
                // A partitioned table loaded through its root: all of its partitions.
                None if !t.leaves.is_empty() => begin.push_str(&sql::truncate(&t.schema, &t.name)),
                // Emptied without a new file (see `freeze`), once a session of a failed
                // attempt that may still commit rows into it is done (as TRUNCATE would wait).
                None if !freeze(ctx, u) => {
                    begin.push_str(&sql::lock_exclusive_only(&t.schema, &t.name));
                    begin.push_str("; ");
                    begin.push_str(&sql::delete_matching(&t.schema, &t.name, ""));
                }
                None => begin.push_str(&sql::truncate_only(&t.schema, &t.name)),
                // The rows a previous attempt may have committed go, the extension's own stay:
                // copying again never duplicates.
                Some(c) => begin.push_str(&sql::delete_matching(&t.schema, &t.name, &c.filter)),
            }
        }
        BatchSql {
            begin,
            copy_in: units.iter().map(|u| copy_in_sql(ctx, u)).collect(),
            copy_out: units.iter().map(|u| copy_out_sql(ctx, u)).collect(),
        }
    }
}

/// Tables smaller than this (heap, TOAST and the free space and visibility maps, on the source)
/// are emptied with DELETE and loaded without FREEZE.
const TINY_TABLE_BYTES: i64 = 64 << 10;

/// Whether a unit is loaded with COPY FREEZE into a table TRUNCATEd in its own transaction
/// (its rows need no freezing and its pages no vacuum later). Not a tiny table: TRUNCATE gives
/// the table, its TOAST table and TOAST index new files, and PostgreSQL before 17 fsyncs the
/// rebuilt TOAST index, which for a schema of many small tables cost more than the copy (2,000
/// tables in batches of 32: 2.4 to 6.4 s of TRUNCATE against 0.4 s of DELETE). A tiny table is
/// emptied with DELETE instead (the same guarantee: copying again never duplicates a row) and
/// loaded as pg_restore loads it; what freezing would save there is a page or two.
fn freeze(ctx: &Ctx, u: &Unit) -> bool {
    let t = &ctx.catalog.tables[u.table];
    u.parts == 1 && t.frozen_on_load() && t.bytes >= TINY_TABLE_BYTES
}

fn copy_in_sql(ctx: &Ctx, u: &Unit) -> String {
    let t = &ctx.catalog.tables[u.table];
    sql::copy_in(
        &t.schema,
        &t.name,
        &t.columns,
        freeze(ctx, u),
        ctx.binary && t.binary_ok,
    )
}

fn copy_out_sql(ctx: &Ctx, u: &Unit) -> String {
    let t = &ctx.catalog.tables[u.table];
    if !t.leaves.is_empty() {
        return sql::copy_out_of_leaves(&t.leaves, &t.columns, ctx.binary && t.binary_ok);
    }
    let condition = if u.parts == 1 {
        t.extension_config.as_ref().map(|c| c.filter.as_str())
    } else {
        u.condition.as_deref()
    };
    sql::copy_out(
        &t.schema,
        &t.name,
        &t.columns,
        condition,
        ctx.binary && t.binary_ok,
    )
}

/// The queries of a batch on the target, as its pipeline tags them.
#[derive(Clone, Copy, Debug)]
enum Step {
    Begin,
    Copy(usize),
    Commit,
}

/// `copy_units` with its round trips overlapped. On the target everything goes without
/// waiting: BEGIN with what empties the tables, each unit's COPY statement followed by its rows, and
/// COMMIT, while the answers are read as they come; the first error ends the batch. On the
/// source, one round trip prepares every unit's COPY, and each unit's COPY starts while the
/// one before still streams. A part of a split table commits once its COPY's count is known,
/// with its record in neoncopy.parts.
async fn copy_pipelined(
    ctx: &Ctx,
    io: &mut CopyIo<'_>,
    units: &[&Unit],
    counted: &[UnitCounters],
) -> Result<Vec<Copied>> {
    let text = BatchSql::new(ctx, units);
    let fail = |i: usize, what: &'static str| unit_failure(ctx, units, i, what);
    let n = units.len();
    let part = units.iter().any(|u| u.parts > 1);
    let (source, worker, all_bytes) = (io.source, io.worker, io.all_bytes);
    let (mut tx, mut rx) = io.target.pipeline::<Step>()?;
    let p = Pipeline {
        counted,
        worker,
        all_bytes,
        fail: &fail,
    };
    let writer = async {
        tx.query(&text.begin, Step::Begin)?;
        tx.query(&text.copy_in[0], Step::Copy(0))?;
        tx.flush().await?;
        let outs = prepare_each(source, &text.copy_out, &fail).await?;
        let start = |i: usize| {
            let out = &outs[i];
            async move {
                source
                    .copy_out(out)
                    .await
                    .db()
                    .with_context(|| fail(i, "start COPY on the source"))
            }
        };
        let mut current = Some(start(0).await?);
        for i in 0..n {
            if i > 0 {
                tx.query(&text.copy_in[i], Step::Copy(i))?;
            }
            let stream = current.take().expect("started before");
            let next = async {
                if i + 1 < n {
                    Some(start(i + 1).await)
                } else {
                    None
                }
            };
            let (streamed, next) = tokio::join!(p.stream_rows(i, &mut tx, stream), next);
            streamed?;
            tx.copy_done();
            if i + 1 == n && !part {
                tx.query("commit", Step::Commit)?;
            }
            tx.flush().await?;
            current = next.transpose()?;
        }
        tx.finish().await
    };
    let reader = async {
        let mut out = Vec::with_capacity(n);
        let mut since = Instant::now();
        // A lost connection or a FATAL error (a session ended) is the batch's.
        let batch = || {
            format!(
                "copy {}: read the target's answers",
                batch_label(ctx, units)
            )
        };
        while let Some((step, answer)) = rx.next().await.with_context(batch)? {
            if let Some(e) = answer.error {
                return Err(match step {
                    Step::Begin => e.context("begin target transaction"),
                    Step::Copy(i) => e.context(fail(i, "write rows to the target")),
                    Step::Commit => e.context("commit target transaction"),
                });
            }
            if matches!(step, Step::Commit) && answer.tag.as_deref() != Some("COMMIT") {
                bail!(
                    "commit target transaction: the target answered {}",
                    answer.tag.as_deref().unwrap_or("nothing")
                );
            }
            if let Step::Copy(i) = step {
                let rows = answer
                    .rows
                    .with_context(|| fail(i, "the target did not report the rows copied"))?;
                out.push(p.copied(i, rows, &mut since));
            }
        }
        Ok(out)
    };
    // The first error ends both (a source failure, a lost connection or the target's
    // refusal); the connection is then not used again but for a ROLLBACK it refuses.
    let ((), out) = first_failure(writer, reader).await?;
    if part {
        // A part's record carries its row count, known once its COPY is finished.
        let (unit, copied) = (units[0], &out[0]);
        let oid = ctx.catalog.tables[unit.table].oid;
        let record = sql::record_part(ctx.parts_schema()?, oid, unit.part, copied.rows);
        io.target
            .simple_query(&format!("{record}; commit"))
            .await
            .context("commit target transaction")?;
    }
    Ok(out)
}

/// Both results, or the first failure. When the writer fails first its error may be only
/// the effect of the target's (a write to a connection the server closed after a FATAL
/// error): the reader gets a second to read the server's own words, which are reported then.
async fn first_failure<W, R>(
    writer: impl std::future::Future<Output = Result<W>>,
    reader: impl std::future::Future<Output = Result<R>>,
) -> Result<(W, R)> {
    tokio::pin!(writer, reader);
    tokio::select! {
        w = &mut writer => match w {
            Ok(w) => Ok((w, reader.await?)),
            Err(we) => match tokio::time::timeout(Duration::from_secs(1), &mut reader).await {
                Ok(Err(re)) if PgError::from_server_in(&re) => Err(re),
                _ => Err(we),
            },
        },
        r = &mut reader => {
            let r = r?;
            Ok((writer.await?, r))
        }
    }
}

/// The context of an error in unit `i` of a batch.
fn unit_failure(ctx: &Ctx, units: &[&Unit], i: usize, what: &'static str) -> UnitFailure {
    UnitFailure {
        index: i,
        label: units[i].label(&ctx.catalog.tables[units[i].table]),
        what,
    }
}

/// A batch being copied: the counters of what its units moved.
struct Pipeline<'a> {
    counted: &'a [UnitCounters],
    worker: &'a UnitCounters,
    all_bytes: &'a AtomicU64,
    fail: &'a (dyn Fn(usize, &'static str) -> UnitFailure + Sync),
}

impl Pipeline<'_> {
    /// Streams unit `i`'s rows into the target's COPY, counting them as they go.
    async fn stream_rows(
        &self,
        i: usize,
        tx: &mut PipeWriter<'_, Step>,
        stream: CopyOutStream,
    ) -> Result<()> {
        let counted = &self.counted[i];
        // COPY OUT sends a message per row (binary COPY one more, its trailer): the rows move
        // as they are copied, each counted when the next message comes, so that the count never
        // passes the rows (the trailer is never counted) and only grows when the count the
        // target reports sets it right (see `copied`).
        let mut before = false;
        let stream = stream.inspect_ok(move |_| {
            if before {
                counted.rows.fetch_add(1, Ordering::Relaxed);
                self.worker.rows.fetch_add(1, Ordering::Relaxed);
            }
            before = true;
        });
        let mut chunks = std::pin::pin!(super::chunks::Chunks::new(stream));
        loop {
            let chunk = chunks
                .try_next()
                .await
                .db()
                .with_context(|| (self.fail)(i, "read rows from the source"))?;
            let Some(chunk) = chunk else { return Ok(()) };
            let len = chunk.len() as u64;
            counted.bytes.fetch_add(len, Ordering::Relaxed);
            self.worker.bytes.fetch_add(len, Ordering::Relaxed);
            self.all_bytes.fetch_add(len, Ordering::Relaxed);
            tx.copy_data(&chunk)
                .await
                .with_context(|| (self.fail)(i, "write rows to the target"))?;
        }
    }

    /// What unit `i` came to, with the count of rows the target reported.
    fn copied(&self, i: usize, rows: u64, since: &mut Instant) -> Copied {
        let counted = &self.counted[i];
        // What was counted as it streamed is at most `rows` (see `stream_rows`).
        let seen = counted.rows.swap(rows, Ordering::Relaxed);
        self.worker
            .rows
            .fetch_add(rows.saturating_sub(seen), Ordering::Relaxed);
        let now = Instant::now();
        let secs = now.duration_since(*since).as_secs_f64();
        *since = now;
        Copied {
            rows,
            bytes: counted.bytes.load(Ordering::Relaxed),
            secs,
        }
    }
}
