//! Faults a migration meets: backends terminated and connections cut mid-COPY (retried), the
//! process killed at different moments or interrupted (resumed), and the refusals of --resume.

use crate::support::proxy::Proxy;
use crate::support::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A source whose steps each last long enough to be caught in the act: a big table for COPY,
/// an index on a slow expression, a materialized view that takes a while to refresh.
const SLOW_SOURCE: &str = "
create table big (id int primary key, pad text not null);
insert into big select g, repeat(md5(g::text), 4) from generate_series(1, 400000) g;
create table other (id int primary key, big_id int not null references big (id), note text);
insert into other select g, g, 'note ' || g from generate_series(1, 5000) g;
create table keyless (v int, w text);
insert into keyless select g % 100, 'dup' from generate_series(1, 20000) g;
create function slow_ident(int) returns int language plpgsql immutable as
  $$ begin perform pg_sleep(0.0005); return $1; end $$;
create table slow_idx (id int not null);
insert into slow_idx select generate_series(1, 3000);
create index slow_idx_expr on slow_idx (slow_ident(id));
alter table slow_idx add constraint slow_idx_pkey primary key (id);
create materialized view slow_mv as select count(*) as n, pg_sleep(1.5)::text as s from other;
create sequence counter_seq;
select setval('counter_seq', 4242);
";

fn spawn_clone(pair: &Pair, extra: &[&str]) -> Child {
    let mut args = vec![
        "clone".to_string(),
        "--source".into(),
        pair.source_uri(),
        "--target".into(),
        pair.target_uri(false),
        "--dir".into(),
        pair.workdir.path().display().to_string(),
        "--retry-delay".into(),
        "0.2".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    pair.note_clone(false, extra);
    Command::new(env!("CARGO_BIN_EXE_neoncopy"))
        .args(&args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start neoncopy")
}

pub(crate) fn progress(dir: &Path) -> Option<Value> {
    if !dir.join("state.db").exists() {
        return None;
    }
    let out = neoncopy(
        &[
            "list".into(),
            "progress".into(),
            "--json".into(),
            "--dir".into(),
            dir.display().to_string(),
        ],
        &[],
    );
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Polls until `cond` holds or the child ends; panics after a minute.
pub(crate) async fn wait_until(child: &mut Child, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if cond() {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut err);
            }
            panic!("the clone ended ({status}) before {what}:\n{err}");
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

pub(crate) fn worker_doing(p: &Value, prefix: &str) -> bool {
    p["workers"].as_array().is_some_and(|w| {
        w.iter()
            .any(|w| w["doing"].as_str().unwrap_or("").starts_with(prefix))
    })
}

/// The slow expression index is being built: alone, or (a small table) in one batch with the
/// table's other indexes.
fn building_slow_index(p: &Value) -> bool {
    worker_doing(p, "CREATE INDEX public.slow_idx_expr")
        || worker_doing(p, "INDEXES public.slow_idx")
}

fn finish(child: Child) -> std::process::Output {
    child.wait_with_output().unwrap()
}

pub(crate) fn kill9(child: &mut Child) {
    Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
}

/// Terminates the backends of one server whose query starts with `prefix` (lowercase).
async fn terminate(cluster: &Cluster, db: &str, prefix: &str) -> i64 {
    let c = cluster.client("postgres").await;
    c.query_one(
        "select count(pg_terminate_backend(pid)) from pg_stat_activity \
         where datname = $1 and application_name like 'neoncopy-%' and lower(query) like $2",
        &[&db, &format!("{prefix}%")],
    )
    .await
    .unwrap()
    .get(0)
}

async fn backend_running(cluster: &Cluster, db: &str, prefix: &str) -> bool {
    let c = cluster.client("postgres").await;
    c.query_one(
        "select count(*) > 0 from pg_stat_activity \
         where datname = $1 and application_name like 'neoncopy-%' and state = 'active' \
           and lower(query) like $2",
        &[&db, &format!("{prefix}%")],
    )
    .await
    .unwrap()
    .get(0)
}

fn attempts(pair: &Pair, table: &str) -> i64 {
    pair.state()
        .query_row(
            "select max(attempts) from unit where table_name = ?1",
            [table],
            |r| r.get(0),
        )
        .unwrap()
}

async fn terminated_mid_copy_is_retried(test: &str, on_source: bool) {
    let pair = fresh_pair(test, false);
    source().psql(&pair.src, SLOW_SOURCE);
    let mut child = spawn_clone(&pair, &["--table-jobs", "1"]);
    let (cluster, db, prefix) = if on_source {
        (source(), pair.src.clone(), "copy \"public\".\"big\"")
    } else {
        (target(), pair.dst.clone(), "copy \"public\".\"big\"")
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "never saw the COPY of big");
        assert!(child.try_wait().unwrap().is_none(), "clone ended too early");
        if backend_running(cluster, &db, prefix).await {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if terminate(cluster, &db, prefix).await > 0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = finish(child);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("copied again from scratch"), "{err}");
    assert!(attempts(&pair, "big") >= 2);
    assert_faithful(&pair).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn source_backend_terminated_mid_copy_is_retried() {
    terminated_mid_copy_is_retried("kill_src_backend", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn target_backend_terminated_mid_copy_is_retried() {
    terminated_mid_copy_is_retried("kill_dst_backend", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_cut_by_the_network_are_retried() {
    let pair = fresh_pair("proxy_cut", false);
    source().psql(&pair.src, SLOW_SOURCE);
    let proxy = Proxy::start(target().port).await;
    let via_proxy = format!(
        "postgresql://postgres@127.0.0.1:{}/{}",
        proxy.port, pair.dst
    );
    pair.note_clone(false, &[]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_neoncopy"))
        .args([
            "clone",
            "--source",
            &pair.source_uri(),
            "--target",
            &via_proxy,
            "--dir",
            &pair.workdir.path().display().to_string(),
            "--retry-delay",
            "0.2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let dir = pair.workdir.path().to_path_buf();
    // Cut everything twice: while big is copying, and while the slow index builds.
    wait_until(&mut child, "COPY of big", || {
        progress(&dir).is_some_and(|p| worker_doing(&p, "COPY public.big"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.cut_all();
    wait_until(&mut child, "index build", || {
        progress(&dir).is_some_and(|p| building_slow_index(&p))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.cut_all();
    let out = finish(child);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("retrying") || err.contains("trying again") || err.contains("copied again"),
        "{err}"
    );
    assert_faithful(&pair).await;
}

/// Kills the clone with SIGKILL once `moment` holds, then resumes it to an identical copy.
async fn killed_then_resumed(test: &str, moment: &str, target_setup: Option<&str>) {
    let pair = fresh_pair(test, false);
    source().psql(&pair.src, SLOW_SOURCE);
    source().psql(&pair.src, &fixture("users"));
    if let Some(sql) = target_setup {
        target().psql(&pair.dst, sql);
    }
    let dir = pair.workdir.path().to_path_buf();
    let mut child = spawn_clone(&pair, &["--table-jobs", "2", "--index-jobs", "2"]);
    match moment {
        "prepare" => {
            // The pre-data batch runs in one transaction, slowed by the target's event
            // trigger: kill it halfway.
            wait_until(&mut child, "pre-data restore", || {
                progress(&dir).is_some_and(|p| p["current_step"] == "Prepare Schema")
            })
            .await;
            tokio::time::sleep(Duration::from_millis(800)).await;
        }
        "copy" => {
            wait_until(&mut child, "mid-COPY", || {
                progress(&dir).is_some_and(|p| {
                    p["tables"]["done"].as_u64().unwrap_or(0) >= 1
                        && worker_doing(&p, "COPY public.big")
                        && p["bytes_copied"].as_u64().unwrap_or(0) > 1_000_000
                })
            })
            .await
        }
        "index" => {
            wait_until(&mut child, "index build", || {
                progress(&dir).is_some_and(|p| building_slow_index(&p))
            })
            .await
        }
        "finalize" => {
            wait_until(&mut child, "finalize", || {
                progress(&dir).is_some_and(|p| p["current_step"] == "Finalize Schema")
            })
            .await;
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        other => panic!("unknown moment {other}"),
    }
    kill9(&mut child);
    let p = progress(&dir).expect("state after the kill");
    assert_eq!(p["status"], "interrupted", "{p}");

    // Resuming needs --not-consistent: the snapshot died with the process.
    let refused = pair.clone_with(false, &["--resume"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("--not-consistent"),
        "{}",
        stderr(&refused)
    );

    let out = pair.clone_with(
        false,
        &["--resume", "--not-consistent", "--retry-delay", "0.2"],
    );
    assert!(out.status.success(), "resume failed:\n{}", stderr(&out));
    assert!(stderr(&out).contains("resuming"), "{}", stderr(&out));
    if target_setup.is_some() {
        target().psql(
            &pair.dst,
            "drop event trigger if exists slow_ddl; drop function if exists slow_ddl();",
        );
    }
    assert_faithful(&pair).await;
    let p = progress(&dir).unwrap();
    assert_eq!(p["status"], "done");
    assert_eq!(p["tables"]["done"], p["tables"]["total"]);
}

/// Makes the pre-data restore slow enough to be caught: each CREATE TABLE sleeps.
const SLOW_DDL: &str = "
create function slow_ddl() returns event_trigger language plpgsql as
  $$ begin perform pg_sleep(0.4); end $$;
create event trigger slow_ddl on ddl_command_end when tag in ('CREATE TABLE')
  execute function slow_ddl();
";

#[tokio::test(flavor = "multi_thread")]
async fn killed_during_schema_restore_then_resumed() {
    killed_then_resumed("kill_prepare", "prepare", Some(SLOW_DDL)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_mid_copy_then_resumed() {
    killed_then_resumed("kill_copy", "copy", None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_during_index_builds_then_resumed() {
    killed_then_resumed("kill_index", "index", None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_during_finalize_then_resumed() {
    killed_then_resumed("kill_finalize", "finalize", None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_rolls_back_and_leaves_a_resumable_state() {
    let pair = fresh_pair("ctrl_c", false);
    source().psql(&pair.src, SLOW_SOURCE);
    let dir = pair.workdir.path().to_path_buf();
    let mut child = spawn_clone(&pair, &["--table-jobs", "1"]);
    let mut mid_copy = None;
    wait_until(&mut child, "mid-COPY", || {
        mid_copy = progress(&dir).filter(|p| {
            worker_doing(p, "COPY public.big")
                && p["bytes_copied"].as_u64().unwrap_or(0) > 1_000_000
        });
        mid_copy.is_some()
    })
    .await;
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    // The largest table goes first: its rows count while it is copied, before any table is
    // done; the total is the tables' size on disk until then.
    let p = mid_copy.unwrap();
    assert_eq!(p["tables"]["done"], 0, "{p}");
    assert!(p["rows_copied"].as_u64().unwrap() > 1000, "{p}");
    assert_eq!(p["total_is_estimate"], true, "{p}");
    let on_disk: u64 = list_tables_bytes(&pair);
    assert_eq!(p["estimated_total_bytes"].as_u64().unwrap(), on_disk, "{p}");
    // check announces the same figure.
    let (_, checks) = check(&[
        "--source".into(),
        pair.source_uri(),
        "--target".into(),
        pair.target_uri(false),
    ]);
    let size = find(&checks, "size")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        size.starts_with(&format!(
            "about {} of table data in 4 tables",
            neoncopy::fmt::bytes(on_disk)
        )),
        "{size}"
    );
    let out = finish(child);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted by SIGINT"), "{err}");
    assert!(
        err.contains("neoncopy clone --resume --not-consistent --dir"),
        "{err}"
    );
    // The table in flight was rolled back: nothing half-loaded.
    let rows = target().psql(&pair.dst, "select count(*) from big");
    assert_eq!(rows.trim(), "0");
    let p = progress(&dir).unwrap();
    assert_eq!(p["status"], "interrupted");
    // The pause before the resume is wall-clock time, not active time.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let out = pair.clone_ok(false, &["--resume", "--not-consistent"]);
    let err = stderr(&out);
    assert!(err.contains("active over 2 runs"), "{err}");
    let p = progress(&dir).unwrap();
    assert_eq!(p["sessions"], 2, "{p}");
    let (wall, active) = (
        p["elapsed_secs"].as_f64().unwrap(),
        p["active_secs"].as_f64().unwrap(),
    );
    assert!(wall - active >= 3.0, "wall {wall}, active {active}");
    assert_eq!(p["total_is_estimate"], false, "{p}");
    assert_eq!(p["estimated_total_bytes"], p["bytes_copied"], "{p}");
    assert_faithful(&pair).await;
}

/// What `list tables` says the selected tables take on disk, in all.
fn list_tables_bytes(pair: &Pair) -> u64 {
    list_tables_json(pair, &[])
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["bytes"].as_u64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_refusals_and_a_resume_after_a_failure() {
    let pair = fresh_pair("resume_refusals", false);
    source().psql(&pair.src, &fixture("users"));
    let code_and_err = |out: std::process::Output| (out.status.code(), stderr(&out));

    let (code, err) = code_and_err(pair.clone_with(false, &["--resume", "--not-consistent"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("nothing to resume"), "{err}");

    // A run that fails once it has started: a snapshot that does not exist.
    let (code, err) = code_and_err(pair.clone_with(false, &["--snapshot", "00000003-0000001B-1"]));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("continue with: neoncopy clone --resume --not-consistent"),
        "{err}"
    );

    let (code, err) = code_and_err(pair.clone_with(false, &[]));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--resume") && err.contains("--restart"),
        "{err}"
    );

    let other = format!("postgresql://postgres@127.0.0.1:{}/postgres", target().port);
    let (code, err) = code_and_err(neoncopy(
        &[
            "clone".into(),
            "--source".into(),
            pair.source_uri(),
            "--target".into(),
            other,
            "--dir".into(),
            pair.workdir.path().display().to_string(),
            "--resume".into(),
            "--not-consistent".into(),
        ],
        &[],
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("cannot resume: --target is")
            && err.contains("but the interrupted clone used"),
        "{err}"
    );

    // Flags are named as typed.
    let (code, err) = code_and_err(pair.clone_with(false, &["--resume", "--no-comments"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("cannot resume: --no-comments was not given to the interrupted clone"),
        "{err}"
    );

    let (code, err) = code_and_err(pair.clone_with(false, &["--resume"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("add --not-consistent"), "{err}");

    pair.clone_ok(false, &["--resume", "--not-consistent"]);
    assert_faithful(&pair).await;

    let (code, err) = code_and_err(pair.clone_with(false, &["--resume", "--not-consistent"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("already done"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn statement_timeout_on_the_target_does_not_break_the_load() {
    let pair = fresh_pair("stmt_timeout", false);
    source().psql(&pair.src, SLOW_SOURCE);
    target().psql(
        &pair.dst,
        "do $$ begin execute format('alter database %I set statement_timeout = %L', current_database(), '50ms'); end $$;",
    );
    pair.clone_ok(false, &["--skip-db-properties"]);
    target().psql(
        &pair.dst,
        "do $$ begin execute format('alter database %I reset statement_timeout', current_database()); end $$;",
    );
    // Database settings differ by design here (skipped); compare the rest.
    assert_eq!(
        source().schema_dump(&pair.src),
        target().schema_dump(&pair.dst)
    );
    let rows = target().psql(&pair.dst, "select count(*) from big");
    assert_eq!(rows.trim(), "400000");
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_while_copying_parts_then_resumed_without_duplicates() {
    let pair = fresh_pair("kill_parts", false);
    source().psql(&pair.src, SLOW_SOURCE);
    let dir = pair.workdir.path().to_path_buf();
    let mut child = spawn_clone(
        &pair,
        &[
            "--table-jobs",
            "2",
            "--split-tables-larger-than",
            "8MB",
            "--split-max-parts",
            "6",
        ],
    );
    wait_until(&mut child, "a part done while others copy", || {
        progress(&dir).is_some_and(|p| {
            p["parts"]["done"].as_u64().unwrap_or(0) >= 2
                && worker_doing(&p, "COPY public.big (part")
        })
    })
    .await;
    kill9(&mut child);
    let parts_before: String = target().psql(&pair.dst, "select count(*) from neoncopy.parts");
    assert!(parts_before.trim().parse::<i64>().unwrap() >= 1);
    // The same settings as the interrupted run (another split would be refused).
    let out = pair.clone_with(
        false,
        &[
            "--resume",
            "--not-consistent",
            "--retry-delay",
            "0.2",
            "--table-jobs",
            "2",
            "--split-tables-larger-than",
            "8MB",
            "--split-max-parts",
            "6",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("table parts were copied before"),
        "{}",
        stderr(&out)
    );
    assert_faithful(&pair).await;
}

/// Small tables are copied several to a transaction. A backend terminated while one of them
/// copies rolls the whole batch back; the batch is copied again, without duplicates.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_of_small_tables_cut_off_is_copied_again_whole() {
    let pair = fresh_pair("kill_batch", false);
    let mut sql = String::from(
        "create function slow_check(int) returns bool language plpgsql immutable as
           $$ begin if $1 % 50 = 0 then perform pg_sleep(0.1); end if; return $1 >= 0; end $$;
         create table t_slow (id int primary key, v int check (slow_check(v)));
         insert into t_slow select g, g from generate_series(1, 1000) g;",
    );
    for i in 0..30 {
        sql.push_str(&format!(
            "create table t{i} (id int primary key, note text);
             insert into t{i} select g, 'row ' || g from generate_series(1, 20) g;"
        ));
    }
    source().psql(&pair.src, &sql);
    let child = spawn_clone(&pair, &["--table-jobs", "1"]);
    // The CHECK runs on the target for each row loaded: two seconds of COPY to catch. The
    // table is the largest, so it opens a batch.
    let prefix = "copy \"public\".\"t_slow\"";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "never saw the COPY of t_slow");
        if terminate(target(), &pair.dst, prefix).await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = finish(child);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("tables are copied again from scratch"),
        "{err}"
    );
    // Its batch companions were copied again with it.
    let redone = pair
        .state_count("select count(*) from unit where attempts >= 2 and table_name <> 't_slow'");
    assert!(redone >= 1, "no other table was in t_slow's batch");
    assert!(attempts(&pair, "t_slow") >= 2);
    assert_faithful(&pair).await;
}

/// A table the target refuses fails the clone, named; the other tables of its batch are
/// recorded as rolled back with it, not as failing themselves.
#[tokio::test(flavor = "multi_thread")]
async fn a_table_the_target_refuses_fails_its_batch_and_is_named() {
    let pair = fresh_pair("refused_batch", false);
    let mut sql = String::from(
        "create function on_source() returns bool language sql stable as
           $$ select current_database() like '%\\_src' $$;
         create table t_refused (id int primary key, ok bool check (ok = on_source()));
         insert into t_refused select g, true from generate_series(1, 600) g;",
    );
    for i in 0..10 {
        sql.push_str(&format!(
            "create table t{i} (id int primary key);
             insert into t{i} select generate_series(1, 20);"
        ));
    }
    source().psql(&pair.src, &sql);
    let out = pair.clone_with(false, &["--table-jobs", "1"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("t_refused"), "{err}");
    assert!(err.contains("violates check constraint"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let db = pair.state();
    let state = |table: &str| -> (String, String) {
        db.query_row(
            "select state, coalesce(error, '') from unit where table_name = ?1",
            [table],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    let (refused, why) = state("t_refused");
    assert_eq!(refused, "failed");
    assert!(why.contains("violates check constraint"), "{why}");
    assert!(
        !why.starts_with("rolled back"),
        "t_refused is the one at fault: {why}"
    );
    let companions: i64 = db
        .query_row(
            "select count(*) from unit where state = 'failed' \
             and error like 'rolled back with its batch:%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(companions >= 1, "no table shared t_refused's batch");
    // The copies never finished: the sequences, which follow them, never started.
    assert_eq!(
        pair.state_count("select count(*) from step where name = 'sequences'"),
        0
    );
}

/// The sequences are set once the copies are done, beside the index builds left: an index
/// the target refuses then fails the clone after the sequences were set, and they are
/// recorded as such. The resume builds the index and does not set them again.
#[tokio::test(flavor = "multi_thread")]
async fn an_index_refused_after_the_copies_leaves_the_sequences_set() {
    let pair = fresh_pair("index_after_sequences", false);
    source().psql(
        &pair.src,
        "create table t (id serial primary key, v int);
         insert into t (v) select g % 7 from generate_series(1, 300) g;
         create index t_v on t (v);
         create sequence counter_seq;
         select setval('counter_seq', 4242);",
    );
    // CREATE INDEX (the primary key is an ALTER TABLE) waits a second, then fails.
    target().psql(
        &pair.dst,
        "create function no_index() returns event_trigger language plpgsql as
           $$ begin perform pg_sleep(1); raise exception 'no index today'; end $$;
         create event trigger no_index on ddl_command_start when tag in ('CREATE INDEX')
           execute function no_index();",
    );
    let out = pair.clone_with(false, &["--retry-delay", "0.2"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no index today"), "{err}");
    let ended: i64 = pair
        .state_count("select count(*) from step where name = 'sequences' and ended_at is not null");
    assert_eq!(ended, 1, "{err}");
    let target_client = target().client(&pair.dst).await;
    let value: i64 = scalar(&target_client, "select last_value from counter_seq").await;
    assert_eq!(value, 4242);
    let value: i64 = scalar(&target_client, "select last_value from t_id_seq").await;
    assert_eq!(value, 300);

    target().psql(
        &pair.dst,
        "drop event trigger no_index; drop function no_index();",
    );
    let out = pair.clone_with(
        false,
        &["--resume", "--not-consistent", "--retry-delay", "0.2"],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "resume failed:\n{err}");
    assert!(
        pair.log().contains("Reset Sequences: done before, skipped"),
        "{}",
        pair.log()
    );
    assert_faithful(&pair).await;
}

/// A small tmpfs as a tablespace of the target cluster, holding the target database: the
/// target's disk, made small enough to fill. Removed (database, tablespace, mount) on drop.
struct SmallDisk {
    dir: std::path::PathBuf,
    tablespace: String,
    db: String,
}

impl SmallDisk {
    fn new(db: &str, megabytes: u32) -> SmallDisk {
        assert!(
            is_root(),
            "this test mounts a tmpfs to fill the target's disk: run the suite as root (CI does)"
        );
        let tablespace = format!("small_disk_{}", std::process::id());
        let dir = std::env::temp_dir().join(&tablespace);
        std::fs::create_dir_all(&dir).unwrap();
        let disk = SmallDisk {
            dir,
            tablespace,
            db: db.to_string(),
        };
        disk.mount(&format!("size={megabytes}m"));
        let ok = Command::new("chown")
            .arg("postgres:")
            .arg(&disk.dir)
            .status()
            .unwrap();
        assert!(ok.success());
        target().psql(
            "postgres",
            &format!(
                "create tablespace {} location '{}'; alter database \"{db}\" set tablespace {};",
                disk.tablespace,
                disk.dir.display(),
                disk.tablespace
            ),
        );
        disk
    }

    fn mount(&self, options: &str) {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount a tmpfs at {}: {}",
            self.dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        target().try_psql(
            "postgres",
            &format!(
                "drop database if exists \"{}\" with (force); drop tablespace if exists {};",
                self.db, self.tablespace
            ),
        );
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The target's disk fills up in the middle of the copy (on Neon: the plan's storage limit).
/// The clone stops with one line saying so and how to go on; once there is room, --resume
/// finishes it, without duplicates.
#[tokio::test(flavor = "multi_thread")]
async fn target_disk_full_stops_with_a_clear_line_then_resumes() {
    let pair = fresh_pair("disk_full", false);
    source().psql(
        &pair.src,
        "create table big (id int primary key, pad text not null);
         insert into big select g, repeat(md5(g::text), 3) from generate_series(1, 200000) g;
         create table small (id int primary key);
         insert into small select generate_series(1, 100);",
    );
    // An empty database takes about 8 MB: 16 MB leaves room for the schema, not for big's
    // 25 MB.
    let disk = SmallDisk::new(&pair.dst, 16);
    let out = pair.clone_with(false, &["--table-jobs", "1"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the target ran out of storage")
            && err.contains("No space left on device")
            && err.contains("continue with: neoncopy clone --resume --not-consistent"),
        "{err}"
    );
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "one line: {err}");
    assert!(!err.contains("panicked"), "{err}");

    disk.mount("remount,size=256m");
    let out = pair.clone_with(false, &["--resume", "--not-consistent"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_faithful(&pair).await;
    drop(disk);
}

/// The processes whose parent is `pid`, with their command names.
fn children_of(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let comm = head
            .split_once(" (")
            .map(|(_, c)| c.to_string())
            .unwrap_or_default();
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push((child, comm));
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
}

/// Two SIGTERMs in a row: the process exits at once (130) and ends its pg_dump first, which
/// would otherwise outlive it.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_ends_the_children_too() {
    let pair = fresh_pair("two_signals", false);
    source().psql(&pair.src, &fixture("users"));
    // pg_dump waits for this lock, so it is running when the signals come.
    let blocker = source().client(&pair.src).await;
    blocker
        .batch_execute("begin; lock table users in access exclusive mode")
        .await
        .unwrap();
    let mut child = spawn_clone(&pair, &[]);
    let pid = child.id();
    let mut dump = None;
    for _ in 0..300 {
        if let Some((p, _)) = children_of(pid).into_iter().find(|(_, c)| c == "pg_dump") {
            dump = Some(p);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let Some(dump) = dump else {
        let _ = child.kill();
        panic!("pg_dump never started: {}", stderr(&finish(child)));
    };
    for _ in 0..2 {
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
    }
    let out = finish(child);
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let mut gone = false;
    for _ in 0..100 {
        if !alive(dump) {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    blocker.batch_execute("rollback").await.unwrap();
    assert!(gone, "pg_dump {dump} outlived neoncopy: {}", stderr(&out));
}

/// The Neon case: a clone with --no-owner --no-acl, connections from the environment, is
/// interrupted; the command it prints, run exactly as printed, finishes it (--resume takes
/// the interrupted clone's flags from the work directory).
#[tokio::test(flavor = "multi_thread")]
async fn the_printed_resume_command_works_as_printed() {
    let pair = fresh_pair("printed_resume", true);
    source().psql(&pair.src, SLOW_SOURCE);
    let dir = pair.workdir.path().to_path_buf();
    let env = [
        ("NEONCOPY_SOURCE_PGURI", pair.source_uri()),
        ("NEONCOPY_TARGET_PGURI", pair.target_uri(true)),
    ];
    pair.note_clone(true, &[]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_neoncopy"))
        .args([
            "clone",
            "--no-owner",
            "--no-acl",
            "--table-jobs",
            "1",
            "--dir",
            &dir.display().to_string(),
        ])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(&mut child, "mid-COPY", || {
        progress(&dir).is_some_and(|p| worker_doing(&p, "COPY public.big"))
    })
    .await;
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = finish(child);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    let printed = err
        .split("continue with: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no resume command in {err}"))
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_string();
    assert!(!printed.contains("--source"), "{printed}");
    let words: Vec<String> = printed.split_whitespace().map(str::to_string).collect();
    assert_eq!(words[0], "neoncopy", "{printed}");
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = neoncopy(&words[1..], &env_refs);
    assert!(out.status.success(), "{printed}: {}", stderr(&out));
    assert_faithful(&pair).await;
}
