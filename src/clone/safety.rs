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

/// Refuses to copy a database onto itself.
pub async fn refuse_same_database(source: &Client, target: &Client) -> Result<()> {
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
    if same_server && dboid(&s) == dboid(&t) {
        bail!(
            "source and target are the same database ({}): give a different --target",
            s.get::<_, String>(3)
        );
    }
    Ok(())
}

/// Refuses a target that already holds user tables, unless asked to drop them.
pub async fn refuse_non_empty_target(target: &Client, drop_if_exists: bool) -> Result<()> {
    let row = target
        .query_one(&sql::target_user_tables(), &[])
        .await
        .db()
        .context("look for existing tables on the target")?;
    let count: i64 = row.get(0);
    let names: String = row.get(1);
    if count > 0 && !drop_if_exists {
        let more = if count > 5 { ", ..." } else { "" };
        bail!(
            "the target database already holds {count} table(s) ({names}{more}): \
             clone into an empty database, or pass --drop-if-exists to replace the source's objects"
        );
    }
    Ok(())
}
