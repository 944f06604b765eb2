//! The data step: `--table-jobs` copy workers (`copy`) take tables largest first and stream
//! their rows from source to target; as each table commits, its indexes go to `--index-jobs`
//! index workers (`indexes`), which attach the table's constraints after its last index, then
//! analyze it. What goes when is decided in `schedule`, from the plain facts gathered here;
//! both kinds of workers run in one pool (`crate::pool`), which the first error stops.

use super::schedule::{IndexFacts, Schedule, TableFacts, UnitFacts};
use super::schedule::{BATCH_TABLE_BYTES, SMALL_TABLE_BYTES};
use super::{copy, indexes, Ctx};
use crate::catalog::Table;
use crate::pg::{sql, DbResultExt};
use crate::pool::{Queue, Workers};
use crate::state::Event;
use anyhow::{Context, Result};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tracing::info;

/// How far the data step is, for what may start before it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    Copying,
    /// Every copy worker is done (their sessions closed); index builds may still run.
    Copied,
    /// The step failed before its copies were done.
    Failed,
}

/// The data step. `progress` is told `Copied` once the last copy worker is done.
pub async fn run(ctx: &Arc<Ctx>, progress: &tokio::sync::watch::Sender<Progress>) -> Result<()> {
    // Parts of split tables that committed on the target, even if the state did not hear of
    // it before a crash.
    let committed = committed_parts(ctx).await?;
    let sched = Arc::new(schedule(ctx, &committed));
    let copy_queue = sched.copy_queue();
    let units = ctx.units.len();
    if !ctx.done.units.is_empty() || !committed.is_empty() {
        info!(
            "resuming: {} of {} table parts were copied before, {} are left",
            units - copy_queue.len(),
            units,
            copy_queue.len()
        );
    }
    let copy_workers = ctx.cfg.table_jobs.min(copy_queue.len());
    let copy_queue = Queue::new(copy_queue);
    // Tables an earlier run copied have their index jobs waiting from the start.
    let index_queue = Queue::new(sched.resumed_jobs());
    let mut workers = Workers::new("data");
    let copying = Arc::new(std::sync::atomic::AtomicUsize::new(copy_workers));
    if copy_workers == 0 {
        progress.send_replace(Progress::Copied);
    }
    workers.spawn(copy_workers, |w| {
        // The index queue stays open while a copy worker may add to it.
        let feeder = index_queue.feeder();
        let work = copy::worker(w, ctx.clone(), sched.clone(), copy_queue.clone(), feeder);
        let (copying, progress) = (copying.clone(), progress.clone());
        async move {
            work.await?;
            if copying.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
                progress.send_replace(Progress::Copied);
            }
            Ok(())
        }
    });
    let needs_index_workers = !ctx.catalog.indexes.is_empty() || !ctx.cfg.skip_vacuum;
    if needs_index_workers && !ctx.catalog.tables.is_empty() {
        workers.spawn(ctx.cfg.index_jobs, |w| {
            indexes::worker(w, ctx.clone(), sched.clone(), index_queue.clone())
        });
    }
    workers.join().await
}

/// What scheduling needs to know of the clone's units, tables and indexes, and of what an
/// earlier run did (or the target's record of committed parts says).
fn schedule(ctx: &Ctx, committed: &HashSet<(u32, u32)>) -> Schedule {
    let (tables, done) = (&ctx.catalog.tables, &ctx.done);
    let units = ctx.units.iter().map(|u| {
        let key = (tables[u.table].oid, u.part);
        UnitFacts {
            table: u.table,
            est_bytes: u.est_bytes,
            batchable: u.parts == 1
                && tables[u.table].frozen_on_load()
                && u.est_bytes < BATCH_TABLE_BYTES,
            copied: done.units.contains(&key) || committed.contains(&key),
        }
    });
    let table_facts = tables.iter().map(|t| TableFacts {
        small: is_small(ctx, t),
        finished: done.tables.contains(&t.oid),
    });
    let position: HashMap<u32, usize> =
        tables.iter().enumerate().map(|(i, t)| (t.oid, i)).collect();
    let index_facts = ctx.catalog.indexes.iter().map(|index| IndexFacts {
        table: position[&index.table_oid],
        built_first: indexes::built_first(index),
        built: done.indexes.contains(&index.oid),
    });
    Schedule::new(
        units.collect(),
        table_facts.collect(),
        index_facts.collect(),
        ctx.cfg.skip_vacuum,
    )
}

/// Whether a table's indexes and constraints are built in one go (see SMALL_TABLE_BYTES). Not
/// for tables that need a VACUUM (split, extension configuration): VACUUM cannot run in the
/// batch's transaction.
fn is_small(ctx: &Ctx, t: &Table) -> bool {
    t.bytes < SMALL_TABLE_BYTES && t.frozen_on_load() && !ctx.is_split(t.oid)
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
