//! What clone refuses to do, and how it says so: bad input gets one clear line, a non-zero exit
//! code, and the target is left untouched. Passwords appear nowhere.

use crate::support::*;

/// The target's user tables, to prove it was not touched.
fn target_tables(db: &str) -> String {
    target().psql(
        db,
        "select coalesce(string_agg(format('%I.%I', schemaname, tablename), ',' order by 1), '') \
         from pg_tables where schemaname not in ('pg_catalog', 'information_schema')",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_to_copy_a_database_onto_itself() {
    let pair = fresh_pair("same_db", false);
    source().psql(&pair.src, &fixture("users"));
    // The same database written two ways.
    let kv = format!(
        "host=127.0.0.1 port={} user=postgres dbname={}",
        source().port,
        pair.src
    );
    let out = neoncopy(
        &[
            "clone".into(),
            "--source".into(),
            pair.source_uri(),
            "--target".into(),
            kv,
            "--dir".into(),
            pair.workdir.path().display().to_string(),
        ],
        &[],
    );
    assert_one_line_error(&out, 1, "same database");
    assert_eq!(
        source()
            .psql(&pair.src, "select count(*) from users")
            .trim(),
        "2"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_a_target_that_holds_tables_and_leaves_it_untouched() {
    let pair = fresh_pair("nonempty", false);
    source().psql(&pair.src, &fixture("users"));
    target().psql(
        &pair.dst,
        "create table precious (id int); insert into precious values (1);",
    );
    let out = pair.clone_with(false, &[]);
    assert_one_line_error(&out, 1, "already holds 1 table(s) (public.precious)");
    assert!(stderr(&out).contains("--drop-if-exists"));
    assert_eq!(target_tables(&pair.dst).trim(), "public.precious");
}

#[tokio::test(flavor = "multi_thread")]
async fn drop_if_exists_replaces_a_previous_copy() {
    let pair = fresh_pair("drop_if_exists", false);
    source().psql(&pair.src, &fixture("constraints"));
    source().psql(&pair.src, &fixture("large_objects"));
    pair.clone_ok(false, &[]);
    // Changes on both sides since: the second clone must give exactly the source again.
    source().psql(
        &pair.src,
        "insert into rooms values (99, 'new room'); delete from tree where id = 4;",
    );
    target().psql(&pair.dst, "insert into rooms values (1000, 'target only');");
    let out = pair.clone_with(false, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "second clone without the flag must refuse"
    );
    pair.clone_ok(false, &["--drop-if-exists"]);
    assert_faithful(&pair).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_errors_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let good = source().uri("postgres");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "clone".into(),
                "--target".into(),
                good.clone(),
                "--dir".into(),
                d.clone(),
            ],
            "no source database",
        ),
        (
            vec![
                "clone".into(),
                "--source".into(),
                good.clone(),
                "--dir".into(),
                d.clone(),
            ],
            "no target database",
        ),
        (
            vec![
                "clone".into(),
                "--source".into(),
                "postgresql://u:pw@h:notaport/db".into(),
                "--target".into(),
                good.clone(),
            ],
            "invalid source connection string: invalid port",
        ),
        (
            vec![
                "clone".into(),
                "--source".into(),
                good.clone(),
                "--target".into(),
                "host=h nosuchkey=1".into(),
            ],
            "invalid target connection string: invalid connection option \"nosuchkey\"",
        ),
        (
            vec!["clone".into(), "--table-jobs".into(), "0".into()],
            "--table-jobs",
        ),
        (
            vec!["clone".into(), "--index-jobs=-3".into()],
            "--index-jobs",
        ),
        (
            vec![
                "clone".into(),
                "--snapshot".into(),
                "x".into(),
                "--not-consistent".into(),
            ],
            "--not-consistent",
        ),
    ];
    for (args, needle) in cases {
        let out = neoncopy(&args, &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: expected {needle:?} in:\n{err}"
        );
        assert!(!err.contains("pw@"), "password echoed: {err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_strings_come_from_the_environment() {
    let pair = fresh_pair("env_uris", false);
    source().psql(&pair.src, &fixture("users"));
    let dir = pair.workdir.path().display().to_string();
    let args = vec!["clone".to_string(), "--dir".into(), dir];
    // pgcopydb's variable names work too, so the commands of Neon's guide carry over.
    let out = neoncopy(
        &args,
        &[
            ("PGCOPYDB_SOURCE_PGURI", &pair.source_uri()),
            ("PGCOPYDB_TARGET_PGURI", &pair.target_uri(false)),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    pair.note_clone(false, &[]);
    assert_faithful(&pair).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_server_fails_clearly_without_showing_the_password() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = neoncopy(
        &[
            "clone".into(),
            "--source".into(),
            format!("postgresql://someone:s3cr3t-pw@127.0.0.1:{port}/db?connect_timeout=5"),
            "--target".into(),
            target().uri("postgres"),
            "--dir".into(),
            dir.path().display().to_string(),
        ],
        &[],
    );
    assert_one_line_error(&out, 1, "connect to source");
    assert!(!stderr(&out).contains("s3cr3t-pw"));
}

#[tokio::test(flavor = "multi_thread")]
async fn passwords_stay_out_of_logs_files_and_child_arguments() {
    let pair = fresh_pair("no_password_leak", false);
    source().psql(&pair.src, &fixture("users"));
    // The test servers trust loopback, so the passwords are sent but not checked: what matters
    // here is where they travel.
    let src = format!(
        "postgresql://postgres:src-s3cr3t@127.0.0.1:{}/{}",
        source().port,
        pair.src
    );
    let dst = format!(
        "host=127.0.0.1 port={} user=postgres dbname={} password=dst-s3cr3t",
        target().port,
        pair.dst
    );
    let out = neoncopy(
        &[
            "clone".into(),
            "--source".into(),
            src,
            "--target".into(),
            dst,
            "--dir".into(),
            pair.workdir.path().display().to_string(),
            "--verbose".into(),
        ],
        &[],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    // --verbose logs every child command line.
    assert!(
        err.contains("running "),
        "child commands are logged with --verbose:\n{err}"
    );
    for leak in ["src-s3cr3t", "dst-s3cr3t"] {
        assert!(!err.contains(leak), "password in logs");
        assert!(!String::from_utf8_lossy(&out.stdout).contains(leak));
        for entry in std::fs::read_dir(pair.workdir.path()).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(leak),
                "password in {}",
                path.display()
            );
        }
    }
    pair.note_clone(false, &[]);
    assert_faithful(&pair).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn work_directory_in_use_is_refused() {
    let pair = fresh_pair("locked_dir", false);
    source().psql(&pair.src, &fixture("users"));
    let lock = std::fs::File::create(pair.workdir.path().join("neoncopy.lock")).unwrap();
    lock.try_lock().unwrap();
    let out = pair.clone_with(false, &[]);
    assert_one_line_error(&out, 1, "is in use by another neoncopy");
    assert_eq!(target_tables(&pair.dst).trim(), "");
    drop(lock);
    pair.clone_ok(false, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn unwritable_work_directory_is_refused() {
    let pair = fresh_pair("bad_dir", false);
    source().psql(&pair.src, &fixture("users"));
    let file = pair.workdir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let out = neoncopy(
        &[
            "clone".into(),
            "--source".into(),
            pair.source_uri(),
            "--target".into(),
            pair.target_uri(false),
            "--dir".into(),
            file.join("sub").display().to_string(),
        ],
        &[],
    );
    assert_one_line_error(&out, 1, "create work directory");
    assert_eq!(target_tables(&pair.dst).trim(), "");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_and_missing_database_fail_clearly() {
    let pair = fresh_pair("bad_login", false);
    source().psql(&pair.src, &fixture("users"));
    let wrong = format!(
        "postgresql://{PASSWORD_ROLE}:not-it-s3cr3t@127.0.0.1:{}/{}",
        source().port,
        pair.src
    );
    let run = |src: String, dst: String| {
        neoncopy(
            &[
                "clone".into(),
                "--source".into(),
                src,
                "--target".into(),
                dst,
                "--dir".into(),
                pair.workdir.path().display().to_string(),
            ],
            &[],
        )
    };
    let out = run(wrong, pair.target_uri(false));
    assert_one_line_error(
        &out,
        1,
        "password authentication failed for user \"pw_user\"",
    );
    assert!(stderr(&out).contains("connect to source"));
    assert!(!stderr(&out).contains("not-it-s3cr3t"));
    assert_eq!(target_tables(&pair.dst).trim(), "");

    let missing = format!(
        "postgresql://postgres@127.0.0.1:{}/no_such_db",
        target().port
    );
    let out = run(pair.source_uri(), missing);
    assert_one_line_error(&out, 1, "database \"no_such_db\" does not exist");
    assert!(stderr(&out).contains("connect to target"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_password_reaches_pg_dump_through_the_environment() {
    let pair = fresh_pair("password_login", false);
    source().psql(&pair.src, &fixture("users"));
    source().psql(&pair.src, &fixture("types"));
    // The password has characters that need percent-encoding in a URI.
    let src = format!(
        "postgresql://{PASSWORD_ROLE}:{}@127.0.0.1:{}/{}",
        PASSWORD.replace('%', "%25"),
        source().port,
        pair.src
    );
    let out = neoncopy(
        &[
            "clone".into(),
            "--source".into(),
            src,
            "--target".into(),
            pair.target_uri(false),
            "--dir".into(),
            pair.workdir.path().display().to_string(),
            "--no-owner".into(),
            "--no-acl".into(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains(PASSWORD));
    pair.note_clone(false, &["--no-owner", "--no-acl"]);
    assert_faithful(&pair).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_too_old_pg_dump_is_refused_before_writing() {
    let pair = fresh_pair("no_pg_dump", false);
    source().psql(&pair.src, &fixture("users"));
    let empty = tempfile::tempdir().unwrap();
    let run = |bindir: &std::path::Path| {
        neoncopy(
            &[
                "clone".into(),
                "--source".into(),
                pair.source_uri(),
                "--target".into(),
                pair.target_uri(false),
                "--dir".into(),
                pair.workdir.path().display().to_string(),
            ],
            &[("NEONCOPY_PG_BINDIR", &bindir.display().to_string())],
        )
    };
    let out = run(empty.path());
    assert_one_line_error(&out, 1, "pg_dump and pg_restore not found");
    assert!(stderr(&out).contains("apt-get install postgresql-client-"));
    let old = tempfile::tempdir().unwrap();
    for tool in ["pg_dump", "pg_restore"] {
        let path = old.path().join(tool);
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho '{tool} (PostgreSQL) 9.6.24'\n"),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = run(old.path());
    assert_one_line_error(&out, 1, "every pg_dump found is older");
    assert_eq!(target_tables(&pair.dst).trim(), "");
}

/// Creates tables `t<from>` to `t<to>` (a key and a row each), committing as it goes: one
/// transaction creating them all would itself overflow a small lock table.
fn many_tables(cluster: &Cluster, db: &str, from: usize, to: usize) {
    cluster.psql(
        db,
        &format!(
            "do $$ begin for i in {from}..{to} loop \
               execute format('create table t%s (id int primary key, v text); \
                               insert into t%s values (1, ''x'')', i, i); \
               if i % 100 = 0 then commit; end if; \
             end loop; end $$"
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_source_lock_table_is_measured_before_pg_dump_would_overflow_it() {
    // 20 locks x (20 connections + 3 autovacuum workers + launcher + 8 workers + 10 WAL
    // senders) = 840 entries in the source's lock table.
    let small = Cluster::start_with("small_locks", |_, _| {
        "-c max_locks_per_transaction=20 -c max_connections=20 -c max_wal_senders=10".into()
    });
    small.psql("postgres", "create database many");
    many_tables(&small, "many", 1, 700);
    let pair = fresh_pair("locks", false);
    let (src, dst) = (small.uri("many"), pair.target_uri(false));
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--source".into(),
            src.clone(),
            "--target".into(),
            dst.clone(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };

    // 700 tables fit, close to the limit: a warning, and the clone goes on.
    let (_, checks) = check(&args(&[]));
    let locks = find(&checks, "locks");
    assert_eq!(locks["status"], "warn", "{locks}");
    assert!(
        locks["detail"]
            .as_str()
            .unwrap()
            .contains("pg_dump locks 700 tables and views"),
        "{locks}"
    );
    // Each copy worker's read transaction is renewed every few hundred tables: the readers
    // (the sessions whose statements are COPYs; pg_dump, before them, holds one lock per table
    // as it must) never hold a lock per table of the whole database.
    let watcher = small.client("many").await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_neoncopy"))
        .arg("clone")
        .args(args(&["--table-jobs", "1", "--dir"]))
        .arg(pair.workdir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut most = 0i64;
    let mut samples = 0;
    while child.try_wait().unwrap().is_none() {
        let held: i64 = scalar(
            &watcher,
            "select count(*) from pg_locks l join pg_stat_activity a using (pid) \
             where a.application_name like 'neoncopy%' and a.backend_type = 'client backend' \
               and (a.query ilike 'copy%' or a.query ilike 'commit;%') \
               and l.locktype = 'relation' and l.relation >= 16384",
        )
        .await;
        most = most.max(held);
        samples += 1;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(samples > 10, "{samples} samples");
    assert!(
        most < 400,
        "neoncopy's sessions held {most} table locks at once on the source"
    );
    let out = neoncopy(
        &[
            vec!["compare".into(), "data".into(), "--dir".into()],
            vec![pair.workdir.path().display().to_string()],
            args(&[]),
        ]
        .concat(),
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // 800 do not: check says which value to set, and clone refuses before writing anything.
    many_tables(&small, "many", 701, 800);
    let (code, checks) = check(&args(&[]));
    assert_eq!(code, Some(1));
    let locks = find(&checks, "locks");
    assert_eq!(locks["status"], "fail", "{locks}");
    let fix = locks["fix"].as_str().unwrap();
    assert!(
        fix.contains("set max_locks_per_transaction = 64 (or more) on the source and restart it"),
        "{fix}"
    );
    let fresh = fresh_pair("locks_refused", false);
    let out = neoncopy(
        &[
            vec![
                "clone".into(),
                "--source".into(),
                src.clone(),
                "--target".into(),
            ],
            vec![fresh.target_uri(false), "--dir".into()],
            vec![fresh.workdir.path().display().to_string()],
        ]
        .concat(),
        &[],
    );
    assert_one_line_error(&out, 1, "out of shared memory");
    assert_eq!(target_tables(&fresh.dst).trim(), "");
}
