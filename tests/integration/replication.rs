//! The replication connection (src/pg/replication.rs) against real servers: a logical slot
//! whose exported snapshot other sessions import, on PostgreSQL 15 (the shared source), 12 and
//! 18; SCRAM, TLS with channel binding, a Unix socket; the errors of bad and duplicate slots.

use crate::support::tls::{tls, TLS_PASSWORD, TLS_ROLE};
use crate::support::*;
use neoncopy::pg::connstr::{ConnParams, Env};
use neoncopy::pg::replication::ReplicationConn;
use neoncopy::pg::PgError;
use tokio_postgres::Client;

/// No PG* variables, no password file: the connection strings below say everything.
struct NoEnv;
impl Env for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

fn params(conninfo: &str) -> ConnParams {
    ConnParams::parse_with_env(conninfo, &NoEnv).expect("parse the connection string")
}

async fn connect(conninfo: &str) -> anyhow::Result<ReplicationConn> {
    ReplicationConn::connect(&params(conninfo)).await
}

/// A fresh database (owned by `owner`), once the slots a failed earlier run left in it are
/// dropped.
fn fresh_db(c: &Cluster, name: &str, owner: &str) -> String {
    c.psql(
        "postgres",
        &format!(
            "select pg_drop_replication_slot(slot_name) from pg_replication_slots \
             where database = '{name}'; drop database if exists \"{name}\"; \
             create database \"{name}\" owner {owner};"
        ),
    );
    name.to_string()
}

async fn server_version(c: &Client) -> i32 {
    scalar(c, "select current_setting('server_version_num')::int4").await
}

/// Drops a slot once its walsender has let go of it, and checks it is gone.
async fn drop_slot(c: &Client, slot: &str) {
    let active =
        format!("select count(*) from pg_replication_slots where slot_name = '{slot}' and active");
    for _ in 0..100 {
        if scalar::<i64>(c, &active).await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    c.batch_execute(&format!("select pg_drop_replication_slot('{slot}')"))
        .await
        .expect("drop the slot");
    let left = format!("select count(*) from pg_replication_slots where slot_name = '{slot}'");
    assert_eq!(
        scalar::<i64>(c, &left).await,
        0,
        "slot {slot} is still there"
    );
}

/// Creates a slot over a replication connection and checks its exported snapshot: a
/// repeatable read transaction that imports it sees the rows committed before the slot, not
/// those committed after; the snapshot ends with the next command on the connection.
async fn slot_snapshot_on(c: &Cluster, db: &str, slot: &str) {
    c.psql(
        db,
        "create table t(id int); insert into t select generate_series(1, 10);",
    );
    let mut repl = connect(&c.uri(db)).await.expect("replication connection");
    let sys = repl.identify_system().await.expect("IDENTIFY_SYSTEM");
    assert_eq!(sys.dbname.as_deref(), Some(db));
    assert!(sys.timeline >= 1 && sys.xlogpos.contains('/'), "{sys:?}");
    let reader = c.client(db).await;
    let version = server_version(&reader).await;
    let created = repl.create_slot(slot, version).await.expect("create slot");
    assert_eq!(created.slot_name, slot);
    assert!(!created.snapshot_name.is_empty());
    c.psql(db, "insert into t select generate_series(11, 15);");

    let import = |name: String| {
        let reader = &reader;
        async move {
            reader
                .batch_execute("begin isolation level repeatable read")
                .await
                .unwrap();
            reader
                .batch_execute(&format!("set transaction snapshot '{name}'"))
                .await
        }
    };
    import(created.snapshot_name.clone())
        .await
        .expect("import the exported snapshot");
    assert_eq!(scalar::<i64>(&reader, "select count(*) from t").await, 10);
    assert_eq!(scalar::<i32>(&reader, "select max(id) from t").await, 10);
    reader.batch_execute("commit").await.unwrap();
    assert_eq!(scalar::<i64>(&reader, "select count(*) from t").await, 15);
    let confirmed: String = scalar(
        &reader,
        &format!(
            "select confirmed_flush_lsn::text from pg_replication_slots where slot_name = '{slot}'"
        ),
    )
    .await;
    assert_eq!(confirmed, created.consistent_point);

    // The next command on the connection ends the exported snapshot.
    repl.identify_system().await.expect("IDENTIFY_SYSTEM again");
    let gone = import(created.snapshot_name.clone()).await.unwrap_err();
    let gone = gone
        .as_db_error()
        .expect("a server error")
        .message()
        .to_string();
    // "invalid snapshot identifier" before PostgreSQL 18, "snapshot ... does not exist" from 18.
    assert!(
        gone.contains("invalid snapshot identifier") || gone.contains("does not exist"),
        "{gone}"
    );
    reader.batch_execute("rollback").await.unwrap();

    repl.close().await.expect("close");
    drop_slot(&reader, slot).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slot_with_exported_snapshot_on_15() {
    let c = source();
    let db = fresh_db(c, "repl_snapshot15", "postgres");
    slot_snapshot_on(c, &db, "nc_test_slot15").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slot_with_exported_snapshot_on_12_old_syntax() {
    let c = cluster(12);
    let db = fresh_db(c, "repl_snapshot12", "postgres");
    slot_snapshot_on(c, &db, "nc_test_slot12").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slot_with_exported_snapshot_on_18() {
    let c = cluster(18);
    let db = fresh_db(c, "repl_snapshot18", "postgres");
    slot_snapshot_on(c, &db, "nc_test_slot18").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scram_password_and_wrong_password() {
    let c = source();
    let db = fresh_db(c, "repl_scram", "postgres");
    c.psql(
        "postgres",
        &format!("alter role {PASSWORD_ROLE} replication"),
    );
    let uri = |pw: &str, extra: &str| {
        format!(
            "postgresql://{PASSWORD_ROLE}:{}@127.0.0.1:{}/{db}{extra}",
            pw.replace('%', "%25"),
            c.port
        )
    };
    let mut repl = connect(&uri(PASSWORD, "")).await.expect("SCRAM login");
    assert_eq!(
        repl.identify_system().await.unwrap().dbname.as_deref(),
        Some(db.as_str())
    );
    assert!(!format!("{repl:?}").contains(PASSWORD));
    let client = c.client(&db).await;
    let who: String = scalar(
        &client,
        &format!(
            "select usename || ' ' || backend_type from pg_stat_activity where pid = {}",
            repl.backend_pid()
        ),
    )
    .await;
    assert_eq!(who, format!("{PASSWORD_ROLE} walsender"));
    repl.close().await.unwrap();

    let wrong = "Wrong-pw-7781";
    let err = connect(&uri(wrong, "")).await.unwrap_err();
    let text = format!("{err:#} {err:?}");
    assert!(
        text.contains("connect to the source for replication"),
        "{text}"
    );
    assert!(text.contains("password authentication failed"), "{text}");
    assert!(!text.contains(wrong) && !text.contains(PASSWORD), "{text}");
    assert_eq!(PgError::code_of(&err), Some("28P01"));

    let missing = format!("postgresql://{PASSWORD_ROLE}@127.0.0.1:{}/{db}", c.port);
    let err = format!("{:#}", connect(&missing).await.unwrap_err());
    assert!(
        err.contains("asks for a password and none was given"),
        "{err}"
    );

    // The source has no TLS, so no channel binding: require must refuse, whatever the method.
    let err = format!(
        "{:#}",
        connect(&uri(PASSWORD, "?channel_binding=require"))
            .await
            .unwrap_err()
    );
    assert!(err.contains("channel_binding=require"), "{err}");
    let err = format!(
        "{:#}",
        connect(&format!("{}?channel_binding=require", c.uri(&db)))
            .await
            .unwrap_err()
    );
    assert!(err.contains("without channel binding"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_channel_binding() {
    let t = &tls().cluster;
    let db = fresh_db(t, "repl_tls", TLS_ROLE);
    t.psql("postgres", &format!("alter role {TLS_ROLE} replication"));
    let uri = |ca: &std::path::Path, extra: &str| {
        format!(
            "postgresql://{TLS_ROLE}:{TLS_PASSWORD}@localhost:{}/{db}?sslmode=verify-full&sslrootcert={}{extra}",
            t.port,
            ca.display()
        )
    };
    let mut repl = connect(&uri(&tls().ca, "&channel_binding=require"))
        .await
        .expect("TLS, SCRAM-SHA-256-PLUS");
    repl.identify_system().await.unwrap();
    let client = t.client(&db).await;
    let ssl: bool = scalar(
        &client,
        &format!(
            "select ssl from pg_stat_ssl where pid = {}",
            repl.backend_pid()
        ),
    )
    .await;
    assert!(ssl);
    repl.close().await.unwrap();

    let err = format!(
        "{:#}",
        connect(&uri(&tls().wrong_ca, "")).await.unwrap_err()
    );
    assert!(err.contains("TLS handshake"), "{err}");
    assert!(!err.contains(TLS_PASSWORD), "{err}");
    let plain = format!(
        "postgresql://{TLS_ROLE}:{TLS_PASSWORD}@127.0.0.1:{}/{db}?sslmode=disable",
        t.port
    );
    let err = connect(&plain).await.unwrap_err();
    assert_eq!(PgError::code_of(&err), Some("28000"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unix_socket() {
    let c = source();
    let db = fresh_db(c, "repl_unix", "postgres");
    let conninfo = format!(
        "host={} port={} user=postgres dbname={db}",
        c.dir.display(),
        c.port
    );
    let mut repl = connect(&conninfo).await.expect("connect over the socket");
    assert_eq!(
        repl.simple_query("select 1, null::text").await.unwrap(),
        vec![vec![Some("1".to_string()), None]]
    );
    repl.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_and_duplicate_slots_fail_with_sqlstate() {
    let c = source();
    let db = fresh_db(c, "repl_errors", "postgres");
    let client = c.client(&db).await;
    let version = server_version(&client).await;
    let mut a = connect(&c.uri(&db)).await.unwrap();
    let err = a.create_slot("Bad-Name", version).await.unwrap_err();
    assert_eq!(PgError::code_of(&err), Some("42602"), "{err:#}");
    let text = format!("{err:#}");
    assert!(
        text.contains("create the replication slot Bad-Name on the source"),
        "{text}"
    );
    // A server's error leaves the connection usable.
    let err = a.simple_query("selec 1").await.unwrap_err();
    assert_eq!(PgError::code_of(&err), Some("42601"), "{err:#}");
    a.identify_system().await.unwrap();

    let slot = "nc_test_dup";
    a.create_slot(slot, version).await.unwrap();
    let mut b = connect(&c.uri(&db)).await.unwrap();
    let err = b.create_slot(slot, version).await.unwrap_err();
    assert_eq!(PgError::code_of(&err), Some("42710"), "{err:#}");
    assert!(format!("{err:#}").contains("already exists"), "{err:#}");
    b.close().await.unwrap();
    a.close().await.unwrap();
    drop_slot(&client, slot).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hosts_in_turn_and_connect_timeout() {
    let c = source();
    let db = fresh_db(c, "repl_hosts", "postgres");
    // A listener that accepts and never answers, and a port nothing listens on.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conninfo = format!(
        "host=127.0.0.1,127.0.0.1 port={closed_port},{} user=postgres dbname={db}",
        c.port
    );
    let mut repl = connect(&conninfo).await.expect("the second host");
    repl.identify_system().await.unwrap();
    repl.close().await.unwrap();

    let started = std::time::Instant::now();
    let conninfo =
        format!("host=127.0.0.1 port={silent_port} user=postgres dbname={db} connect_timeout=2");
    let err = connect(&conninfo).await.unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(format!("{err:#}").contains("timed out"), "{err:#}");
    let transient = err
        .chain()
        .find_map(|e| e.downcast_ref::<PgError>())
        .is_some_and(|p| p.transient);
    assert!(transient, "{err:#}");
    drop(silent);
}
