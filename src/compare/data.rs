//! `compare data`: per table, the row count and an order-independent checksum computed on each
//! server (a 64-bit hash of every row's text, summed exactly), the source read in one
//! snapshot. Big tables are cut into parts on each side independently (the sums add up), so
//! that `--table-jobs` workers on each server share the work (a `crate::pool`). A checksum
//! that fails transiently is run again on a new session (`pg::session::Sessions`).

use crate::catalog::{Catalog, Table};
use crate::pg::retry::RetryPolicy;
use crate::pg::session::{Connections, Session, Sessions};
use crate::pg::{compare_sql as q, DbResultExt, Endpoint};
use crate::pool::{Queue, Workers};
use crate::split;
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio_postgres::Client;

/// Count and the two sums of one side of one table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Sums {
    pub rows: i64,
    #[serde(skip)]
    pub high: i128,
    #[serde(skip)]
    pub low: i128,
}

impl Sums {
    fn add(&mut self, other: Sums) {
        self.rows += other.rows;
        self.high = self.high.wrapping_add(other.high);
        self.low = self.low.wrapping_add(other.low);
    }

    /// A short fingerprint for display; matching compares all of count and sums.
    pub fn checksum(&self) -> String {
        let mixed = (self.high as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)
            ^ (self.low as u128)
            ^ (self.rows as u128).rotate_left(64);
        format!("{:016x}", (mixed >> 64) as u64 ^ mixed as u64)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TableResult {
    pub table: String,
    pub source_rows: Option<i64>,
    pub target_rows: Option<i64>,
    pub source_checksum: Option<String>,
    pub target_checksum: Option<String>,
    pub matches: bool,
}

/// A unit of work on one side: a table, or a part of one.
struct Task {
    key: String,
    table: Table,
    condition: Option<String>,
    counts_only: bool,
}

pub struct Options {
    pub table_jobs: usize,
    /// Row counts only, no checksums (a cutover's quick comparison of very large databases).
    pub counts_only: bool,
    /// A checksum that fails transiently is run again on a new session.
    pub retry: RetryPolicy,
    pub split_threshold: u64,
    pub max_parts: u32,
    pub lc_monetary: String,
}

fn key_of(t: &Table) -> String {
    t.display()
}

async fn plan(client: &Client, catalog: &Catalog, opts: &Options) -> Result<Vec<Task>> {
    let mut tasks = Vec::new();
    for t in &catalog.tables {
        for part in split::plan_table(client, t, opts.split_threshold, opts.max_parts).await? {
            tasks.push(Task {
                key: key_of(t),
                table: t.clone(),
                condition: part.condition.clone(),
                counts_only: opts.counts_only,
            });
        }
    }
    Ok(tasks)
}

fn parse_sum(s: &str) -> Result<i128> {
    s.parse()
        .with_context(|| format!("unexpected checksum sum {s:?} from the server"))
}

/// Reads the (count, sum, sum) row of a checksum query.
fn sums_of(row: &tokio_postgres::Row) -> Result<Sums> {
    Ok(Sums {
        rows: row.get(0),
        high: parse_sum(&row.get::<_, String>(1))?,
        low: parse_sum(&row.get::<_, String>(2))?,
    })
}

async fn checksum(client: &Client, task: &Task) -> Result<Sums> {
    let sql = q::table_checksum(
        &task.table.schema,
        &task.table.name,
        true,
        task.condition.as_deref(),
        task.counts_only,
    );
    let row = client
        .query_one(&sql, &[])
        .await
        .db()
        .with_context(|| format!("checksum {}", task.key))?;
    sums_of(&row)
}

/// A compare worker's session: a reader (in the snapshot, when there is one), and the tables
/// its current transaction has read.
struct Reader {
    session: Session,
    read_in_txn: usize,
}

impl Connections for Reader {
    type Pids = i32;
    fn pids(&self) -> i32 {
        self.session.pid
    }
}

/// Where one side's workers read.
struct Side {
    endpoint: Endpoint,
    snapshot: Option<String>,
    lc_monetary: String,
    retry: RetryPolicy,
}

impl Side {
    async fn open(&self, stale: Option<i32>) -> Result<Reader> {
        let connect = crate::pg::snapshot::reader(
            &self.endpoint,
            &self.lc_monetary,
            self.snapshot.as_deref(),
        );
        Ok(Reader {
            session: Session::open(connect, stale).await?,
            read_in_txn: 0,
        })
    }

    /// The sums of one task, on the worker's session.
    async fn checksum(&self, sessions: &mut Sessions<Reader>, task: &Task) -> Result<Sums> {
        let reader = sessions.get(|stale| self.open(stale)).await?;
        // The transaction keeps a lock on every table it read: renewed now and then, so that
        // thousands of tables do not fill the source's lock table.
        if let (Some(id), true) = (
            self.snapshot.as_deref(),
            reader.read_in_txn >= crate::pg::snapshot::READS_PER_SNAPSHOT_TXN,
        ) {
            crate::pg::snapshot::renew(&reader.session.client, id).await?;
            reader.read_in_txn = 0;
        }
        reader.read_in_txn += 1;
        checksum(&reader.session.client, task).await
    }
}

/// A worker of one side: checksums tasks until there are none left, each on a new session
/// after a transient failure (a checksum only reads: it is simply run again).
async fn side_worker(
    side: Arc<Side>,
    queue: Arc<Queue<Task>>,
    results: Arc<Mutex<BTreeMap<String, Sums>>>,
) -> Result<()> {
    let mut sessions = Sessions::new(side.retry);
    while let Some(task) = queue.next().await {
        let task = &*task;
        let side = &side;
        let sums = sessions
            .run("trying again", |mut sessions, _| async move {
                let result = side.checksum(&mut sessions, task).await;
                (sessions, result)
            })
            .await?;
        results
            .lock()
            .expect("results")
            .entry(task.key.clone())
            .or_default()
            .add(sums);
    }
    Ok(())
}

/// Runs the tasks of one side on `jobs` sessions of `endpoint` (reading in `snapshot` when
/// given); returns the sums per table.
async fn run_side(
    tasks: Vec<Task>,
    opts: &Options,
    endpoint: &Endpoint,
    snapshot: Option<String>,
) -> Result<BTreeMap<String, Sums>> {
    let n = opts.table_jobs.min(tasks.len()).max(1);
    let queue = Queue::new(tasks);
    let results = Arc::new(Mutex::new(BTreeMap::<String, Sums>::new()));
    let side = Arc::new(Side {
        endpoint: endpoint.clone(),
        snapshot,
        lc_monetary: opts.lc_monetary.clone(),
        retry: opts.retry,
    });
    let mut workers = Workers::new("compare");
    workers.spawn(n, |_| {
        side_worker(side.clone(), queue.clone(), results.clone())
    });
    workers.join().await?;
    let map = std::mem::take(&mut *results.lock().expect("results"));
    Ok(map)
}

async fn large_objects(client: &Client, counts_only: bool) -> Result<Sums> {
    let sql = if counts_only {
        q::LARGE_OBJECTS_COUNT
    } else {
        q::LARGE_OBJECTS_CHECKSUM
    };
    let row = client
        .query_one(sql, &[])
        .await
        .db()
        .context("checksum large objects")?;
    sums_of(&row)
}

/// Compares every table's rows (and the large objects). `holder` is a source connection
/// inside `snapshot` (when there is one); `target_catalog_client` a plain target connection.
pub async fn compare(
    source: &Endpoint,
    target: &Endpoint,
    holder: &Client,
    snapshot: Option<String>,
    target_client: &Client,
    opts: &Options,
    selection: &crate::filters::Selection,
) -> Result<Vec<TableResult>> {
    let (s_catalog, t_catalog) = tokio::try_join!(
        selected_tables(holder, selection, "read the source catalog"),
        selected_tables(target_client, selection, "read the target catalog"),
    )?;
    let (s_tasks, t_tasks) = tokio::try_join!(
        plan(holder, &s_catalog, opts),
        plan(target_client, &t_catalog, opts)
    )?;
    let (s_sums, t_sums, s_lo, t_lo) = tokio::try_join!(
        async {
            run_side(s_tasks, opts, source, snapshot)
                .await
                .context("checksum the source")
        },
        async {
            run_side(t_tasks, opts, target, None)
                .await
                .context("checksum the target")
        },
        large_objects(holder, opts.counts_only),
        large_objects(target_client, opts.counts_only)
    )?;
    let mut out = table_results(&s_catalog, &t_catalog, &s_sums, &t_sums);
    if s_lo.rows > 0 || t_lo.rows > 0 {
        out.push(TableResult {
            table: "(large objects)".into(),
            source_rows: Some(s_lo.rows),
            target_rows: Some(t_lo.rows),
            source_checksum: Some(s_lo.checksum()),
            target_checksum: Some(t_lo.checksum()),
            matches: s_lo == t_lo,
        });
    }
    Ok(out)
}

/// A server's catalog, with only the tables whose rows a clone with the same filters copies.
async fn selected_tables(
    client: &Client,
    selection: &crate::filters::Selection,
    what: &'static str,
) -> Result<Catalog> {
    let mut catalog = Catalog::read(client, false).await.context(what)?;
    catalog
        .tables
        .retain(|t| selection.copies_rows_of_name(&t.schema, &t.name));
    Ok(catalog)
}

/// One result per table: the source's tables in its order, then those only the target has.
fn table_results(
    s_catalog: &Catalog,
    t_catalog: &Catalog,
    s_sums: &BTreeMap<String, Sums>,
    t_sums: &BTreeMap<String, Sums>,
) -> Vec<TableResult> {
    let s_keys: std::collections::HashSet<String> = s_catalog.tables.iter().map(key_of).collect();
    let t_keys: std::collections::HashSet<String> = t_catalog.tables.iter().map(key_of).collect();
    let keys = s_catalog.tables.iter().map(key_of).chain(
        t_catalog
            .tables
            .iter()
            .map(key_of)
            .filter(|k| !s_keys.contains(k)),
    );
    keys.map(|k| {
        let s = s_keys
            .contains(&k)
            .then(|| s_sums.get(&k).copied().unwrap_or_default());
        let t = t_keys
            .contains(&k)
            .then(|| t_sums.get(&k).copied().unwrap_or_default());
        TableResult {
            matches: s.is_some() && s == t,
            source_rows: s.map(|s| s.rows),
            target_rows: t.map(|t| t.rows),
            source_checksum: s.map(|s| s.checksum()),
            target_checksum: t.map(|t| t.checksum()),
            table: k,
        }
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_add_and_fingerprint() {
        let mut a = Sums {
            rows: 1,
            high: 5,
            low: -3,
        };
        a.add(Sums {
            rows: 2,
            high: 7,
            low: 4,
        });
        assert_eq!(
            a,
            Sums {
                rows: 3,
                high: 12,
                low: 1
            }
        );
        let b = Sums {
            rows: 3,
            high: 12,
            low: 2,
        };
        assert_ne!(a.checksum(), b.checksum());
        assert_eq!(a.checksum().len(), 16);
    }
}
