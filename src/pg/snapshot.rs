//! The one snapshot every source reader shares: exported by a holder connection that keeps its
//! transaction open until the data is read, imported by every worker and given to pg_dump.

use crate::pg::{sql, DbResultExt, Endpoint};
use anyhow::{Context, Result};
use tokio_postgres::Client;

/// Which snapshot the source is read in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Export a snapshot and hold it open until the data is read.
    Export,
    /// Import a snapshot the caller exported and keeps open.
    Given(String),
    /// Every reader takes its own snapshot.
    None,
}

/// Tables a source session reads in one transaction before it ends it and imports the
/// snapshot again: a transaction keeps a lock on every table it has read, and all of them
/// share the source's lock table (`max_locks_per_transaction` × server processes) with pg_dump
/// and everyone else. One more round trip per this many tables bounds a session's locks.
pub const READS_PER_SNAPSHOT_TXN: usize = 256;

pub struct Holder {
    client: Client,
    snapshot: Option<String>,
    in_transaction: bool,
}

impl Holder {
    /// Opens the source connection used for the catalog and the sequences and, depending on
    /// the mode, exports or imports the snapshot in it.
    pub async fn open(source: &Endpoint, mode: &SnapshotMode) -> Result<Holder> {
        let client = source.connect().await?;
        // The holder sits idle in its transaction while the data is copied: no server-side
        // idle timeout (idle_session_timeout exists from PostgreSQL 14) may end it. An empty search_path makes pg_get_indexdef() and
        // friends qualify every name, whatever the database's own search_path.
        client
            .batch_execute(
                "set idle_in_transaction_session_timeout = 0; set statement_timeout = 0; \
                 select pg_catalog.set_config('search_path', '', false); \
                 select pg_catalog.set_config(name, '0', false) from pg_catalog.pg_settings \
                 where name = 'idle_session_timeout'",
            )
            .await
            .db()
            .context("prepare snapshot holder session")?;
        match mode {
            SnapshotMode::Export => {
                client
                    .batch_execute(sql::BEGIN_SNAPSHOT_TXN)
                    .await
                    .db()
                    .context("begin snapshot transaction")?;
                let id: String = client
                    .query_one(sql::EXPORT_SNAPSHOT, &[])
                    .await
                    .db()
                    .context("export snapshot (a transaction-mode pooler such as a Neon -pooler host cannot do this: connect to the direct host)")?
                    .get(0);
                tracing::info!("exported snapshot {id}");
                Ok(Holder {
                    client,
                    snapshot: Some(id),
                    in_transaction: true,
                })
            }
            SnapshotMode::Given(id) => {
                import(&client, id).await?;
                tracing::info!("using snapshot {id}");
                Ok(Holder {
                    client,
                    snapshot: Some(id.clone()),
                    in_transaction: true,
                })
            }
            SnapshotMode::None => {
                tracing::warn!(
                    "--not-consistent: each table is read at its own moment; writes to the source during the clone may leave the copy inconsistent"
                );
                Ok(Holder {
                    client,
                    snapshot: None,
                    in_transaction: false,
                })
            }
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn snapshot_id(&self) -> Option<&str> {
        self.snapshot.as_deref()
    }

    /// Ends the holder's transaction, releasing the snapshot.
    pub async fn close(self) -> Result<()> {
        if self.in_transaction {
            self.client
                .batch_execute("commit")
                .await
                .db()
                .context("release source snapshot")?;
        }
        Ok(())
    }
}

/// Starts a read-only repeatable-read transaction on `client` that sees snapshot `id`.
pub async fn import(client: &Client, id: &str) -> Result<()> {
    client
        .batch_execute(&format!(
            "{}; {}",
            sql::BEGIN_SNAPSHOT_TXN,
            sql::set_transaction_snapshot(id)
        ))
        .await
        .db()
        .with_context(|| {
            format!("import snapshot {id} (it exists only while the transaction that exported it is open)")
        })
}

/// Ends the transaction of a session that reads in snapshot `id` (releasing the locks it
/// took) and starts another in the same snapshot.
pub async fn renew(client: &Client, id: &str) -> Result<()> {
    client
        .batch_execute(&format!(
            "commit; {}; {}",
            sql::BEGIN_SNAPSHOT_TXN,
            sql::set_transaction_snapshot(id)
        ))
        .await
        .db()
        .with_context(|| format!("renew the read transaction in snapshot {id}"))
}

/// A connection that reads rows to copy or compare: the text settings shared by both sides
/// (`connect_for_data`), `row_security = off` (a policy must make the read fail, never hide
/// rows), inside `snapshot` when there is one.
pub async fn reader(
    endpoint: &Endpoint,
    lc_monetary: &str,
    snapshot: Option<&str>,
) -> Result<Client> {
    let client = endpoint.connect_for_data(Some(lc_monetary)).await?;
    // A synchronized scan may start in the middle of a big table; rows then reach the target
    // in another order than the source's, and a materialized view over them refreshes to other
    // values (a float sum). pg_dump turns it off too.
    client
        .batch_execute("set row_security = off; set synchronize_seqscans = off")
        .await
        .db()
        .with_context(|| format!("prepare {} session", endpoint.side))?;
    if let Some(id) = snapshot {
        import(&client, id).await?;
    }
    Ok(client)
}
