//! Online migration: the source's changes after the clone's snapshot, applied by the target.
//!
//! `clone --follow` makes on the source a publication of exactly the selected tables (a
//! partition through its root) and a logical replication slot (pgoutput) whose exported
//! snapshot is the clone's snapshot; once the clone is done it makes on the target a
//! subscription to that publication which uses the slot (`create_slot = false, copy_data =
//! false`): PostgreSQL's own apply workers stream every change committed after the snapshot,
//! none lost and none applied twice. `neoncopy cutover` waits until the target has applied
//! everything the source wrote, carries sequences and large objects, compares, and drops the
//! subscription, the slot and the publication; `cutover --abort` drops them without cutting
//! over. Every name neoncopy made is recorded in `state.db` (labels), and only those are ever
//! dropped.

use crate::pg::connstr::ConnParams;
use crate::pg::{sql, DbResultExt};
use crate::preflight::{fail, pass, warn, Check};
use anyhow::{Context, Result};
use tokio_postgres::Client;

/// Labels in `state.db` under which the names of what `--follow` made are recorded.
pub const SLOT_LABEL: &str = "follow_slot";
pub const PUBLICATION_LABEL: &str = "follow_publication";
pub const SUBSCRIPTION_LABEL: &str = "follow_subscription";
/// The tables whose replica identity `--replica-identity-full` changed (JSON list of
/// qualified names), put back at cutover or abort.
pub const IDENTITY_LABEL: &str = "follow_identity_full";
/// The published relations a resumed clone left to the subscription's table synchronization
/// (JSON list): not copied in the original snapshot.
pub const RESYNC_LABEL: &str = "follow_resync";
/// When the subscription started streaming (seconds since the epoch).
pub const FOLLOWING_LABEL: &str = "follow_started";
/// When a cutover released the replication (seconds since the epoch), and how long writes
/// were stopped.
pub const CUTOVER_LABEL: &str = "follow_cutover";

/// The names of the slot, the publication and the subscription of one migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub slot: String,
    pub publication: String,
    pub subscription: String,
}

impl Names {
    /// The names of a run: `neoncopy_<run id>` for all three (a slot name allows lower-case
    /// letters, digits and underscores only).
    pub fn of_run(run_id: &str) -> Names {
        let base: String = format!("neoncopy_{run_id}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        Names {
            slot: base.clone(),
            publication: base.clone(),
            subscription: base,
        }
    }
}

/// A migration as the work directory records it: the names of what was made, and the tables
/// whose replica identity was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub names: Names,
    pub identity_full: Vec<String>,
    /// Relations the subscription copies itself (a resumed clone's unfinished tables).
    pub resync: Vec<String>,
}

impl Migration {
    /// Reads it from the record's labels (`label` looks one up); none without a slot.
    pub fn from_labels(
        label: impl Fn(&str) -> anyhow::Result<Option<String>>,
    ) -> anyhow::Result<Option<Migration>> {
        let (Some(slot), Some(publication), Some(subscription)) = (
            label(SLOT_LABEL)?,
            label(PUBLICATION_LABEL)?,
            label(SUBSCRIPTION_LABEL)?,
        ) else {
            return Ok(None);
        };
        let list = |name| -> anyhow::Result<Vec<String>> {
            Ok(label(name)?
                .map(|j| serde_json::from_str(&j).unwrap_or_default())
                .unwrap_or_default())
        };
        Ok(Some(Migration {
            names: Names {
                slot,
                publication,
                subscription,
            },
            identity_full: list(IDENTITY_LABEL)?,
            resync: list(RESYNC_LABEL)?,
        }))
    }
}

/// What `--follow` adds to the clone's settings.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// The source as the target's subscription reaches it (password included).
    pub source_for_target: ConnParams,
    /// Set REPLICA IDENTITY FULL on selected tables without a key.
    pub replica_identity_full: bool,
}

/// The connection string the target's subscription stores: every setting of `params` with
/// the password, without neoncopy's session name (the walsender must not look like one of the
/// run's sessions, which a resume ends).
pub fn subscription_conninfo(params: &ConnParams, application_name: &str) -> String {
    let mut p = params.clone();
    p.remove("fallback_application_name");
    p.set("application_name", application_name);
    p.to_libpq_with_password()
}

/// A selected table as the publication and the replica identity checks see it.
#[derive(Debug, Clone)]
pub struct Published {
    pub oid: u32,
    pub qualified: String,
}

/// The relations to publish for the selected tables (by OID): each partition through its
/// topmost partitioned ancestor (PostgreSQL 13+, `publish_via_partition_root`), every other
/// table itself; permanent relations only, each once.
pub async fn relations_to_publish(
    source: &Client,
    table_oids: &[u32],
    version: i32,
) -> Result<Vec<String>> {
    let mut names: Vec<String> = published_as(source, table_oids, version)
        .await?
        .into_iter()
        .filter(|(_, _, permanent)| *permanent)
        .map(|(_, name, _)| name)
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// For each table (OID), the relation its changes are published as: its topmost partitioned
/// ancestor (13+) or itself.
pub async fn published_relation_of(
    source: &Client,
    table_oids: &[u32],
) -> Result<std::collections::HashMap<u32, String>> {
    let version: i32 = source
        .query_one(sql::SERVER_VERSION, &[])
        .await
        .db()?
        .get(0);
    Ok(published_as(source, table_oids, version)
        .await?
        .into_iter()
        .map(|(oid, name, _)| (oid, name))
        .collect())
}

/// For each table (OID): the relation it is published as, and whether that is permanent.
async fn published_as(
    source: &Client,
    table_oids: &[u32],
    version: i32,
) -> Result<Vec<(u32, String, bool)>> {
    let oids: Vec<i64> = table_oids.iter().map(|o| *o as i64).collect();
    let rows = source
        .query(
            sql::FOLLOW_PUBLISHED_RELATION_OF,
            &[&oids, &(version >= 130000)],
        )
        .await
        .db()
        .context("find the relation each table is published as")?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, i64>(0) as u32, r.get(1), r.get(2)))
        .collect())
}

/// Whether the replication slot exists on the source.
pub async fn slot_exists(source: &Client, slot: &str) -> Result<bool> {
    Ok(source
        .query_opt(sql::FOLLOW_SLOT_ACTIVE, &[&slot])
        .await
        .db()
        .context("look for the replication slot on the source")?
        .is_some())
}

/// Empties relations on the target (a partitioned table with its partitions) so that the
/// subscription's table synchronization copies them whole.
pub async fn empty_on_target(target: &Client, relations: &[String]) -> Result<()> {
    target
        .batch_execute(&format!("truncate {}", relations.join(", ")))
        .await
        .db()
        .context("empty the tables the subscription will copy on the target")
}

/// Selected tables whose UPDATE and DELETE would fail on the source once published: no
/// primary key and replica identity DEFAULT, or replica identity NOTHING (or an index that is
/// gone).
pub async fn keyless(source: &Client, table_oids: &[u32]) -> Result<Vec<Published>> {
    let oids: Vec<i64> = table_oids.iter().map(|o| *o as i64).collect();
    let rows = source
        .query(sql::FOLLOW_KEYLESS_TABLES, &[&oids])
        .await
        .db()
        .context("look for tables without a replica identity")?;
    Ok(rows
        .iter()
        .map(|r| Published {
            oid: r.get::<_, i64>(0) as u32,
            qualified: r.get(1),
        })
        .collect())
}

/// The pre-flight checks of `--follow`: what the source, the target and the role need for a
/// publication, a slot and a subscription, and the tables that cannot be published as they
/// are. `conninfo` is the source as the target reaches it.
pub async fn checks(
    source: &Client,
    target: &Client,
    table_oids: &[u32],
    cfg: &FollowConfig,
) -> Result<Vec<Check>> {
    let mut out = vec![source_settings(source).await?];
    out.push(source_role(source, table_oids).await?);
    let role = target_role(target).await?;
    // Trying to reach the source needs the right to subscribe.
    let may_subscribe = role.status != crate::preflight::Status::Fail;
    out.push(role);
    out.push(keyless_check(source, table_oids, cfg.replica_identity_full).await?);
    out.push(whole_partition_trees(source, table_oids).await?);
    out.push(pass(
        "follow: not replicated",
        "DDL, sequences and large objects are not streamed: cutover sets the sequences and \
         copies the large objects again; change no schema while following",
    ));
    if may_subscribe {
        out.push(reachability(target, cfg).await);
    }
    Ok(out)
}

async fn source_settings(source: &Client) -> Result<Check> {
    let r = source
        .query_one(sql::FOLLOW_SOURCE_SETTINGS, &[])
        .await
        .db()
        .context("read the source's replication settings")?;
    let (wal_level, free_slots, free_senders): (String, i64, i64) = (r.get(0), r.get(1), r.get(2));
    Ok(if wal_level != "logical" {
        fail(
            "follow: source",
            format!("wal_level is {wal_level}; logical replication needs wal_level = logical"),
            "set wal_level = logical and restart the source (on RDS: rds.logical_replication = 1 \
             in the parameter group; on Cloud SQL: the cloudsql.logical_decoding flag)",
        )
    } else if free_slots < 1 || free_senders < 1 {
        fail(
            "follow: source",
            format!(
                "{free_slots} free replication slot(s) and {free_senders} free WAL sender(s); \
                 following needs one of each"
            ),
            "raise max_replication_slots and max_wal_senders (a restart), or drop unused slots",
        )
    } else {
        pass(
            "follow: source",
            format!(
                "wal_level = logical, {free_slots} free slot(s), {free_senders} free WAL sender(s)"
            ),
        )
    })
}

async fn source_role(source: &Client, table_oids: &[u32]) -> Result<Check> {
    let oids: Vec<i64> = table_oids.iter().map(|o| *o as i64).collect();
    let r = source
        .query_one(sql::FOLLOW_SOURCE_ROLE, &[&oids])
        .await
        .db()
        .context("read the source role's rights")?;
    let (replication, create, not_owned): (bool, bool, Vec<String>) =
        (r.get(0), r.get(1), r.get(2));
    Ok(if !replication {
        fail(
            "follow: source role",
            "the role may not open replication connections (no REPLICATION attribute)",
            "ALTER ROLE ... REPLICATION (on RDS: GRANT rds_replication TO the role)",
        )
    } else if !create {
        fail(
            "follow: source role",
            "the role may not create a publication in the database (no CREATE privilege)",
            "GRANT CREATE ON DATABASE ... TO the role",
        )
    } else if !not_owned.is_empty() {
        fail(
            "follow: source role",
            format!(
                "a publication of a table needs its owner; the role owns none of: {}",
                crate::preflight::preview(&not_owned)
            ),
            "connect as the tables' owner (or a superuser), or leave them out with --filters",
        )
    } else {
        pass(
            "follow: source role",
            "may replicate and publish the selected tables",
        )
    })
}

async fn target_role(target: &Client) -> Result<Check> {
    let r = target
        .query_one(sql::FOLLOW_TARGET_ROLE, &[])
        .await
        .db()
        .context("read the target role's rights")?;
    let (version, superuser, may_subscribe): (i32, bool, bool) = (r.get(0), r.get(1), r.get(2));
    Ok(if superuser || may_subscribe {
        pass(
            "follow: target role",
            if superuser {
                "a superuser: may create the subscription"
            } else {
                "may create the subscription (pg_create_subscription)"
            },
        )
    } else if version < 160000 {
        fail(
            "follow: target role",
            format!(
                "on PostgreSQL {} only a superuser may create a subscription",
                version / 10000
            ),
            "connect to the target as a superuser, or use a target of PostgreSQL 16 or newer \
             (on Neon the database owner may)",
        )
    } else {
        fail(
            "follow: target role",
            "the role may not create a subscription (needs pg_create_subscription and CREATE on \
             the database)",
            "GRANT pg_create_subscription TO the role, and CREATE ON DATABASE",
        )
    })
}

async fn keyless_check(source: &Client, table_oids: &[u32], set_full: bool) -> Result<Check> {
    let keyless = keyless(source, table_oids).await?;
    let names: Vec<String> = keyless.iter().map(|t| t.qualified.clone()).collect();
    Ok(if keyless.is_empty() {
        pass(
            "follow: replica identity",
            "every selected table has a primary key or a replica identity",
        )
    } else if set_full {
        warn(
            "follow: replica identity",
            format!(
                "REPLICA IDENTITY FULL will be set on {} table(s) without a key: {} (cutover \
                 puts it back)",
                names.len(),
                crate::preflight::preview(&names)
            ),
            "updates and deletes on them are logged whole while following",
        )
    } else {
        fail(
            "follow: replica identity",
            format!(
                "{} selected table(s) have no primary key or replica identity: published, \
                 their UPDATE and DELETE would fail on the source: {}",
                names.len(),
                crate::preflight::preview(&names)
            ),
            "add a primary key, pass --replica-identity-full, or leave them out with --filters",
        )
    })
}

/// A partition is published through its root (13+), and the root publishes every partition:
/// with some left out by --filters, their changes would reach a target without them and stop
/// the apply worker.
async fn whole_partition_trees(source: &Client, table_oids: &[u32]) -> Result<Check> {
    let oids: Vec<i64> = table_oids.iter().map(|o| *o as i64).collect();
    let rows = source
        .query(sql::FOLLOW_PARTLY_SELECTED_TREES, &[&oids])
        .await
        .db()
        .context("look for partitioned tables partly selected")?;
    let roots: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    Ok(if roots.is_empty() {
        pass(
            "follow: partitions",
            "every partitioned table is selected whole (it is published through its root)",
        )
    } else {
        fail(
            "follow: partitions",
            format!(
                "--filters leaves out some partitions of {}: published through the root, their \
                 changes would reach a target without them",
                crate::preflight::preview(&roots)
            ),
            "select every partition of those tables, or none",
        )
    })
}

/// Slots of earlier neoncopy runs on the source: a forgotten one keeps WAL on its disk.
pub async fn leftover_slots(source: &Client) -> Result<Check> {
    let rows = source
        .query(sql::FOLLOW_LEFTOVER_SLOTS, &[])
        .await
        .db()
        .context("list the source's replication slots")?;
    let slots: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} ({})",
                r.get::<_, String>(0),
                crate::fmt::bytes(r.get::<_, i64>(1).max(0) as u64)
            )
        })
        .collect();
    Ok(if slots.is_empty() {
        pass(
            "leftover slots",
            "no replication slot of an earlier neoncopy run",
        )
    } else {
        warn(
            "leftover slots",
            format!(
                "slots of earlier neoncopy runs retain WAL on the source: {}",
                slots.join(", ")
            ),
            "neoncopy cutover --abort --dir <their work directory>, or \
             select pg_drop_replication_slot('<name>') on the source",
        )
    })
}

/// Whether the target reaches the source as the subscription will: a subscription that
/// connects but creates nothing, in a transaction rolled back.
async fn reachability(target: &Client, cfg: &FollowConfig) -> Check {
    let conninfo = subscription_conninfo(&cfg.source_for_target, "neoncopy_check");
    let result = async {
        target.batch_execute("begin").await.db()?;
        let probe = format!(
            "create subscription neoncopy_reachability_check connection {} \
             publication neoncopy_reachability_check with (connect = true, create_slot = false, \
             slot_name = none, enabled = false, copy_data = false)",
            sql::literal(&conninfo)
        );
        let r = target.batch_execute(&probe).await.db();
        let _ = target.batch_execute("rollback").await;
        r
    }
    .await;
    match result {
        Ok(()) => pass(
            "follow: target reaches source",
            format!(
                "the target connects to {} as its subscription will (the subscription stores \
                 this connection string, password included, until cutover)",
                cfg.source_for_target.redacted()
            ),
        ),
        Err(e) => fail(
            "follow: target reaches source",
            format!(
                "the target cannot connect to {} for its subscription: {e:#}",
                cfg.source_for_target.redacted()
            ),
            "give --follow-source as the target's server reaches the source (a public host, \
             sslmode), with a password",
        ),
    }
}

/// Sets the replica identity of `tables` on one side (`identity`: full or default).
async fn set_identity(
    client: &Client,
    tables: &[String],
    identity: &str,
    side: &str,
) -> Result<()> {
    for t in tables {
        client
            .batch_execute(&format!("alter table {t} replica identity {identity}"))
            .await
            .db()
            .with_context(|| format!("set replica identity {identity} on {t} on the {side}"))?;
    }
    Ok(())
}

/// Prepares the source before the slot is made: REPLICA IDENTITY FULL where asked (recorded
/// first by the caller), then the publication. A publication must exist before the slot:
/// the slot decodes each change with the catalog as it was then.
pub async fn prepare_source(
    source: &Client,
    names: &Names,
    relations: &[String],
    identity_full: &[String],
    version: i32,
) -> Result<()> {
    set_identity(source, identity_full, "full", "source").await?;
    let tables = if relations.is_empty() {
        String::new()
    } else {
        format!(" for table {}", relations.join(", "))
    };
    let with = if version >= 130000 && !relations.is_empty() {
        " with (publish_via_partition_root = true)"
    } else {
        ""
    };
    source
        .batch_execute(&format!(
            "create publication {}{tables}{with}",
            sql::ident(&names.publication)
        ))
        .await
        .db()
        .context("create the publication on the source")
}

/// The same replica identity on the target's copies of the tables changed on the source, so
/// that the apply workers find rows by all their columns as the source sends them.
pub async fn match_identity_on_target(target: &Client, identity_full: &[String]) -> Result<()> {
    set_identity(target, identity_full, "full", "target").await
}

/// Creates the subscription on the target and waits until it streams. The relations in
/// `resync` (a resumed clone's unfinished tables, emptied on the target) are taken out of the
/// publication while the subscription is made without copying, then put back and copied by
/// the subscription's own table synchronization, which joins each to the stream at the
/// position of its copy. A subscription that exists already (a retry) is kept.
pub async fn subscribe(
    source: &Client,
    target: &Client,
    names: &Names,
    source_params: &ConnParams,
    resync: &[String],
) -> Result<()> {
    let exists: bool = target
        .query_one(sql::FOLLOW_SUBSCRIPTION_EXISTS, &[&names.subscription])
        .await
        .db()?
        .get(0);
    let publication = sql::ident(&names.publication);
    if !exists {
        if !resync.is_empty() {
            set_membership(source, &publication, "drop", resync).await?;
        }
        let conninfo = subscription_conninfo(source_params, &names.subscription);
        target
            .batch_execute(&format!(
                "create subscription {} connection {} publication {publication} with \
                 (create_slot = false, slot_name = {}, copy_data = false, enabled = true)",
                sql::ident(&names.subscription),
                sql::literal(&conninfo),
                sql::literal(&names.slot)
            ))
            .await
            .db()
            .context("create the subscription on the target")?;
    }
    if !resync.is_empty() {
        set_membership(source, &publication, "add", resync).await?;
        target
            .batch_execute(&format!(
                "alter subscription {} refresh publication with (copy_data = true)",
                sql::ident(&names.subscription)
            ))
            .await
            .db()
            .context("have the subscription copy the tables the clone did not finish")?;
    }
    wait_streaming(target, names).await
}

/// Adds relations to the publication, or drops them from it, those already so left alone.
async fn set_membership(
    source: &Client,
    publication: &str,
    how: &str,
    relations: &[String],
) -> Result<()> {
    for rel in relations {
        let r = source
            .batch_execute(&format!(
                "alter publication {publication} {how} table {rel}"
            ))
            .await
            .db();
        if let Err(e) = r {
            // 42710: already a member; 42704: not a member.
            if !matches!(crate::pg::PgError::code_of(&e), Some("42710" | "42704")) {
                return Err(e.context(format!("{how} {rel} in the publication on the source")));
            }
        }
    }
    Ok(())
}

/// Waits until the apply worker runs and every table of the subscription is ready (copied by
/// table synchronization where it had to be).
async fn wait_streaming(target: &Client, names: &Names) -> Result<()> {
    let start = std::time::Instant::now();
    let mut told = std::time::Instant::now();
    loop {
        let r = target
            .query_one(sql::FOLLOW_SUBSCRIPTION_READY, &[&names.subscription])
            .await
            .db()?;
        let (running, pending): (bool, i64) = (r.get(0), r.get(1));
        if running && pending == 0 {
            return Ok(());
        }
        if !running && start.elapsed() > std::time::Duration::from_secs(60) {
            anyhow::bail!(
                "the subscription {} was created but its apply worker did not start within a \
                 minute: see the target's log (max_logical_replication_workers, the \
                 connection to the source)",
                names.subscription
            );
        }
        if pending > 0 && told.elapsed() > std::time::Duration::from_secs(10) {
            tracing::info!("the subscription is copying {pending} table(s)");
            told = std::time::Instant::now();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Drops what neoncopy made for following, each only if it exists: the subscription on the
/// target (detached from the slot first, so that dropping it needs no connection to the
/// source), then the slot and the publication on the source; and puts back the replica
/// identity of the tables it changed.
pub async fn release(
    source: &Client,
    target: Option<&Client>,
    names: &Names,
    identity_full: &[String],
) -> Result<()> {
    if let Some(target) = target {
        let exists: bool = target
            .query_one(sql::FOLLOW_SUBSCRIPTION_EXISTS, &[&names.subscription])
            .await
            .db()?
            .get(0);
        if exists {
            let s = sql::ident(&names.subscription);
            target
                .batch_execute(&format!(
                    "alter subscription {s} disable; alter subscription {s} set (slot_name = none); \
                     drop subscription {s}"
                ))
                .await
                .db()
                .context("drop the subscription on the target")?;
        }
        set_identity(target, identity_full, "default", "target").await?;
    }
    drop_slot(source, &names.slot).await?;
    source
        .batch_execute(&format!(
            "drop publication if exists {}",
            sql::ident(&names.publication)
        ))
        .await
        .db()
        .context("drop the publication on the source")?;
    set_identity(source, identity_full, "default", "source").await
}

/// Drops the slot when it exists, waiting a little for the walsender that used it to end.
async fn drop_slot(source: &Client, slot: &str) -> Result<()> {
    for attempt in 0..100 {
        let row = source
            .query_opt(sql::FOLLOW_SLOT_ACTIVE, &[&slot])
            .await
            .db()?;
        let Some(row) = row else { return Ok(()) };
        let active_pid: Option<i32> = row.get(0);
        if active_pid.is_none() || attempt == 99 {
            source
                .execute("select pg_catalog.pg_drop_replication_slot($1)", &[&slot])
                .await
                .db()
                .with_context(|| format!("drop the replication slot {slot} on the source"))?;
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The replication as `list progress` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub slot: String,
    /// The source's WAL the target has not confirmed yet.
    pub lag_bytes: Option<i64>,
    /// The WAL the slot keeps on the source's disk.
    pub retained_bytes: Option<i64>,
    pub slot_active: bool,
    /// The subscription's last message from the source (target clock), and its position.
    pub last_message: Option<String>,
    pub applied_lsn: Option<String>,
    pub apply_worker_running: bool,
}

/// Reads the replication's state from both servers (either may be missing).
pub async fn status(
    source: Option<&Client>,
    target: Option<&Client>,
    names: &Names,
) -> Result<Status> {
    let mut st = Status {
        slot: names.slot.clone(),
        lag_bytes: None,
        retained_bytes: None,
        slot_active: false,
        last_message: None,
        applied_lsn: None,
        apply_worker_running: false,
    };
    if let Some(source) = source {
        if let Some(r) = source
            .query_opt(sql::FOLLOW_SLOT_LAG, &[&names.slot])
            .await
            .db()
            .context("read the slot on the source")?
        {
            (st.lag_bytes, st.retained_bytes, st.slot_active) = (r.get(0), r.get(1), r.get(2));
        }
    }
    if let Some(target) = target {
        if let Some(r) = target
            .query_opt(sql::FOLLOW_SUBSCRIPTION_STATE, &[&names.subscription])
            .await
            .db()
            .context("read the subscription on the target")?
        {
            (st.last_message, st.applied_lsn, st.apply_worker_running) =
                (r.get(0), r.get(1), r.get(2));
        }
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_slot_names() {
        let n = Names::of_run("18f3A-b.c");
        assert_eq!(n.slot, "neoncopy_18f3a_b_c");
        assert_eq!(n.publication, n.slot);
        assert_eq!(n.subscription, n.slot);
    }

    #[test]
    fn the_subscription_gets_the_password_but_not_the_run_name() {
        let mut p =
            ConnParams::parse("postgresql://app:s3cr%20t@db.example.com/app?sslmode=require")
                .unwrap();
        p.set("fallback_application_name", "neoncopy-abc");
        let c = subscription_conninfo(&p, "neoncopy_abc");
        assert!(c.contains("password='s3cr t'"), "{c}");
        assert!(c.contains("application_name=neoncopy_abc"), "{c}");
        assert!(!c.contains("fallback_application_name"), "{c}");
        assert!(c.contains("sslmode=require"), "{c}");
        // What logs show of it has no password.
        assert!(!p.redacted().contains("s3cr"));
    }

    #[test]
    fn a_migration_is_read_back_from_its_labels() {
        let labels = |name: &str| -> anyhow::Result<Option<String>> {
            Ok(match name {
                SLOT_LABEL | PUBLICATION_LABEL | SUBSCRIPTION_LABEL => Some("neoncopy_x".into()),
                IDENTITY_LABEL => Some(r#"["public.logs"]"#.into()),
                _ => None,
            })
        };
        let m = Migration::from_labels(labels).unwrap().unwrap();
        assert_eq!(m.names, Names::of_run("x"));
        assert_eq!(m.identity_full, vec!["public.logs".to_string()]);
        assert!(m.resync.is_empty());
        assert!(Migration::from_labels(|_| Ok(None)).unwrap().is_none());
    }
}
