//! The index workers of the data step: as each table commits, its index jobs (see
//! `schedule::IndexJob`) come to `--index-jobs` workers. A plain index is built on its own
//! (several at once on a table); when a table's last one is built, the worker that built it
//! attaches the table's constraints (which take an exclusive lock, so they wait for no
//! concurrent index build and block none), then analyzes the table. A small table's indexes,
//! constraints and ANALYZE go in one round trip, with those of other small tables waiting.
//! Each worker keeps one target session, opened again after a transient failure; an index
//! build and a table's finishing step are retried separately.

use super::schedule::{self, IndexJob, Schedule};
use super::Ctx;
use crate::catalog::{Index, IndexKind, Table};
use crate::fmt;
use crate::pg::session::{Session, Sessions};
use crate::pg::{sql, DbResultExt};
use crate::pool::Queue;
use crate::state::Event;
use anyhow::{Context, Result};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;
use tokio_postgres::Client;
use tracing::debug;

/// Whether an index is built on its own, before the table's constraints: a plain index. A
/// primary key, unique or exclusion constraint builds its index in its own `ADD CONSTRAINT`,
/// under an exclusive lock, after the table's plain indexes.
pub fn built_first(index: &Index) -> bool {
    matches!(index.kind, IndexKind::Plain)
}

/// An index worker: takes jobs until the queue ends (every table copied and indexed).
pub async fn worker(
    worker: usize,
    ctx: Arc<Ctx>,
    sched: Arc<Schedule>,
    queue: Arc<Queue<IndexJob>>,
) -> Result<()> {
    let mut sessions = Sessions::new(ctx.cfg.retry);
    let w = Worker {
        ctx: &ctx,
        number: worker,
        name: format!("index {}", worker + 1),
    };
    while let Some(job) = queue.next().await {
        // Two phases, each retried on its own, so that a retry never repeats a finished phase
        // (nor counts an index twice).
        let table_to_finish = match *job {
            IndexJob::Build(j) => {
                let op = IndexOp::Build(j, sched.table_of(j));
                w.run(&mut sessions, &op).await?;
                sched.index_built(j)
            }
            IndexJob::Finish(t) => Some(t),
            IndexJob::Small(t) => {
                // Other small tables waiting go in the same round trip.
                let index_jobs = ctx.cfg.index_jobs;
                let tables = queue.take_more(|q| schedule::small_batch(t, q, index_jobs));
                let batch = tables.iter().map(|t| (*t, sched.indexes_of(*t)));
                w.run(&mut sessions, &IndexOp::Small(batch.collect()))
                    .await?;
                None
            }
        };
        if let Some(t) = table_to_finish {
            let op = IndexOp::Finish(t, sched.indexes_of(t));
            w.run(&mut sessions, &op).await?;
        }
        ctx.rec.live.idle(&w.name);
    }
    Ok(())
}

/// An index worker's name and number.
struct Worker<'a> {
    ctx: &'a Ctx,
    number: usize,
    name: String,
}

impl Worker<'_> {
    /// Runs `op` on the worker's target session, opened again after a transient failure.
    async fn run(&self, sessions: &mut Sessions<Session>, op: &IndexOp<'_>) -> Result<()> {
        sessions
            .run("trying again", |mut sessions, attempt| async move {
                let result = self.attempt(&mut sessions, op, attempt).await;
                (sessions, result)
            })
            .await
    }

    async fn attempt(
        &self,
        sessions: &mut Sessions<Session>,
        op: &IndexOp<'_>,
        attempt: u32,
    ) -> Result<()> {
        let ctx = self.ctx;
        let open = |stale| async move {
            Session::open(index_session(ctx), stale)
                .await
                .with_context(|| format!("start index worker {}", self.number + 1))
        };
        let client = &sessions.get(open).await?.client;
        // After a failed attempt, or in a resumed run, what is to be built may exist already
        // (built by an attempt whose answer was lost).
        let again = !ctx.done.units.is_empty() || attempt > 0;
        let name = &self.name;
        match op {
            IndexOp::Build(j, t) => build_index(ctx, client, name, (*j, *t), again).await,
            IndexOp::Finish(t, indexes) => {
                finish_table(ctx, client, name, *t, indexes, again).await
            }
            IndexOp::Small(tables) => small_tables(ctx, client, name, tables, again).await,
        }
    }
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
    // for its visibility map. Not a tiny one (see copy::freeze): a page or two without a
    // visibility map, as pg_restore leaves every table.
    let vacuum = !table.frozen_on_load() || split;
    client
        .batch_execute(&sql::analyze(&table.schema, &table.name, vacuum))
        .await
        .db()
        .with_context(|| format!("analyze {}", table.display()))
}
