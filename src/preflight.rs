//! Pre-flight and safety checks: what would make a clone fail or go wrong, found before the
//! first byte moves. `clone` runs them before it writes anything and stops at the first
//! failure (`first_failure`); `neoncopy check` (check.rs) runs them all and prints a report.
//! The safety checks (same database, older target, non-empty target) refuse outright.

use crate::fmt;
use crate::pg::{pooler, sql, DbResultExt, Endpoint, Side};
use anyhow::{bail, Context, Result};
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

pub(crate) fn pass(check: &'static str, detail: impl Into<String>) -> Check {
    Check {
        check,
        status: Status::Pass,
        detail: detail.into(),
        fix: None,
    }
}

pub(crate) fn warn(
    check: &'static str,
    detail: impl Into<String>,
    fix: impl Into<String>,
) -> Check {
    problem(Status::Warn, check, detail.into(), fix.into())
}

pub(crate) fn fail(
    check: &'static str,
    detail: impl Into<String>,
    fix: impl Into<String>,
) -> Check {
    problem(Status::Fail, check, detail.into(), fix.into())
}

fn problem(status: Status, check: &'static str, detail: String, fix: String) -> Check {
    Check {
        check,
        status,
        detail,
        fix: Some(fix),
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
        locked.min(opts.table_jobs as i64 * crate::pg::snapshot::READS_PER_SNAPSHOT_TXN as i64);
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

pub(crate) fn preview(names: &[String]) -> String {
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
    let found = on_target(target, &names, &versions, opts.skip_extensions).await?;
    if let Some(problem) = found.verdict(opts.skip_extensions) {
        return Ok(problem);
    }
    Ok(pass(
        "extensions",
        format!(
            "the target can create all {} source extension(s)",
            names.len()
        ),
    ))
}

/// What the target says of the source's extensions it does not have yet.
#[derive(Default)]
struct ExtensionsOnTarget {
    /// Not available there (or --skip-extensions and not installed).
    unavailable: Vec<String>,
    /// Available, but creating them failed: (name, why).
    refused: Vec<(String, String)>,
    /// Available in another version than the source's.
    other_version: Vec<String>,
}

async fn on_target(
    target: &Client,
    names: &[String],
    versions: &[String],
    skip_extensions: bool,
) -> Result<ExtensionsOnTarget> {
    let mut found = ExtensionsOnTarget::default();
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
        if !available || skip_extensions {
            found.unavailable.push(name);
        } else {
            // Whether the target lets this role create it is decided by trying (a managed
            // service may allow what vanilla PostgreSQL reserves to superusers).
            if let Some(error) = try_create_extension(target, &name).await? {
                let why = if trusted {
                    error
                } else {
                    format!("{error}; it is not trusted")
                };
                found.refused.push((name.clone(), why));
            }
            if !version_ok {
                found.other_version.push(name);
            }
        }
    }
    Ok(found)
}

impl ExtensionsOnTarget {
    /// The failure or warning they add up to, if any.
    fn verdict(&self, skip_extensions: bool) -> Option<Check> {
        let (unavailable, refused, other_version) =
            (&self.unavailable, &self.refused, &self.other_version);
        if !unavailable.is_empty() {
            let (detail, fix) = if skip_extensions {
                (
                    format!(
                        "--skip-extensions, but the target lacks: {}",
                        preview(unavailable)
                    ),
                    "create them on the target first",
                )
            } else {
                (
                format!("the target cannot create these source extensions: {}", preview(unavailable)),
                "install them on the target server (on Neon, check the supported extensions), or drop them from the source",
            )
            };
            return Some(fail("extensions", detail, fix));
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
            return Some(fail(
            "extensions",
            format!("{lead}: {} ({})", preview(&names), why.join("; ")),
            "have an administrator create them on the target first, or connect as a role that may",
        ));
        }
        if !other_version.is_empty() {
            return Some(warn(
            "extensions",
            format!(
                "the target offers other versions of: {} (the source's version will not be available)",
                preview(other_version)
            ),
            "check that the extensions' objects restore; ALTER EXTENSION ... UPDATE afterwards if needed",
        ));
        }
        None
    }
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

pub async fn server_version(client: &Client, side: Side) -> Result<i32> {
    Ok(client
        .query_one(sql::SERVER_VERSION, &[])
        .await
        .db()
        .with_context(|| format!("read {side} server version"))?
        .get(0))
}

/// Refuses a target of an older major version than the source: pg_dump's output for a newer
/// server is not meant to be restored into an older one, and the newer server's features
/// (and types' binary forms) may not exist there.
pub fn refuse_older_target(source_major: u32, target_major: u32) -> Result<()> {
    if target_major < source_major {
        bail!(
            "the target runs PostgreSQL {target_major}, older than the source's \
             PostgreSQL {source_major}: a copy can only go to the same or a newer version; \
             use a target of PostgreSQL {source_major} or newer (on Neon, a project of that version)"
        );
    }
    Ok(())
}

/// The database's name when source and target are the same database: same server (system
/// identifier where readable, and postmaster start time) and same database OID.
pub async fn same_database(source: &Client, target: &Client) -> Result<Option<String>> {
    let (s, t) = tokio::try_join!(
        source.query_one(sql::DATABASE_IDENTITY, &[]),
        target.query_one(sql::DATABASE_IDENTITY, &[])
    )
    .db()
    .context("identify source and target databases")?;
    let sysid = |r: &tokio_postgres::Row| r.get::<_, Option<String>>(0);
    let started = |r: &tokio_postgres::Row| r.get::<_, String>(1);
    let dboid = |r: &tokio_postgres::Row| r.get::<_, i64>(2);
    let same_server = match (sysid(&s), sysid(&t)) {
        (Some(a), Some(b)) => a == b && started(&s) == started(&t),
        _ => started(&s) == started(&t),
    };
    Ok((same_server && dboid(&s) == dboid(&t)).then(|| s.get::<_, String>(3)))
}

/// Refuses to copy a database onto itself.
pub async fn refuse_same_database(source: &Client, target: &Client) -> Result<()> {
    if let Some(db) = same_database(source, target).await? {
        bail!("source and target are the same database ({db}): give a different --target");
    }
    Ok(())
}

/// How many user tables the target holds, and the first few names.
pub async fn target_tables(target: &Client) -> Result<(i64, String)> {
    let row = target
        .query_one(&sql::target_user_tables(), &[])
        .await
        .db()
        .context("look for existing tables on the target")?;
    let count: i64 = row.get(0);
    let mut names: String = row.get(1);
    if count > 5 {
        names.push_str(", ...");
    }
    Ok((count, names))
}

/// Refuses a target that already holds user tables, unless asked to drop them.
pub async fn refuse_non_empty_target(target: &Client, drop_if_exists: bool) -> Result<()> {
    let (count, names) = target_tables(target).await?;
    if count > 0 && !drop_if_exists {
        bail!(
            "the target database already holds {count} table(s) ({names}): \
             clone into an empty database, or pass --drop-if-exists to replace the source's objects"
        );
    }
    Ok(())
}
