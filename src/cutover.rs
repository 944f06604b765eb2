//! `neoncopy cutover`: the end of an online migration started by `clone --follow` (see
//! follow.rs), or with `--abort` its abandonment. Works from the clone's work directory,
//! where the names of the slot, publication and subscription are recorded.

use crate::catalog::Catalog;
use crate::config::{CompareDataConfig, CompareSchemaConfig, CutoverConfig, SnapshotMode};
use crate::error::{usage, Class, Classified};
use crate::follow::{self, Names};
use crate::pg::{sql, DbResultExt, Endpoint, Side};
use crate::state::{Store, STATE_FILE};
use anyhow::{Context, Result};
use std::time::{Duration, Instant};
use tokio_postgres::Client;
use tracing::info;

/// What the clone recorded about its migration, and its settings.
struct Recorded {
    names: Names,
    identity_full: Vec<String>,
    settings: serde_json::Value,
}

fn recorded(store: &Store, dir: &std::path::Path) -> Result<Recorded> {
    let Some(m) = follow::Migration::from_labels(|l| store.label(l))? else {
        return Err(usage(format!(
            "no clone --follow is recorded in {}: pass the --dir of the clone that follows",
            dir.display()
        )));
    };
    if let Some(done) = store.label(follow::CUTOVER_LABEL)? {
        return Err(usage(format!(
            "the migration recorded in {} has ended already ({done})",
            dir.display()
        )));
    }
    let settings = serde_json::from_str(&store.settings()?.unwrap_or_default()).unwrap_or_default();
    Ok(Recorded {
        names: m.names,
        identity_full: m.identity_full,
        settings,
    })
}

/// `neoncopy cutover` and `neoncopy cutover --abort`. Exit codes as compare's: a failure
/// that is not a usage error or differences exits 2 (could not cut over).
pub async fn run(cfg: CutoverConfig) -> Result<()> {
    let what = if cfg.abort {
        "could not abandon"
    } else {
        "could not cut over"
    };
    cut_over(cfg)
        .await
        .map_err(|e| match crate::error::class_of(&e) {
            Some(_) => e,
            None => e.context(Classified::new(Class::CouldNotCompare, what)),
        })
}

async fn cut_over(cfg: CutoverConfig) -> Result<()> {
    let path = cfg.dir.join(STATE_FILE);
    if !path.exists() {
        return Err(usage(format!(
            "no clone has run in {}: pass the --dir of the clone that follows",
            cfg.dir.display()
        )));
    }
    let store = Store::open(&path)?;
    let rec = recorded(&store, &cfg.dir)?;
    let source = Endpoint::new(Side::Source, cfg.source.clone())?;
    let target = Endpoint::new(Side::Target, cfg.target.clone())?;
    let (src, tgt) = tokio::try_join!(source.connect(), target.connect())?;
    if cfg.abort {
        follow::release(&src, Some(&tgt), &rec.names, &rec.identity_full).await?;
        store.set_label(follow::CUTOVER_LABEL, "abandoned")?;
        crate::fmt::out(&format!(
            "abandoned: dropped the subscription {} on the target, the replication slot and the \
             publication on the source; the source is as it was\n",
            rec.names.subscription
        ))?;
        return Ok(());
    }
    confirm_writes_stopped(cfg.yes)?;
    let stopped = Instant::now();
    catch_up(&src, &tgt, &rec.names).await?;
    carry_sequences_and_large_objects(
        &src,
        &tgt,
        (&source, &target),
        &rec.settings,
        cfg.table_jobs,
    )
    .await?;
    let identical = compare(&cfg, &rec.settings).await?;
    if !identical {
        return Err(Classified::new(
            Class::Differences,
            "the target differs from the source: the replication is left in place (investigate, \
             then run cutover again, or abandon with cutover --abort)",
        )
        .into());
    }
    follow::release(&src, Some(&tgt), &rec.names, &rec.identity_full).await?;
    let secs = stopped.elapsed().as_secs_f64();
    store.set_label(
        follow::CUTOVER_LABEL,
        &format!("cut over; writes were stopped for {secs:.1}s"),
    )?;
    crate::fmt::out(&format!(
        "cut over: the target has every change of the source, sequences and large objects \
         included, and compares identical; the subscription, the replication slot and the \
         publication are dropped. Writes were stopped for {}.\n\
         Point your application at the target now.\n",
        crate::fmt::duration(secs)
    ))?;
    Ok(())
}

/// Asks whether writes to the source have stopped, unless `--yes` says so.
fn confirm_writes_stopped(yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(usage(
            "cutover needs writes to the source stopped: stop them, then pass --yes",
        ));
    }
    eprint!("Have all writes to the source stopped? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(usage("cutover cancelled: nothing was changed"))
    }
}

/// Waits until the target has applied everything the source had written when this began.
async fn catch_up(src: &Client, tgt: &Client, names: &Names) -> Result<()> {
    let lsn: String = src
        .query_one(sql::CURRENT_WAL_LSN, &[])
        .await
        .db()
        .context("read the source's WAL position")?
        .get(0);
    info!("waiting for the target to apply the source's changes up to {lsn}");
    let start = Instant::now();
    let mut told = Instant::now();
    let mut last_running = Instant::now();
    loop {
        let r = tgt
            .query_one(sql::FOLLOW_CAUGHT_UP, &[&names.subscription, &lsn])
            .await
            .db()
            .context("read the subscription's position on the target")?;
        let (caught_up, behind, running): (bool, Option<i64>, bool) =
            (r.get(0), r.get(1), r.get(2));
        if caught_up {
            break;
        }
        if running {
            last_running = Instant::now();
        } else if last_running.elapsed() > Duration::from_secs(60) {
            anyhow::bail!(
                "the subscription {} has had no running apply worker on the target for a \
                 minute: see the target's log",
                names.subscription
            );
        }
        if told.elapsed() > Duration::from_secs(5) {
            let lag = behind.unwrap_or(0).max(0) as u64;
            info!("the target is {} behind", crate::fmt::bytes(lag));
            told = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    info!(
        "the target caught up in {}",
        crate::fmt::duration(start.elapsed().as_secs_f64())
    );
    Ok(())
}

/// The filters the clone recorded, if it had any.
fn recorded_filters(settings: &serde_json::Value) -> Result<Option<crate::filters::Filters>> {
    settings
        .get("filters")
        .and_then(|f| f.as_str())
        .map(|text| {
            crate::filters::Filters::parse(std::path::Path::new("(the filters of the clone)"), text)
        })
        .transpose()
}

/// The source's catalog as the clone selected it (its recorded filters).
async fn selected_catalog(src: &Client, settings: &serde_json::Value) -> Result<Catalog> {
    let filters = recorded_filters(settings)?;
    let skip_extensions = settings["skip_extensions"].as_bool().unwrap_or(false);
    let with_los = !settings["skip_large_objects"].as_bool().unwrap_or(false);
    let selection =
        crate::filters::Selection::compute(src, filters.as_ref(), skip_extensions).await?;
    let mut catalog = Catalog::read(src, with_los).await?;
    catalog.apply(&selection, skip_extensions);
    Ok(catalog)
}

/// Sequences and large objects are not streamed: set and copied now, as the source has them.
async fn carry_sequences_and_large_objects(
    src: &Client,
    tgt: &Client,
    (source, target): (&Endpoint, &Endpoint),
    settings: &serde_json::Value,
    jobs: usize,
) -> Result<()> {
    src.batch_execute("select pg_catalog.set_config('search_path', '', false)")
        .await
        .db()?;
    let catalog = selected_catalog(src, settings).await?;
    let retry = crate::pg::retry::RetryPolicy::default();
    let n = crate::clone::sequences::copy(&catalog.sequences, source, target, &retry, jobs)
        .await
        .context("set sequences")?;
    info!("set {n} sequences from the source");
    if !settings["skip_large_objects"].as_bool().unwrap_or(false) {
        let flag = |k: &str| settings[k].as_bool().unwrap_or(false);
        let job = crate::clone::large_objects::Job {
            los: &catalog.large_objects,
            no_owner: flag("no_owner"),
            no_acl: flag("no_acl"),
            no_comments: flag("no_comments"),
            again: true,
        };
        crate::clone::large_objects::copy(&job, src, tgt)
            .await
            .context("copy large objects again")?;
    }
    Ok(())
}

/// compare schema and compare data, printed as those commands print them.
async fn compare(cfg: &CutoverConfig, settings: &serde_json::Value) -> Result<bool> {
    let filters = recorded_filters(settings)?;
    let schema = crate::compare::compare_schema(CompareSchemaConfig {
        source: cfg.source.clone(),
        target: cfg.target.clone(),
        filters: filters.clone(),
        dir: cfg.dir.clone(),
        owners: false,
        acl: false,
        json: false,
    })
    .await
    .context("compare schema")?;
    let data = crate::compare::compare_data(CompareDataConfig {
        source: cfg.source.clone(),
        target: cfg.target.clone(),
        filters,
        dir: cfg.dir.clone(),
        table_jobs: cfg.table_jobs,
        split_threshold: 1 << 30,
        split_max_parts: cfg.table_jobs as u32,
        snapshot: SnapshotMode::Export,
        counts_only: cfg.counts_only,
        retry: crate::pg::retry::RetryPolicy::default(),
        json: false,
    })
    .await
    .context("compare data")?;
    Ok(schema && data)
}
