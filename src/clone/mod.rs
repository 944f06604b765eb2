//! `neoncopy clone`: the pipeline of steps, each in its own file.

mod data;
mod db_properties;
mod large_objects;
mod safety;
mod schema;
mod sequences;
mod snapshot;

use crate::catalog::{Catalog, IndexKind};
use crate::config::CloneConfig;
use crate::fmt;
use crate::pg::tools::{self, PgTools};
use crate::pg::{Endpoint, Side};
use crate::report::{
    self, STEP_CATALOG, STEP_DATA, STEP_DUMP, STEP_FINALIZE, STEP_LARGE_OBJECTS, STEP_PREPARE,
    STEP_SEQUENCES,
};
use crate::state::{Event, Live, PlannedIndex, PlannedUnit, Recorder, Store, STATE_FILE};
use crate::workdir::WorkDir;
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::Instant;
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
    /// The run's record in the work directory, and what workers are doing right now.
    pub rec: Arc<Recorder>,
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

/// Runs a step: recorded with its start and end, logged when done.
async fn step<T>(
    rec: &Recorder,
    name: &'static str,
    fut: impl std::future::Future<Output = Result<(T, Option<u64>)>>,
) -> Result<T> {
    let start = Instant::now();
    rec.send(Event::StepStart(name));
    let (out, transfer) = fut.await?;
    rec.send(Event::StepEnd { name, transfer });
    info!(
        "{name}: done in {}",
        fmt::duration(start.elapsed().as_secs_f64())
    );
    Ok(out)
}

/// A step with nothing to report but its duration.
async fn plain<T>(fut: impl std::future::Future<Output = Result<T>>) -> Result<(T, Option<u64>)> {
    Ok((fut.await?, None))
}

/// The settings of a run as recorded in the work directory: no password.
fn recorded_settings(cfg: &CloneConfig) -> String {
    serde_json::json!({
        "source": cfg.source.redacted(),
        "target": cfg.target.redacted(),
        "table_jobs": cfg.table_jobs,
        "index_jobs": cfg.index_jobs,
        "restore_jobs": cfg.restore_jobs,
        "no_owner": cfg.no_owner,
        "no_acl": cfg.no_acl,
        "no_comments": cfg.no_comments,
        "skip_extensions": cfg.skip_extensions,
        "skip_large_objects": cfg.skip_large_objects,
        "skip_vacuum": cfg.skip_vacuum,
        "skip_db_properties": cfg.skip_db_properties,
        "drop_if_exists": cfg.drop_if_exists,
        "snapshot": format!("{:?}", cfg.snapshot),
    })
    .to_string()
}

/// Runs a clone, recording it in the work directory; returns the summary to print.
pub async fn run(cfg: CloneConfig) -> Result<report::Summary> {
    let workdir = WorkDir::open(&cfg.dir)?;
    let state_path = workdir.file(STATE_FILE);
    let store = Store::open(&state_path)?;
    store.reset()?;
    let rec = Arc::new(Recorder::start(store, Arc::new(Live::default()))?);
    rec.send(Event::RunStart {
        command: "clone".into(),
        source: cfg.source.redacted(),
        target: cfg.target.redacted(),
        settings: recorded_settings(&cfg),
        snapshot: None,
        jobs: (cfg.table_jobs, cfg.index_jobs, cfg.restore_jobs),
    });
    let result = pipeline(cfg, workdir, rec.clone()).await;
    let (status, error) = match &result {
        Ok(()) => ("done", None),
        Err(e) => ("failed", Some(format!("{e:#}"))),
    };
    rec.send(Event::RunEnd { status, error });
    rec.flush();
    result?;
    report::summary(&Store::open_read_only(&state_path)?)
}

async fn pipeline(cfg: CloneConfig, workdir: WorkDir, rec: Arc<Recorder>) -> Result<()> {
    let total = Instant::now();
    let source = Endpoint::new(Side::Source, cfg.source.clone())?;
    let target = Endpoint::new(Side::Target, cfg.target.clone())?;
    info!(
        "clone from {} to {}, work directory {}",
        source.params.redacted(),
        target.params.redacted(),
        workdir.path().display()
    );

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
    let catalog = step(
        &rec,
        STEP_CATALOG,
        plain(Catalog::read(holder.client(), !cfg.skip_large_objects)),
    )
    .await?;
    info!(
        "source has {} tables ({}), {} indexes and constraints, {} sequences, {} large objects",
        catalog.tables.len(),
        fmt::bytes(catalog.tables.iter().map(|t| t.bytes.max(0) as u64).sum()),
        catalog.indexes.len(),
        catalog.sequences.len(),
        catalog.large_objects.len()
    );
    rec.send(plan(&catalog));

    let snapshot = holder.snapshot_id().map(str::to_string);
    let ctx = Arc::new(Ctx {
        cfg,
        source,
        target,
        workdir,
        tools: pg_tools,
        snapshot,
        catalog,
        rec: rec.clone(),
    });

    step(&rec, STEP_DUMP, plain(schema::dump(&ctx))).await?;
    step(&rec, STEP_PREPARE, plain(schema::prepare(&ctx))).await?;
    let bars = ctx.cfg.show_bars.then(|| {
        crate::progress::DataBars::start(
            rec.live.clone(),
            ctx.catalog
                .tables
                .iter()
                .map(|t| t.bytes.max(0) as u64)
                .sum(),
            ctx.catalog.indexes.len() as u64,
        )
    });
    let data = step(&rec, STEP_DATA, plain(data::run(&ctx))).await;
    drop(bars);
    let data = data?;
    let sequences = step(
        &rec,
        STEP_SEQUENCES,
        plain(sequences::run(&ctx, holder.client())),
    )
    .await?;
    let los = step(&rec, STEP_LARGE_OBJECTS, large_objects::run(&ctx)).await?;
    // Every read of the source is done: let the snapshot go.
    holder.close().await?;
    step(
        &rec,
        STEP_FINALIZE,
        plain(async {
            schema::finalize(&ctx).await?;
            if !ctx.cfg.skip_db_properties {
                db_properties::run(&ctx).await?;
            }
            Ok(())
        }),
    )
    .await?;
    info!(
        "clone done in {}: {} tables, {} rows, {}, {} indexes and constraints, {sequences} sequences, {los} large objects",
        fmt::duration(total.elapsed().as_secs_f64()),
        data.tables,
        fmt::count(data.rows),
        fmt::bytes(data.bytes),
        data.indexes,
    );
    Ok(())
}

/// The units and indexes of the run, as the catalog found them.
fn plan(catalog: &Catalog) -> Event {
    let units = catalog
        .tables
        .iter()
        .map(|t| PlannedUnit {
            table_oid: t.oid,
            part: 1,
            parts: 1,
            schema: t.schema.clone(),
            table: t.name.clone(),
            est_bytes: t.bytes,
            est_rows: t.estimated_rows,
            range: None,
        })
        .collect();
    let indexes = catalog
        .indexes
        .iter()
        .map(|i| PlannedIndex {
            oid: i.oid,
            table_oid: i.table_oid,
            schema: i.schema.clone(),
            name: i.name.clone(),
            kind: match &i.kind {
                IndexKind::Plain => "index",
                IndexKind::Constraint { primary: true, .. } => "primary key",
                IndexKind::Constraint { .. } => "unique",
                IndexKind::Exclusion { .. } => "exclusion",
            },
        })
        .collect();
    Event::Plan { units, indexes }
}
