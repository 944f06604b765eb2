//! Large objects: pre-data created them (empty, with their original OIDs and comments); their
//! contents are read in the snapshot in chunks and written with lo_put, several objects in
//! flight on one pair of connections.

use super::Ctx;
use crate::pg::{sql, DbResultExt};
use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use tokio_postgres::Client;

const CHUNK: i32 = 1024 * 1024;
const IN_FLIGHT: usize = 8;

/// Returns how many objects and bytes were copied.
pub async fn run(ctx: &Ctx) -> Result<(usize, Option<u64>)> {
    let los = &ctx.catalog.large_objects;
    if los.is_empty() {
        return Ok((0, Some(0)));
    }
    let (source, target) = tokio::try_join!(ctx.source_reader(), ctx.target.connect())?;
    let read = source.prepare(sql::LO_READ).await.db()?;
    let write = target.prepare(sql::LO_WRITE).await.db()?;
    let sizes = futures::stream::iter(los.iter().copied())
        .map(|oid| {
            let (source, target, read, write) = (&source, &target, &read, &write);
            async move {
                copy_one(source, target, read, write, oid)
                    .await
                    .with_context(|| format!("copy large object {oid}"))
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<u64>>()
        .await?;
    let bytes: u64 = sizes.iter().sum();
    tracing::info!(
        "copied {} large objects ({})",
        los.len(),
        crate::fmt::bytes(bytes)
    );
    Ok((los.len(), Some(bytes)))
}

async fn copy_one(
    source: &Client,
    target: &Client,
    read: &tokio_postgres::Statement,
    write: &tokio_postgres::Statement,
    oid: u32,
) -> Result<u64> {
    let oid = oid as i64;
    let mut offset: i64 = 0;
    loop {
        let data: Vec<u8> = source
            .query_one(read, &[&oid, &offset, &CHUNK])
            .await
            .db()
            .context("read from source")?
            .get(0);
        let len = data.len() as i64;
        if len > 0 {
            target
                .query_one(write, &[&oid, &offset, &data])
                .await
                .db()
                .context("write to target")?;
        }
        offset += len;
        if len < CHUNK as i64 {
            return Ok(offset as u64);
        }
    }
}
