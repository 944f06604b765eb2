//! Connection poolers in transaction mode (PgBouncer, Neon's `-pooler` endpoints) hand each
//! transaction to whichever server session is free: session settings are lost and a snapshot
//! cannot be shared. They are recognised by name, and by watching the server session change
//! between transactions.

use super::{sql, DbResultExt};
use anyhow::Result;
use tokio_postgres::Client;

/// For a host name with a `-pooler` label (Neon: `ep-cool-1-pooler.eu-central-1.aws.neon.tech`),
/// the direct host to use instead.
pub fn direct_host(host: &str) -> Option<String> {
    let mut labels: Vec<&str> = host.split('.').collect();
    let first = labels.first_mut()?;
    let direct = first.strip_suffix("-pooler")?;
    if direct.is_empty() {
        return None;
    }
    *first = direct;
    Some(labels.join("."))
}

/// Whether consecutive transactions of one connection reach different server sessions, which
/// only a transaction-mode pooler does. (A quiet pooler may hand back the same session every
/// time, so `false` proves nothing.)
pub async fn session_changes(client: &Client) -> Result<bool> {
    let mut first: Option<i32> = None;
    for _ in 0..6 {
        let pid: i32 = client.query_one(sql::BACKEND_PID, &[]).await.db()?.get(0);
        match first {
            None => first = Some(pid),
            Some(p) if p != pid => return Ok(true),
            Some(_) => {}
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooler_host_names() {
        assert_eq!(
            direct_host("ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech").as_deref(),
            Some("ep-cool-darkness-123456.us-east-2.aws.neon.tech")
        );
        assert_eq!(
            direct_host("ep-cool-darkness-123456.us-east-2.aws.neon.tech"),
            None
        );
        assert_eq!(direct_host("db.example.com"), None);
        assert_eq!(direct_host("-pooler.x"), None);
        assert_eq!(direct_host("localhost"), None);
    }
}
