//! `neoncopy check`: every pre-flight check (preflight.rs) and those only worth their cost
//! before a clone is planned (versions, pg_dump, the schema rehearsed on the target, size),
//! printed as a report with a fix for each problem.

use crate::config::CheckConfig;
use crate::error::{Class, Classified};
use crate::fmt;
use crate::follow::FollowConfig;
use crate::pg::{sql, DbResultExt, Endpoint, Side};
use crate::preflight::{fail, on_connections, pass, pooler_names, warn, Check, Options, Status};
use anyhow::{Context, Result};
use tokio_postgres::Client;

/// `neoncopy check`: runs every check and prints the report; a failed check exits 1.
pub async fn run(cfg: CheckConfig) -> Result<()> {
    let source = Endpoint::new(Side::Source, cfg.source)?;
    let target = Endpoint::new(Side::Target, cfg.target)?;
    if let Some(f) = &cfg.options.filters {
        // A filter entry that names nothing is refused before the checks (exit 2).
        if let Ok(client) = source.connect_preflight().await {
            f.validate(&client).await?;
        }
    }
    let checks = all(&source, &target, &cfg.options, cfg.follow.as_ref()).await;
    if cfg.json {
        fmt::out(&format!("{}\n", serde_json::to_string_pretty(&checks)?))?;
    } else {
        fmt::out(&render(&checks))?;
    }
    if checks.iter().any(|c| c.status == Status::Fail) {
        return Err(Classified::new(Class::ChecksFailed, "some checks failed").into());
    }
    Ok(())
}

/// Everything, for `neoncopy check`: connects to both servers itself and never fails because
/// of what it finds (only the report says so).
pub async fn all(
    source: &Endpoint,
    target: &Endpoint,
    opts: &Options,
    follow: Option<&FollowConfig>,
) -> Vec<Check> {
    let (mut out, src, tgt) = connection_checks(source, target).await;
    let (Some(src), Some(tgt)) = (src, tgt) else {
        return out;
    };
    let mut more = Vec::new();
    let result = server_checks(source, target, &src, &tgt, opts, &mut more).await;
    let result = match (result, follow) {
        (Ok(()), Some(f)) => follow_checks(&src, &tgt, opts, f, &mut more).await,
        (r, _) => r,
    };
    out.extend(more);
    if let Err(e) = result {
        out.push(fail(
            "checks",
            format!("{e:#}"),
            "check the roles' privileges on both servers",
        ));
    }
    out
}

/// Pooler names, then each connection: opened, its version and whether it is encrypted.
async fn connection_checks(
    source: &Endpoint,
    target: &Endpoint,
) -> (Vec<Check>, Option<Client>, Option<Client>) {
    let mut out = pooler_names(source, target);
    let src = match source.connect_preflight().await {
        Ok(c) => Some(c),
        Err(e) => {
            out.push(fail(
                "source connection",
                format!("{e:#}"),
                "check the source connection string, network and password",
            ));
            None
        }
    };
    let tgt = match target.connect_preflight().await {
        Ok(c) => Some(c),
        Err(e) => {
            out.push(fail(
                "target connection",
                format!("{e:#}"),
                "check the target connection string, network and password",
            ));
            None
        }
    };
    for (name, client) in [("source connection", &src), ("target connection", &tgt)] {
        if let Some(c) = client {
            out.push(match describe_connection(c).await {
                Ok((version, tls)) => {
                    let local = name.starts_with("source")
                        && source.params.hosts().iter().all(|h| is_local(h))
                        || name.starts_with("target")
                            && target.params.hosts().iter().all(|h| is_local(h));
                    if tls.is_empty() && !local {
                        warn(
                            name,
                            format!("PostgreSQL {version}, not encrypted"),
                            "add sslmode=require (Neon requires it)",
                        )
                    } else if tls.is_empty() {
                        pass(name, format!("PostgreSQL {version}, local, not encrypted"))
                    } else {
                        pass(name, format!("PostgreSQL {version}, {tls}"))
                    }
                }
                Err(e) => fail(name, format!("{e:#}"), "check the role's privileges"),
            });
        }
    }
    (out, src, tgt)
}

/// The checks made on both open connections; `out` keeps those made before a failure.
async fn server_checks(
    source: &Endpoint,
    target: &Endpoint,
    src: &Client,
    tgt: &Client,
    opts: &Options,
    more: &mut Vec<Check>,
) -> Result<()> {
    more.push(match crate::preflight::same_database(src, tgt).await? {
        Some(db) => fail(
            "same database",
            format!("source and target are the same database ({db})"),
            "give a different --target",
        ),
        None => pass("same database", "source and target are different databases"),
    });
    let sv: i32 = src.query_one(sql::SERVER_VERSION, &[]).await.db()?.get(0);
    let tv: i32 = tgt.query_one(sql::SERVER_VERSION, &[]).await.db()?.get(0);
    let (smajor, tmajor) = ((sv / 10000) as u32, (tv / 10000) as u32);
    let older = crate::preflight::refuse_older_target(smajor, tmajor);
    let tools = crate::pg::tools::find(smajor, tmajor.max(smajor));
    more.push(match &tools {
        Ok(t) => pass(
            "pg_dump",
            format!("{} {}: {}", t.pg_dump.display(), t.version, t.reason),
        ),
        Err(e) => fail(
            "pg_dump",
            format!("{e:#}"),
            format!("install postgresql-client-{tmajor} (the target's version)"),
        ),
    });
    more.push(match older {
        Err(_) => fail(
            "versions",
            format!("the target (PostgreSQL {tmajor}) is older than the source (PostgreSQL {smajor}): clone refuses it"),
            format!("use a target of PostgreSQL {smajor} or newer (on Neon, a project of that version)"),
        ),
        Ok(()) => pass("versions", format!("PostgreSQL {smajor} to {tmajor}")),
    });
    more.push(match crate::preflight::target_tables(tgt).await? {
        (0, _) => pass("target empty", "the target database holds no tables"),
        (n, names) if opts.drop_if_exists => warn(
            "target empty",
            format!("the target holds {n} table(s) ({names}); --drop-if-exists drops those the source also has"),
            "make sure nothing on the target is needed",
        ),
        (n, names) => fail(
            "target empty",
            format!("the target holds {n} table(s) ({names})"),
            "clone into an empty database, or add --drop-if-exists",
        ),
    });
    // What the filters select, once for every check that needs it.
    let selection =
        crate::filters::Selection::compute(src, opts.filters.as_ref(), opts.skip_extensions)
            .await
            .context("apply --filters")?;
    let filtered = opts.filters.as_ref().map(|_| &selection);
    more.extend(on_connections(src, tgt, opts, filtered).await?);
    if let (Ok(tools), true) = (&tools, tmajor >= smajor) {
        let scope =
            crate::clone::schema::DumpScope::of_source(src, !opts.skip_large_objects, tools.major)
                .await?;
        more.push(schema(source, target, (tools, scope), opts, &selection).await);
    }
    let los: i64 = src
        .query_one(sql::LARGE_OBJECT_COUNT, &[])
        .await
        .db()?
        .get(0);
    more.push(if los == 0 {
        pass("large objects", "none on the source")
    } else if opts.skip_large_objects {
        warn(
            "large objects",
            format!("{los} on the source will not be copied (--skip-large-objects)"),
            "drop --skip-large-objects to copy them",
        )
    } else {
        pass(
            "large objects",
            format!("{los} on the source, copied after the tables"),
        )
    });
    more.push(size(src, opts, &selection).await?);
    let wal = src.query_one(sql::WAL_AND_SLOTS, &[]).await.db()?;
    more.push(pass(
        "wal",
        format!(
            "source wal_level={}, {} replication slot(s); clone needs neither (clone --follow \
             needs wal_level = logical: check --follow)",
            wal.get::<_, String>(0),
            wal.get::<_, i64>(1)
        ),
    ));
    // A slot an earlier clone --follow left behind keeps WAL on the source's disk.
    more.push(crate::follow::leftover_slots(src).await?);
    Ok(())
}

/// `check --follow`: what online migration needs of both servers and the selected tables.
async fn follow_checks(
    src: &Client,
    tgt: &Client,
    opts: &Options,
    follow: &FollowConfig,
    more: &mut Vec<Check>,
) -> Result<()> {
    let selection =
        crate::filters::Selection::compute(src, opts.filters.as_ref(), opts.skip_extensions)
            .await
            .context("apply --filters")?;
    let mut catalog = crate::catalog::Catalog::read(src, false).await?;
    catalog.apply(&selection, opts.skip_extensions);
    let oids: Vec<u32> = catalog.tables.iter().map(|t| t.oid).collect();
    more.extend(crate::follow::checks(src, tgt, &oids, follow).await?);
    Ok(())
}

/// What the clone will copy and build, measured as it will measure it (crate::estimate: the
/// size on disk of the selected tables and indexes), and the room the target needs.
async fn size(
    src: &Client,
    opts: &Options,
    selection: &crate::filters::Selection,
) -> Result<Check> {
    let mut catalog = crate::catalog::Catalog::read(src, false).await?;
    catalog.apply(selection, opts.skip_extensions);
    let tables: u64 = catalog.tables.iter().map(|t| t.bytes.max(0) as u64).sum();
    let indexes: u64 = catalog.indexes.iter().map(|i| i.bytes).sum();
    Ok(pass(
        "size",
        format!(
            "about {} of table data in {} tables to copy (their size on disk, which the clone's \
             progress starts from) and {} indexes and constraints ({} on disk) to build; the \
             target needs about {} in all (free space cannot be read over SQL: check the server \
             or your plan's storage limit)",
            fmt::bytes(tables),
            catalog.tables.len(),
            catalog.indexes.len(),
            fmt::bytes(indexes),
            fmt::bytes(tables + indexes),
        ),
    ))
}

/// The whole schema, dumped with pg_dump and run on the target in a transaction that is
/// rolled back (as clone rehearses it before its first write): whatever the target refuses is
/// named here.
async fn schema(
    source: &Endpoint,
    target: &Endpoint,
    (tools, scope): (&crate::pg::tools::PgTools, crate::clone::schema::DumpScope),
    opts: &Options,
    selection: &crate::filters::Selection,
) -> Check {
    let dir = std::env::temp_dir().join(format!("neoncopy-check-{}", std::process::id()));
    let result = async {
        let workdir = crate::workdir::WorkDir::open(&dir)?;
        crate::clone::schema::pg_dump(
            &workdir,
            tools,
            source,
            (scope, &selection.pg_dump_args()),
            None,
            opts.skip_large_objects,
        )
        .await?;
        let restorer = crate::clone::schema::Restorer {
            dir: &workdir,
            tools,
            target,
            no_owner: opts.no_owner,
            no_acl: opts.no_acl,
            no_comments: false,
        };
        let left = crate::clone::schema::LeftOut::by_filters(selection);
        // Everything, the indexes and constraints clone builds itself included.
        let built = std::collections::HashSet::new();
        crate::clone::schema::rehearse(
            &restorer,
            &left,
            &built,
            opts.drop_if_exists,
            crate::clone::schema::Keep::Nothing,
            1,
        )
        .await
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(crate::clone::schema::Rehearsal::Done(n, _)) => pass(
            "schema",
            format!("the target accepts the whole schema ({n} entries created and rolled back)"),
        ),
        Ok(crate::clone::schema::Rehearsal::Skipped(why)) => {
            pass("schema", format!("not rehearsed on the target: {why}"))
        }
        Err(e) => match e.downcast_ref::<crate::error::Classified>() {
            Some(r) if r.class == crate::error::Class::Refused => fail(
                "schema",
                r.message.clone(),
                r.fix.clone().unwrap_or_default(),
            ),
            _ => fail(
                "schema",
                format!("{e:#}"),
                "check pg_dump, the roles' privileges and the connections",
            ),
        },
    }
}

fn is_local(host: &str) -> bool {
    host.starts_with('/') || host == "localhost" || host.starts_with("127.") || host == "::1"
}

async fn describe_connection(c: &Client) -> Result<(String, String)> {
    let version: String = c
        .query_one(sql::SERVER_VERSION_TEXT, &[])
        .await
        .db()?
        .get(0);
    let tls = c.query_one(sql::SESSION_TLS, &[]).await.db()?;
    let tls = if tls.get::<_, bool>(0) {
        format!("encrypted ({})", tls.get::<_, String>(1))
    } else {
        String::new()
    };
    Ok((version, tls))
}

pub fn render(checks: &[Check]) -> String {
    render_width(checks, fmt::terminal_width())
}

/// One block per check, laid out in `width` columns: the check's name and result, its details
/// wrapped beside them, and the fix (for a warning or failure) on lines of its own.
pub fn render_width(checks: &[Check], width: usize) -> String {
    let name_w = checks
        .iter()
        .map(|c| c.check.chars().count())
        .max()
        .unwrap_or(5)
        .max("Check".len());
    let result_w = "warning".len();
    let indent = name_w + 2 + result_w + 2;
    let text_w = width.saturating_sub(indent).max(30);
    let mut out = format!("{:<name_w$}  {:<result_w$}  Details\n", "Check", "Result");
    out.push_str(&format!(
        "{}  {}  {}\n",
        "-".repeat(name_w),
        "-".repeat(result_w),
        "-".repeat(text_w.min(60))
    ));
    for c in checks {
        let mut lines = fmt::wrap(&c.detail, text_w).into_iter();
        out.push_str(&format!(
            "{:<name_w$}  {:<result_w$}  {}\n",
            c.check,
            c.status.to_string(),
            lines.next().unwrap_or_default()
        ));
        for l in lines {
            out.push_str(&format!("{}{l}\n", " ".repeat(indent)));
        }
        if let Some(fix) = &c.fix {
            for (i, l) in fmt::wrap(fix, text_w - 5).into_iter().enumerate() {
                let lead = if i == 0 { "fix: " } else { "     " };
                out.push_str(&format!("{}{lead}{l}\n", " ".repeat(indent)));
            }
        }
    }
    let fails = checks.iter().filter(|c| c.status == Status::Fail).count();
    let warns = checks.iter().filter(|c| c.status == Status::Warn).count();
    out.push_str(&format!(
        "\n{} check(s): {} passed, {warns} warning(s), {fails} failed\n",
        checks.len(),
        checks.len() - fails - warns
    ));
    out
}

#[cfg(test)]
mod render_tests {
    use super::*;

    #[test]
    fn lines_fit_the_width_and_fixes_stand_apart() {
        let checks = vec![
            pass("source connection", "PostgreSQL 15.18, local, not encrypted"),
            fail(
                "schema",
                "the target refuses EVENT TRIGGER no_alter_table: ERROR: permission denied to create event trigger \"no_alter_table\" (SQLSTATE 42501); hint: Must be superuser to create an event trigger.",
                "clone with a target role that may create it (a superuser), or remove it from the source",
            ),
        ];
        for width in [60, 80, 100] {
            let text = render_width(&checks, width);
            for line in text.lines() {
                assert!(line.chars().count() <= width, "{width}: {line:?}\n{text}");
            }
            assert!(
                text.lines()
                    .any(|l| l.trim_start().starts_with("fix: clone with")),
                "{text}"
            );
            assert!(text.contains("2 check(s): 1 passed, 0 warning(s), 1 failed"));
        }
    }
}
