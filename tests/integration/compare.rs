//! `compare schema` and `compare data`: identical right after a clone; each kind of damage to
//! the target, alone, makes the right command exit 1 and name the object.

use crate::support::*;

fn compare(pair: &Pair, what: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "compare".to_string(),
        what.to_string(),
        "--source".into(),
        pair.source_uri(),
        "--target".into(),
        pair.target_uri(false),
        "--dir".into(),
        pair.workdir.path().display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    neoncopy(&args, &[])
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn assert_identical(pair: &Pair) {
    for what in ["schema", "data"] {
        let out = compare(pair, what, &[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "compare {what}:\n{}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(
            stdout(&out).contains(&format!("{what}: identical")),
            "{}",
            stdout(&out)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn compare_finds_each_kind_of_damage() {
    let pair = clone_fixture(
        "compare_damage",
        &[
            "users",
            "code",
            "constraints",
            "tables",
            "values",
            "columns",
            "large_objects",
        ],
        false,
    )
    .await;
    assert_identical(&pair);

    let bob = source().psql(&pair.src, "select row_to_json(u) from users u where id = 2");
    let seq = source().psql(
        &pair.src,
        "select last_value || ',' || is_called from counters_id_seq",
    );
    let (seq_value, seq_called) = seq.trim().split_once(',').unwrap();
    let damages: Vec<(&str, String, String, &str)> = vec![
        (
            "data",
            "update accounts set balance = balance + 1 where id = 5".into(),
            "update accounts set balance = balance - 1 where id = 5".into(),
            "public.accounts",
        ),
        (
            "data",
            "update awkward set b = set_byte(b, 100, 0) where id = 3".into(),
            "update awkward set b = set_byte(b, 100, 171) where id = 3".into(),
            "public.awkward",
        ),
        (
            "data",
            "delete from users where id = 2".into(),
            format!(
                "insert into users select * from json_populate_record(null::users, '{}')",
                bob.trim()
            ),
            "public.users",
        ),
        (
            "data",
            "insert into log_lines values ('2024-01-01 00:00+00', 'dup')".into(),
            "delete from log_lines where ctid = (select max(ctid) from log_lines where line = 'dup')"
                .into(),
            "public.log_lines",
        ),
        (
            "data",
            "select lo_put(424243, 0, '\\x4a')".into(),
            "select lo_put(424243, 0, '\\x68')".into(),
            "(large objects)",
        ),
        (
            "schema",
            "drop index balance_by_decade_idx".into(),
            "create unique index balance_by_decade_idx on balance_by_decade (decade)".into(),
            "index public.balance_by_decade_idx: missing on the target",
        ),
        (
            "schema",
            "alter table audit alter column at set default now() - interval '1 hour'".into(),
            "alter table audit alter column at set default now()".into(),
            "column public.audit.at: differs",
        ),
        (
            "schema",
            "alter table bookings drop constraint no_overlap".into(),
            "alter table bookings add constraint no_overlap exclude using gist (during with &&)"
                .into(),
            "constraint public.bookings.no_overlap: missing on the target",
        ),
        (
            "schema",
            "select setval('counters_id_seq', 9999)".into(),
            format!("select setval('counters_id_seq', {seq_value}, {seq_called})"),
            "sequence value public.counters_id_seq: differs",
        ),
        (
            "schema",
            "alter table accounts disable trigger accounts_audit".into(),
            "alter table accounts enable trigger accounts_audit".into(),
            "trigger public.accounts.accounts_audit: differs",
        ),
        (
            "schema",
            "create or replace view rich as select id, owner_name from accounts where balance > 600"
                .into(),
            "create or replace view rich as select id, owner_name from accounts where balance > 500"
                .into(),
            "view public.rich: differs",
        ),
    ];
    for (what, damage, undo, object) in damages {
        target().psql(&pair.dst, &damage);
        let out = compare(&pair, what, &[]);
        let text = stdout(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{damage}: {text}{}",
            stderr(&out)
        );
        assert!(
            text.contains(object),
            "{damage}: expected {object:?} in:\n{text}"
        );
        // The other command is not fooled into a difference it cannot see... but data damage
        // never shows as a schema difference.
        if what == "data" {
            let other = compare(&pair, "schema", &[]);
            assert_eq!(other.status.code(), Some(0), "{damage}: {}", stdout(&other));
        }
        target().psql(&pair.dst, &undo);
    }
    assert_identical(&pair);
}

#[tokio::test(flavor = "multi_thread")]
async fn compare_data_splits_big_tables_and_reports_json() {
    let pair = fresh_pair("compare_split", false);
    source().psql(
        &pair.src,
        "create table keyed (id bigint primary key, v text); \
         insert into keyed select g, md5(g::text) from generate_series(1, 50000) g; \
         create table heap (v text); \
         insert into heap select md5(g::text) from generate_series(1, 50000) g;",
    );
    pair.clone_ok(false, &[]);
    let out = compare(
        &pair,
        "data",
        &[
            "--json",
            "--split-tables-larger-than",
            "200kB",
            "--split-max-parts",
            "4",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["identical"], true);
    let tables = v["tables"].as_array().unwrap();
    assert!(
        tables
            .iter()
            .all(|t| t["source_rows"] == 50000 && t["matches"] == true),
        "{v}"
    );
    // A duplicated row in the table without a key, found through the parts too.
    target().psql(&pair.dst, "insert into heap select v from heap limit 1");
    let out = compare(&pair, "data", &["--split-tables-larger-than", "200kB"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("1 of 2 tables differ: public.heap"),
        "{}",
        stdout(&out)
    );
    // The result is recorded in the work directory.
    let differs = pair.state_count(
        "select count(*) from compare_result where kind = 'data' and status = 'differs'",
    );
    assert_eq!(differs, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn compare_that_cannot_run_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for what in ["schema", "data"] {
        let out = neoncopy(
            &[
                "compare".into(),
                what.into(),
                "--source".into(),
                source().uri("postgres"),
                "--target".into(),
                format!("postgresql://postgres@127.0.0.1:{port}/x"),
                "--dir".into(),
                dir.path().display().to_string(),
            ],
            &[],
        );
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("could not compare"),
            "{}",
            stderr(&out)
        );
    }
}
