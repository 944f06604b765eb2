//! Checks made before anything is written to the target.

use crate::pg::{sql, DbResultExt, Side};
use anyhow::{bail, Context, Result};
use tokio_postgres::Client;

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
