//! TLS, SCRAM and channel binding against a server with certificates made by the test, and
//! `neoncopy check` for each problem that can be provoked locally.

use crate::support::tls::{tls, TLS_PASSWORD, TLS_ROLE};
use crate::support::*;
use serde_json::Value;

/// A fresh database on the TLS cluster, owned by the TLS-only role.
fn tls_database(name: &str) -> String {
    let c = &tls().cluster;
    c.psql("postgres", &format!("drop database if exists \"{name}\""));
    c.psql(
        "postgres",
        &format!("create database \"{name}\" owner {TLS_ROLE}"),
    );
    name.to_string()
}

fn tls_uri(host: &str, db: &str, params: &str) -> String {
    format!(
        "postgresql://{TLS_ROLE}:{TLS_PASSWORD}@{host}:{}/{db}?{params}",
        tls().cluster.port
    )
}

fn clone_to(pair: &Pair, target_uri: &str) -> std::process::Output {
    neoncopy(
        &[
            "clone".into(),
            "--source".into(),
            pair.source_uri(),
            "--target".into(),
            target_uri.into(),
            "--dir".into(),
            pair.workdir.path().display().to_string(),
            "--no-owner".into(),
            "--no-acl".into(),
        ],
        &[],
    )
}

async fn rows_on_tls(db: &str) -> i64 {
    let c = tls().cluster.client(db).await;
    scalar(&c, "select count(*) from users").await
}

#[tokio::test(flavor = "multi_thread")]
async fn clone_over_tls_with_require_verify_full_and_channel_binding() {
    let ca = tls().ca.display().to_string();
    let cases = [
        ("tls_require", "localhost", "sslmode=require".to_string()),
        (
            "tls_verify_full",
            "localhost",
            format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        (
            "tls_verify_full_ip",
            "127.0.0.1",
            format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        (
            "tls_channel_binding",
            "127.0.0.1",
            "sslmode=require&channel_binding=require".to_string(),
        ),
    ];
    for (name, host, params) in cases {
        let pair = fresh_pair(name, false);
        source().psql(&pair.src, &fixture("users"));
        let db = tls_database(&format!("{name}_tls"));
        let out = clone_to(&pair, &tls_uri(host, &db, &params));
        let err = stderr(&out);
        assert!(out.status.success(), "{name}: {err}");
        assert!(!err.contains(TLS_PASSWORD));
        assert_eq!(rows_on_tls(&db).await, 2, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_failures_are_one_clear_line() {
    let pair = fresh_pair("tls_failures", false);
    source().psql(&pair.src, &fixture("users"));
    let db = tls_database("tls_failures_tls");
    let wrong_ca = tls().wrong_ca.display().to_string();
    let cases = [
        (
            tls_uri(
                "localhost",
                &db,
                &format!("sslmode=verify-full&sslrootcert={wrong_ca}"),
            ),
            "certificate verify failed",
        ),
        (
            tls_uri(
                "localhost",
                &db,
                &format!("sslmode=verify-ca&sslrootcert={wrong_ca}"),
            ),
            "certificate verify failed",
        ),
        (
            tls_uri("127.0.0.1", &db, "sslmode=disable"),
            "rejects connection",
        ),
        (
            format!(
                "postgresql://{TLS_ROLE}:wrong-pw@127.0.0.1:{}/{db}?sslmode=require",
                tls().cluster.port
            ),
            "password authentication failed",
        ),
        (
            tls_uri(
                "localhost",
                &db,
                "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
            ),
            "root certificate file /nonexistent/ca.pem does not exist",
        ),
    ];
    for (uri, needle) in cases {
        let out = clone_to(&pair, &uri);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{uri}: {err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "{err}");
        assert!(errors[0].contains(needle), "expected {needle:?}: {err}");
        assert!(errors[0].contains("target"), "the side is named: {err}");
        assert!(!err.contains(TLS_PASSWORD) && !err.contains("wrong-pw"));
    }
    let c = tls().cluster.client(&db).await;
    let n: i64 = scalar(
        &c,
        "select count(*) from pg_tables where schemaname = 'public'",
    )
    .await;
    assert_eq!(n, 0, "nothing written");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_passes_a_sound_setup_and_reports_tls() {
    let pair = fresh_pair("check_ok", false);
    source().psql(&pair.src, &fixture("users"));
    source().psql(&pair.src, &fixture("extensions"));
    let db = tls_database("check_ok_tls");
    let (code, checks) = check(&[
        "--source".into(),
        pair.source_uri(),
        "--target".into(),
        tls_uri("localhost", &db, "sslmode=require"),
        "--no-owner".into(),
        "--no-acl".into(),
    ]);
    let failed: Vec<&Value> = checks.iter().filter(|c| c["status"] == "fail").collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(code, Some(0));
    let t = find(&checks, "target connection");
    assert!(
        t["detail"].as_str().unwrap().contains("encrypted (TLSv1."),
        "{t}"
    );
    assert_eq!(find(&checks, "extensions")["status"], "pass");
    // The text form ends with the verdict line.
    let out = neoncopy(
        &[
            "check".into(),
            "--source".into(),
            pair.source_uri(),
            "--target".into(),
            tls_uri("localhost", &db, "sslmode=require"),
            "--no-owner".into(),
            "--no-acl".into(),
        ],
        &[],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(" failed\n") && text.contains("0 failed"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_finds_what_would_break_a_clone() {
    // A source with an untrusted extension and objects owned by another role, cloned onto a
    // non-superuser target with too many jobs for its connection limit.
    let pair = fresh_pair("check_problems", true);
    source().psql(
        &pair.src,
        "create extension pg_visibility; \
         create table owned (id int); alter table owned owner to app_owner;",
    );
    let (code, checks) = check(&[
        "--source".into(),
        pair.source_uri(),
        "--target".into(),
        pair.target_uri(true),
        "--table-jobs".into(),
        "200".into(),
        "--index-jobs".into(),
        "200".into(),
    ]);
    assert_eq!(code, Some(1));
    let ext = find(&checks, "extensions");
    assert_eq!(ext["status"], "fail", "{ext}");
    assert!(
        ext["detail"].as_str().unwrap().contains("not trusted"),
        "{ext}"
    );
    assert!(
        ext["detail"].as_str().unwrap().contains("pg_visibility"),
        "{ext}"
    );
    let role = find(&checks, "target role");
    assert_eq!(role["status"], "fail", "{role}");
    assert!(
        role["fix"].as_str().unwrap().contains("--no-owner"),
        "{role}"
    );
    let conns = find(&checks, "connections");
    assert_eq!(conns["status"], "fail", "{conns}");
    assert!(
        conns["fix"]
            .as_str()
            .unwrap()
            .contains("lower --table-jobs"),
        "{conns}"
    );

    // clone stops at the first failure with the same words, before writing anything.
    let out = pair.clone_with(true, &["--table-jobs", "200", "--index-jobs", "200"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("extensions: these extensions are not trusted"),
        "{err}"
    );
    assert!(
        err.contains("1 more problem(s): run neoncopy check"),
        "{err}"
    );
    assert!(
        !err.contains("--resume"),
        "nothing started, nothing to resume: {err}"
    );
    let n: i64 = scalar(
        &target().client(&pair.dst).await,
        "select count(*) from pg_tables where schemaname = 'public'",
    )
    .await;
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn pooler_host_names_are_refused_with_the_direct_host() {
    let pair = fresh_pair("check_pooler", false);
    source().psql(&pair.src, &fixture("users"));
    // The name of a Neon pooler endpoint, the address of the local target.
    let pooled = format!(
        "host=ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech hostaddr=127.0.0.1 port={} user=postgres dbname={}",
        target().port,
        pair.dst
    );
    let (code, checks) = check(&[
        "--source".into(),
        pair.source_uri(),
        "--target".into(),
        pooled.clone(),
    ]);
    assert_eq!(code, Some(1));
    let p = find(&checks, "pooler");
    assert_eq!(p["status"], "fail");
    assert_eq!(
        p["fix"],
        "connect to the direct host ep-cool-darkness-123456.us-east-2.aws.neon.tech instead"
    );
    let out = neoncopy(
        &[
            "clone".into(),
            "--source".into(),
            pair.source_uri(),
            "--target".into(),
            pooled,
            "--dir".into(),
            pair.workdir.path().display().to_string(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("ep-cool-darkness-123456.us-east-2.aws.neon.tech"),
        "{}",
        stderr(&out)
    );
}

/// check takes every option clone takes (README: "same options as the clone"), so that a
/// clone command line can be checked by changing one word.
#[tokio::test(flavor = "multi_thread")]
async fn check_takes_every_clone_option() {
    let pair = fresh_pair("check_options", false);
    source().psql(&pair.src, &fixture("users"));
    let clone_line = [
        "--dir",
        &pair.workdir.path().display().to_string(),
        "--table-jobs",
        "2",
        "--index-jobs",
        "2",
        "--restore-jobs",
        "2",
        "--split-tables-larger-than",
        "1GB",
        "--split-max-parts",
        "2",
        "--maintenance-work-mem",
        "256MB",
        "--no-owner",
        "--no-acl",
        "--no-comments",
        "--skip-vacuum",
        "--skip-db-properties",
        "--skip-large-objects",
        "--not-consistent",
        "--retries",
        "2",
        "--retry-delay",
        "0.1",
        "--retry-max-delay",
        "1",
    ]
    .map(str::to_string);
    let mut args = vec![
        "check".to_string(),
        "--source".into(),
        pair.source_uri(),
        "--target".into(),
        pair.target_uri(false),
    ];
    args.extend(clone_line.iter().cloned());
    let out = neoncopy(&args, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // And the same line clones.
    args[0] = "clone".into();
    let out = neoncopy(&args, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A source role that cannot read the tables passed every check and then failed in pg_dump
/// ("permission denied for table"): check (and clone, before anything is written) now says
/// which relations and large objects it cannot read.
#[tokio::test(flavor = "multi_thread")]
async fn check_finds_what_the_source_role_cannot_read() {
    let pair = fresh_pair("check_privileges", false);
    source().psql(&pair.src, &fixture("users"));
    source().psql(&pair.src, &fixture("large_objects"));
    source().try_psql("postgres", "create role weak_reader login");
    source().psql(
        &pair.src,
        "grant usage on schema public to weak_reader; grant select on lo_refs to weak_reader;",
    );
    let weak = source().uri_as(&pair.src, "weak_reader");
    let (code, checks) = check(&[
        "--source".into(),
        weak.clone(),
        "--target".into(),
        pair.target_uri(false),
    ]);
    assert_eq!(code, Some(1));
    let p = find(&checks, "source privileges");
    assert_eq!(p["status"], "fail", "{p}");
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.contains("public.users") && detail.contains("public.users_id_seq"),
        "{p}"
    );
    assert!(!detail.contains("lo_refs"), "{p}");
    assert!(detail.contains("3 large object(s)"), "{p}");
    let out = neoncopy(
        &[
            "clone".into(),
            "--source".into(),
            weak,
            "--target".into(),
            pair.target_uri(false),
            "--dir".into(),
            pair.workdir.path().display().to_string(),
        ],
        &[],
    );
    assert_one_line_error(&out, 1, "source privileges: the source role cannot read");
    assert_eq!(pair.target_relations().await, 0);
    // The owner can: the check passes.
    let (_, checks) = check(&[
        "--source".into(),
        pair.source_uri(),
        "--target".into(),
        pair.target_uri(false),
    ]);
    assert_eq!(find(&checks, "source privileges")["status"], "pass");
}
