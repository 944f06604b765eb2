//! Pre-flight checks: what would make a clone fail or go wrong, found before the first byte
//! moves. `neoncopy check` prints them all; `clone` runs the cheap ones and stops at a failure.

use crate::fmt;
use crate::pg::{pooler, sql, DbResultExt, Endpoint};
use anyhow::{Context, Result};
use serde::Serialize;
use tokio_postgres::Client;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Pass => "pass",
            Status::Warn => "warning",
            Status::Fail => "FAIL",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
    /// What to do about a warning or failure.
    pub fix: Option<String>,
}

fn pass(check: &'static str, detail: impl Into<String>) -> Check {
    Check {
        check,
        status: Status::Pass,
        detail: detail.into(),
        fix: None,
    }
}

fn warn(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        check,
        status: Status::Warn,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

fn fail(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        check,
        status: Status::Fail,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

/// The clone settings the checks depend on.
#[derive(Debug, Clone)]
pub struct Options {
    pub table_jobs: usize,
    pub index_jobs: usize,
    pub restore_jobs: usize,
    pub no_owner: bool,
    pub no_acl: bool,
    pub skip_extensions: bool,
    pub skip_large_objects: bool,
    pub drop_if_exists: bool,
    /// What --filters leaves out: extensions it excludes need not exist on the target.
    pub filters: Option<crate::filters::Filters>,
}

/// Pooler host names, known before connecting.
pub fn pooler_names(source: &Endpoint, target: &Endpoint) -> Vec<Check> {
    let mut out = Vec::new();
    for ep in [source, target] {
        for host in ep.params.hosts() {
            if let Some(direct) = pooler::direct_host(&host) {
                out.push(fail(
                    "pooler",
                    format!(
                        "the {} host {host} is a connection pooler in transaction mode: it cannot hold the \
                         clone's snapshot nor keep session settings",
                        ep.side
                    ),
                    format!("connect to the direct host {direct} instead"),
                ));
            }
        }
    }
    out
}

/// Checks on open connections to both servers: the ones clone runs before it writes.
/// `selection` is what --filters selects, computed once by the caller when there are filters.
pub async fn on_connections(
    source: &Client,
    target: &Client,
    opts: &Options,
    selection: Option<&crate::filters::Selection>,
) -> Result<Vec<Check>> {
    let mut out = Vec::new();
    for (side, client) in [("source", source), ("target", target)] {
        if pooler::session_changes(client).await? {
            out.push(fail(
                "pooler",
                format!(
                    "the {side} connection reaches a different server session from one transaction to \
                     the next: it goes through a transaction-mode pooler"
                ),
                "connect to the database server directly, not through the pooler",
            ));
        }
    }
    out.push(source_privileges(source, opts, selection).await?);
    out.push(target_role(source, target, opts).await?);
    out.extend(roles(source, target, opts).await?);
    out.push(extensions(source, target, opts).await?);
    out.push(connections(source, target, opts).await?);
    out.push(locks(source, opts, selection).await?);
    Ok(out)
}

/// Locks neoncopy's own sessions may hold at once on the source besides the tables: the
/// catalog locks of the snapshot's transaction and of each reader.
const OWN_LOCKS: i64 = 64;

/// Whether the source's lock table can hold what the clone locks. pg_dump locks every table
/// and view it dumps in one transaction and fails with "out of shared memory" when they do
/// not fit; the copy workers' read transactions are renewed every few hundred tables.
async fn locks(
    source: &Client,
    opts: &Options,
    selection: Option<&crate::filters::Selection>,
) -> Result<Check> {
    let dumped: Vec<u32> = source
        .query(&sql::dumped_relations(), &[])
        .await
        .db()
        .context("count the relations pg_dump locks")?
        .iter()
        .map(|r| r.get::<_, i64>(0) as u32)
        .collect();
    let row = source
        .query_one(sql::LOCK_TABLE, &[])
        .await
        .db()
        .context("read the source's lock table size")?;
    let (per_process, processes, in_use): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    let capacity = per_process * processes;
    let locked = match selection {
        Some(s) => dumped.iter().filter(|o| s.table_selected(**o)).count(),
        None => dumped.len(),
    } as i64;
    // The copy workers' read transactions, renewed every so many tables.
    let copy_reads =
        locked.min(opts.table_jobs as i64 * crate::clone::READS_PER_SNAPSHOT_TXN as i64);
    let need = locked.max(copy_reads) + OWN_LOCKS + in_use;
    let what = format!(
        "pg_dump locks {} tables and views in one transaction; with the {in_use} locks in use \
         the clone needs about {} of the {} the source's lock table holds \
         (max_locks_per_transaction {per_process} x {processes} server processes)",
        fmt::count(locked as u64),
        fmt::count(need as u64),
        fmt::count(capacity as u64),
    );
    // The value that holds it with a fifth to spare, in steps of 64.
    let enough = ((need * 6 / 5) / processes.max(1) + 64) / 64 * 64;
    let fix = format!(
        "set max_locks_per_transaction = {enough} (or more) on the source and restart it (on RDS \
         and Aurora: in the DB parameter group, then reboot; on Cloud SQL: the database flag), \
         or select fewer tables with --filters"
    );
    Ok(if need > capacity {
        fail(
            "locks",
            format!("{what}: pg_dump would fail with \"out of shared memory\""),
            fix,
        )
    } else if need * 5 > capacity * 4 {
        warn("locks", format!("{what}: close to the limit"), fix)
    } else {
        pass("locks", what)
    })
}

/// Whether the source role can read what the clone reads: every selected table, view,
/// materialized view and sequence (pg_dump locks and reads them), and every large object.
async fn source_privileges(
    source: &Client,
    opts: &Options,
    selection: Option<&crate::filters::Selection>,
) -> Result<Check> {
    let selected = |oid: u32| selection.is_none_or(|s| s.table_selected(oid));
    let version: i32 = source
        .query_one(sql::SERVER_VERSION, &[])
        .await
        .db()?
        .get(0);
    let unreadable: Vec<String> = source
        .query(&sql::unreadable_relations(), &[])
        .await
        .db()
        .context("look up the source role's privileges")?
        .into_iter()
        .filter(|r| selected(r.get::<_, i64>(0) as u32))
        .map(|r| r.get(1))
        .collect();
    let los: i64 = if opts.skip_large_objects {
        0
    } else {
        source
            .query_one(&sql::unreadable_large_objects(version), &[])
            .await
            .db()
            .context("look up the source role's privileges on large objects")?
            .get(0)
    };
    if unreadable.is_empty() && los == 0 {
        return Ok(pass(
            "source privileges",
            "the source role can read every table, sequence and large object to copy",
        ));
    }
    let mut what = Vec::new();
    if !unreadable.is_empty() {
        what.push(format!(
            "{} relation(s): {}",
            unreadable.len(),
            preview(&unreadable)
        ));
    }
    if los > 0 {
        what.push(format!("{los} large object(s)"));
    }
    Ok(fail(
        "source privileges",
        format!("the source role cannot read {}", what.join(" and ")),
        "connect to the source as a role that can read everything (the database owner, a superuser, \
         or a member of pg_read_all_data), or leave those objects out with --filters",
    ))
}

async fn target_role(source: &Client, target: &Client, opts: &Options) -> Result<Check> {
    let row = target.query_one(sql::CURRENT_ROLE, &[]).await.db()?;
    let (name, superuser): (String, bool) = (row.get(0), row.get(1));
    if superuser {
        return Ok(pass(
            "target role",
            format!("{name} is a superuser: owners and privileges can be copied"),
        ));
    }
    let owners: Vec<String> = source
        .query(&sql::object_owners(), &[])
        .await
        .db()?
        .into_iter()
        .map(|r| r.get(0))
        .filter(|o: &String| o != &name)
        .collect();
    let detail = format!("{name} is not a superuser (as on Neon and other managed services)");
    if !opts.no_owner && !owners.is_empty() {
        return Ok(fail(
            "target role",
            format!(
                "{detail}, and the source's objects belong to {} other role(s) ({})",
                owners.len(),
                preview(&owners)
            ),
            "add --no-owner (objects will belong to the target role), or connect as a superuser",
        ));
    }
    if !opts.no_acl {
        return Ok(warn(
            "target role",
            detail,
            "add --no-acl if granting the source's privileges fails (roles must exist on the target)",
        ));
    }
    Ok(pass(
        "target role",
        format!("{detail}; --no-owner and --no-acl are set"),
    ))
}

fn preview(names: &[String]) -> String {
    let mut s = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 5 {
        s.push_str(", ...");
    }
    s
}

async fn missing_on_target(target: &Client, roles: &[String]) -> Result<Vec<String>> {
    Ok(target
        .query(sql::MISSING_ROLES, &[&roles])
        .await
        .db()?
        .into_iter()
        .map(|r| r.get(0))
        .collect())
}

/// One check of roles the source's objects refer to: they must exist on the target.
async fn roles_exist(
    source: &Client,
    target: &Client,
    query: &str,
    check: &'static str,
    what: &str,
    flag: &str,
) -> Result<Check> {
    let roles: Vec<String> = source
        .query(query, &[])
        .await
        .db()?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    let missing = missing_on_target(target, &roles).await?;
    Ok(if missing.is_empty() {
        pass(
            check,
            format!("all {} role(s) {what} exist on the target", roles.len()),
        )
    } else {
        fail(
            check,
            format!(
                "roles {what} are missing on the target: {}",
                preview(&missing)
            ),
            format!("create them on the target first, or add {flag}"),
        )
    })
}

async fn roles(source: &Client, target: &Client, opts: &Options) -> Result<Vec<Check>> {
    let mut out = Vec::new();
    if !opts.no_owner {
        out.push(
            roles_exist(
                source,
                target,
                &sql::object_owners(),
                "owner roles",
                "owning source objects",
                "--no-owner",
            )
            .await?,
        );
    }
    if !opts.no_acl {
        out.push(
            roles_exist(
                source,
                target,
                &sql::grantees(),
                "granted roles",
                "holding privileges on source objects",
                "--no-acl",
            )
            .await?,
        );
    }
    Ok(out)
}

async fn extensions(source: &Client, target: &Client, opts: &Options) -> Result<Check> {
    let excluded = match &opts.filters {
        Some(f) if !opts.skip_extensions => {
            crate::filters::excluded_extensions(source, Some(f), false)
                .await
                .context("apply --filters")?
        }
        _ => Default::default(),
    };
    let rows: Vec<_> = source
        .query(sql::SOURCE_EXTENSIONS, &[])
        .await
        .db()?
        .into_iter()
        .filter(|r| opts.skip_extensions || !excluded.contains(&r.get::<_, String>(0)))
        .collect();
    if rows.is_empty() {
        return Ok(pass(
            "extensions",
            "the source uses no extension besides plpgsql",
        ));
    }
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    let versions: Vec<String> = rows.iter().map(|r| r.get(1)).collect();
    let mut unavailable = Vec::new();
    let mut refused: Vec<(String, String)> = Vec::new();
    let mut other_version = Vec::new();
    for r in target
        .query(sql::EXTENSION_AVAILABILITY, &[&names, &versions])
        .await
        .db()?
    {
        let (name, available, trusted, installed, version_ok): (
            String,
            bool,
            bool,
            Option<String>,
            bool,
        ) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        if installed.is_some() {
            continue;
        }
        if !available || opts.skip_extensions {
            unavailable.push(name);
        } else {
            // Whether the target lets this role create it is decided by trying (a managed
            // service may allow what vanilla PostgreSQL reserves to superusers).
            if let Some(error) = try_create_extension(target, &name).await? {
                let why = if trusted {
                    error
                } else {
                    format!("{error}; it is not trusted")
                };
                refused.push((name.clone(), why));
            }
            if !version_ok {
                other_version.push(name);
            }
        }
    }
    if !unavailable.is_empty() {
        let (detail, fix) = if opts.skip_extensions {
            (
                format!(
                    "--skip-extensions, but the target lacks: {}",
                    preview(&unavailable)
                ),
                "create them on the target first",
            )
        } else {
            (
                format!("the target cannot create these source extensions: {}", preview(&unavailable)),
                "install them on the target server (on Neon, check the supported extensions), or drop them from the source",
            )
        };
        return Ok(fail("extensions", detail, fix));
    }
    if !refused.is_empty() {
        let untrusted = refused
            .iter()
            .all(|(_, why)| why.ends_with("it is not trusted"));
        let names: Vec<String> = refused.iter().map(|(n, _)| n.clone()).collect();
        let why: Vec<String> = refused.iter().map(|(n, w)| format!("{n}: {w}")).collect();
        let lead = if untrusted {
            "these extensions are not trusted, and the target refuses to create them"
        } else {
            "the target refuses to create these extensions"
        };
        return Ok(fail(
            "extensions",
            format!("{lead}: {} ({})", preview(&names), why.join("; ")),
            "have an administrator create them on the target first, or connect as a role that may",
        ));
    }
    if !other_version.is_empty() {
        return Ok(warn(
            "extensions",
            format!(
                "the target offers other versions of: {} (the source's version will not be available)",
                preview(&other_version)
            ),
            "check that the extensions' objects restore; ALTER EXTENSION ... UPDATE afterwards if needed",
        ));
    }
    Ok(pass(
        "extensions",
        format!(
            "the target can create all {} source extension(s)",
            names.len()
        ),
    ))
}

/// Creates the extension (with what it requires) in a transaction that is rolled back: None
/// when the target lets this role do it, else what the target said.
async fn try_create_extension(target: &Client, name: &str) -> Result<Option<String>> {
    target
        .batch_execute("begin")
        .await
        .db()
        .context("begin a trial transaction on the target")?;
    let tried = target
        .batch_execute(&format!(
            "create extension if not exists {} cascade",
            sql::ident(name)
        ))
        .await;
    target
        .batch_execute("rollback")
        .await
        .db()
        .context("roll back the trial on the target")?;
    match tried {
        Ok(()) => Ok(None),
        Err(e) if e.as_db_error().is_some() => Ok(Some(crate::pg::describe_error(&e))),
        Err(e) => Err(crate::pg::db_err(e)),
    }
}

async fn connections(source: &Client, target: &Client, opts: &Options) -> Result<Check> {
    let superuser: bool = target.query_one(sql::CURRENT_ROLE, &[]).await.db()?.get(1);
    let row = target.query_one(sql::CONNECTION_LIMITS, &[]).await.db()?;
    let (max, su_reserved, reserved, open): (i32, i32, i32, i32) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let free = if superuser {
        max - open
    } else {
        max - su_reserved - reserved - open
    };
    // At the busiest: every COPY and index worker, plus a few of neoncopy's own.
    let need = (opts.table_jobs + opts.index_jobs).max(opts.restore_jobs) as i32 + 3;
    let src = source.query_one(sql::CONNECTION_LIMITS, &[]).await.db()?;
    let src_free =
        src.get::<_, i32>(0) - src.get::<_, i32>(1) - src.get::<_, i32>(2) - src.get::<_, i32>(3);
    let src_need = opts.table_jobs as i32 + 3;
    if need > free {
        return Ok(fail(
            "connections",
            format!(
                "--table-jobs {} and --index-jobs {} need about {need} target connections; \
                 the target allows {max} and about {free} are free",
                opts.table_jobs, opts.index_jobs
            ),
            "lower --table-jobs and --index-jobs (or use a bigger compute)",
        ));
    }
    if src_need > src_free {
        return Ok(fail(
            "connections",
            format!("--table-jobs {} needs about {src_need} source connections; about {src_free} are free", opts.table_jobs),
            "lower --table-jobs, or free connections on the source",
        ));
    }
    Ok(pass(
        "connections",
        format!("need about {need} of {free} free target connections and {src_need} of {src_free} on the source"),
    ))
}

/// Everything, for `neoncopy check`: connects to both servers itself and never fails because
/// of what it finds (only the report says so).
pub async fn all(source: &Endpoint, target: &Endpoint, opts: &Options) -> Vec<Check> {
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
    let (Some(src), Some(tgt)) = (src, tgt) else {
        return out;
    };
    let mut more = Vec::new();
    let result: Result<()> = async {
        more.push(match crate::clone::same_database(&src, &tgt).await? {
            Some(db) => fail("same database", format!("source and target are the same database ({db})"), "give a different --target"),
            None => pass("same database", "source and target are different databases"),
        });
        let sv: i32 = src.query_one(sql::SERVER_VERSION, &[]).await.db()?.get(0);
        let tv: i32 = tgt.query_one(sql::SERVER_VERSION, &[]).await.db()?.get(0);
        let (smajor, tmajor) = ((sv / 10000) as u32, (tv / 10000) as u32);
        let older = crate::clone::refuse_older_target(smajor, tmajor);
        let tools = crate::pg::tools::find(smajor, tmajor.max(smajor));
        more.push(match &tools {
            Ok(t) => pass("pg_dump", format!("{} {}: {}", t.pg_dump.display(), t.version, t.reason)),
            Err(e) => fail("pg_dump", format!("{e:#}"), format!("install postgresql-client-{tmajor} (the target's version)")),
        });
        more.push(match older {
            Err(_) => fail(
                "versions",
                format!("the target (PostgreSQL {tmajor}) is older than the source (PostgreSQL {smajor}): clone refuses it"),
                format!("use a target of PostgreSQL {smajor} or newer (on Neon, a project of that version)"),
            ),
            Ok(()) => pass("versions", format!("PostgreSQL {smajor} to {tmajor}")),
        });
        more.push(match crate::clone::target_tables(&tgt).await? {
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
            crate::filters::Selection::compute(&src, opts.filters.as_ref(), opts.skip_extensions)
                .await
                .context("apply --filters")?;
        let filtered = opts.filters.as_ref().map(|_| &selection);
        more.extend(on_connections(&src, &tgt, opts, filtered).await?);
        if let (Ok(tools), true) = (&tools, tmajor >= smajor) {
            more.push(schema(source, target, tools, opts, &selection).await);
        }
        let los: i64 = src.query_one(sql::LARGE_OBJECT_COUNT, &[]).await.db()?.get(0);
        more.push(if los == 0 {
            pass("large objects", "none on the source")
        } else if opts.skip_large_objects {
            warn("large objects", format!("{los} on the source will not be copied (--skip-large-objects)"), "drop --skip-large-objects to copy them")
        } else {
            pass("large objects", format!("{los} on the source, copied after the tables"))
        });
        more.push(size(&src, opts, &selection).await?);
        let wal = src.query_one(sql::WAL_AND_SLOTS, &[]).await.db()?;
        more.push(pass(
            "wal",
            format!(
                "source wal_level={}, {} replication slot(s); clone needs neither",
                wal.get::<_, String>(0),
                wal.get::<_, i64>(1)
            ),
        ));
        Ok(())
    }
    .await;
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
    tools: &crate::pg::tools::PgTools,
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
            selection,
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
        )
        .await
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(crate::clone::schema::Rehearsal::Done(n)) => pass(
            "schema",
            format!("the target accepts the whole schema ({n} entries created and rolled back)"),
        ),
        Ok(crate::clone::schema::Rehearsal::Skipped(why)) => {
            pass("schema", format!("not rehearsed on the target: {why}"))
        }
        Err(e) => match e.downcast_ref::<crate::clone::schema::Refused>() {
            Some(r) => fail("schema", r.what.clone(), r.fix),
            None => fail(
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

/// One clear error for the first failed check (pointing at `neoncopy check` for the rest),
/// after logging the warnings.
pub fn first_failure(checks: &[Check]) -> Result<()> {
    for c in checks.iter().filter(|c| c.status == Status::Warn) {
        tracing::warn!(
            "{}: {}{}",
            c.check,
            c.detail,
            c.fix
                .as_deref()
                .map(|f| format!("; {f}"))
                .unwrap_or_default()
        );
    }
    let fails: Vec<&Check> = checks.iter().filter(|c| c.status == Status::Fail).collect();
    if let Some(c) = fails.first() {
        let more = if fails.len() > 1 {
            format!(" ({} more problem(s): run neoncopy check)", fails.len() - 1)
        } else {
            String::new()
        };
        anyhow::bail!(
            "{}: {}; {}{more}",
            c.check,
            c.detail,
            c.fix.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

/// `neoncopy check` found a failing check (the report says which): exit 1 without another line.
#[derive(Debug)]
pub struct ChecksFailed;

impl std::fmt::Display for ChecksFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("some checks failed")
    }
}

impl std::error::Error for ChecksFailed {}

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
