//! Online migration (src/follow.rs, src/cutover.rs): `clone --follow` from the shared
//! PostgreSQL 15 source to a PostgreSQL 17 target, as the managed-style role allowed to create
//! subscriptions (as on Neon), while a workload writes to the source; then `cutover`. Also:
//! a table without a key refused before anything is written, abandoning, a target restarted
//! while following, and a clone killed while copying.

use crate::support::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::Client;

/// The source as the target's subscription reaches it: a role with REPLICATION that gives a
/// password (a non-superuser subscription must use one).
fn follow_source(pair: &Pair) -> String {
    pair.src_cluster.psql(
        "postgres",
        &format!("alter role {PASSWORD_ROLE} replication"),
    );
    format!(
        "host=127.0.0.1 port={} dbname={} user={PASSWORD_ROLE} password='{PASSWORD}'",
        pair.src_cluster.port, pair.src
    )
}

/// A pair from the shared source to `target`, whose managed-style role may subscribe.
fn follow_pair(test: &str, target: &'static Cluster) -> Pair {
    target.psql(
        "postgres",
        &format!("grant pg_create_subscription to {MANAGED_ROLE}"),
    );
    let pair = fresh_pair_on(test, true, source(), target);
    drop_leftover_slots(&pair);
    pair
}

/// Slots an interrupted earlier run of a test left on its database.
fn drop_leftover_slots(pair: &Pair) {
    pair.src_cluster.psql(
        "postgres",
        &format!(
            "select pg_drop_replication_slot(slot_name) from pg_replication_slots \
             where database = '{}'",
            pair.src
        ),
    );
}

fn follow_args(pair: &Pair, extra: &[&str]) -> Vec<String> {
    // The reference restore (assert_faithful) runs as the clone did: the managed role.
    pair.note_clone(true, &[]);
    let mut args = vec!["clone".to_string()];
    args.extend(pair.connection_args(true));
    args.extend([
        "--dir".into(),
        pair.workdir.path().display().to_string(),
        "--follow".into(),
        "--follow-source".into(),
        follow_source(pair),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn cutover(pair: &Pair, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["cutover".to_string()];
    args.extend(pair.connection_args(true).into_iter().take(4));
    args.extend(["--dir".into(), pair.workdir.path().display().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    neoncopy(&args, &[])
}

/// A cutover that succeeds; returns what it printed.
fn cutover_ok(pair: &Pair, extra: &[&str]) -> String {
    let out = cutover(pair, extra);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{}\n{said}", stderr(&out));
    said
}

async fn count(c: &Client, sql: &str) -> i64 {
    scalar::<i64>(c, sql).await
}

/// What neoncopy made for following, left on either server: slots and publications on the
/// source's database, subscriptions on the target's.
async fn leftovers(pair: &Pair) -> (i64, i64, i64) {
    let s = pair.src_cluster.client(&pair.src).await;
    let t = pair.dst_cluster.client(&pair.dst).await;
    (
        count(
            &s,
            "select count(*) from pg_replication_slots where database = current_database()",
        )
        .await,
        count(&s, "select count(*) from pg_publication").await,
        count(
            &t,
            "select count(*) from pg_subscription s join pg_database d on d.oid = s.subdbid \
             where d.datname = current_database()",
        )
        .await,
    )
}

const SCHEMA: &str = "\
    create table accounts (id serial primary key, owner text not null, balance numeric, \
      doc text); \
    insert into accounts (owner, balance, doc) \
      select 'o' || g, g, (select string_agg(md5(g::text || i::text), '') \
                           from generate_series(1, 200) i) \
      from generate_series(1, 3000) g; \
    create table events (id bigserial, at date not null, payload text, primary key (id, at)) \
      partition by range (at); \
    create table events_2025 partition of events for values from ('2025-01-01') to ('2026-01-01'); \
    create table events_2026 partition of events for values from ('2026-01-01') to ('2027-01-01'); \
    insert into events (at, payload) select date '2025-06-01' + (g % 400), 'e' || g \
      from generate_series(1, 5000) g; \
    create table keyless (a int, b text); \
    insert into keyless select g, 'k' || g from generate_series(1, 500) g; \
    create table scratch (id int primary key, v text); \
    insert into scratch select g, 's' || g from generate_series(1, 100) g;";

/// Writes to the source until told to stop: inserts, updates that leave the TOASTed column
/// alone, deletes, rows in both partitions, the keyless table changed by value, and now and
/// then a TRUNCATE. Returns how many rounds it made.
async fn workload(c: Client, stop: Arc<AtomicBool>) -> u64 {
    let mut n: u64 = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let k = (n % 2900 + 1) as i64;
        let sql = format!(
            "insert into accounts (owner, balance, doc) values ('new{n}', {n}, 'short'); \
             update accounts set balance = balance + 1 where id = {k}; \
             delete from accounts where id = {} ; \
             insert into events (at, payload) values (date '2025-03-01' + ({n} % 600), 'w{n}'); \
             update events set payload = payload || '+' where id = {k}; \
             insert into keyless values ({n} + 1000, 'w{n}'); \
             update keyless set b = b || '!' where a = {}; \
             delete from keyless where a = {};",
            k + 7,
            n % 500 + 1,
            (n + 250) % 500 + 1
        );
        c.batch_execute(&sql).await.expect("workload");
        if n.is_multiple_of(40) {
            c.batch_execute(&format!(
                "truncate scratch; insert into scratch values ({n}, 'after truncate')"
            ))
            .await
            .expect("workload truncate");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    n
}

fn run_in_background(args: Vec<String>) -> tokio::task::JoinHandle<std::process::Output> {
    tokio::task::spawn_blocking(move || neoncopy(&args, &[]))
}

#[tokio::test(flavor = "multi_thread")]
async fn clone_follow_under_a_workload_then_cutover_is_identical() {
    let pair = follow_pair("follow_main", cluster(17));
    source().psql(&pair.src, SCHEMA);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(workload(source().client(&pair.src).await, stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = run_in_background(follow_args(&pair, &["--replica-identity-full"]))
        .await
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("neoncopy cutover --dir"), "{err}");
    assert!(
        err.contains("REPLICA IDENTITY FULL will be set on 1 table"),
        "{err}"
    );
    // While following: the replication shows in list progress, and writes keep flowing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut args = vec!["list".to_string(), "progress".into()];
    args.extend(pair.connection_args(true).into_iter().take(4));
    args.extend(["--dir".into(), pair.workdir.path().display().to_string()]);
    let progress = neoncopy(&args, &[]);
    let text = String::from_utf8_lossy(&progress.stdout).to_string();
    assert!(progress.status.success(), "{}", stderr(&progress));
    assert!(
        text.contains("Replication") && text.contains("apply worker running"),
        "{text}"
    );
    stop.store(true, Ordering::SeqCst);
    let rounds = writer.await.unwrap();
    assert!(rounds > 20, "the workload made only {rounds} rounds");

    let said = cutover_ok(&pair, &["--yes"]);
    assert!(
        said.contains("Point your application at the target now"),
        "{said}"
    );
    assert!(said.contains("data: identical"), "{said}");
    assert_eq!(leftovers(&pair).await, (0, 0, 0));
    // Schema and rows against pg_dump | pg_restore of the source now that writes stopped
    // (before the nextval below moves the target's sequence on).
    assert_faithful(&pair).await;

    // Identical, row for row, and every sequence ahead of the source's.
    let mut args = vec!["compare".to_string(), "data".into()];
    args.extend(pair.connection_args(true).into_iter().take(4));
    let cmp = neoncopy(&args, &[]);
    assert_eq!(cmp.status.code(), Some(0), "{}", stderr(&cmp));
    let s = source().client(&pair.src).await;
    let t = pair.dst_cluster.client(&pair.dst).await;
    let src_seq = count(&s, "select last_value from accounts_id_seq").await;
    let dst_next = count(&t, "select nextval('accounts_id_seq')").await;
    assert!(dst_next > src_seq, "target {dst_next}, source {src_seq}");
    let n = count(&t, "select count(*) from accounts where owner like 'new%'").await;
    assert!(n as u64 >= rounds, "{n} of {rounds} inserts");
    // The replica identity is put back on both sides.
    for c in [&s, &t] {
        let full = count(
            c,
            "select count(*) from pg_class where relname = 'keyless' and relreplident = 'f'",
        )
        .await;
        assert_eq!(full, 0);
    }
    // A second cutover has nothing to do.
    let again = cutover(&pair, &["--yes"]);
    assert_one_line_error(&again, 2, "has ended already");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_without_a_key_is_refused_before_anything_is_written() {
    let pair = follow_pair("follow_keyless", cluster(17));
    source().psql(
        &pair.src,
        "create table fine (id int primary key); create table logs (at timestamptz, line text); \
         insert into logs values (now(), 'x');",
    );
    let out = neoncopy(&follow_args(&pair, &[]), &[]);
    assert_one_line_error(&out, 1, "--replica-identity-full");
    assert!(stderr(&out).contains("public.logs"), "{}", stderr(&out));
    assert_eq!(leftovers(&pair).await, (0, 0, 0));
    assert_eq!(pair.target_relations().await, 0);
    let s = source().client(&pair.src).await;
    let untouched = count(&s, "select count(*) from pg_class where relreplident = 'f'").await;
    assert_eq!(untouched, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn abandoning_leaves_no_slot_publication_or_subscription() {
    let pair = follow_pair("follow_abort", cluster(17));
    source().psql(
        &pair.src,
        "create table t (id int primary key, v text); insert into t select g, 'v' from generate_series(1, 100) g; \
         create table k (v text); insert into k values ('a');",
    );
    let out = neoncopy(&follow_args(&pair, &["--replica-identity-full"]), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(leftovers(&pair).await, (1, 1, 1));
    // A new clone in the same directory would forget the slot: refused until it is ended.
    let again = pair.clone_with(true, &["--restart"]);
    assert_one_line_error(&again, 2, "cutover --dir");
    let out = cutover(&pair, &["--abort"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(leftovers(&pair).await, (0, 0, 0));
    let s = source().client(&pair.src).await;
    let full = count(&s, "select count(*) from pg_class where relreplident = 'f'").await;
    assert_eq!(full, 0, "the source's replica identity is put back");
    // cutover without --yes and without a terminal to ask refuses.
    let pair2 = follow_pair("follow_ask", cluster(17));
    source().psql(&pair2.src, "create table t (id int primary key)");
    let out = neoncopy(&follow_args(&pair2, &[]), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_one_line_error(&cutover(&pair2, &[]), 2, "--yes");
    assert_eq!(cutover(&pair2, &["--abort"]).status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_restarted_while_following_catches_up() {
    let target = dedicated_cluster("follow_restart", 17);
    let pair = follow_pair("follow_restart", target);
    source().psql(
        &pair.src,
        "create table t (id serial primary key, v text); \
         insert into t (v) select 'v' || g from generate_series(1, 1000) g;",
    );
    let out = neoncopy(&follow_args(&pair, &[]), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    source().psql(
        &pair.src,
        "insert into t (v) select 'before' from generate_series(1, 300)",
    );
    target.restart();
    source().psql(&pair.src, "insert into t (v) select 'after' from generate_series(1, 300); delete from t where id <= 100");
    cutover_ok(&pair, &["--yes", "--counts-only"]);
    let t = target.client(&pair.dst).await;
    assert_eq!(count(&t, "select count(*) from t").await, 1500);
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_while_copying_then_resumed_and_cut_over_identical() {
    use crate::faults::{kill9, progress, wait_until, worker_doing};
    let pair = follow_pair("follow_kill", cluster(17));
    source().psql(
        &pair.src,
        "create table big (id int primary key, pad text not null); \
         insert into big select g, repeat(md5(g::text), 4) from generate_series(1, 400000) g; \
         create table small_a (id serial primary key, v int); \
         insert into small_a (v) select g from generate_series(1, 500) g; \
         create table small_b (id serial primary key, v int); \
         insert into small_b (v) select g from generate_series(1, 500) g;",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writes = {
        let (c, stop) = (source().client(&pair.src).await, stop.clone());
        tokio::spawn(async move {
            let mut n = 0i64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                c.batch_execute(&format!(
                    "update big set pad = 'w{n}' where id = {}; delete from big where id = {}; \
                     insert into small_a (v) values ({n}); update small_b set v = v + 1 \
                     where id = {};",
                    n * 7 % 400000 + 1,
                    n * 13 % 400000 + 1,
                    n % 500 + 1
                ))
                .await
                .expect("workload");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let dir = pair.workdir.path().to_path_buf();
    let args = follow_args(&pair, &["--table-jobs", "2"]);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_neoncopy"))
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start neoncopy");
    wait_until(&mut child, "a small table done while big copies", || {
        progress(&dir).is_some_and(|p| {
            p["tables"]["done"].as_u64().unwrap_or(0) >= 1 && worker_doing(&p, "COPY public.big")
        })
    })
    .await;
    kill9(&mut child);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = neoncopy(
        &follow_args(
            &pair,
            &["--table-jobs", "2", "--resume", "--not-consistent"],
        ),
        &[],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("left to the subscription"), "{err}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    writes.await.unwrap();
    cutover_ok(&pair, &["--yes"]);
    assert_eq!(leftovers(&pair).await, (0, 0, 0));
    assert_faithful(&pair).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn check_follow_says_what_online_migration_needs() {
    let pair = follow_pair("follow_check", cluster(17));
    source().psql(
        &pair.src,
        "create table t (id int primary key); create table k (v int);",
    );
    let args: Vec<String> = follow_args(&pair, &[]).into_iter().skip(1).collect();
    let (code, checks) = check(&args);
    assert_eq!(code, Some(1), "{checks:?}");
    for name in [
        "follow: source",
        "follow: source role",
        "follow: target role",
        "follow: target reaches source",
    ] {
        assert_eq!(find(&checks, name)["status"], "pass", "{checks:?}");
    }
    let keyless = find(&checks, "follow: replica identity");
    assert_eq!(keyless["status"], "fail");
    assert!(keyless["detail"].as_str().unwrap().contains("public.k"));

    // A partitioned table is published through its root: all of its partitions or none.
    source().psql(
        &pair.src,
        "create table ev (id int, at date, primary key (id, at)) partition by range (at); \
         create table ev_a partition of ev for values from ('2025-01-01') to ('2026-01-01'); \
         create table ev_b partition of ev for values from ('2026-01-01') to ('2027-01-01');",
    );
    let filters = pair.workdir.path().join("filters.ini");
    std::fs::write(&filters, "[exclude-table]\npublic.ev_b\npublic.k\n").unwrap();
    let mut args: Vec<String> = follow_args(&pair, &[]).into_iter().skip(1).collect();
    args.extend(["--filters".into(), filters.display().to_string()]);
    let (_, checks) = check(&args);
    let parts = find(&checks, "follow: partitions");
    assert_eq!(parts["status"], "fail", "{parts}");
    assert!(
        parts["detail"].as_str().unwrap().contains("public.ev"),
        "{parts}"
    );
    assert_eq!(find(&checks, "follow: replica identity")["status"], "pass");

    // A PostgreSQL 15 target lets only a superuser subscribe.
    let old = fresh_pair("follow_check_15", true);
    source().psql(&old.src, "create table t (id int primary key)");
    let args: Vec<String> = follow_args(&old, &[]).into_iter().skip(1).collect();
    let (code, checks) = check(&args);
    assert_eq!(code, Some(1));
    let role = find(&checks, "follow: target role");
    assert_eq!(role["status"], "fail", "{role}");
    assert!(
        role["detail"]
            .as_str()
            .unwrap()
            .contains("only a superuser"),
        "{role}"
    );
    // Nothing was created by the checks.
    assert_eq!(leftovers(&pair).await, (0, 0, 0));
}
