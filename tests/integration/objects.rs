//! `neoncopy clone` against real PostgreSQL servers: each kind of object is cloned and the
//! target compared with the source object by object and row by row.

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn users_table_of_the_neon_guide() {
    let pair = clone_fixture("users", &["users"], false).await;
    let t = target().client(&pair.dst).await;
    // The sequence continues where the source's stopped.
    let next: i32 = scalar(
        &t,
        "insert into users (username, email) values ('carol', 'carol@example.com') returning id",
    )
    .await;
    assert_eq!(next, 3);
    // The unique constraints are real constraints on the target.
    let dup = t
        .execute(
            "insert into users (username, email) values ('alice', 'x@example.com')",
            &[],
        )
        .await;
    assert!(dup.is_err(), "unique constraint on username must hold");
}

#[tokio::test(flavor = "multi_thread")]
async fn quoted_mixed_case_space_quote_and_unicode_names() {
    clone_fixture("names", &["names"], false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn enums_domains_composites_and_icu_collations() {
    let pair = clone_fixture("types", &["types"], false).await;
    let t = target().client(&pair.dst).await;
    let provider: String = scalar(
        &t,
        "select collprovider::text from pg_collation where collname = 'german_icu'",
    )
    .await;
    assert_eq!(provider, "i");
    assert!(
        t.execute("insert into people (name, age) values ('x', -1)", &[])
            .await
            .is_err(),
        "the domain's check must hold on the target"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn trusted_extensions_on_a_managed_style_target() {
    let pair = clone_fixture("extensions", &["extensions"], true).await;
    let t = target().client(&pair.dst).await;
    let exts: Vec<String> = t
        .query("select extname::text from pg_extension order by 1", &[])
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    for e in ["citext", "hstore", "pg_trgm", "pgcrypto"] {
        assert!(exts.contains(&e.to_string()), "{e} missing: {exts:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serial_identity_generated_columns_and_free_sequences() {
    let pair = clone_fixture("columns", &["columns"], false).await;
    let (s, t) = (
        source().client(&pair.src).await,
        target().client(&pair.dst).await,
    );
    // Every kind of sequence hands out the same next value on both sides.
    for q in [
        "select nextval('counters_id_seq')::text",
        "select nextval(pg_get_serial_sequence('counters', 'ident_always'))::text",
        "select nextval(pg_get_serial_sequence('counters', 'ident_default'))::text",
        "select nextval('free_standing')::text",
        "select nextval('never_called')::text",
        "select nextval('called_once')::text",
    ] {
        let a: String = s.query_one(q, &[]).await.unwrap().get(0);
        let b: String = t.query_one(q, &[]).await.unwrap().get(0);
        assert_eq!(a, b, "{q}");
    }
    // Generated values are computed on the target, not copied.
    let total: String = scalar(
        &t,
        "insert into counters (price, qty) values (2.5, 4) returning total::text",
    )
    .await;
    assert_eq!(total, "10.00");
}

#[tokio::test(flavor = "multi_thread")]
async fn multi_level_partitions_with_default_partitions() {
    let pair = clone_fixture("partitions", &["partitions"], false).await;
    let t = target().client(&pair.dst).await;
    let n: i64 = scalar(&t, "select count(*) from events").await;
    assert_eq!(n, 3000);
    let n: i64 = scalar(&t, "select count(*) from events_eu_rest").await;
    assert!(
        n > 0,
        "rows must reach the sub-partition's default partition"
    );
    // Each partition's share of the parents' indexes (3 per leaf, 4 leaves) was built by the
    // index workers as the partition was copied, and attached to the parents' indexes by
    // post-data: every index valid, every leaf index attached to a parent index.
    let built =
        pair.state_count("select count(*) from idx where state = 'done' and name like 'events%'");
    assert_eq!(built, 4 * 3 + 1, "leaf indexes and events_us_only_idx");
    let invalid: i64 = scalar(
        &t,
        "select count(*) from pg_index i join pg_class c on c.oid = i.indexrelid \
         where c.relname like 'events%' and not i.indisvalid",
    )
    .await;
    assert_eq!(invalid, 0);
    let unattached: i64 = scalar(
        &t,
        "select count(*) from pg_class c where c.relname like 'events%' and c.relkind = 'i' \
         and not c.relispartition and c.relname <> 'events_us_only_idx'",
    )
    .await;
    assert_eq!(unattached, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn inheritance_carries_each_row_once() {
    let pair = clone_fixture("inheritance", &["inheritance"], false).await;
    let t = target().client(&pair.dst).await;
    let n: i64 = scalar(&t, "select count(*) from vehicles").await;
    assert_eq!(n, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn unlogged_keyless_duplicate_empty_and_wide_tables() {
    let pair = clone_fixture("tables", &["tables"], false).await;
    let t = target().client(&pair.dst).await;
    let p: String = scalar(
        &t,
        "select relpersistence::text from pg_class where relname = 'scratch'",
    )
    .await;
    assert_eq!(p, "u");
    let dups: i64 = scalar(&t, "select count(*) from log_lines where line = 'dup'").await;
    assert_eq!(dups, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn views_functions_triggers_rules_and_policies() {
    let pair = clone_fixture("code", &["code"], false).await;
    let t = target().client(&pair.dst).await;
    // The insert trigger did not fire during the load: audit holds the source's rows only.
    let audit: i64 = scalar(&t, "select count(*) from audit").await;
    assert_eq!(audit, 100);
    let populated: bool = scalar(
        &t,
        "select ispopulated from pg_matviews where matviewname = 'balance_by_decade'",
    )
    .await;
    assert!(
        populated,
        "materialized view must be populated on the target"
    );
    let unpopulated: bool = scalar(
        &t,
        "select ispopulated from pg_matviews where matviewname = 'never_filled'",
    )
    .await;
    assert!(!unpopulated, "a matview unpopulated on the source stays so");
    // The triggers work on the target afterwards.
    t.execute("insert into accounts values (1000, 'new', 1)", &[])
        .await
        .unwrap();
    let audit: i64 = scalar(&t, "select count(*) from audit").await;
    assert_eq!(audit, 101);
    let product: String = scalar(
        &t,
        "select product(x)::text from (values (2), (3), (7)) v(x)",
    )
    .await;
    assert_eq!(product, "42");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_exclusion_deferrable_and_foreign_key_constraints() {
    let pair = clone_fixture("constraints", &["constraints"], false).await;
    let t = target().client(&pair.dst).await;
    let overlap = t
        .execute(
            "insert into bookings (room_id, during, guests) values (1, tsrange('2024-01-02 01:00', '2024-01-02 02:00'), 2)",
            &[],
        )
        .await;
    assert!(overlap.is_err(), "exclusion constraint must hold");
    let kinds: Vec<String> = t
        .query(
            "select conname::text || ':' || contype::text || ':' || condeferrable::text || ':' || convalidated::text \
             from pg_constraint where conrelid in ('bookings'::regclass, 'legacy'::regclass, 'pairs'::regclass) order by 1",
            &[],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        kinds.contains(&"no_overlap:x:false:true".to_string()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"bookings_room_id_fkey:f:true:true".to_string()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"legacy_positive:c:false:false".to_string()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"pairs_a_b_key:u:true:true".to_string()),
        "{kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn partial_expression_gin_gist_and_other_indexes() {
    let pair = clone_fixture("indexes", &["indexes"], false).await;
    let t = target().client(&pair.dst).await;
    let flags: String = t
        .query_one(
            "select string_agg(c.relname || ':' || i.indisclustered || ':' || i.indisreplident || ':' || i.indisvalid, ',' order by c.relname) \
             from pg_index i join pg_class c on c.oid = i.indexrelid where i.indrelid = 'docs'::regclass \
             and (i.indisclustered or i.indisreplident)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        flags,
        "docs_desc:true:false:true,docs_title_covering:false:true:true"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn comments_on_every_object() {
    clone_fixture("comments", &["comments"], false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn large_objects_with_contents_and_comments() {
    clone_fixture("large_objects", &["large_objects"], false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn awkward_values_survive_byte_for_byte() {
    clone_fixture("values", &["values"], false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn database_settings_and_comment() {
    let pair = clone_fixture("dbsettings", &["names", "db_settings"], false).await;
    let t = target().client(&pair.dst).await;
    let wm: String = t.query_one("show work_mem", &[]).await.unwrap().get(0);
    assert_eq!(
        wm, "9MB",
        "a new session on the target gets the database's settings"
    );
}

/// Everything at once onto a target whose role is no superuser, as on Neon.
#[tokio::test(flavor = "multi_thread")]
async fn schema_rich_database_onto_a_managed_style_target() {
    let all = [
        "users",
        "names",
        "types",
        "extensions",
        "columns",
        "partitions",
        "inheritance",
        "tables",
        "code",
        "constraints",
        "indexes",
        "comments",
        "large_objects",
        "values",
        "db_settings",
    ];
    let pair = clone_fixture("managed_all", &all, true).await;
    let t = target().client(&pair.dst).await;
    let owners: Vec<String> = t
        .query(
            "select distinct pg_get_userbyid(c.relowner)::text from pg_class c \
             join pg_namespace n on n.oid = c.relnamespace \
             where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')",
            &[],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(owners, vec![MANAGED_ROLE.to_string()]);
}

/// The same database onto a superuser target keeps owners and grants.
#[tokio::test(flavor = "multi_thread")]
async fn owners_and_grants_kept_on_a_superuser_target() {
    let pair = fresh_pair("owners", false);
    source().psql(
        &pair.src,
        "create schema app authorization app_owner; \
         create table app.items (id int primary key); \
         alter table app.items owner to app_owner; \
         grant select on app.items to app_reader; \
         insert into app.items select generate_series(1, 10);",
    );
    pair.clone_ok(false, &[]);
    assert_faithful(&pair).await;
    let t = target().client(&pair.dst).await;
    let row = t
        .query_one(
            "select pg_get_userbyid(relowner)::text, has_table_privilege('app_reader', 'app.items', 'select') \
             from pg_class where oid = 'app.items'::regclass",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "app_owner");
    assert!(row.get::<_, bool>(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn definitions_do_not_depend_on_the_source_search_path() {
    clone_fixture("search_path", &["search_path"], false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn more_kinds_of_objects_onto_both_kinds_of_target() {
    clone_fixture("more_super", &["more_objects"], false).await;
    clone_fixture("more_managed", &["more_objects"], true).await;
}

/// Post-data goes in phases; what depends on an earlier phase's objects (comments on foreign
/// keys, an event trigger that would refuse the ALTER TABLEs before it) comes last, and
/// materialized views are refreshed after everything else.
#[tokio::test(flavor = "multi_thread")]
async fn post_data_phases_keep_what_depends_on_what() {
    let pair = fresh_pair("post_data", false);
    source().psql(&pair.src, &fixture("post_data"));
    let out = pair.clone_ok(false, &[]);
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.contains("post-data: "))
        .unwrap_or_else(|| panic!("no post-data line in:\n{err}"));
    let counts: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .take(4)
        .rev()
        .collect();
    // Batched: the partitioned key and index attachments, the small foreign key, the trigger,
    // the materialized view's index. Side by side: the foreign key into the partitioned
    // table. Last: two comments, the event trigger. Refreshed: the view.
    assert!(counts[0] >= 3, "{line}");
    assert_eq!(counts[1], 1, "{line}");
    assert_eq!(counts[2], 3, "{line}");
    assert_eq!(counts[3], 1, "{line}");
    assert_faithful(&pair).await;
    let t = target().client(&pair.dst).await;
    let kids: i64 = t
        .query_one("select sum(kids)::int8 from kid_counts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kids, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn extension_configuration_tables_carry_user_rows_once() {
    // neoncopy_test_config (tests/fixtures/extension, installed by scripts/ensure-deps.sh)
    // makes two settings rows of its own; users add theirs, and journal rows numbered by a
    // sequence the extension registered as configuration.
    let pair = fresh_pair("ext_config", false);
    source().psql(
        &pair.src,
        "create extension neoncopy_test_config; \
         insert into settings values ('owner', 'ops', false), ('tier', 'gold', false); \
         insert into journal (note) select 'note ' || g from generate_series(1, 5) g;",
    );
    pair.clone_ok(false, &[]);
    // Rows (the extension's two once, the users' two) and the sequence's position match.
    assert_faithful(&pair).await;
    let t = target().client(&pair.dst).await;
    let n: i64 = scalar(&t, "select count(*) from settings").await;
    assert_eq!(n, 4);
    let next: i64 = scalar(&t, "select nextval('journal_id_seq')").await;
    assert_eq!(
        next, 6,
        "the registered sequence carries on after the copied rows"
    );

    // A copy whose commit landed but was never recorded (a crash in between) is copied again
    // on resume: the users' rows are replaced, not added, and the extension's stay.
    pair.state()
        .execute_batch(
        "update run set status = 'interrupted'; \
         update step set ended_at = null where name = 'data'; \
         update unit set state = 'pending', rows = null where table_name in ('settings', 'journal');",
    )
    .unwrap();
    pair.clone_ok(false, &["--resume", "--not-consistent"]);
    let recopied = pair.state_count(
        "select count(*) from unit where table_name in ('settings', 'journal') \
         and state = 'done' and attempts = 2",
    );
    assert_eq!(recopied, 2);
    let n: i64 = scalar(&t, "select count(*) from settings").await;
    assert_eq!(n, 4);
    let n: i64 = scalar(&t, "select count(*) from journal").await;
    assert_eq!(n, 5);

    // --skip-extensions leaves the extension, its rows and its sequence to the target.
    let pair = fresh_pair("ext_config_skip", false);
    source().psql(
        &pair.src,
        "create extension neoncopy_test_config; \
         insert into settings values ('owner', 'ops', false); \
         insert into journal (note) values ('a'), ('b'), ('c');",
    );
    target().psql(&pair.dst, "create extension neoncopy_test_config;");
    pair.clone_ok(false, &["--skip-extensions"]);
    let t = target().client(&pair.dst).await;
    let n: i64 = scalar(&t, "select count(*) from settings").await;
    assert_eq!(n, 2, "only the target's own rows");
    let next: i64 = scalar(&t, "select nextval('journal_id_seq')").await;
    assert_eq!(next, 1);

    // A filtered-out extension takes its configuration tables along.
    let pair = fresh_pair("ext_config_filtered", false);
    source().psql(
        &pair.src,
        "create extension neoncopy_test_config; \
         insert into settings values ('owner', 'ops', false); \
         create table mine (id int primary key); insert into mine values (1);",
    );
    let filters = pair.workdir.path().join("filters.ini");
    std::fs::write(&filters, "[exclude-extension]\nneoncopy_test_config\n").unwrap();
    pair.clone_ok(false, &["--filters", &filters.display().to_string()]);
    let t = target().client(&pair.dst).await;
    let n: i64 = scalar(&t, "select count(*) from mine").await;
    assert_eq!(n, 1);
    let n: i64 = scalar(
        &t,
        "select count(*) from pg_class where relname in ('settings', 'journal')",
    )
    .await;
    assert_eq!(n, 0);
}

/// Whether the target may create an extension is decided by trying, not by its trusted flag:
/// neoncopy_test_config is not trusted but needs no superuser, so the managed-style role may
/// create it (as a managed service may allow extensions vanilla PostgreSQL reserves); a
/// really refused one (pg_visibility) is named with what the target said.
#[tokio::test(flavor = "multi_thread")]
async fn extensions_are_judged_by_trying_them_on_the_target() {
    let pair = fresh_pair("ext_trial", true);
    source().psql(
        &pair.src,
        "create extension neoncopy_test_config; insert into settings values ('mine', 'x', false);",
    );
    let args = pair.connection_args(true);
    let (_, checks) = check(&args);
    let ext = find(&checks, "extensions");
    assert_eq!(ext["status"], "pass", "{ext}");
    pair.clone_ok(true, &[]);
    assert_faithful(&pair).await;
    // pg_visibility needs a superuser: the target's own words are reported.
    source().psql(&pair.src, "create extension pg_visibility;");
    let (_, checks) = check(&args);
    let ext = find(&checks, "extensions");
    assert_eq!(ext["status"], "fail", "{ext}");
    let detail = ext["detail"].as_str().unwrap();
    assert!(
        detail.contains("pg_visibility") && detail.contains("permission denied"),
        "{ext}"
    );
}
