//! The schema created in lanes: independent groups of entries side by side, each on a
//! session and in a transaction of its own (see src/clone/lanes.rs).

use crate::support::*;

/// Six tenants, each in its own schema (an enum, a table keyed by a serial, a table with a
/// foreign key to it and an identity column, a view, a comment), and two tables sharing a
/// domain.
const TENANTS: &str = "
create domain public.amount as numeric(10,2) check (value >= 0);
create table public.ledger_a (id int primary key, v public.amount);
create table public.ledger_b (id int primary key, v public.amount);
insert into public.ledger_a select g, g from generate_series(1, 30) g;
insert into public.ledger_b select g, g * 2 from generate_series(1, 30) g;
do $$ begin for i in 1..6 loop
  execute format('create schema tenant%s', i);
  execute format('create type tenant%s.state as enum (''new'', ''done'')', i);
  execute format('create table tenant%s.accounts (id serial primary key, name text not null, \
                  st tenant%s.state default ''new'')', i, i);
  execute format('create table tenant%s.orders (id bigint generated always as identity \
                  primary key, account_id int references tenant%s.accounts, total numeric)', i, i);
  execute format('create view tenant%s.totals as select account_id, sum(total) \
                  from tenant%s.orders group by 1', i, i);
  execute format('comment on table tenant%s.accounts is ''tenant %s''', i, i);
  execute format('insert into tenant%s.accounts (name) select ''a'' || g \
                  from generate_series(1, 20) g', i);
  execute format('insert into tenant%s.orders (account_id, total) select 1 + g %% 20, g \
                  from generate_series(1, 50) g', i);
end loop; end $$;
";

/// The active lines of the lane lists of `part` (pre-data or post-data) in a work directory,
/// lane by lane.
fn lane_lists(pair: &Pair, part: &str) -> Vec<Vec<String>> {
    (0..)
        .map(|k| pair.workdir.path().join(format!("lane-{k}-{part}.list")))
        .take_while(|p| p.exists())
        .map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .filter(|l| !l.starts_with(';'))
                .map(str::to_string)
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_schemas_are_created_side_by_side() {
    let pair = fresh_pair("lanes_tenants", true);
    source().psql(&pair.src, TENANTS);
    pair.clone_ok(true, &["--restore-jobs", "3"]);
    let log = pair.log();
    assert!(
        log.contains("run in 3 transactions side by side"),
        "the rehearsal ran in lanes:\n{log}"
    );
    let pre = lane_lists(&pair, "pre-data");
    let post = lane_lists(&pair, "post-data");
    assert_eq!((pre.len(), post.len()), (3, 3));
    // Every tenant's entries, and the two tables of the shared domain with it, are in one
    // lane; each lane has some.
    let lanes_naming = |needle: &str| -> Vec<usize> {
        (0..3)
            .filter(|&k| pre[k].iter().chain(&post[k]).any(|l| l.contains(needle)))
            .collect()
    };
    for i in 1..=6 {
        assert_eq!(lanes_naming(&format!("tenant{i} ")).len(), 1, "tenant{i}");
    }
    assert_eq!(lanes_naming("ledger_").len(), 1);
    assert_eq!(
        lanes_naming("ledger_"),
        lanes_naming("DOMAIN public amount")
    );
    // The foreign keys were rehearsed with their tables.
    for i in 1..=6 {
        assert_eq!(
            lanes_naming(&format!("FK CONSTRAINT tenant{i} ")),
            lanes_naming(&format!("TABLE tenant{i} accounts"))
        );
    }
    assert!(pre.iter().all(|l| l.iter().any(|e| e.contains("TABLE"))));
    assert_faithful(&pair).await;
}

/// What the target refuses in one lane rolls every lane back: the clone ends before its first
/// write, naming the object, the target as it was.
#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_in_one_lane_rolls_every_lane_back() {
    let pair = fresh_pair("lanes_refused", true);
    source().psql(
        &pair.src,
        "create table a (id int primary key, v text); insert into a values (1, 'x');
         create table b (id int primary key, v text); insert into b values (1, 'y');
         create table c (id int primary key, v text); insert into c values (1, 'z');
         create schema s; create table s.d (id serial primary key);
         -- only a superuser may create a function in an untrusted language
         create function public.abs_internal(int) returns int language internal strict \
           as 'int4abs';",
    );
    let out = pair.clone_with(true, &["--restore-jobs", "3"]);
    assert_one_line_error(&out, 1, "nothing was written to the target");
    let err = stderr(&out);
    assert!(err.contains("FUNCTION public.abs_internal"), "{err}");
    assert!(
        pair.log()
            .contains("did not run on 3 sessions side by side"),
        "{}",
        pair.log()
    );
    assert_eq!(pair.target_relations().await, 0, "target written");
    let t = pair.dst_cluster.client(&pair.dst).await;
    let functions: i64 = scalar(
        &t,
        "select count(*) from pg_proc where pronamespace = 'public'::regnamespace",
    )
    .await;
    assert_eq!(functions, 0);
}

/// A schema too big for the target's lock table in one transaction is not rehearsed: its
/// pre-data runs in batches, in lanes, each batch committed on its own.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_rehearsal_pre_data_runs_in_lanes() {
    // 10 locks x 20 connections: the 80 tables' rehearsal would need more.
    let small: &'static Cluster = Box::leak(Box::new(Cluster::start_with(
        "lanes_small_locks",
        |_, _| "-c max_locks_per_transaction=10 -c max_connections=20 -c max_wal_senders=10".into(),
    )));
    let pair = fresh_pair_on("lanes_batched", false, source(), small);
    source().psql(
        &pair.src,
        "do $$ begin for i in 1..80 loop \
           execute format('create table t%s (id int primary key, v int); \
                           insert into t%s select g, g from generate_series(1, 5) g', i, i); \
         end loop; end $$",
    );
    pair.clone_ok(
        false,
        &[
            "--restore-jobs",
            "2",
            "--table-jobs",
            "2",
            "--index-jobs",
            "2",
        ],
    );
    let log = pair.log();
    assert!(log.contains("schema not rehearsed on the target"), "{log}");
    assert!(
        log.contains("pre-data runs in batches on 2 sessions side by side"),
        "{log}"
    );
    assert_eq!(lane_lists(&pair, "pre-data").len(), 2);
    assert_faithful(&pair).await;
}

/// A lane that waits for a lock gives up after a while rather than wait for a commit that
/// waits for it: here the lock is held by a session of the target's own (on the catalog that
/// CREATE COLLATION locks whole), the lanes give up, and the schema is created in one
/// transaction once the lock is let go.
#[tokio::test(flavor = "multi_thread")]
async fn a_lane_waiting_for_a_lock_gives_way_to_one_transaction() {
    let pair = fresh_pair("lanes_lock_wait", false);
    source().psql(
        &pair.src,
        "create collation public.c2 from \"C\";
         create table a (id int primary key, v text collate public.c2);
         insert into a values (1, 'x');
         create table b (id int primary key); insert into b values (1);
         create table c (id int primary key); insert into c values (1);",
    );
    let holder = pair.dst_cluster.client(&pair.dst).await;
    holder
        .batch_execute("begin; lock table pg_catalog.pg_collation in share row exclusive mode")
        .await
        .unwrap();
    let args = pair.clone_args(false, &["--restore-jobs", "3"]);
    let clone = std::thread::spawn(move || neoncopy(&args, &[]));
    // Longer than a lane waits; then the lock is let go.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    holder.batch_execute("rollback").await.unwrap();
    let out = clone.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let log = pair.log();
    assert!(
        log.contains("did not run on 3 sessions side by side"),
        "{log}"
    );
    assert!(
        log.contains("canceling statement due to lock timeout"),
        "{log}"
    );
    assert!(log.contains("entries run in one transaction"), "{log}");
    assert_faithful(&pair).await;
}
