//! Foreign keys whose validation reads much: their archive entries run side by side on
//! `--restore-jobs` target sessions, never two on the same table at once (each locks both of
//! its tables; two that take the same ones in opposite order would deadlock).

use super::Ctx;
use crate::pg::archive::Entry;
use crate::pg::DbResultExt;
use anyhow::{Context, Result};
use std::collections::HashSet;
use std::sync::Mutex;
use tokio::sync::Notify;

/// Hands out entries whose tables no running entry holds.
struct Scheduler {
    state: Mutex<(Vec<usize>, HashSet<u32>)>,
    notify: Notify,
}

impl Scheduler {
    /// The next entry free to run (its tables are marked busy), or None when all are taken.
    async fn take(&self, tables: &dyn Fn(usize) -> Vec<u32>) -> Option<usize> {
        loop {
            let notified = self.notify.notified();
            {
                let mut guard = self.state.lock().expect("scheduler lock");
                let (pending, busy) = &mut *guard;
                if pending.is_empty() {
                    return None;
                }
                if let Some(pos) = pending
                    .iter()
                    .position(|i| tables(*i).iter().all(|t| !busy.contains(t)))
                {
                    let i = pending.remove(pos);
                    busy.extend(tables(i));
                    return Some(i);
                }
            }
            notified.await;
        }
    }

    fn release(&self, tables: Vec<u32>) {
        let mut guard = self.state.lock().expect("scheduler lock");
        for t in tables {
            guard.1.remove(&t);
        }
        drop(guard);
        self.notify.notify_waiters();
    }
}

pub async fn run(ctx: &Ctx, entries: &[&Entry]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let tables = |i: usize| -> Vec<u32> {
        ctx.catalog
            .foreign_keys
            .get(&entries[i].oid)
            .map(|fk| vec![fk.table, fk.referenced])
            .unwrap_or_default()
    };
    let scheduler = Scheduler {
        state: Mutex::new(((0..entries.len()).collect(), HashSet::new())),
        notify: Notify::new(),
    };
    let session = &ctx.ddl()?.session;
    let jobs = ctx.cfg.restore_jobs.clamp(1, entries.len());
    let worker = |_| async {
        let client = ctx.target.connect().await?;
        client
            .batch_execute(session)
            .await
            .db()
            .context("set up the foreign key session")?;
        while let Some(i) = scheduler.take(&tables).await {
            let e = entries[i];
            let result = client
                .batch_execute(e.defn.as_deref().unwrap_or_default())
                .await
                .db()
                .with_context(|| format!("add foreign key {} {}", e.namespace, e.tag));
            scheduler.release(tables(i));
            result?;
        }
        anyhow::Ok(())
    };
    futures::future::try_join_all((0..jobs).map(worker)).await?;
    tracing::info!("added {} foreign keys", entries.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_two_entries_on_one_table_at_once() {
        // Entries 0 and 1 share table 10; 2 is on its own.
        let tables = |i: usize| match i {
            0 => vec![10, 11],
            1 => vec![12, 10],
            _ => vec![13, 14],
        };
        let s = Scheduler {
            state: Mutex::new((vec![0, 1, 2], HashSet::new())),
            notify: Notify::new(),
        };
        assert_eq!(s.take(&tables).await, Some(0));
        // 1 waits for 0's tables; 2 is free.
        assert_eq!(s.take(&tables).await, Some(2));
        let waiting = s.take(&tables);
        tokio::pin!(waiting);
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        s.release(tables(0));
        assert_eq!(waiting.await, Some(1));
        s.release(tables(1));
        s.release(tables(2));
        assert_eq!(s.take(&tables).await, None);
    }
}
