//! The pipelined connection (src/pg/wire.rs) the COPY workers write with, against a real
//! server: every query and row is sent before the first answer is read (a writer that waited
//! for answers would never finish below, since nothing reads them until it has); the answers
//! come back in order with their counts; an error fails the rest of its transaction, and the
//! connection is usable again once every answer is read, not before.

use crate::support::*;
use neoncopy::pg::connstr::{ConnParams, Env};
use neoncopy::pg::wire::{Purpose, WireConn};
use neoncopy::pg::PgError;

/// No PG* variables, no password file: the connection strings say everything.
struct NoEnv;
impl Env for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

async fn connect(c: &Cluster, db: &str) -> WireConn {
    let params = ConnParams::parse_with_env(&c.uri(db), &NoEnv).expect("connection string");
    WireConn::connect(&params, Purpose::CopyTarget)
        .await
        .expect("connect")
}

fn fresh_db(c: &Cluster, name: &str) -> String {
    c.psql(
        "postgres",
        &format!("drop database if exists {name}; create database {name};"),
    );
    c.psql(
        name,
        "create table a (id int primary key, t text); create table b (id int);",
    );
    name.to_string()
}

/// Writes a transaction of two COPYs with their rows, then (and only then) reads every
/// answer: (tag, rows, SQLSTATE of the error, command tag).
async fn two_copies(
    conn: &mut WireConn,
    a_rows: &str,
    b_rows: &str,
) -> Vec<(&'static str, Option<u64>, Option<String>, Option<String>)> {
    let (mut tx, mut rx) = conn.pipeline::<&'static str>().expect("pipeline");
    let write = async {
        tx.query("begin; truncate a, b", "begin")?;
        tx.query("copy a (id, t) from stdin", "copy a")?;
        tx.copy_data(a_rows.as_bytes()).await?;
        tx.copy_done();
        tx.query("copy b from stdin", "copy b")?;
        for line in b_rows.lines() {
            tx.copy_data(format!("{line}\n").as_bytes()).await?;
        }
        tx.copy_done();
        tx.query("commit", "commit")?;
        tx.finish().await
    };
    // Nothing reads the answers yet: a writer that waited for one would never end.
    tokio::time::timeout(std::time::Duration::from_secs(30), write)
        .await
        .expect("the writer waited for an answer")
        .expect("every query and row sent");
    let mut answers = Vec::new();
    while let Some((tag, answer)) = rx.next().await.expect("answer") {
        let code = answer
            .error
            .as_ref()
            .and_then(|e| PgError::code_of(e).map(str::to_string));
        answers.push((tag, answer.rows, code, answer.tag));
    }
    answers
}

#[tokio::test(flavor = "multi_thread")]
async fn every_query_and_row_goes_before_the_first_answer() {
    let c = source();
    let db = fresh_db(c, "wire_pipeline");
    let mut conn = connect(c, &db).await;
    let answers = two_copies(&mut conn, "1\tone\n2\ttwo\n3\t\\N\n", "7\n8").await;
    assert_eq!(
        answers,
        vec![
            ("begin", None, None, Some("TRUNCATE TABLE".to_string())),
            ("copy a", Some(3), None, Some("COPY 3".to_string())),
            ("copy b", Some(2), None, Some("COPY 2".to_string())),
            ("commit", None, None, Some("COMMIT".to_string())),
        ]
    );
    let client = c.client(&db).await;
    let rows: String = scalar(
        &client,
        "select string_agg(id || ':' || coalesce(t, 'null'), ',' order by id) from a",
    )
    .await;
    assert_eq!(rows, "1:one,2:two,3:null");
    assert_eq!(scalar::<i64>(&client, "select sum(id) from b").await, 15);
    // Every answer read: the connection serves the next query.
    let rows = conn.simple_query("select count(*) from b").await.unwrap();
    assert_eq!(rows, vec![vec![Some("2".to_string())]]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_fails_the_rest_of_its_transaction() {
    let c = source();
    let db = fresh_db(c, "wire_error");
    c.psql(&db, "insert into b values (42)");
    let mut conn = connect(c, &db).await;
    // A duplicate key in a's rows: its COPY fails, b's rows are refused with the transaction
    // ("current transaction is aborted"), and COMMIT rolls back (without an error: its tag
    // says ROLLBACK).
    let answers = two_copies(&mut conn, "1\tone\n1\tagain\n", "7").await;
    assert_eq!(
        answers,
        vec![
            ("begin", None, None, Some("TRUNCATE TABLE".to_string())),
            ("copy a", None, Some("23505".to_string()), None),
            ("copy b", None, Some("25P02".to_string()), None),
            ("commit", None, None, Some("ROLLBACK".to_string())),
        ]
    );
    let client = c.client(&db).await;
    assert_eq!(scalar::<i64>(&client, "select count(*) from a").await, 0);
    assert_eq!(scalar::<i32>(&client, "select max(id) from b").await, 42);
    // The rows sent after the failure were discarded, not taken for statements.
    assert_eq!(conn.simple_query("select 1").await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_left_unread_leaves_the_connection_unusable() {
    let c = source();
    let db = fresh_db(c, "wire_unread");
    let mut conn = connect(c, &db).await;
    {
        let (mut tx, mut rx) = conn.pipeline::<u8>().unwrap();
        tx.query("select 1", 1).unwrap();
        tx.query("select 2", 2).unwrap();
        tx.finish().await.unwrap();
        let (tag, answer) = rx.next().await.unwrap().expect("the first answer");
        assert_eq!((tag, answer.rows), (1, Some(1)));
        // The second answer is never read.
    }
    let err = format!("{:#}", conn.simple_query("select 3").await.unwrap_err());
    assert!(err.contains("cannot be used"), "{err}");
    // Nor does a new pipeline start.
    assert!(conn.pipeline::<u8>().is_err());
}
