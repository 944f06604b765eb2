//! `neoncopy compare schema|data`: proof that the target matches the source.
//! Exit codes follow diff: 0 identical, 1 differences found, 2 could not compare.

pub mod data;
pub mod schema;

use crate::cli::{CompareCommand, CompareDataArgs, CompareSchemaArgs};
use crate::config::{self, SnapshotMode};
use crate::fmt;
use crate::pg::{Endpoint, Side};
use crate::state::Store;
use anyhow::{Context, Result};
use std::path::Path;

/// Differences were found (they have been printed): exit 1.
#[derive(Debug)]
pub struct Differences;

impl std::fmt::Display for Differences {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("differences found")
    }
}

impl std::error::Error for Differences {}

/// Could not compare: exit 2.
#[derive(Debug)]
pub struct CouldNotCompare(pub anyhow::Error);

impl std::fmt::Display for CouldNotCompare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "could not compare: {:#}", self.0)
    }
}

impl std::error::Error for CouldNotCompare {}

pub async fn run(cmd: CompareCommand) -> Result<()> {
    let result = match cmd {
        CompareCommand::Schema(a) => compare_schema(a).await,
        CompareCommand::Data(a) => compare_data(a).await,
    };
    match result {
        Ok(true) => Ok(()),
        Ok(false) => Err(Differences.into()),
        Err(e) if e.downcast_ref::<config::UsageError>().is_some() => Err(e),
        Err(e) => Err(CouldNotCompare(e).into()),
    }
}

async fn endpoints(conn: &crate::cli::ConnectionArgs) -> Result<(Endpoint, Endpoint)> {
    let (s, t) = config::connections(conn)?;
    Ok((
        Endpoint::new(Side::Source, s)?,
        Endpoint::new(Side::Target, t)?,
    ))
}

/// Results go to the work directory too (a table of the state database), for the record.
fn record(dir: &Path, kind: &str, rows: &[(String, String, Option<String>, Option<String>)]) {
    let result = (|| -> Result<()> {
        crate::workdir::create_private_dir(dir)?;
        let store = Store::open(&dir.join(crate::state::STATE_FILE))?;
        store.record_compare(kind, rows)
    })();
    if let Err(e) = result {
        tracing::warn!(
            "could not record the comparison in {}: {e:#}",
            dir.display()
        );
    }
}

async fn compare_schema(a: CompareSchemaArgs) -> Result<bool> {
    let (source, target) = endpoints(&a.conn).await?;
    let (s, t) = tokio::try_join!(source.connect_preflight(), target.connect_preflight())?;
    for c in [&s, &t] {
        c.batch_execute("select pg_catalog.set_config('search_path', '', false)")
            .await
            .map_err(crate::pg::db_err)?;
    }
    let filters = crate::filters::Filters::load_optional(a.filters.as_deref())?;
    let selection = crate::filters::Selection::compute(&s, filters.as_ref(), false).await?;
    let (diffs, compared) =
        schema::compare(&s, &t, a.compare_owners, a.compare_acl, &selection).await?;
    let dir = a.dir.unwrap_or_else(config::default_dir);
    record(
        &dir,
        "schema",
        &diffs
            .iter()
            .map(|d| {
                (
                    d.object.clone(),
                    d.kind.to_string(),
                    d.source.clone(),
                    d.target.clone(),
                )
            })
            .collect::<Vec<_>>(),
    );
    if a.json {
        fmt::out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&serde_json::json!({
                "identical": diffs.is_empty(),
                "objects_compared": compared,
                "differences": diffs,
            }))?
        ))?;
    } else {
        let mut text = String::new();
        for d in &diffs {
            text.push_str(&d.line());
            text.push('\n');
        }
        if diffs.is_empty() {
            text.push_str(&format!(
                "schema: identical ({compared} objects compared)\n"
            ));
        } else {
            text.push_str(&format!(
                "schema: {} difference(s) ({compared} objects compared)\n",
                diffs.len()
            ));
        }
        fmt::out(&text)?;
    }
    Ok(diffs.is_empty())
}

async fn compare_data(a: CompareDataArgs) -> Result<bool> {
    let (source, target) = endpoints(&a.conn).await?;
    let mode = match (&a.snapshot, a.not_consistent) {
        (Some(id), _) => SnapshotMode::Given(id.clone()),
        (None, true) => SnapshotMode::None,
        (None, false) => SnapshotMode::Export,
    };
    let filters = crate::filters::Filters::load_optional(a.filters.as_deref())?;
    let target_client = target.connect_preflight().await?;
    let holder = crate::clone::SnapshotHolder::open(&source, &mode).await?;
    let selection =
        crate::filters::Selection::compute(holder.client(), filters.as_ref(), false).await?;
    let lc_monetary: String = holder
        .client()
        .query_one(crate::pg::sql::LC_MONETARY, &[])
        .await
        .map_err(crate::pg::db_err)?
        .get(0);
    target_client
        .batch_execute("select pg_catalog.set_config('search_path', '', false)")
        .await
        .map_err(crate::pg::db_err)?;
    let opts = data::Options {
        table_jobs: a.table_jobs as usize,
        split_threshold: a.split_tables_larger_than,
        max_parts: a.split_max_parts.unwrap_or(a.table_jobs),
        lc_monetary,
    };
    let start = std::time::Instant::now();
    let results = data::compare(
        &source,
        &target,
        holder.client(),
        holder.snapshot_id().map(str::to_string),
        &target_client,
        &opts,
        &selection,
    )
    .await?;
    holder
        .close()
        .await
        .context("release the source snapshot")?;
    let differing = results.iter().filter(|r| !r.matches).count();
    let dir = a.dir.unwrap_or_else(config::default_dir);
    record(
        &dir,
        "data",
        &results
            .iter()
            .map(|r| {
                (
                    r.table.clone(),
                    if r.matches { "match" } else { "differs" }.to_string(),
                    r.source_rows.map(|n| {
                        format!(
                            "{n} rows, {}",
                            r.source_checksum.clone().unwrap_or_default()
                        )
                    }),
                    r.target_rows.map(|n| {
                        format!(
                            "{n} rows, {}",
                            r.target_checksum.clone().unwrap_or_default()
                        )
                    }),
                )
            })
            .collect::<Vec<_>>(),
    );
    let rows: i64 = results.iter().filter_map(|r| r.source_rows).sum();
    if a.json {
        fmt::out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&serde_json::json!({
                "identical": differing == 0,
                "tables": results,
                "seconds": start.elapsed().as_secs_f64(),
            }))?
        ))?;
    } else {
        let table: Vec<Vec<String>> = results
            .iter()
            .map(|r| {
                vec![
                    r.table.clone(),
                    r.source_rows
                        .map(|n| fmt::count(n as u64))
                        .unwrap_or_else(|| "-".into()),
                    r.target_rows
                        .map(|n| fmt::count(n as u64))
                        .unwrap_or_else(|| "-".into()),
                    r.source_checksum.clone().unwrap_or_else(|| "-".into()),
                    r.target_checksum.clone().unwrap_or_else(|| "-".into()),
                    if r.matches { "yes" } else { "NO" }.into(),
                ]
            })
            .collect();
        let mut text = fmt::table(
            &[
                "Table",
                "Rows (source)",
                "Rows (target)",
                "Checksum (source)",
                "Checksum (target)",
                "Match",
            ],
            &[false, true, true, false, false, false],
            &table,
        );
        text.push('\n');
        if differing == 0 {
            text.push_str(&format!(
                "data: identical ({} tables, {} rows, {})\n",
                results.len(),
                fmt::count(rows.max(0) as u64),
                fmt::duration(start.elapsed().as_secs_f64())
            ));
        } else {
            text.push_str(&format!(
                "data: {differing} of {} tables differ: {}\n",
                results.len(),
                results
                    .iter()
                    .filter(|r| !r.matches)
                    .map(|r| r.table.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        fmt::out(&text)?;
    }
    Ok(differing == 0)
}
