//! Sequences: last_value and is_called read from the source, set on the target in one
//! statement per thousand sequences.

use super::Ctx;
use crate::catalog::Sequence;
use crate::pg::retry::RetryPolicy;
use crate::pg::session::{Session, Sessions};
use crate::pg::{sql, DbResultExt, Endpoint};
use crate::pool::{Queue, Workers};
use anyhow::{Context, Result};
use std::sync::Arc;
use tokio_postgres::Client;

const BATCH: usize = 1000;

/// The clone's step: the catalog's sequences, on `--table-jobs` pairs of sessions.
pub async fn run(ctx: &Ctx) -> Result<usize> {
    copy(
        &ctx.catalog.sequences,
        &ctx.source,
        &ctx.target,
        &ctx.cfg.retry,
        ctx.cfg.table_jobs,
    )
    .await
}

/// Reads `seqs` on the source and sets them on the target, a thousand per round trip on each
/// side, on up to `jobs` pairs of sessions at once (reading one batch while another is set).
/// A sequence is no MVCC relation: its state is read as it is now in any session, so the
/// snapshot is not needed. Opening each sequence costs the servers a fraction of a
/// millisecond (its relation cache entry), which is what tens of thousands of them add up
/// to. Returns how many.
pub async fn copy(
    seqs: &[Sequence],
    source: &Endpoint,
    target: &Endpoint,
    retry: &RetryPolicy,
    jobs: usize,
) -> Result<usize> {
    if seqs.is_empty() {
        return Ok(0);
    }
    let batches: Vec<Vec<(String, String)>> = seqs
        .chunks(BATCH)
        .map(|c| {
            c.iter()
                .map(|s| (s.schema.clone(), s.name.clone()))
                .collect()
        })
        .collect();
    let n = jobs.clamp(1, batches.len());
    let queue = Queue::new(batches);
    let ends = Arc::new((source.clone(), target.clone()));
    let retry = *retry;
    let mut workers = Workers::new("sequence");
    workers.spawn(n, move |_| {
        let (queue, ends) = (queue.clone(), ends.clone());
        async move {
            let mut sessions = Sessions::<(Session, Session)>::new(retry);
            while let Some(batch) = queue.next().await {
                let (batch, ends) = (&*batch, &*ends);
                sessions
                    .run("trying again", |mut s, _| async move {
                        let r = copy_batch(&mut s, ends, batch).await;
                        (s, r)
                    })
                    .await?;
            }
            Ok(())
        }
    });
    workers.join().await?;
    tracing::info!("set {} sequences", seqs.len());
    Ok(seqs.len())
}

/// One batch: read on the source, set on the target.
async fn copy_batch(
    sessions: &mut Sessions<(Session, Session)>,
    (source, target): &(Endpoint, Endpoint),
    names: &[(String, String)],
) -> Result<()> {
    let (s, t) = sessions
        .get(|stale| async move {
            tokio::try_join!(
                Session::open(source.connect(), stale.map(|p: (i32, i32)| p.0)),
                Session::open(target.connect(), stale.map(|p| p.1))
            )
        })
        .await?;
    let (qualified, values, called) = read(&s.client, names).await?;
    t.client
        .query_one(sql::SET_SEQUENCES, &[&qualified, &values, &called])
        .await
        .db()
        .context("set sequence values on the target")?;
    Ok(())
}

/// The state of the sequences `names` on the source: qualified names, last values, is_called.
async fn read(
    source: &Client,
    names: &[(String, String)],
) -> Result<(Vec<String>, Vec<i64>, Vec<bool>)> {
    let rows = source
        .query(&sql::sequence_values(names), &[])
        .await
        .db()
        .context("read sequence values on the source")?;
    let mut out = (
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
    );
    for r in rows {
        let (schema, name) = &names[r.get::<_, i32>(0) as usize];
        out.0.push(sql::qualified(schema, name));
        out.1.push(r.get::<_, i64>(1));
        out.2.push(r.get::<_, bool>(2));
    }
    Ok(out)
}
