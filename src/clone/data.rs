//! The data step: `--table-jobs` COPY workers take tables largest first and stream their rows
//! from source to target; as each table commits, its indexes go to `--index-jobs` index
//! workers. When a table's last index is built, the worker that built it attaches the table's
//! constraints (which take an exclusive lock, so they wait for no concurrent index build and
//! block none), then analyzes the table. Small tables go in batches on both sides: several
//! copied in one target transaction with their round trips pipelined, and several tables'
//! indexes, constraints and ANALYZE in one round trip.

use super::Ctx;
use crate::catalog::{Index, IndexKind, Table};
use crate::fmt;
use crate::pg::connect::{backend_pid, terminate_backend};
use crate::pg::retry::is_transient;
use crate::pg::{sql, DbResultExt};
use crate::state::{Event, UnitCounters};
use anyhow::{Context, Result};
use futures::{SinkExt, TryStreamExt};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_postgres::Client;
use tracing::{debug, info, warn};

enum IndexJob {
    /// CREATE INDEX of one index.
    Build(usize),
    /// Constraints, CLUSTER ON, REPLICA IDENTITY and ANALYZE of one table.
    Finish(usize),
    /// All of a small table's indexes, constraints and ANALYZE in one round trip.
    Small(usize),
}

/// Tables smaller than this get all their indexes in one round trip (building them one by one
/// on several workers would save less time than the round trips cost over a wide-area link).
const SMALL_TABLE_BYTES: i64 = 16 << 20;

/// What the index workers share: the job queue, and per table its indexes and how many are
/// still to build.
struct IndexQueue {
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<IndexJob>>,
    remaining: HashMap<usize, AtomicUsize>,
    table_of_index: Vec<usize>,
    by_table: HashMap<usize, Vec<usize>>,
}

/// Whether an index is built on its own, before the table's constraints: a plain index. A
/// primary key, unique or exclusion constraint builds its index in its own `ADD CONSTRAINT`,
/// under an exclusive lock, after the table's plain indexes.
fn built_first(index: &Index) -> bool {
    matches!(index.kind, IndexKind::Plain)
}

pub async fn run(ctx: &Arc<Ctx>) -> Result<()> {
    let tables = &ctx.catalog.tables;
    let done = &ctx.done;
    let position: HashMap<u32, usize> =
        tables.iter().enumerate().map(|(i, t)| (t.oid, i)).collect();
    let mut by_table: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut table_of_index = Vec::with_capacity(ctx.catalog.indexes.len());
    for (j, index) in ctx.catalog.indexes.iter().enumerate() {
        let t = position[&index.table_oid];
        by_table.entry(t).or_default().push(j);
        table_of_index.push(t);
    }
    // Index builds still to do, per table (all of them, unless an earlier run built some).
    let builds_left = |t: usize| -> Vec<usize> {
        by_table
            .get(&t)
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .copied()
            .filter(|j| {
                let index = &ctx.catalog.indexes[*j];
                built_first(index) && !done.indexes.contains(&index.oid)
            })
            .collect()
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let units = &ctx.units;
    // Parts of split tables that committed on the target, even if the state did not hear of
    // it before a crash.
    let committed = committed_parts(ctx).await?;
    let unit_done = |u: &Unit| {
        let oid = tables[u.table].oid;
        done.units.contains(&(oid, u.part)) || committed.contains(&(oid, u.part))
    };
    let mut parts_left: HashMap<usize, AtomicUsize> = HashMap::new();
    let mut queue: Vec<usize> = Vec::new();
    for (k, u) in units.iter().enumerate() {
        parts_left
            .entry(u.table)
            .or_insert_with(|| AtomicUsize::new(0));
        if !unit_done(u) {
            parts_left[&u.table].fetch_add(1, Ordering::Relaxed);
            queue.push(k);
        }
    }
    // Largest units first.
    queue.sort_by_key(|k| std::cmp::Reverse(units[*k].est_bytes));
    let mut remaining = HashMap::new();
    for (i, t) in tables.iter().enumerate() {
        let builds = builds_left(i);
        remaining.insert(i, AtomicUsize::new(builds.len()));
        let copied = parts_left
            .get(&i)
            .is_none_or(|n| n.load(Ordering::Relaxed) == 0);
        if copied && !done.tables.contains(&t.oid) && parts_left.contains_key(&i) {
            // Copied by an earlier run: only its indexes, constraints or ANALYZE are left.
            dispatch(
                &tx,
                i,
                builds,
                by_table.contains_key(&i),
                ctx.cfg.skip_vacuum,
                true,
                is_small(ctx, i),
            );
        }
    }
    if !done.units.is_empty() || !committed.is_empty() {
        info!(
            "resuming: {} of {} table parts were copied before, {} are left",
            units.len() - queue.len(),
            units.len(),
            queue.len()
        );
    }
    let queue: VecDeque<usize> = queue.into_iter().collect();
    let parts_left = Arc::new(parts_left);
    let index_queue = Arc::new(IndexQueue {
        rx: tokio::sync::Mutex::new(rx),
        remaining,
        table_of_index,
        by_table,
    });
    let copy_workers = ctx.cfg.table_jobs.min(queue.len());
    let queue = Arc::new(Mutex::new(queue));

    let mut set = JoinSet::new();
    for w in 0..copy_workers {
        let (ctx, queue, tx, index_queue, parts_left) = (
            ctx.clone(),
            queue.clone(),
            tx.clone(),
            index_queue.clone(),
            parts_left.clone(),
        );
        set.spawn(async move { copy_worker(w, ctx, queue, tx, index_queue, parts_left).await });
    }
    drop(tx);
    let needs_index_workers = !ctx.catalog.indexes.is_empty() || !ctx.cfg.skip_vacuum;
    if needs_index_workers && !tables.is_empty() {
        for w in 0..ctx.cfg.index_jobs {
            let (ctx, q) = (ctx.clone(), index_queue.clone());
            set.spawn(async move { index_worker(w, ctx, q).await });
        }
    }
    while let Some(joined) = set.join_next().await {
        let result = joined.context("a data worker stopped unexpectedly")?;
        if let Err(e) = result {
            set.abort_all();
            return Err(e);
        }
    }
    Ok(())
}

/// Hands a copied table to the index workers: its index builds, or straight to the finishing
/// step when there is nothing to build.
fn dispatch(
    tx: &mpsc::UnboundedSender<IndexJob>,
    table: usize,
    builds: Vec<usize>,
    has_indexes: bool,
    skip_vacuum: bool,
    resumed: bool,
    small: bool,
) {
    if small && (has_indexes || !skip_vacuum) {
        let _ = tx.send(IndexJob::Small(table));
    } else if !builds.is_empty() {
        for j in builds {
            let _ = tx.send(IndexJob::Build(j));
        }
    } else if has_indexes || !skip_vacuum || resumed {
        let _ = tx.send(IndexJob::Finish(table));
    }
}

/// Whether a table's indexes and constraints are built in one go (see SMALL_TABLE_BYTES). Not
/// for tables that need a VACUUM (split, extension configuration): VACUUM cannot run in the
/// batch's transaction.
fn is_small(ctx: &Ctx, table: usize) -> bool {
    let t = &ctx.catalog.tables[table];
    t.bytes < SMALL_TABLE_BYTES && t.frozen_on_load() && !ctx.is_split(t.oid)
}

/// Logs a retry about to happen and returns how long to wait first.
fn announce_retry(
    policy: &crate::pg::retry::RetryPolicy,
    attempt: u32,
    e: &anyhow::Error,
    what: &str,
) -> std::time::Duration {
    let wait = policy.delay(attempt);
    warn!(
        "{e:#}; {what} in {:.1}s (attempt {} of {})",
        wait.as_secs_f64(),
        attempt + 1,
        policy.retries + 1
    );
    wait
}

/// A connection and the server process behind it.
struct Session {
    client: Client,
    pid: i32,
}

impl Session {
    /// Opens a session; `stale` is the server process of the connection this one replaces,
    /// which is ended first (it may still be running the statement that failed).
    async fn open(
        connect: impl std::future::Future<Output = Result<Client>>,
        stale: Option<i32>,
    ) -> Result<Session> {
        let client = connect.await?;
        let pid = backend_pid(&client).await?;
        if let Some(old) = stale {
            if let Err(e) = terminate_backend(&client, old).await {
                warn!("{e:#}");
            }
        }
        Ok(Session { client, pid })
    }
}

/// A source reader and a target writer, opened again after a transient failure.
type Pair = (Session, Session);

async fn connect_pair(ctx: &Ctx, worker: usize, stale: Option<(i32, i32)>) -> Result<Pair> {
    tokio::try_join!(
        Session::open(ctx.source_reader(), stale.map(|s| s.0)),
        Session::open(ctx.target_writer(), stale.map(|s| s.1))
    )
    .with_context(|| format!("start COPY worker {}", worker + 1))
}

/// Whole tables smaller than this are copied several to a target transaction.
const BATCH_TABLE_BYTES: i64 = 2 << 20;
/// A batch holds at most this many tables and this many (estimated) bytes.
const BATCH_MAX_TABLES: usize = 32;
const BATCH_MAX_BYTES: i64 = 16 << 20;

fn batchable(ctx: &Ctx, unit: &Unit) -> bool {
    unit.parts == 1
        && ctx.catalog.tables[unit.table].frozen_on_load()
        && unit.est_bytes < BATCH_TABLE_BYTES
}

/// The units a copy worker takes next: one, or a batch of small whole tables that are copied
/// in one target transaction with their round trips pipelined (over a wide-area link the round
/// trips, not the bytes, are what small tables cost). Batches shrink towards the end of the
/// queue so that every worker keeps some work.
fn take_batch(ctx: &Ctx, queue: &Mutex<VecDeque<usize>>) -> Vec<usize> {
    let mut q = queue.lock().expect("queue lock");
    let Some(first) = q.pop_front() else {
        return Vec::new();
    };
    let mut batch = vec![first];
    if !batchable(ctx, &ctx.units[first]) {
        return batch;
    }
    let cap = (q.len() + 1)
        .div_ceil(2 * ctx.cfg.table_jobs.max(1))
        .clamp(1, BATCH_MAX_TABLES);
    let mut bytes = ctx.units[first].est_bytes.max(0);
    while batch.len() < cap {
        let Some(&k) = q.front() else { break };
        let unit = &ctx.units[k];
        if !batchable(ctx, unit) || bytes + unit.est_bytes.max(0) > BATCH_MAX_BYTES {
            break;
        }
        bytes += unit.est_bytes.max(0);
        batch.push(k);
        q.pop_front();
    }
    batch
}

/// What a worker shows while it copies `units`.
fn batch_label(ctx: &Ctx, units: &[&Unit]) -> String {
    let first = units[0].label(&ctx.catalog.tables[units[0].table]);
    match units.len() {
        1 => first,
        n => format!("{n} tables ({first}, ...)"),
    }
}

async fn copy_worker(
    worker: usize,
    ctx: Arc<Ctx>,
    queue: Arc<Mutex<VecDeque<usize>>>,
    index_tx: mpsc::UnboundedSender<IndexJob>,
    index_queue: Arc<IndexQueue>,
    parts_left: Arc<HashMap<usize, AtomicUsize>>,
) -> Result<()> {
    let mut conns: Option<Pair> = None;
    let mut stale: Option<(i32, i32)> = None;
    // Tables read in the source session's current transaction: each holds a lock until it ends.
    let mut read_in_txn = 0usize;
    let name = format!("copy {}", worker + 1);
    let live = &ctx.rec.live;
    let policy = ctx.cfg.retry;
    loop {
        let batch = take_batch(&ctx, &queue);
        if batch.is_empty() {
            break;
        }
        let units: Vec<&Unit> = batch.iter().map(|k| &ctx.units[*k]).collect();
        let label = batch_label(&ctx, &units);
        let mut attempt = 0;
        let copied = loop {
            let counters = live
                .busy(&name, format!("COPY {label}"), true)
                .unwrap_or_default();
            for unit in &units {
                ctx.rec.send(Event::UnitStart {
                    table_oid: ctx.catalog.tables[unit.table].oid,
                    part: unit.part,
                });
            }
            let result = async {
                if conns.is_none() {
                    conns = Some(connect_pair(&ctx, worker, stale).await?);
                    stale = None;
                }
                let (source, target) = conns.as_ref().expect("connected above");
                if read_in_txn >= READS_PER_SNAPSHOT_TXN {
                    if let Some(id) = ctx.snapshot.as_deref() {
                        super::snapshot::renew(&source.client, id).await?;
                    }
                    read_in_txn = 0;
                }
                let io = CopyIo {
                    source: &source.client,
                    target: &target.client,
                    worker: &counters,
                    all_bytes: &live.copied_bytes,
                };
                copy_units(&ctx, &io, &units, attempt > 0).await
            }
            .await;
            if let Ok(copied) = &result {
                // Counted as done before the worker's own counters go, so that the totals
                // never dip.
                for (unit, c) in units.iter().zip(copied) {
                    live.unit_done(c.bytes, c.rows, unit.est_bytes.max(0) as u64);
                }
            }
            live.idle(&name);
            match result {
                Ok(copied) => {
                    read_in_txn += units.len();
                    break copied;
                }
                Err(e) if attempt < policy.retries && is_transient(&e) => {
                    attempt += 1;
                    let what = if units.len() == 1 {
                        "the table is copied again from scratch"
                    } else {
                        "the tables are copied again from scratch"
                    };
                    let wait = announce_retry(&policy, attempt, &e, what);
                    // The connections may be dead; the transaction rolled back with them (their
                    // server processes are ended when the new connections are made).
                    stale = conns.take().map(|(s, t)| (s.pid, t.pid)).or(stale);
                    read_in_txn = 0;
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    let error = format!("{e:#}");
                    let culprit = e.downcast_ref::<UnitFailure>().map(|f| f.index);
                    for (k, unit) in units.iter().enumerate() {
                        let table = &ctx.catalog.tables[unit.table];
                        // The others of a batch are not at fault: they rolled back with it.
                        let at_fault = units.len() == 1 || culprit == Some(k);
                        ctx.rec.send(Event::UnitFailed {
                            table_oid: table.oid,
                            part: unit.part,
                            error: if at_fault {
                                error.clone()
                            } else {
                                format!("rolled back with its batch: {error}")
                            },
                        });
                    }
                    return Err(e);
                }
            }
        };
        for (unit, c) in units.iter().zip(copied) {
            let i = unit.table;
            let table = &ctx.catalog.tables[i];
            ctx.rec.send(Event::UnitDone {
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
            if parts_left[&i].fetch_sub(1, Ordering::AcqRel) != 1 {
                // Other parts of the table are still to come.
                continue;
            }
            // The table's rows are committed: its indexes may be built now.
            let builds: Vec<usize> = index_queue
                .by_table
                .get(&i)
                .map(Vec::as_slice)
                .unwrap_or(&[])
                .iter()
                .copied()
                .filter(|j| built_first(&ctx.catalog.indexes[*j]))
                .collect();
            index_queue.remaining[&i].store(builds.len(), Ordering::Release);
            dispatch(
                &index_tx,
                i,
                builds,
                index_queue.by_table.contains_key(&i),
                ctx.cfg.skip_vacuum,
                false,
                is_small(&ctx, i),
            );
        }
    }
    Ok(())
}

/// Tables a source session reads in one transaction before it ends it and imports the
/// snapshot again: a transaction keeps a lock on every table it has read, and all of them
/// share the source's lock table (`max_locks_per_transaction` × server processes) with pg_dump
/// and everyone else. One more round trip per this many tables bounds a worker's locks.
pub const READS_PER_SNAPSHOT_TXN: usize = 256;

/// A copy worker's two sessions and its byte counters.
struct CopyIo<'a> {
    source: &'a Client,
    target: &'a Client,
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

/// Copies units in one target transaction. A whole table: TRUNCATE, COPY ... FREEZE. A part
/// of a split table: COPY of its rows, and its row in neoncopy.parts, committed together.
/// Either way a failure leaves nothing behind, and running it again never duplicates a row.
/// `again` says an earlier attempt failed: a part whose commit went through although its
/// answer was lost is then not copied a second time.
async fn copy_units(
    ctx: &Ctx,
    io: &CopyIo<'_>,
    units: &[&Unit],
    again: bool,
) -> Result<Vec<Copied>> {
    if let [unit] = units {
        if again && unit.parts > 1 {
            let table = &ctx.catalog.tables[unit.table];
            let row = io
                .target
                .query_opt(
                    &sql::committed_part_rows(ctx.parts_schema()?),
                    &[&(table.oid as i64), &(unit.part as i32)],
                )
                .await
                .db()
                .context("look for the part in neoncopy's record of committed parts")?;
            if let Some(row) = row {
                info!("{} was committed by the failed attempt", unit.label(table));
                return Ok(vec![Copied {
                    rows: row.get::<_, i64>(0) as u64,
                    bytes: 0,
                    secs: 0.0,
                }]);
            }
        }
    }
    let counted: Vec<UnitCounters> = units.iter().map(|_| UnitCounters::default()).collect();
    let result = copy_pipelined(ctx, io, units, &counted).await;
    if result.is_err() {
        let _ = io.target.batch_execute("rollback").await;
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

/// Prepares one statement per unit on one server, all in one round trip (pipelined).
async fn prepare_each(
    client: &Client,
    texts: &[String],
    fail: &(dyn Fn(usize, &'static str) -> UnitFailure + Sync),
    what: &'static str,
) -> Result<Vec<tokio_postgres::Statement>> {
    futures::future::try_join_all(texts.iter().enumerate().map(|(i, text)| async move {
        client
            .prepare(text)
            .await
            .db()
            .with_context(|| fail(i, what))
    }))
    .await
}

/// Both results, or the error of the first that failed. Requests pipelined on one connection
/// fail together once the first has failed (the rest with "current transaction is aborted"),
/// and `try_join!` would report whichever it happened to poll first (it rotates).
fn first_error<A, B>(a: Result<A>, b: Result<B>) -> Result<(A, B)> {
    Ok((a?, b?))
}

/// The round trips of `copy_units`, overlapped: one for BEGIN, the TRUNCATEs and every COPY
/// statement's preparation on both sides; then per unit one to start both COPYs, sent with
/// the end of the previous unit's COPY (and the COMMIT with the last one's).
async fn copy_pipelined(
    ctx: &Ctx,
    io: &CopyIo<'_>,
    units: &[&Unit],
    counted: &[UnitCounters],
) -> Result<Vec<Copied>> {
    let tables = &ctx.catalog.tables;
    let (source, target) = (io.source, io.target);
    let table = |u: &Unit| &tables[u.table];
    let fresh = |u: &Unit| u.parts == 1 && table(u).frozen_on_load();
    let fail = |i: usize, what: &'static str| UnitFailure {
        index: i,
        label: units[i].label(table(units[i])),
        what,
    };
    let mut begin = String::from("begin");
    for u in units.iter().filter(|u| u.parts == 1) {
        let t = table(u);
        begin.push_str("; ");
        match &t.extension_config {
            // A partitioned table loaded through its root: all of its partitions.
            None if !t.leaves.is_empty() => begin.push_str(&sql::truncate(&t.schema, &t.name)),
            None => begin.push_str(&sql::truncate_only(&t.schema, &t.name)),
            // The rows a previous attempt may have committed go, the extension's own stay:
            // copying again never duplicates.
            Some(c) => begin.push_str(&sql::delete_matching(&t.schema, &t.name, &c.filter)),
        }
    }
    let in_sql: Vec<String> = units
        .iter()
        .map(|u| {
            let t = table(u);
            sql::copy_in(
                &t.schema,
                &t.name,
                &t.columns,
                fresh(u),
                ctx.binary && t.binary_ok,
            )
        })
        .collect();
    let out_sql: Vec<String> = units
        .iter()
        .map(|u| {
            let t = table(u);
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
        })
        .collect();
    let (begun, ins, outs) = tokio::join!(
        async {
            target
                .batch_execute(&begin)
                .await
                .db()
                .context("begin target transaction")
        },
        prepare_each(target, &in_sql, &fail, "prepare COPY on target"),
        prepare_each(source, &out_sql, &fail, "prepare COPY on source"),
    );
    let (_, (ins, outs)) = first_error(begun, first_error(ins, outs))?;
    let start_copy = |i: usize| {
        let (ins, outs) = (&ins, &outs);
        async move {
            tokio::try_join!(
                async {
                    target
                        .copy_in::<_, bytes::Bytes>(&ins[i])
                        .await
                        .db()
                        .with_context(|| fail(i, "start COPY on target"))
                },
                async {
                    source
                        .copy_out(&outs[i])
                        .await
                        .db()
                        .with_context(|| fail(i, "start COPY on source"))
                },
            )
        }
    };
    let n = units.len();
    let mut out = Vec::with_capacity(n);
    let mut current = Some(start_copy(0).await?);
    let mut since = Instant::now();
    for i in 0..n {
        let (sink, stream) = current.take().expect("started before");
        let mut sink = Box::pin(sink);
        // COPY OUT sends a message per row (binary COPY one more, its trailer): the rows move
        // as they are copied, and are set right by the count the target reports.
        let stream = stream.inspect_ok(|_| {
            counted[i].rows.fetch_add(1, Ordering::Relaxed);
            io.worker.rows.fetch_add(1, Ordering::Relaxed);
        });
        let mut stream = Box::pin(super::chunks::Chunks::new(stream).inspect_ok(|chunk| {
            let len = chunk.len() as u64;
            counted[i].bytes.fetch_add(len, Ordering::Relaxed);
            io.worker.bytes.fetch_add(len, Ordering::Relaxed);
            io.all_bytes.fetch_add(len, Ordering::Relaxed);
        }));
        sink.send_all(&mut stream)
            .await
            .db()
            .with_context(|| fail(i, "stream rows"))?;
        let finish = async {
            sink.as_mut()
                .finish()
                .await
                .db()
                .with_context(|| fail(i, "finish COPY on target"))
        };
        let rows = if i + 1 < n {
            let (rows, next) = tokio::join!(finish, start_copy(i + 1));
            let (rows, next) = first_error(rows, next)?;
            current = Some(next);
            rows
        } else if fresh(units[i]) {
            // COMMIT goes with the end of the COPY. Should the COPY fail, the server answers
            // that COMMIT with a rollback, and the COPY's error is the one reported.
            let commit = async {
                target
                    .batch_execute("commit")
                    .await
                    .db()
                    .context("commit target transaction")
            };
            let (rows, committed) = tokio::join!(finish, commit);
            first_error(rows, committed)?.0
        } else {
            // A part's record carries its row count, known once its COPY is finished.
            let rows = finish.await?;
            let mut commit = String::new();
            if units[i].parts > 1 {
                commit.push_str(&sql::record_part(
                    ctx.parts_schema()?,
                    table(units[i]).oid,
                    units[i].part,
                    rows,
                ));
                commit.push_str("; ");
            }
            commit.push_str("commit");
            target
                .batch_execute(&commit)
                .await
                .db()
                .context("commit target transaction")?;
            rows
        };
        let seen = counted[i].rows.swap(rows, Ordering::Relaxed);
        io.worker.rows.fetch_add(rows, Ordering::Relaxed);
        io.worker.rows.fetch_sub(seen, Ordering::Relaxed);
        let now = Instant::now();
        out.push(Copied {
            rows,
            bytes: counted[i].bytes.load(Ordering::Relaxed),
            secs: now.duration_since(since).as_secs_f64(),
        });
        since = now;
    }
    Ok(out)
}

/// A unit of copy work: a whole table, or one part of a split one.
#[derive(Debug, Clone)]
pub struct Unit {
    /// Index into the catalog's tables.
    pub table: usize,
    pub part: u32,
    pub parts: u32,
    pub condition: Option<String>,
    pub est_bytes: i64,
    pub est_rows: i64,
}

impl Unit {
    pub fn label(&self, table: &Table) -> String {
        if self.parts > 1 {
            format!("{} (part {}/{})", table.display(), self.part, self.parts)
        } else {
            table.display()
        }
    }
}

/// Parts of split tables recorded as committed on the target (the record exists only while a
/// clone with split tables is copying), in a schema of neoncopy's own: the one an interrupted
/// run made, or a new one under the first free name (never a schema of the user's).
async fn committed_parts(ctx: &Ctx) -> Result<std::collections::HashSet<(u32, u32)>> {
    if ctx.split_tables.is_empty() {
        return Ok(Default::default());
    }
    let client = ctx.target.connect().await?;
    let state = |name: String| {
        let client = &client;
        async move {
            let row = client
                .query_one(sql::PARTS_SCHEMA_STATE, &[&name])
                .await
                .db()
                .context("look for neoncopy's schema of committed parts on the target")?;
            anyhow::Ok((row.get::<_, bool>(0), row.get::<_, bool>(1)))
        }
    };
    let mut out = std::collections::HashSet::new();
    if let Some(name) = &ctx.done.parts_schema {
        match state(name.clone()).await? {
            (true, true) => {
                for r in client.query(&sql::committed_parts(name), &[]).await.db()? {
                    out.insert((r.get::<_, i64>(0) as u32, r.get::<_, i32>(1) as u32));
                }
                let _ = ctx.parts_schema.set(name.clone());
                return Ok(out);
            }
            (true, false) => anyhow::bail!(
                "the schema {name} on the target is not the one neoncopy made for this clone \
                 (it has no parts table): drop or rename it, then resume"
            ),
            (false, _) => {}
        }
    }
    let mut chosen = None;
    for name in sql::PARTS_SCHEMAS {
        if !state(name.to_string()).await?.0 {
            chosen = Some(*name);
            break;
        }
    }
    let name = chosen.with_context(|| {
        format!(
            "every name neoncopy may use for its own schema on the target is taken ({}): \
             rename one of those schemas",
            sql::PARTS_SCHEMAS.join(", ")
        )
    })?;
    client
        .batch_execute(&sql::create_parts_table(name))
        .await
        .db()
        .with_context(|| {
            format!("create the table recording committed parts (schema {name}) on the target")
        })?;
    ctx.rec.send(Event::Label {
        name: crate::state::PARTS_SCHEMA_LABEL,
        value: name.to_string(),
    });
    ctx.rec.flush();
    let _ = ctx.parts_schema.set(name.to_string());
    Ok(out)
}

/// At most this many small tables' indexes go in one round trip.
const INDEX_BATCH_MAX_TABLES: usize = 32;

async fn index_worker(worker: usize, ctx: Arc<Ctx>, queue: Arc<IndexQueue>) -> Result<()> {
    let mut conn: Option<Session> = None;
    let mut stale: Option<i32> = None;
    let name = format!("index {}", worker + 1);
    // A job taken from the queue while gathering small tables, done next.
    let mut held: Option<IndexJob> = None;
    loop {
        let job = match held.take() {
            Some(job) => Some(job),
            None => queue.rx.lock().await.recv().await,
        };
        let Some(job) = job else { break };
        // Two phases, each retried on its own, so that a retry never repeats a finished phase
        // (nor counts an index twice).
        let table_to_finish = match job {
            IndexJob::Build(j) => {
                let op = IndexOp::Build(j, queue.table_of_index[j]);
                run_on_fresh_session(&ctx, worker, &name, &mut conn, &mut stale, &op).await?;
                let t = queue.table_of_index[j];
                let before = queue.remaining[&t].fetch_sub(1, Ordering::AcqRel);
                (before == 1).then_some(t)
            }
            IndexJob::Finish(t) => Some(t),
            IndexJob::Small(t) => {
                // Other small tables waiting go in the same round trip, the waiting ones
                // shared out between the workers.
                let mut tables = vec![t];
                {
                    let mut rx = queue.rx.lock().await;
                    let cap =
                        (rx.len() / ctx.cfg.index_jobs.max(1) + 1).clamp(1, INDEX_BATCH_MAX_TABLES);
                    while tables.len() < cap {
                        match rx.try_recv() {
                            Ok(IndexJob::Small(t)) => tables.push(t),
                            Ok(other) => {
                                held = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                }
                let batch: Vec<(usize, &[usize])> = tables
                    .iter()
                    .map(|t| {
                        let indexes = queue.by_table.get(t).map(Vec::as_slice).unwrap_or(&[]);
                        (*t, indexes)
                    })
                    .collect();
                let op = IndexOp::Small(batch);
                run_on_fresh_session(&ctx, worker, &name, &mut conn, &mut stale, &op).await?;
                None
            }
        };
        if let Some(t) = table_to_finish {
            let indexes = queue.by_table.get(&t).map(Vec::as_slice).unwrap_or(&[]);
            let op = IndexOp::Finish(t, indexes);
            run_on_fresh_session(&ctx, worker, &name, &mut conn, &mut stale, &op).await?;
        }
        ctx.rec.live.idle(&name);
    }
    Ok(())
}

/// What an index worker does in one go.
enum IndexOp<'a> {
    /// An index, and its table.
    Build(usize, usize),
    Finish(usize, &'a [usize]),
    /// Small tables, each with its indexes.
    Small(Vec<(usize, &'a [usize])>),
}

/// A target session for index builds: --maintenance-work-mem, then the session settings
/// pg_restore would use for the archive's entries.
async fn index_session(ctx: &Ctx) -> Result<Client> {
    let client = ctx.index_builder().await?;
    client
        .batch_execute(&ctx.ddl()?.session)
        .await
        .db()
        .context("set up the index build session")?;
    Ok(client)
}

/// Runs `op` on the worker's target session, opening one if needed; after a transient failure
/// the session is replaced (ending the old server process) and `op` runs again.
async fn run_on_fresh_session(
    ctx: &Ctx,
    worker: usize,
    name: &str,
    conn: &mut Option<Session>,
    stale: &mut Option<i32>,
    op: &IndexOp<'_>,
) -> Result<()> {
    let resumed = !ctx.done.units.is_empty();
    let policy = ctx.cfg.retry;
    let mut attempt = 0;
    loop {
        if conn.is_none() {
            match Session::open(index_session(ctx), *stale).await {
                Ok(session) => {
                    *stale = None;
                    *conn = Some(session);
                }
                Err(e) if attempt < policy.retries && is_transient(&e) => {
                    attempt += 1;
                    let wait = announce_retry(&policy, attempt, &e, "trying again");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(e) => return Err(e.context(format!("start index worker {}", worker + 1))),
            }
        }
        let client = &conn.as_ref().expect("connected above").client;
        // After a failed attempt, or in a resumed run, what is to be built may exist already
        // (built by an attempt whose answer was lost).
        let again = resumed || attempt > 0;
        let result = match op {
            IndexOp::Build(j, t) => build_index(ctx, client, name, (*j, *t), again).await,
            IndexOp::Finish(t, indexes) => {
                finish_table(ctx, client, name, *t, indexes, again).await
            }
            IndexOp::Small(tables) => small_tables(ctx, client, name, tables, again).await,
        };
        match result {
            Ok(()) => return Ok(()),
            Err(e) if attempt < policy.retries && is_transient(&e) => {
                attempt += 1;
                let wait = announce_retry(&policy, attempt, &e, "trying again");
                *stale = conn.take().map(|c| c.pid).or(*stale);
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The statements that build an index or constraint, from its archive entry. A plain index's
/// entry is its CREATE INDEX (run on its own, several at once on a table) followed by what
/// pg_dump put beside it (run with the table's constraints, once every index is built: they
/// take stronger locks). A constraint's entry runs whole.
struct Statements<'a> {
    ctx: &'a Ctx,
}

impl<'a> Statements<'a> {
    fn ddl(&self, index: &Index) -> Option<&'a super::schema::BuiltDdl> {
        self.ctx.ddl().ok().and_then(|d| d.get(index))
    }

    /// `SET default_tablespace` and the CREATE INDEX of a plain index.
    fn create(&self, index: &Index) -> Option<String> {
        let d = self.ddl(index)?;
        let first = d.statements.first()?;
        Some(format!("{};\n{first}", d.tablespace_setting()))
    }

    /// The rest of a plain index's entry (none when it has nothing beside CREATE INDEX).
    fn rest(&self, index: &Index) -> Option<String> {
        let d = self.ddl(index)?;
        (d.statements.len() > 1).then(|| d.statements[1..].join("\n"))
    }

    /// A constraint's whole entry.
    fn constraint(&self, index: &Index) -> Option<String> {
        Some(self.ddl(index)?.whole())
    }
}

/// All of some small tables' indexes, constraints, index settings and ANALYZE as one batch:
/// one round trip, one transaction (so a failure leaves none of it).
async fn small_tables(
    ctx: &Ctx,
    client: &Client,
    worker: &str,
    tables: &[(usize, &[usize])],
    again: bool,
) -> Result<()> {
    let live = &ctx.rec.live;
    let first = ctx.catalog.tables[tables[0].0].display();
    let what = match tables.len() {
        1 => format!("INDEXES {first}"),
        n => format!("INDEXES of {n} tables ({first}, ...)"),
    };
    live.busy(worker, what, false);
    let existing = if again {
        existing_objects(ctx, client, tables).await?
    } else {
        HashSet::new()
    };
    let text = Statements { ctx };
    let mut stmts = Vec::new();
    let mut count = 0;
    for (t, indexes) in tables {
        let table = &ctx.catalog.tables[*t];
        let indexes: Vec<&Index> = indexes.iter().map(|j| &ctx.catalog.indexes[*j]).collect();
        for index in &indexes {
            ctx.rec.send(Event::IndexStart(index.oid));
            count += 1;
        }
        for index in indexes.iter().filter(|i| !existing.contains(&i.oid)) {
            let create = if built_first(index) {
                text.create(index)
            } else {
                text.constraint(index)
            };
            stmts.extend(create);
        }
        for index in indexes.iter().filter(|i| built_first(i)) {
            stmts.extend(text.rest(index));
        }
        if !ctx.cfg.skip_vacuum {
            // Counted with the index time: it runs in the same round trip.
            stmts.push(sql::analyze(&table.schema, &table.name, false));
        }
    }
    let start = Instant::now();
    client
        .batch_execute(&stmts.join(";\n"))
        .await
        .db()
        .with_context(|| match tables.len() {
            1 => format!("build the indexes of {first}"),
            n => format!("build the indexes of {n} small tables ({first}, ...)"),
        })?;
    let each = start.elapsed().as_secs_f64() / count.max(1) as f64;
    for (t, indexes) in tables {
        for j in *indexes {
            let index = &ctx.catalog.indexes[*j];
            ctx.rec.send(Event::IndexDone {
                oid: index.oid,
                index_secs: each,
                constraint_secs: 0.0,
            });
            live.index_done(index.bytes);
        }
        ctx.rec
            .send(Event::TableFinished(ctx.catalog.tables[*t].oid));
    }
    Ok(())
}

/// The indexes among `tables`' that are already on the target, as an index or as a
/// constraint (built by an attempt whose answer was lost, or by an earlier run): two queries
/// in one round trip.
async fn existing_objects(
    ctx: &Ctx,
    client: &Client,
    tables: &[(usize, &[usize])],
) -> Result<HashSet<u32>> {
    let (mut con_oids, mut con_names, mut con_tables) = (Vec::new(), Vec::new(), Vec::new());
    let (mut idx_oids, mut idx_names) = (Vec::new(), Vec::new());
    for (t, indexes) in tables {
        let table = &ctx.catalog.tables[*t];
        for j in *indexes {
            let index = &ctx.catalog.indexes[*j];
            match &index.kind {
                IndexKind::Constraint { name, .. } => {
                    con_oids.push(index.oid);
                    con_names.push(name.clone());
                    con_tables.push(table.qualified());
                }
                IndexKind::Plain => {
                    idx_oids.push(index.oid);
                    idx_names.push(sql::qualified(&index.schema, &index.name));
                }
            }
        }
    }
    let con_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&con_tables, &con_names];
    let idx_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&idx_names];
    let (constraints, indexes) = tokio::try_join!(
        client.query(sql::EXISTING_CONSTRAINTS, &con_params),
        client.query(sql::EXISTING_INDEXES, &idx_params),
    )
    .db()
    .context("look for indexes and constraints built before")?;
    let found = |rows: Vec<tokio_postgres::Row>, oids: &[u32]| -> Vec<u32> {
        rows.iter()
            .map(|r| oids[r.get::<_, i64>(0) as usize - 1])
            .collect()
    };
    let mut out: HashSet<u32> = found(constraints, &con_oids).into_iter().collect();
    out.extend(found(indexes, &idx_oids));
    Ok(out)
}

/// CREATE INDEX of one plain index.
async fn build_index(
    ctx: &Ctx,
    client: &Client,
    worker: &str,
    (j, t): (usize, usize),
    again: bool,
) -> Result<()> {
    let live = &ctx.rec.live;
    let index = &ctx.catalog.indexes[j];
    live.busy(worker, format!("CREATE INDEX {}", index.display()), false);
    ctx.rec.send(Event::IndexStart(index.oid));
    let start = Instant::now();
    let built = again
        && existing_objects(ctx, client, &[(t, &[j])])
            .await?
            .contains(&index.oid);
    if let (false, Some(create)) = (built, (Statements { ctx }).create(index)) {
        client
            .batch_execute(&create)
            .await
            .db()
            .with_context(|| format!("build index {}", index.display()))?;
    }
    let index_secs = start.elapsed().as_secs_f64();
    ctx.rec.send(Event::IndexDone {
        oid: index.oid,
        index_secs,
        constraint_secs: 0.0,
    });
    debug!("built {} in {}", index.display(), fmt::duration(index_secs));
    live.index_done(index.bytes);
    Ok(())
}

/// After a table's plain indexes are built: its constraints (each its own transaction, as
/// pg_dump's entry has it), what pg_dump put beside the plain indexes, then ANALYZE.
async fn finish_table(
    ctx: &Ctx,
    client: &Client,
    worker: &str,
    t: usize,
    indexes: &[usize],
    again: bool,
) -> Result<()> {
    let live = &ctx.rec.live;
    let table = &ctx.catalog.tables[t];
    let existing = if again {
        existing_objects(ctx, client, &[(t, indexes)]).await?
    } else {
        HashSet::new()
    };
    let text = Statements { ctx };
    for j in indexes {
        let index = &ctx.catalog.indexes[*j];
        if built_first(index) || existing.contains(&index.oid) {
            continue;
        }
        live.busy(worker, format!("ADD CONSTRAINT {}", index.display()), false);
        ctx.rec.send(Event::IndexStart(index.oid));
        let start = Instant::now();
        if let Some(stmts) = text.constraint(index) {
            client.batch_execute(&stmts).await.db().with_context(|| {
                format!("add constraint {} on {}", index.display(), table.display())
            })?;
        }
        ctx.rec.send(Event::IndexDone {
            oid: index.oid,
            index_secs: 0.0,
            constraint_secs: start.elapsed().as_secs_f64(),
        });
        live.index_done(index.bytes);
    }
    for j in indexes {
        let index = &ctx.catalog.indexes[*j];
        if let Some(rest) = text.rest(index).filter(|_| built_first(index)) {
            client.batch_execute(&rest).await.db().with_context(|| {
                format!("set up index {} on {}", index.display(), table.display())
            })?;
        }
    }
    if !ctx.cfg.skip_vacuum {
        live.busy(worker, format!("ANALYZE {}", table.display()), false);
        ctx.rec.send(Event::VacuumStart(table.oid));
        analyze(client, table, ctx.is_split(table.oid)).await?;
        ctx.rec.send(Event::VacuumDone(table.oid));
    }
    ctx.rec.send(Event::TableFinished(table.oid));
    Ok(())
}

async fn analyze(client: &Client, table: &Table, split: bool) -> Result<()> {
    // A table loaded with COPY FREEZE needs no vacuum; one loaded without it (an extension's
    // configuration table, a split table, a partitioned table loaded through its root) does,
    // for its visibility map.
    let vacuum = !table.frozen_on_load() || split;
    client
        .batch_execute(&sql::analyze(&table.schema, &table.name, vacuum))
        .await
        .db()
        .with_context(|| format!("analyze {}", table.display()))
}
