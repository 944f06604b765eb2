//! Sequences: last_value and is_called read from the source, set on the target in one
//! statement per thousand sequences.

use super::Ctx;
use crate::pg::retry::with_retries;
use crate::pg::{sql, DbResultExt};
use anyhow::{Context, Result};
use tokio_postgres::Client;

const BATCH: usize = 1000;

/// The clone's step: the catalog's sequences, read on `source` (the snapshot holder).
pub async fn run(ctx: &Ctx, source: &Client) -> Result<usize> {
    copy(&ctx.catalog.sequences, source, &ctx.target, &ctx.cfg.retry).await
}

/// Reads `seqs` on `source` and sets them on `target`; returns how many.
pub async fn copy(
    seqs: &[crate::catalog::Sequence],
    source: &Client,
    target: &crate::pg::Endpoint,
    retry: &crate::pg::retry::RetryPolicy,
) -> Result<usize> {
    if seqs.is_empty() {
        return Ok(0);
    }
    let mut batches = Vec::new();
    for chunk in seqs.chunks(BATCH) {
        let names: Vec<(String, String)> = chunk
            .iter()
            .map(|s| (s.schema.clone(), s.name.clone()))
            .collect();
        let rows = source
            .query(&sql::sequence_values(&names), &[])
            .await
            .db()
            .context("read sequence values on the source")?;
        let mut qualified = Vec::with_capacity(rows.len());
        let mut values = Vec::with_capacity(rows.len());
        let mut called = Vec::with_capacity(rows.len());
        for r in rows {
            let i: i32 = r.get(0);
            let s = &chunk[i as usize];
            qualified.push(sql::qualified(&s.schema, &s.name));
            values.push(r.get::<_, i64>(1));
            called.push(r.get::<_, bool>(2));
        }
        batches.push((qualified, values, called));
    }
    with_retries(
        retry,
        "set sequences",
        |_, _| {},
        |_| async {
            let target = target.connect().await?;
            for (qualified, values, called) in &batches {
                target
                    .query_one(sql::SET_SEQUENCES, &[qualified, values, called])
                    .await
                    .db()
                    .context("set sequence values on the target")?;
            }
            Ok(())
        },
    )
    .await?;
    tracing::info!("set {} sequences", seqs.len());
    Ok(seqs.len())
}
