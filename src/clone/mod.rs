//! `neoncopy clone`: the pipeline of steps, each in its own file.

mod data;
mod db_properties;
mod large_objects;
mod safety;
mod schema;
mod sequences;
mod snapshot;

use crate::catalog::Catalog;
use crate::config::CloneConfig;
use crate::pg::tools::{self, PgTools};
use crate::pg::{Endpoint, Side};
use crate::workdir::WorkDir;
use anyhow::{Context, Result};
use std::time::{Duration, Instant};
use tracing::info;

/// Everything a step needs, shared read-only by all of them.
pub struct Ctx {
    pub cfg: CloneConfig,
    pub source: Endpoint,
    pub target: Endpoint,
    pub workdir: WorkDir,
    pub tools: PgTools,
    /// The snapshot every source reader imports, unless the clone is not consistent.
    pub snapshot: Option<String>,
    pub catalog: Catalog,
}

impl Ctx {
    /// A source connection ready to read data, inside the clone's snapshot when there is one.
    pub async fn source_reader(&self) -> Result<tokio_postgres::Client> {
        let client = self
            .source
            .connect_for_data(Some(&self.catalog.lc_monetary))
            .await?;
        client
            .batch_execute("set row_security = off")
            .await
            .map_err(crate::pg::db_err)
            .context("prepare source session")?;
        if let Some(id) = &self.snapshot {
            snapshot::import(&client, id).await?;
        }
        Ok(client)
    }

    /// A target connection ready to load data.
    pub async fn target_writer(&self) -> Result<tokio_postgres::Client> {
        self.target
            .connect_for_data(Some(&self.catalog.lc_monetary))
            .await
    }
}

/// Durations of the steps, for the closing summary.
#[derive(Default, Debug)]
pub struct Summary {
    pub steps: Vec<(&'static str, Duration)>,
    pub tables: usize,
    pub rows: u64,
    pub bytes: u64,
    pub indexes: usize,
    pub sequences: usize,
    pub large_objects: usize,
}

async fn timed<T>(
    summary: &mut Summary,
    name: &'static str,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let start = Instant::now();
    let out = fut.await?;
    let took = start.elapsed();
    info!("{name}: done in {:.1}s", took.as_secs_f64());
    summary.steps.push((name, took));
    Ok(out)
}

pub async fn run(cfg: CloneConfig) -> Result<Summary> {
    let total = Instant::now();
    let mut summary = Summary::default();
    let source = Endpoint::new(Side::Source, cfg.source.clone())?;
    let target = Endpoint::new(Side::Target, cfg.target.clone())?;
    info!(
        "clone from {} to {}",
        source.params.redacted(),
        target.params.redacted()
    );

    let workdir = WorkDir::open(&cfg.dir)?;
    info!("work directory {}", workdir.path().display());

    // Before anything is written: both ends reachable, distinct, the target fit to receive.
    let (src_client, tgt_client) = tokio::try_join!(source.connect(), target.connect())?;
    safety::refuse_same_database(&src_client, &tgt_client).await?;
    let source_version = safety::server_version(&src_client, Side::Source).await?;
    let pg_tools = tools::find((source_version / 10000) as u32)?;
    info!(
        "using {} ({}) for a PostgreSQL {} source",
        pg_tools.pg_dump.display(),
        pg_tools.version,
        source_version / 10000
    );
    safety::refuse_non_empty_target(&tgt_client, cfg.drop_if_exists).await?;
    drop(tgt_client);
    drop(src_client);

    let holder = snapshot::Holder::open(&source, &cfg.snapshot).await?;
    let catalog = timed(
        &mut summary,
        "Catalog Queries",
        Catalog::read(holder.client(), !cfg.skip_large_objects),
    )
    .await?;
    info!(
        "source has {} tables ({}), {} indexes and constraints, {} sequences, {} large objects",
        catalog.tables.len(),
        human_bytes(catalog.tables.iter().map(|t| t.bytes.max(0) as u64).sum()),
        catalog.indexes.len(),
        catalog.sequences.len(),
        catalog.large_objects.len()
    );

    let snapshot = holder.snapshot_id().map(str::to_string);
    let ctx = std::sync::Arc::new(Ctx {
        cfg,
        source,
        target,
        workdir,
        tools: pg_tools,
        snapshot,
        catalog,
    });

    timed(&mut summary, "Dump Schema", schema::dump(&ctx)).await?;
    timed(&mut summary, "Prepare Schema", schema::prepare(&ctx)).await?;
    let data = timed(
        &mut summary,
        "COPY, INDEX, CONSTRAINTS, VACUUM (wall clock)",
        data::run(&ctx),
    )
    .await?;
    summary.tables = data.tables;
    summary.rows = data.rows;
    summary.bytes = data.bytes;
    summary.indexes = data.indexes;
    summary.sequences = timed(
        &mut summary,
        "Reset Sequences",
        sequences::run(&ctx, holder.client()),
    )
    .await?;
    summary.large_objects = timed(&mut summary, "Large Objects", large_objects::run(&ctx)).await?;
    // Every read of the source is done: let the snapshot go.
    holder.close().await?;
    timed(&mut summary, "Finalize Schema", schema::finalize(&ctx)).await?;
    if !ctx.cfg.skip_db_properties {
        timed(
            &mut summary,
            "Database Properties",
            db_properties::run(&ctx),
        )
        .await?;
    }
    summary
        .steps
        .push(("Total Wall Clock Duration", total.elapsed()));
    info!(
        "clone done in {:.1}s: {} tables, {} rows, {}, {} indexes and constraints, {} sequences, {} large objects",
        total.elapsed().as_secs_f64(),
        summary.tables,
        summary.rows,
        human_bytes(summary.bytes),
        summary.indexes,
        summary.sequences,
        summary.large_objects
    );
    Ok(summary)
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
