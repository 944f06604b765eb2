//! `neoncopy compare schema|data`: proof that the target matches the source.
//! Exit codes follow diff: 0 identical, 1 differences found, 2 could not compare.

pub mod data;
pub mod schema;

use crate::config::{CompareDataConfig, CompareSchemaConfig};
use crate::error::{Class, Classified};
use crate::fmt;
use crate::pg::snapshot::Holder;
use crate::pg::{Endpoint, Side};
use crate::state::Store;
use anyhow::{Context, Result};
use std::path::Path;

/// `neoncopy compare schema`.
pub async fn run_schema(cfg: CompareSchemaConfig) -> Result<()> {
    verdict(compare_schema(cfg).await)
}

/// `neoncopy compare data`.
pub async fn run_data(cfg: CompareDataConfig) -> Result<()> {
    verdict(compare_data(cfg).await)
}

/// Exit codes as diff's: differences (already printed) exit 1, a failure to compare exit 2.
fn verdict(result: Result<bool>) -> Result<()> {
    match result {
        Ok(true) => Ok(()),
        Ok(false) => Err(Classified::new(Class::Differences, "differences found").into()),
        Err(e) if crate::error::is(&e, Class::Usage) => Err(e),
        Err(e) => Err(e.context(Classified::new(Class::CouldNotCompare, "could not compare"))),
    }
}

fn endpoints(
    source: crate::pg::connstr::ConnParams,
    target: crate::pg::connstr::ConnParams,
) -> Result<(Endpoint, Endpoint)> {
    Ok((
        Endpoint::new(Side::Source, source)?,
        Endpoint::new(Side::Target, target)?,
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

pub(crate) async fn compare_schema(a: CompareSchemaConfig) -> Result<bool> {
    let (source, target) = endpoints(a.source, a.target)?;
    let (s, t) = tokio::try_join!(source.connect_preflight(), target.connect_preflight())?;
    for c in [&s, &t] {
        c.batch_execute("select pg_catalog.set_config('search_path', '', false)")
            .await
            .map_err(crate::pg::db_err)?;
    }
    let selection = crate::filters::Selection::compute(&s, a.filters.as_ref(), false).await?;
    let (diffs, compared) = schema::compare(&s, &t, a.owners, a.acl, &selection).await?;
    record(
        &a.dir,
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

pub(crate) async fn compare_data(a: CompareDataConfig) -> Result<bool> {
    let (source, target) = endpoints(a.source.clone(), a.target.clone())?;
    let target_client = target.connect_preflight().await?;
    let holder = Holder::open(&source, &a.snapshot).await?;
    let selection =
        crate::filters::Selection::compute(holder.client(), a.filters.as_ref(), false).await?;
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
        table_jobs: a.table_jobs,
        counts_only: a.counts_only,
        retry: a.retry,
        split_threshold: a.split_threshold,
        max_parts: a.split_max_parts,
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
    record_data(&a.dir, &results);
    let seconds = start.elapsed().as_secs_f64();
    if a.json {
        fmt::out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&serde_json::json!({
                "identical": results.iter().all(|r| r.matches),
                "tables": results,
                "seconds": seconds,
            }))?
        ))?;
    } else {
        fmt::out(&render_data(&results, seconds))?;
    }
    Ok(results.iter().all(|r| r.matches))
}

fn record_data(dir: &Path, results: &[data::TableResult]) {
    let side = |rows: Option<i64>, sum: &Option<String>| {
        rows.map(|n| format!("{n} rows, {}", sum.clone().unwrap_or_default()))
    };
    let rows: Vec<_> = results
        .iter()
        .map(|r| {
            (
                r.table.clone(),
                if r.matches { "match" } else { "differs" }.to_string(),
                side(r.source_rows, &r.source_checksum),
                side(r.target_rows, &r.target_checksum),
            )
        })
        .collect();
    record(dir, "data", &rows);
}

/// The table of results and the verdict line.
fn render_data(results: &[data::TableResult], seconds: f64) -> String {
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let count = |n: Option<i64>| dash(n.map(|n| fmt::count(n as u64)));
    let table: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.table.clone(),
                count(r.source_rows),
                count(r.target_rows),
                dash(r.source_checksum.clone()),
                dash(r.target_checksum.clone()),
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
    let differing: Vec<&str> = results
        .iter()
        .filter(|r| !r.matches)
        .map(|r| r.table.as_str())
        .collect();
    if differing.is_empty() {
        let rows: i64 = results.iter().filter_map(|r| r.source_rows).sum();
        text.push_str(&format!(
            "data: identical ({} tables, {} rows, {})\n",
            results.len(),
            fmt::count(rows.max(0) as u64),
            fmt::duration(seconds)
        ));
    } else {
        text.push_str(&format!(
            "data: {} of {} tables differ: {}\n",
            differing.len(),
            results.len(),
            differing.join(", ")
        ));
    }
    text
}
