//! Clone options: snapshots, the --skip-* and --no-* flags, job counts.

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn given_snapshot_is_what_every_reader_and_pg_dump_see() {
    let pair = fresh_pair("given_snapshot", false);
    source().psql(&pair.src, &fixture("users"));
    source().psql(&pair.src, &fixture("large_objects"));
    // Hold a snapshot open, then change the source behind it.
    let holder = source().client(&pair.src).await;
    holder
        .batch_execute("begin isolation level repeatable read")
        .await
        .unwrap();
    let id: String = scalar(&holder, "select pg_export_snapshot()").await;
    source().psql(
        &pair.src,
        "insert into users (username, email) values ('late', 'late@example.com'); \
         create table appeared_later (id int); \
         delete from lo_refs;",
    );
    pair.clone_ok(false, &["--snapshot", &id]);
    let t = target().client(&pair.dst).await;
    let users: i64 = scalar(&t, "select count(*) from users").await;
    assert_eq!(
        users, 2,
        "rows written after the snapshot must not be copied"
    );
    let refs: i64 = scalar(&t, "select count(*) from lo_refs").await;
    assert_eq!(
        refs, 2,
        "rows deleted after the snapshot must still be copied"
    );
    let later: i64 = scalar(
        &t,
        "select count(*) from pg_class where relname = 'appeared_later'",
    )
    .await;
    assert_eq!(later, 0, "pg_dump must read the same snapshot");
    holder.batch_execute("commit").await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_that_does_not_exist_is_a_clear_error() {
    let pair = fresh_pair("bad_snapshot", false);
    source().psql(&pair.src, &fixture("users"));
    let out = pair.clone_with(false, &["--snapshot", "00000003-0000001B-1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("import snapshot 00000003-0000001B-1"), "{err}");
    let tables = target().psql(
        &pair.dst,
        "select count(*) from pg_tables where schemaname = 'public'",
    );
    assert_eq!(tables.trim(), "0", "nothing may be written to the target");
}

#[tokio::test(flavor = "multi_thread")]
async fn not_consistent_clone_still_copies_everything() {
    let pair = fresh_pair("not_consistent", false);
    source().psql(&pair.src, &fixture("users"));
    source().psql(&pair.src, &fixture("indexes"));
    let out = pair.clone_ok(
        false,
        &["--not-consistent", "--table-jobs", "1", "--index-jobs", "1"],
    );
    assert!(
        stderr(&out).contains("--not-consistent"),
        "the user is warned"
    );
    assert_faithful(&pair).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn skip_flags_leave_out_what_they_name() {
    let pair = fresh_pair("skips", false);
    for f in ["users", "comments", "large_objects", "db_settings"] {
        source().psql(&pair.src, &fixture(f));
    }
    pair.clone_ok(
        false,
        &[
            "--skip-large-objects",
            "--no-comments",
            "--skip-db-properties",
            "--skip-vacuum",
        ],
    );
    let t = target().client(&pair.dst).await;
    let one = |q: &'static str| {
        let t = &t;
        async move { t.query_one(q, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(one("select count(*) from pg_largeobject_metadata").await, 0);
    assert_eq!(
        one("select count(*) from pg_description d join pg_class c on c.oid = d.objoid where c.relnamespace = 'commented'::regnamespace").await,
        0
    );
    assert_eq!(
        one("select count(*) from pg_db_role_setting where setdatabase = (select oid from pg_database where datname = current_database())").await,
        0
    );
    assert_eq!(
        one("select count(*) from pg_stat_user_tables where last_analyze is not null").await,
        0
    );
    // The rows are all there.
    assert_eq!(one("select count(*) from users").await, 2);
    assert_eq!(one("select count(*) from lo_refs").await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn tables_are_analyzed_after_loading() {
    let pair = clone_fixture("analyzed", &["users", "tables"], false).await;
    let t = target().client(&pair.dst).await;
    let not_analyzed: Vec<String> = t
        .query(
            "select relname::text from pg_stat_user_tables \
             where last_analyze is null and last_autoanalyze is null and n_live_tup > 0",
            &[],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    assert!(not_analyzed.is_empty(), "not analyzed: {not_analyzed:?}");
    // Loaded with COPY FREEZE: every page is frozen already, no vacuum needed.
    t.batch_execute("create extension pg_visibility")
        .await
        .unwrap();
    let row = t
        .query_one(
            "select (pg_visibility_map_summary('scratch')).all_frozen::int8, \
                    pg_relation_size('scratch') / current_setting('block_size')::int8",
            &[],
        )
        .await
        .unwrap();
    let (frozen, pages): (i64, i64) = (row.get(0), row.get(1));
    assert!(pages > 0);
    assert_eq!(
        frozen, pages,
        "all pages of a table loaded with COPY FREEZE are frozen"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn skip_extensions_uses_the_ones_already_on_the_target() {
    let pair = fresh_pair("skip_ext", true);
    source().psql(
        &pair.src,
        "create extension citext; create table t (c citext); insert into t values ('A');",
    );
    // Without the extension on the target the clone cannot work: the pre-flight check says so
    // before anything is written.
    let out = pair.clone_with(true, &["--skip-extensions"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("extensions: --skip-extensions, but the target lacks: citext; create them on the target first"),
        "{err}"
    );
    assert_eq!(
        target()
            .psql(
                &pair.dst,
                "select count(*) from pg_tables where schemaname = 'public'"
            )
            .trim(),
        "0"
    );
    target().psql(&pair.dst, "create extension citext;");
    pair.clone_ok(true, &["--skip-extensions"]);
    assert_faithful(&pair).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_job_each_gives_the_same_copy() {
    clone_fixture_with(
        "one_job",
        &["users", "constraints", "indexes"],
        false,
        &[
            "--table-jobs",
            "1",
            "--index-jobs",
            "1",
            "--restore-jobs",
            "1",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn superuser_only_database_setting_is_a_warning_on_a_managed_target() {
    let pair = fresh_pair("su_setting", true);
    source().psql(&pair.src, &fixture("users"));
    source().psql(
        &pair.src,
        "do $$ begin \
           execute format('alter database %I set log_min_duration_statement = 1000', current_database()); \
           execute format('alter database %I set work_mem = %L', current_database(), '7MB'); \
         end $$;",
    );
    let out = pair.clone_ok(true, &[]);
    let err = stderr(&out);
    assert!(
        err.contains("could not copy database setting log_min_duration_statement=1000"),
        "{err}"
    );
    let settings = target().psql(
        &pair.dst,
        "select array_to_string(setconfig, ',') from pg_db_role_setting \
         where setdatabase = (select oid from pg_database where datname = current_database())",
    );
    assert_eq!(settings.trim(), "work_mem=7MB");
}

#[tokio::test(flavor = "multi_thread")]
async fn source_without_tables_clones() {
    clone_fixture_with("no_tables", &[], false, &[]).await;
    let pair = fresh_pair("only_code", true);
    source().psql(
        &pair.src,
        "create schema api; create function api.hello() returns text language sql as $$select 'hi'$$; \
         create view api.v as select api.hello(); create sequence api.s; select nextval('api.s');",
    );
    pair.clone_ok(true, &[]);
    assert_faithful(&pair).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn big_tables_are_split_into_balanced_parts() {
    let pair = fresh_pair("split", false);
    // Skewed keys: equal key ranges would give very unequal parts.
    source().psql(
        &pair.src,
        "create table skewed (id bigint primary key, v text); \
         insert into skewed select g, md5(g::text) from generate_series(1, 2000) g; \
         insert into skewed select 1000000 + g, md5(g::text) from generate_series(1, 18000) g; \
         create index skewed_v on skewed (v); \
         create table heap (v text, n int); \
         insert into heap select md5(g::text), g from generate_series(1, 20000) g; \
         analyze;",
    );
    let out = pair.clone_ok(
        false,
        &[
            "--split-tables-larger-than",
            "256kB",
            "--split-max-parts",
            "4",
            "--table-jobs",
            "3",
        ],
    );
    assert!(stderr(&out).contains("split into"), "{}", stderr(&out));
    assert_faithful(&pair).await;
    let db = pair.state();
    for table in ["skewed", "heap"] {
        let rows: Vec<i64> = db
            .prepare("select rows from unit where table_name = ?1 order by part")
            .unwrap()
            .query_map([table], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(rows.len(), 4, "{table}: {rows:?}");
        assert_eq!(rows.iter().sum::<i64>(), 20000, "{table}: {rows:?}");
        let (min, max) = (*rows.iter().min().unwrap(), *rows.iter().max().unwrap());
        assert!(
            max as f64 <= min as f64 * 1.2,
            "{table}: parts within 20%: {rows:?}"
        );
    }
    // The record of committed parts on the target is gone once the data is in.
    assert_eq!(
        target()
            .psql(
                &pair.dst,
                "select count(*) from pg_namespace where nspname = 'neoncopy'"
            )
            .trim(),
        "0"
    );
    // A split table is vacuumed, not only analyzed (no COPY FREEZE for parts).
    let vacuumed = target().psql(
        &pair.dst,
        "select count(*) from pg_stat_user_tables where relname = 'heap' and last_vacuum is not null",
    );
    assert_eq!(vacuumed.trim(), "1");
}
