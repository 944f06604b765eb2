//! `neoncopy list ...`: a clone's progress from its work directory, and what the source holds.

use crate::catalog::Catalog;
use crate::config::{ListConfig, ListWhat, ProgressConfig};
use crate::filters::Selection;
use crate::fmt;
use crate::pg::{sql, DbResultExt, Endpoint, Side};
use crate::report;
use crate::state::{Store, STATE_FILE};
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::HashSet;

/// What the source holds, as a clone with the given filters would see it.
struct Source {
    client: tokio_postgres::Client,
    catalog: Catalog,
    selection: Selection,
    json: bool,
}

/// `neoncopy list tables|table-parts|indexes|sequences|extensions`.
pub async fn run(cfg: ListConfig) -> Result<()> {
    let client = Endpoint::new(Side::Source, cfg.source)?.connect().await?;
    // Names in definitions come out schema-qualified, as the clone reads them.
    client
        .batch_execute("select pg_catalog.set_config('search_path', '', false)")
        .await
        .db()?;
    let selection = Selection::compute(&client, cfg.filters.as_ref(), false).await?;
    let mut catalog = Catalog::read(&client, false).await?;
    catalog.apply(&selection, false);
    let src = Source {
        client,
        catalog,
        selection,
        json: cfg.json,
    };
    match cfg.what {
        ListWhat::Tables => tables(&src),
        ListWhat::TableParts {
            split_threshold,
            split_max_parts,
            table,
        } => table_parts(&src, split_threshold, split_max_parts, table).await,
        ListWhat::Indexes => indexes(&src).await,
        ListWhat::Sequences => sequences(&src).await,
        ListWhat::Extensions => extensions(&src).await,
    }
}

fn print_json<T: Serialize>(value: &T) -> Result<()> {
    fmt::out(&format!("{}\n", serde_json::to_string_pretty(value)?))?;
    Ok(())
}

/// `neoncopy list progress`: read from the clone's record in its work directory.
pub async fn progress(a: ProgressConfig) -> Result<()> {
    let dir = a.dir.clone();
    let path = dir.join(STATE_FILE);
    if !path.exists() {
        return Err(anyhow::anyhow!(
            "no clone has run in {}: pass the --dir the clone was given",
            dir.display()
        ));
    }
    let store = Store::open_read_only(&path)?;
    let replication = replication(&store, &a).await?;
    if let Some(given) = &a.source {
        if let Some(run) = store.run_info()? {
            if run.source != given.redacted() {
                tracing::warn!(
                    "the clone in {} copies from {}, not from the given source {}",
                    dir.display(),
                    run.source,
                    given.redacted()
                );
            }
        }
    }
    if a.summary {
        let s = report::summary(&store)?;
        if a.json {
            print_json(&s)
        } else {
            fmt::out(&report::render_summary(&s))?;
            Ok(())
        }
    } else {
        let p = report::progress(&store)?;
        if a.json {
            let mut v = serde_json::to_value(&p)?;
            if let Some(r) = &replication {
                v["replication"] = serde_json::to_value(r)?;
            }
            print_json(&v)
        } else {
            let mut text = report::render_progress(&p);
            if let Some(r) = &replication {
                text.push_str(&render_replication(r));
            }
            fmt::out(&text)?;
            Ok(())
        }
    }
}

/// The replication of a clone --follow, as both servers report it now.
#[derive(Serialize)]
struct Replication {
    subscription: String,
    /// following, cut over, abandoned
    state: String,
    status: Option<crate::follow::Status>,
    /// Bytes per second the lag shrank by over half a second (negative: it grew).
    catch_up_rate: Option<f64>,
    /// Why the servers could not be asked.
    unavailable: Option<String>,
}

async fn replication(store: &Store, a: &ProgressConfig) -> Result<Option<Replication>> {
    let Some(m) = crate::follow::Migration::from_labels(|l| store.label(l))? else {
        return Ok(None);
    };
    let ended = store.label(crate::follow::CUTOVER_LABEL)?;
    let mut r = Replication {
        subscription: m.names.subscription.clone(),
        state: ended.clone().unwrap_or_else(|| "following".into()),
        status: None,
        catch_up_rate: None,
        unavailable: None,
    };
    if ended.is_some() {
        return Ok(Some(r));
    }
    let (Some(source), Some(target)) = (&a.source, &a.target) else {
        r.unavailable = Some(
            "pass --source and --target (or set NEONCOPY_SOURCE_PGURI and \
             NEONCOPY_TARGET_PGURI) to see the replication's lag"
                .into(),
        );
        return Ok(Some(r));
    };
    let connect = |side, params: &crate::pg::connstr::ConnParams| {
        let params = params.clone();
        async move { Endpoint::new(side, params)?.connect_preflight().await }
    };
    let (src, tgt) =
        match tokio::try_join!(connect(Side::Source, source), connect(Side::Target, target)) {
            Ok(c) => c,
            Err(e) => {
                r.unavailable = Some(format!("{e:#}"));
                return Ok(Some(r));
            }
        };
    let first = crate::follow::status(Some(&src), Some(&tgt), &m.names).await?;
    if first.lag_bytes.unwrap_or(0) > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let second = crate::follow::status(Some(&src), None, &m.names).await?;
        if let (Some(a), Some(b)) = (first.lag_bytes, second.lag_bytes) {
            r.catch_up_rate = Some((a - b) as f64 * 2.0);
        }
    }
    r.status = Some(first);
    Ok(Some(r))
}

fn render_replication(r: &Replication) -> String {
    let mut s = format!("\nReplication ({}): {}\n", r.subscription, r.state);
    if let Some(why) = &r.unavailable {
        s.push_str(&format!("  {why}\n"));
    }
    let Some(st) = &r.status else { return s };
    let bytes = |b: Option<i64>| b.map(|b| fmt::bytes(b.max(0) as u64)).unwrap_or("-".into());
    s.push_str(&format!(
        "  source: slot {} {}, {} not yet applied on the target, {} of WAL kept for it\n",
        st.slot,
        if st.slot_active {
            "streaming"
        } else {
            "NOT streaming"
        },
        bytes(st.lag_bytes),
        bytes(st.retained_bytes)
    ));
    s.push_str(&format!(
        "  target: apply worker {}, last message from the source {}, received up to {}\n",
        if st.apply_worker_running {
            "running"
        } else {
            "NOT running"
        },
        st.last_message.as_deref().unwrap_or("-"),
        st.applied_lsn.as_deref().unwrap_or("-")
    ));
    match (st.lag_bytes, r.catch_up_rate) {
        (Some(0) | None, _) => s.push_str("  caught up\n"),
        (Some(lag), Some(rate)) if rate > 0.0 => s.push_str(&format!(
            "  catching up at {}/s: about {} left\n",
            fmt::bytes(rate as u64),
            fmt::duration(lag as f64 / rate)
        )),
        (Some(_), _) => s.push_str("  not catching up right now (the source writes faster)\n"),
    }
    s
}

#[derive(Serialize)]
struct TableOut {
    oid: u32,
    schema: String,
    name: String,
    estimated_rows: i64,
    bytes: i64,
    split_key: Option<String>,
}

fn tables(a: &Source) -> Result<()> {
    let out: Vec<TableOut> = a
        .catalog
        .tables
        .iter()
        .map(|t| TableOut {
            oid: t.oid,
            schema: t.schema.clone(),
            name: t.name.clone(),
            estimated_rows: t.estimated_rows,
            bytes: t.bytes,
            split_key: t.split_key.clone(),
        })
        .collect();
    if a.json {
        return print_json(&out);
    }
    let rows: Vec<Vec<String>> = out
        .iter()
        .map(|t| {
            vec![
                t.oid.to_string(),
                t.schema.clone(),
                t.name.clone(),
                fmt::count(t.estimated_rows.max(0) as u64),
                fmt::bytes(t.bytes.max(0) as u64),
                t.split_key.clone().unwrap_or_default(),
            ]
        })
        .collect();
    fmt::out(&fmt::table(
        &[
            "OID",
            "Schema",
            "Table",
            "Est. rows",
            "On disk",
            "Split key",
        ],
        &[true, false, false, true, true, false],
        &rows,
    ))?;
    let total: u64 = out.iter().map(|t| t.bytes.max(0) as u64).sum();
    fmt::out(&format!(
        "{} tables, about {} on disk: the estimate of what clone copies until it has copied them \
         (COPY moves about as much; text COPY often less)\n",
        out.len(),
        fmt::bytes(total)
    ))?;
    Ok(())
}

#[derive(Serialize)]
struct PartOut {
    schema: String,
    table: String,
    bytes: i64,
    #[serde(flatten)]
    part: crate::split::Part,
}

async fn table_parts(
    a: &Source,
    split_threshold: u64,
    split_max_parts: u32,
    wanted: Option<(Option<String>, String)>,
) -> Result<()> {
    let mut out = Vec::new();
    for t in &a.catalog.tables {
        if let Some((schema, name)) = &wanted {
            if &t.name != name || schema.as_ref().is_some_and(|s| s != &t.schema) {
                continue;
            }
        } else if t.bytes <= split_threshold as i64 {
            continue;
        }
        for part in crate::split::plan_table(&a.client, t, split_threshold, split_max_parts).await?
        {
            out.push(PartOut {
                schema: t.schema.clone(),
                table: t.name.clone(),
                bytes: t.bytes,
                part,
            });
        }
    }
    if let Some((schema, name)) = &wanted {
        if out.is_empty() {
            return Err(anyhow::anyhow!(
                "no table {}{name} in the source",
                schema.as_ref().map(|s| format!("{s}.")).unwrap_or_default()
            ));
        }
    }
    if a.json {
        return print_json(&out);
    }
    let rows: Vec<Vec<String>> = out
        .iter()
        .map(|p| {
            vec![
                format!(
                    "{}.{}",
                    crate::catalog::display_ident(&p.schema),
                    crate::catalog::display_ident(&p.table)
                ),
                fmt::bytes(p.bytes.max(0) as u64),
                format!("{}/{}", p.part.part, p.part.parts),
                p.part
                    .condition
                    .clone()
                    .unwrap_or_else(|| "(whole table)".into()),
                fmt::count(p.part.est_rows.max(0) as u64),
            ]
        })
        .collect();
    fmt::out(&fmt::table(
        &["Table", "Size", "Part", "Rows where", "Est. rows"],
        &[false, true, true, false, true],
        &rows,
    ))?;
    Ok(())
}

#[derive(Serialize)]
struct IndexOut {
    oid: u32,
    schema: String,
    name: String,
    table: String,
    kind: String,
    /// Which clone step builds it: neoncopy's index workers, or pg_restore with the rest of
    /// post-data (indexes of partitioned tables and their partitions).
    built_by: &'static str,
    definition: String,
}

async fn indexes(a: &Source) -> Result<()> {
    let (client, catalog, sel) = (&a.client, &a.catalog, &a.selection);
    let ours: HashSet<u32> = catalog.indexes.iter().map(|i| i.oid).collect();
    let rows = client
        .query(sql::LIST_INDEXES, &[])
        .await
        .db()
        .context("list source indexes")?;
    let out: Vec<IndexOut> = rows
        .iter()
        .filter(|r| {
            !sel.excluded_indexes
                .contains_key(&(r.get::<_, i64>(0) as u32))
        })
        .map(|r| {
            let oid = r.get::<_, i64>(0) as u32;
            IndexOut {
                oid,
                schema: r.get(1),
                name: r.get(2),
                table: r.get(3),
                kind: r.get(4),
                built_by: if ours.contains(&oid) {
                    "neoncopy"
                } else {
                    "pg_restore"
                },
                definition: r.get(5),
            }
        })
        .collect();
    if a.json {
        return print_json(&out);
    }
    let rows: Vec<Vec<String>> = out
        .iter()
        .map(|i| {
            vec![
                i.oid.to_string(),
                i.schema.clone(),
                i.name.clone(),
                i.table.clone(),
                i.kind.clone(),
                i.built_by.to_string(),
                i.definition.clone(),
            ]
        })
        .collect();
    fmt::out(&fmt::table(
        &[
            "OID",
            "Schema",
            "Index",
            "Table",
            "Kind",
            "Built by",
            "Definition",
        ],
        &[true, false, false, false, false, false, false],
        &rows,
    ))?;
    Ok(())
}

#[derive(Serialize)]
struct SequenceOut {
    oid: u32,
    schema: String,
    name: String,
    last_value: i64,
    is_called: bool,
}

async fn sequences(a: &Source) -> Result<()> {
    let (client, catalog) = (&a.client, &a.catalog);
    let mut out = Vec::new();
    for chunk in catalog.sequences.chunks(1000) {
        let names: Vec<(String, String)> = chunk
            .iter()
            .map(|s| (s.schema.clone(), s.name.clone()))
            .collect();
        for r in client
            .query(&sql::sequence_values(&names), &[])
            .await
            .db()
            .context("read sequence values")?
        {
            let s = &chunk[r.get::<_, i32>(0) as usize];
            out.push(SequenceOut {
                oid: s.oid,
                schema: s.schema.clone(),
                name: s.name.clone(),
                last_value: r.get(1),
                is_called: r.get(2),
            });
        }
    }
    if a.json {
        return print_json(&out);
    }
    let rows: Vec<Vec<String>> = out
        .iter()
        .map(|s| {
            vec![
                s.oid.to_string(),
                s.schema.clone(),
                s.name.clone(),
                s.last_value.to_string(),
                s.is_called.to_string(),
            ]
        })
        .collect();
    fmt::out(&fmt::table(
        &["OID", "Schema", "Sequence", "Last value", "Is called"],
        &[true, false, false, true, false],
        &rows,
    ))?;
    Ok(())
}

#[derive(Serialize)]
struct ExtensionOut {
    oid: u32,
    name: String,
    version: String,
    schema: String,
    config_tables: i64,
}

async fn extensions(a: &Source) -> Result<()> {
    let (client, sel) = (&a.client, &a.selection);
    let out: Vec<ExtensionOut> = client
        .query(sql::LIST_EXTENSIONS, &[])
        .await
        .db()
        .context("list source extensions")?
        .into_iter()
        .filter(|r| !sel.excluded_extensions.contains(&r.get::<_, String>(1)))
        .map(|r| ExtensionOut {
            oid: r.get::<_, i64>(0) as u32,
            name: r.get(1),
            version: r.get(2),
            schema: r.get(3),
            config_tables: r.get(4),
        })
        .collect();
    if a.json {
        return print_json(&out);
    }
    let rows: Vec<Vec<String>> = out
        .iter()
        .map(|e| {
            vec![
                e.oid.to_string(),
                e.name.clone(),
                e.version.clone(),
                e.schema.clone(),
                e.config_tables.to_string(),
            ]
        })
        .collect();
    fmt::out(&fmt::table(
        &["OID", "Extension", "Version", "Schema", "Config tables"],
        &[true, false, false, false, true],
        &rows,
    ))?;
    Ok(())
}
