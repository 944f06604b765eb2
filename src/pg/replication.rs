//! A replication connection to the source: the startup parameter `replication=database`,
//! which tokio-postgres cannot send, spoken over a [`WireConn`] (postgres-protocol's
//! messages; connection settings, TLS and authentication as libpq has them). It runs simple
//! queries and replication commands. Its one purpose is a logical replication slot created
//! with an exported snapshot: the snapshot the clone reads the source with, and after which
//! the slot streams every change.
//!
//! The password is never part of a message, a log line or a Debug output.

use super::connstr::ConnParams;
pub use super::wire::TextRows;
use super::wire::{Purpose, WireConn};
use anyhow::{anyhow, bail, Context, Result};

/// An open replication connection (`replication=database`) to the source.
#[derive(Debug)]
pub struct ReplicationConn {
    conn: WireConn,
}

/// What IDENTIFY_SYSTEM answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemId {
    /// The cluster's system identifier.
    pub systemid: String,
    /// The current timeline.
    pub timeline: i32,
    /// The current WAL flush location, as text (`0/16B2D80`).
    pub xlogpos: String,
    /// The database connected to.
    pub dbname: Option<String>,
}

/// What CREATE_REPLICATION_SLOT answers for a logical slot with an exported snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotCreated {
    pub slot_name: String,
    /// The LSN from which the slot streams changes, as text (`0/16B2D80`).
    pub consistent_point: String,
    /// The exported snapshot: `SET TRANSACTION SNAPSHOT '<name>'` and `pg_dump --snapshot`
    /// see the database exactly as of `consistent_point`.
    pub snapshot_name: String,
}

impl ReplicationConn {
    /// Opens a replication connection (`replication=database`) to the database of `params`,
    /// trying each host in turn (each within connect_timeout), and authenticates. The error of
    /// the last host tried is returned, with the server's SQLSTATE when it sent one.
    pub async fn connect(params: &ConnParams) -> Result<ReplicationConn> {
        Ok(ReplicationConn {
            conn: WireConn::connect(params, Purpose::Replication).await?,
        })
    }

    /// Runs a simple query (SQL or a replication command; several statements are allowed)
    /// and returns the rows of all its results as text. A server error is returned once the
    /// server is ready again, so the connection stays usable; a lost connection or a protocol
    /// error makes it unusable.
    pub async fn simple_query(&mut self, sql: &str) -> Result<TextRows> {
        self.conn
            .simple_query(sql)
            .await
            .context("query the source over the replication connection")
    }

    /// IDENTIFY_SYSTEM: the cluster's system identifier, timeline, current WAL position and
    /// database.
    pub async fn identify_system(&mut self) -> Result<SystemId> {
        let what = "identify the source system over the replication connection";
        let rows = self
            .conn
            .simple_query("IDENTIFY_SYSTEM")
            .await
            .context(what)?;
        let row = single_row(rows, 4).context(what)?;
        let text = |i: usize| row[i].clone().unwrap_or_default();
        Ok(SystemId {
            systemid: text(0),
            timeline: text(1)
                .parse()
                .with_context(|| format!("{what}: timeline \"{}\"", text(1)))?,
            xlogpos: text(2),
            dbname: row[3].clone(),
        })
    }

    /// Creates the logical replication slot `name` for pgoutput with an exported snapshot
    /// (the syntax of the server's version, `server_version_num` as in
    /// `current_setting('server_version_num')`). The server waits for the transactions
    /// running at that moment to end before it answers.
    ///
    /// First it turns off, for this session, the timeouts that would end it while idle
    /// (`idle_in_transaction_session_timeout`, and `idle_session_timeout` from PostgreSQL 14):
    /// the exported snapshot is held by an open transaction of this session.
    ///
    /// The snapshot exists until the next command on this connection or its close: the
    /// caller must keep the connection open and send nothing on it while the snapshot is
    /// used (`pg_dump --snapshot`, `SET TRANSACTION SNAPSHOT` of the COPY workers). Sessions
    /// that have imported it keep their view after that.
    pub async fn create_slot(
        &mut self,
        name: &str,
        server_version_num: i32,
    ) -> Result<SlotCreated> {
        let what = || format!("create the replication slot {name} on the source");
        let mut settings = String::from("SET idle_in_transaction_session_timeout = 0;");
        if server_version_num >= 140000 {
            settings.push_str(" SET idle_session_timeout = 0;");
        }
        self.conn.simple_query(&settings).await.with_context(what)?;
        let rows = self
            .conn
            .simple_query(&create_slot_sql(name, server_version_num))
            .await
            .with_context(what)?;
        let row = single_row(rows, 3).with_context(what)?;
        let text = |i: usize| -> Result<String> {
            row[i].clone().ok_or_else(|| {
                anyhow!(
                    "{}: the server returned no {}",
                    what(),
                    ["slot name", "consistent point", "snapshot name"][i]
                )
            })
        };
        Ok(SlotCreated {
            slot_name: text(0)?,
            consistent_point: text(1)?,
            snapshot_name: text(2)?,
        })
    }

    /// A parameter the server reported (ParameterStatus), such as `server_version`.
    /// A parameter the server reported (ParameterStatus), such as `server_version`.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.conn.parameter(name)
    }

    /// The process id of the server's walsender for this connection.
    pub fn backend_pid(&self) -> i32 {
        self.conn.backend_pid()
    }

    /// Ends the session (Terminate) and closes the connection; an exported snapshot ends
    /// with it. A connection dropped without close ends the same way, when the server sees
    /// the socket close.
    pub async fn close(self) -> Result<()> {
        self.conn.close().await
    }
}

/// The command that creates a logical slot for pgoutput with an exported snapshot: the
/// option list from PostgreSQL 15, the older keyword before.
fn create_slot_sql(name: &str, server_version_num: i32) -> String {
    let name = super::sql::ident(name);
    if server_version_num >= 150000 {
        format!("CREATE_REPLICATION_SLOT {name} LOGICAL pgoutput (SNAPSHOT 'export')")
    } else {
        format!("CREATE_REPLICATION_SLOT {name} LOGICAL pgoutput EXPORT_SNAPSHOT")
    }
}

/// The one row of a command's answer, with at least `columns` columns.
fn single_row(rows: TextRows, columns: usize) -> Result<Vec<Option<String>>> {
    match <[_; 1]>::try_from(rows) {
        Ok([row]) if row.len() >= columns => Ok(row),
        Ok([row]) => bail!("the server answered {} columns, not {columns}", row.len()),
        Err(rows) => bail!("the server answered {} rows, not one", rows.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_command_per_version_with_quoted_name() {
        assert_eq!(
            create_slot_sql("nc_slot", 150004),
            "CREATE_REPLICATION_SLOT \"nc_slot\" LOGICAL pgoutput (SNAPSHOT 'export')"
        );
        assert_eq!(
            create_slot_sql("a\"b", 120000),
            "CREATE_REPLICATION_SLOT \"a\"\"b\" LOGICAL pgoutput EXPORT_SNAPSHOT"
        );
    }

    #[test]
    fn single_row_checks_the_shape() {
        let row = || vec![Some("a".to_string()), None];
        assert_eq!(single_row(vec![row()], 2).unwrap(), row());
        assert!(single_row(vec![row()], 3).is_err());
        assert!(single_row(vec![row(), row()], 2).is_err());
        assert!(single_row(vec![], 2).is_err());
    }
}
