//! The data step: `--table-jobs` COPY workers take tables largest first and stream their rows
//! from source to target; as each table commits, its indexes and constraints go to
//! `--index-jobs` index workers, and the table is analyzed once they are built.

use super::{human_bytes, Ctx};
use crate::catalog::{Index, IndexKind, Table};
use crate::pg::{sql, DbResultExt};
use anyhow::{Context, Result};
use futures::{SinkExt, TryStreamExt};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_postgres::Client;
use tracing::{debug, info};

#[derive(Debug, Default)]
pub struct DataSummary {
    pub tables: usize,
    pub rows: u64,
    pub bytes: u64,
    pub indexes: usize,
}

#[derive(Default)]
struct Counters {
    tables: AtomicUsize,
    rows: AtomicU64,
    bytes: AtomicU64,
    indexes: AtomicUsize,
}

enum IndexJob {
    Build(usize),
    Analyze(usize),
}

/// What the index workers share: the job queue, and per table how many of its indexes are
/// still to build.
struct IndexQueue {
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<IndexJob>>,
    remaining: HashMap<usize, AtomicUsize>,
    table_of_index: Vec<usize>,
}

pub async fn run(ctx: &Arc<Ctx>) -> Result<DataSummary> {
    let tables = &ctx.catalog.tables;
    let position: HashMap<u32, usize> =
        tables.iter().enumerate().map(|(i, t)| (t.oid, i)).collect();
    let mut by_table: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut table_of_index = Vec::with_capacity(ctx.catalog.indexes.len());
    for (j, index) in ctx.catalog.indexes.iter().enumerate() {
        let t = position[&index.table_oid];
        by_table.entry(t).or_default().push(j);
        table_of_index.push(t);
    }
    let by_table = Arc::new(by_table);
    let (tx, rx) = mpsc::unbounded_channel();
    let index_queue = Arc::new(IndexQueue {
        rx: tokio::sync::Mutex::new(rx),
        remaining: by_table
            .iter()
            .map(|(t, idx)| (*t, AtomicUsize::new(idx.len())))
            .collect(),
        table_of_index,
    });
    // Tables are already ordered largest first by the catalog query.
    let queue = Arc::new(Mutex::new((0..tables.len()).collect::<VecDeque<usize>>()));
    let counters = Arc::new(Counters::default());

    let mut set = JoinSet::new();
    let copy_workers = ctx.cfg.table_jobs.min(tables.len());
    for w in 0..copy_workers {
        let (ctx, queue, tx, by_table, counters) = (
            ctx.clone(),
            queue.clone(),
            tx.clone(),
            by_table.clone(),
            counters.clone(),
        );
        set.spawn(async move { copy_worker(w, ctx, queue, tx, by_table, counters).await });
    }
    drop(tx);
    let needs_index_workers = !ctx.catalog.indexes.is_empty() || !ctx.cfg.skip_vacuum;
    if needs_index_workers && !tables.is_empty() {
        for w in 0..ctx.cfg.index_jobs {
            let (ctx, q, counters) = (ctx.clone(), index_queue.clone(), counters.clone());
            set.spawn(async move { index_worker(w, ctx, q, counters).await });
        }
    }
    while let Some(joined) = set.join_next().await {
        let result = joined.context("a data worker stopped unexpectedly")?;
        if let Err(e) = result {
            set.abort_all();
            return Err(e);
        }
    }
    Ok(DataSummary {
        tables: counters.tables.load(Ordering::Relaxed),
        rows: counters.rows.load(Ordering::Relaxed),
        bytes: counters.bytes.load(Ordering::Relaxed),
        indexes: counters.indexes.load(Ordering::Relaxed),
    })
}

async fn copy_worker(
    worker: usize,
    ctx: Arc<Ctx>,
    queue: Arc<Mutex<VecDeque<usize>>>,
    index_tx: mpsc::UnboundedSender<IndexJob>,
    by_table: Arc<HashMap<usize, Vec<usize>>>,
    counters: Arc<Counters>,
) -> Result<()> {
    let (source, target) = tokio::try_join!(ctx.source_reader(), ctx.target_writer())
        .with_context(|| format!("start COPY worker {worker}"))?;
    loop {
        let next = queue.lock().expect("queue lock").pop_front();
        let Some(i) = next else { break };
        let table = &ctx.catalog.tables[i];
        let start = Instant::now();
        let (rows, bytes) = copy_table(&source, &target, table)
            .await
            .with_context(|| format!("copy table {}", table.display()))?;
        info!(
            "copied {}: {rows} rows, {} in {:.1}s",
            table.display(),
            human_bytes(bytes),
            start.elapsed().as_secs_f64()
        );
        counters.tables.fetch_add(1, Ordering::Relaxed);
        counters.rows.fetch_add(rows, Ordering::Relaxed);
        counters.bytes.fetch_add(bytes, Ordering::Relaxed);
        // The table's rows are committed: its indexes may be built now.
        match by_table.get(&i) {
            Some(indexes) => {
                for j in indexes {
                    let _ = index_tx.send(IndexJob::Build(*j));
                }
            }
            None if !ctx.cfg.skip_vacuum => {
                let _ = index_tx.send(IndexJob::Analyze(i));
            }
            None => {}
        }
    }
    Ok(())
}

/// Copies one table in one target transaction: TRUNCATE, COPY ... FREEZE, COMMIT. A failure
/// leaves nothing of it behind, and running it again never duplicates a row.
async fn copy_table(source: &Client, target: &Client, table: &Table) -> Result<(u64, u64)> {
    let fresh = table.extension_config.is_none();
    let mut begin = String::from("begin");
    if fresh {
        begin.push_str("; ");
        begin.push_str(&sql::truncate_only(&table.schema, &table.name));
    }
    target
        .batch_execute(&begin)
        .await
        .db()
        .context("begin target transaction")?;
    let result = async {
        let sink = target
            .copy_in::<_, bytes::Bytes>(&sql::copy_in(
                &table.schema,
                &table.name,
                &table.columns,
                fresh,
            ))
            .await
            .db()
            .context("start COPY on target")?;
        let stream = source
            .copy_out(&sql::copy_out(
                &table.schema,
                &table.name,
                &table.columns,
                table.extension_config.as_deref(),
            ))
            .await
            .db()
            .context("start COPY on source")?;
        let bytes = AtomicU64::new(0);
        let mut stream = std::pin::pin!(stream.inspect_ok(|chunk| {
            bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }));
        let mut sink = std::pin::pin!(sink);
        sink.send_all(&mut stream)
            .await
            .db()
            .context("stream rows")?;
        let rows = sink
            .as_mut()
            .finish()
            .await
            .db()
            .context("finish COPY on target")?;
        Ok::<_, anyhow::Error>((rows, bytes.load(Ordering::Relaxed)))
    }
    .await;
    match result {
        Ok(counts) => {
            target
                .batch_execute("commit")
                .await
                .db()
                .context("commit target transaction")?;
            Ok(counts)
        }
        Err(e) => {
            let _ = target.batch_execute("rollback").await;
            Err(e)
        }
    }
}

async fn index_worker(
    worker: usize,
    ctx: Arc<Ctx>,
    queue: Arc<IndexQueue>,
    counters: Arc<Counters>,
) -> Result<()> {
    let mut conn: Option<Client> = None;
    loop {
        let job = queue.rx.lock().await.recv().await;
        let Some(job) = job else { break };
        if conn.is_none() {
            conn = Some(
                ctx.target_writer()
                    .await
                    .with_context(|| format!("start index worker {worker}"))?,
            );
        }
        let client = conn.as_ref().expect("connected above");
        match job {
            IndexJob::Build(j) => {
                let index = &ctx.catalog.indexes[j];
                let t = queue.table_of_index[j];
                let start = Instant::now();
                // One statement at a time: each is its own transaction, so the lock CREATE
                // INDEX takes is released before ADD CONSTRAINT asks for an exclusive one
                // (two workers holding the first and waiting for the second would deadlock).
                for stmt in index_statements(index, &ctx.catalog.tables[t]) {
                    client
                        .batch_execute(&stmt)
                        .await
                        .db()
                        .with_context(|| format!("build index {}", index.display()))?;
                }
                debug!(
                    "built {} in {:.1}s",
                    index.display(),
                    start.elapsed().as_secs_f64()
                );
                counters.indexes.fetch_add(1, Ordering::Relaxed);
                let left = queue.remaining[&t].fetch_sub(1, Ordering::AcqRel) - 1;
                if left == 0 && !ctx.cfg.skip_vacuum {
                    analyze(client, &ctx.catalog.tables[t]).await?;
                }
            }
            IndexJob::Analyze(t) => analyze(client, &ctx.catalog.tables[t]).await?,
        }
    }
    Ok(())
}

/// The statements that make one index (or constraint) exist on the target as on the source.
fn index_statements(index: &Index, table: &Table) -> Vec<String> {
    let mut stmts = Vec::new();
    match &index.kind {
        IndexKind::Plain => stmts.push(index.definition.clone()),
        IndexKind::Constraint {
            name,
            primary,
            deferrable,
            deferred,
            ..
        } => {
            stmts.push(index.definition.clone());
            stmts.push(sql::add_constraint_using_index(
                &table.schema,
                &table.name,
                name,
                if *primary { "p" } else { "u" },
                &index.name,
                *deferrable,
                *deferred,
            ));
        }
        IndexKind::Exclusion {
            name, definition, ..
        } => stmts.push(sql::add_constraint(
            &table.schema,
            &table.name,
            name,
            definition,
        )),
    }
    for (attnum, target) in &index.column_statistics {
        stmts.push(sql::index_column_statistics(
            &index.schema,
            &index.name,
            *attnum,
            *target,
        ));
    }
    if index.clustered {
        stmts.push(sql::cluster_on(&table.schema, &table.name, &index.name));
    }
    if index.replica_identity {
        stmts.push(sql::replica_identity_index(
            &table.schema,
            &table.name,
            &index.name,
        ));
    }
    stmts
}

async fn analyze(client: &Client, table: &Table) -> Result<()> {
    // A table loaded with COPY FREEZE needs no vacuum; an extension's configuration table,
    // loaded without it, does.
    let vacuum = table.extension_config.is_some();
    client
        .batch_execute(&sql::analyze(&table.schema, &table.name, vacuum))
        .await
        .db()
        .with_context(|| format!("analyze {}", table.display()))
}
