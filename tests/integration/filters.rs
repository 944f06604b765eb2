//! --filters: each section alone and a few combined, checking exactly what reached the target;
//! compare with the same filters is clean; malformed files are refused by line; check takes
//! the filters into account.

use crate::support::*;
use std::path::PathBuf;

fn write_filters(pair: &Pair, text: &str) -> PathBuf {
    let path = pair.workdir.path().join("filters.ini");
    std::fs::write(&path, text).unwrap();
    path
}

/// Relations on the target, as schema.name (kind).
fn target_relations(pair: &Pair) -> Vec<String> {
    target()
        .psql(
            &pair.dst,
            "select n.nspname || '.' || c.relname || ' ' || c.relkind::text from pg_class c \
             join pg_namespace n on n.oid = c.relnamespace \
             where c.relkind in ('r', 'p', 'v', 'm', 'S') \
               and n.nspname not in ('pg_catalog', 'information_schema') order by 1",
        )
        .lines()
        .map(str::to_string)
        .collect()
}

fn count(pair: &Pair, sql: &str) -> i64 {
    target().psql(&pair.dst, sql).trim().parse().unwrap()
}

/// Clones the filters fixture with the filters, then checks compare schema and data agree with
/// the same filters.
async fn filtered_clone(test: &str, filters: &str) -> (Pair, String) {
    filtered_clone_of(test, "filters", filters).await
}

async fn filtered_clone_of(test: &str, fixture_name: &str, filters: &str) -> (Pair, String) {
    let pair = fresh_pair(test, false);
    source().psql(&pair.src, &fixture(fixture_name));
    let path = write_filters(&pair, filters);
    let out = pair.clone_ok(false, &["--filters", &path.display().to_string()]);
    let err = stderr(&out);
    for what in ["schema", "data"] {
        let out = neoncopy(
            &[
                "compare".into(),
                what.into(),
                "--source".into(),
                pair.source_uri(),
                "--target".into(),
                pair.target_uri(false),
                "--dir".into(),
                pair.workdir.path().display().to_string(),
                "--filters".into(),
                path.display().to_string(),
            ],
            &[],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "compare {what} with the same filters:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
    }
    (pair, err)
}

#[tokio::test(flavor = "multi_thread")]
async fn exclude_schema() {
    let (pair, _) = filtered_clone(
        "f_exclude_schema",
        "[exclude-schema]\naudit\n\"Odd Schema\"\n",
    )
    .await;
    let rels = target_relations(&pair);
    assert!(
        !rels
            .iter()
            .any(|r| r.starts_with("audit.") || r.starts_with("Odd Schema.")),
        "{rels:?}"
    );
    assert_eq!(
        count(
            &pair,
            "select count(*) from pg_namespace where nspname in ('audit', 'Odd Schema')"
        ),
        0
    );
    assert_eq!(
        count(
            &pair,
            "select count(*) from pg_proc where proname = 'record'"
        ),
        0
    );
    assert_eq!(count(&pair, "select count(*) from public.orders"), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn include_only_schema() {
    let (pair, _) = filtered_clone("f_include_schema", "[include-only-schema]\napp\n").await;
    let rels = target_relations(&pair);
    assert_eq!(rels, vec!["app.counter S", "app.settings r"], "{rels:?}");
    assert_eq!(count(&pair, "select count(*) from app.settings"), 1);
    assert_eq!(count(&pair, "select last_value from app.counter"), 100);
    assert_eq!(
        count(
            &pair,
            "select count(*) from pg_extension where extname = 'hstore'"
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exclude_table_takes_its_dependents_along() {
    let (pair, err) =
        filtered_clone("f_exclude_table", "[exclude-table]\npublic.customers\n").await;
    let rels = target_relations(&pair);
    for gone in [
        "public.customers r",
        "public.customers_id_seq S",
        "public.customer_view v",
    ] {
        assert!(!rels.contains(&gone.to_string()), "{gone} in {rels:?}");
    }
    assert!(rels.contains(&"public.notes r".to_string()));
    assert_eq!(count(&pair, "select count(*) from public.notes"), 30);
    assert_eq!(
        count(
            &pair,
            "select count(*) from pg_trigger where tgname = 'customers_touch'"
        ),
        0
    );
    assert_eq!(
        count(
            &pair,
            "select count(*) from pg_policy where polname = 'customers_all'"
        ),
        0
    );
    assert_eq!(
        count(
            &pair,
            "select count(*) from pg_constraint where conname = 'notes_customer_id_fkey'"
        ),
        0
    );
    assert!(
        err.contains("foreign key notes_customer_id_fkey on public.notes is left out"),
        "{err}"
    );
    assert!(
        err.contains("view public.customer_view is left out"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn include_only_table_with_a_pattern() {
    let (pair, _) = filtered_clone(
        "f_include_table",
        "[include-only-table]\npublic.orders\n~/^public\\.order_l/\n",
    )
    .await;
    let tables: Vec<String> = target_relations(&pair)
        .into_iter()
        .filter(|r| r.ends_with(" r") || r.ends_with(" m") || r.ends_with(" v"))
        .collect();
    assert_eq!(
        tables,
        vec![
            "public.order_lines r",
            "public.order_stats m",
            "public.order_view v",
            "public.orders r"
        ]
    );
    assert_eq!(
        count(&pair, "select count(*) from public.order_lines"),
        1200
    );
    // Functions are not tables: they stay.
    assert_eq!(
        count(
            &pair,
            "select count(*) from pg_proc where proname = 'touch'"
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exclude_index() {
    let (pair, _) = filtered_clone(
        "f_exclude_index",
        "[exclude-index]\npublic.orders_created_idx\npublic.customers_email_key\n",
    )
    .await;
    let idx = target().psql(
        &pair.dst,
        "select string_agg(indexname, ',' order by 1) from pg_indexes where schemaname = 'public'",
    );
    assert!(
        !idx.contains("orders_created_idx") && !idx.contains("customers_email_key"),
        "{idx}"
    );
    assert!(
        idx.contains("customers_name_idx") && idx.contains("orders_pkey"),
        "{idx}"
    );
    assert_eq!(
        count(
            &pair,
            "select count(*) from pg_constraint where conname = 'customers_email_key'"
        ),
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn excluding_a_partitioned_index_leaves_out_its_partitions_indexes() {
    // events_at_idx is on the two-level partitioned table events: each leaf has its share
    // (events_us_at_idx...), and events_eu an intermediate one.
    let (pair, _) = filtered_clone_of(
        "f_exclude_partitioned_index",
        "partitions",
        "[exclude-index]\npublic.events_at_idx\n",
    )
    .await;
    assert_eq!(
        count(
            &pair,
            "select count(*) from pg_class where relname like 'events%at_idx'"
        ),
        0
    );
    // The other partitioned indexes are whole: each leaf's share built and attached.
    assert_eq!(
        count(
            &pair,
            "select count(*) from pg_class c join pg_index i on i.indexrelid = c.oid \
             where c.relname like 'events%' and c.relname not like '%only%' and i.indisvalid \
             and (c.relispartition or c.relname in ('events_pkey', 'events_payload_idx'))"
        ),
        2 + 2 * 5
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exclude_table_data() {
    let (pair, _) = filtered_clone(
        "f_exclude_data",
        "[exclude-table-data]\npublic.events\npublic.order_stats\n",
    )
    .await;
    assert_eq!(count(&pair, "select count(*) from public.events"), 0);
    assert_eq!(
        count(
            &pair,
            "select count(*) from pg_indexes where indexname in ('events_pkey', 'events_at_idx')"
        ),
        2
    );
    assert_eq!(count(&pair, "select count(*) from pg_matviews where matviewname = 'order_stats' and not ispopulated"), 1);
    assert_eq!(count(&pair, "select count(*) from public.orders"), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn exclude_and_include_only_extension() {
    let (pair, _) = filtered_clone(
        "f_exclude_ext",
        "[exclude-extension]\nhstore\n[exclude-schema]\napp\n",
    )
    .await;
    assert_eq!(
        count(
            &pair,
            "select count(*) from pg_extension where extname = 'hstore'"
        ),
        0
    );
    assert_eq!(
        count(
            &pair,
            "select count(*) from pg_extension where extname = 'citext'"
        ),
        1
    );
    let (pair, _) = filtered_clone(
        "f_include_ext",
        "[include-only-extension]\ncitext\n[exclude-schema]\napp\n",
    )
    .await;
    assert_eq!(
        count(
            &pair,
            "select count(*) from pg_extension where extname = 'hstore'"
        ),
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sections_combined_and_list_tables_agrees() {
    let filters = "[exclude-schema]\naudit\n\n[exclude-table]\n~/^public\\.tmp_/\n\n\
                   [exclude-table-data]\npublic.events\n\n[exclude-index]\npublic.orders_created_idx\n";
    let (pair, _) = filtered_clone("f_combined", filters).await;
    let rels = target_relations(&pair);
    assert!(
        !rels
            .iter()
            .any(|r| r.contains("tmp_import") || r.starts_with("audit.")),
        "{rels:?}"
    );
    assert_eq!(count(&pair, "select count(*) from public.events"), 0);
    assert_eq!(
        count(
            &pair,
            "select count(*) from pg_indexes where indexname = 'orders_created_idx'"
        ),
        0
    );
    assert_eq!(
        count(&pair, "select count(*) from \"Odd Schema\".\"Odd Table\""),
        1
    );
    // list tables with the same filters shows what was copied.
    let path = pair.workdir.path().join("filters.ini");
    let v = list_tables_json(&pair, &["--filters", &path.display().to_string()]);
    let mut names: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{}.{}",
                t["schema"].as_str().unwrap(),
                t["name"].as_str().unwrap()
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "Odd Schema.Odd Table",
            "app.settings",
            "public.customers",
            "public.notes",
            "public.order_lines",
            "public.orders"
        ]
    );
    // The progress totals count only the selected tables.
    let p = neoncopy(
        &[
            "list".into(),
            "progress".into(),
            "--json".into(),
            "--dir".into(),
            pair.workdir.path().display().to_string(),
        ],
        &[],
    );
    let p: serde_json::Value = serde_json::from_slice(&p.stdout).unwrap();
    assert_eq!(p["tables"]["total"], 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_filter_files_are_refused_by_line() {
    let pair = fresh_pair("f_malformed", false);
    source().psql(&pair.src, &fixture("filters"));
    let cases = [
        (
            "[exclude-tables]\npublic.t\n",
            "line 1: unknown section [exclude-tables]",
        ),
        (
            "\n\npublic.t\n",
            "line 3: \"public.t\" is outside any [section]",
        ),
        (
            "[exclude-table]\norders\n",
            "line 2: [exclude-table] takes schema.name",
        ),
        (
            "[include-only-table]\npublic.a\n[exclude-table]\npublic.b\n",
            "contradict each other",
        ),
        (
            "[exclude-table]\n~/([/\n",
            "line 2: ERROR: invalid regular expression",
        ),
    ];
    for (text, expected) in cases {
        let path = write_filters(&pair, text);
        let out = pair.clone_with(false, &["--filters", &path.display().to_string()]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{text:?}: {err}");
        assert!(
            err.contains(expected),
            "{text:?}: expected {expected:?} in {err}"
        );
        assert_eq!(
            count(
                &pair,
                "select count(*) from pg_tables where schemaname = 'public'"
            ),
            0
        );
    }
    let out = pair.clone_with(false, &["--filters", "/nonexistent/filters.ini"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read the filters file /nonexistent/filters.ini"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_excluded_extension_need_not_exist_on_the_target() {
    // pg_visibility is not trusted: a non-superuser target cannot create it, and need not.
    let pair = fresh_pair("f_untrusted_ext", true);
    source().psql(
        &pair.src,
        "create extension pg_visibility; create table t (id int primary key); insert into t values (1);",
    );
    let path = write_filters(&pair, "[exclude-extension]\npg_visibility\n");
    // check says so too, given the same filters, and fails without them.
    let check = |extra: &[&str]| {
        let mut args = pair.connection_args(true);
        args.extend(extra.iter().map(|s| s.to_string()));
        let (code, checks) = check(&args);
        (code, find(&checks, "extensions").clone())
    };
    let (code, ext) = check(&[]);
    assert_eq!((code, &ext["status"]), (Some(1), &"fail".into()), "{ext}");
    assert!(ext["detail"].as_str().unwrap().contains("pg_visibility"));
    let (code, ext) = check(&["--filters", &path.display().to_string()]);
    assert_eq!((code, &ext["status"]), (Some(0), &"pass".into()), "{ext}");
    let out = neoncopy(
        &[
            "check".into(),
            "--source".into(),
            pair.source_uri(),
            "--target".into(),
            pair.target_uri(true),
            "--filters".into(),
            "/nonexistent/filters.ini".into(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read the filters file /nonexistent/filters.ini"));

    pair.clone_ok(true, &["--filters", &path.display().to_string()]);
    assert_eq!(count(&pair, "select count(*) from t"), 1);
    assert_eq!(
        count(
            &pair,
            "select count(*) from pg_extension where extname = 'pg_visibility'"
        ),
        0
    );
}

/// Large objects belong to no schema: pg_dump --schema leaves them out of its archive, and
/// neoncopy creates them itself (OID, owner, privileges, comment), then copies them.
#[tokio::test(flavor = "multi_thread")]
async fn large_objects_come_along_with_include_only_schema() {
    let pair = fresh_pair("filter_los", false);
    source().psql(&pair.src, &fixture("large_objects"));
    source().psql(
        &pair.src,
        "alter large object 424243 owner to app_owner; \
         grant select on large object 424243 to app_reader; \
         grant update on large object 424243 to app_reader with grant option; \
         create schema other; create table other.t (id int);",
    );
    let path = write_filters(&pair, "[include-only-schema]\npublic\n");
    pair.clone_ok(false, &["--filters", &path.display().to_string()]);
    let query = "select string_agg(m.oid::text || ' ' || pg_get_userbyid(m.lomowner) || ' ' || \
                 coalesce(m.lomacl::text, '-') || ' ' || md5(lo_get(m.oid)) || ' ' || \
                 coalesce(obj_description(m.oid, 'pg_largeobject'), '-'), '; ' order by m.oid) \
                 from pg_largeobject_metadata m";
    let s = source().psql(&pair.src, query);
    assert!(s.contains("424243 app_owner"), "{s}");
    assert_eq!(target().psql(&pair.dst, query), s);
    assert_eq!(
        count(
            &pair,
            "select count(*) from pg_namespace where nspname = 'other'"
        ),
        0
    );
}

/// An include-only entry that names nothing is a typo: clone, check, list and compare refuse
/// it before anything is written or recorded, naming the file, the line and the entry (exit
/// 2). An exclude entry that names nothing is a warning and the clone goes on.
#[tokio::test(flavor = "multi_thread")]
async fn filter_entries_that_name_nothing() {
    let pair = fresh_pair("f_nothing", false);
    source().psql(&pair.src, &fixture("filters"));
    let cases = [
        (
            "[include-only-schema]\nap\n",
            "line 2: [include-only-schema] ap matches no schema",
        ),
        (
            "[include-only-schema]\napp\n\"Odd Schema\"\nsales\n",
            "line 4: [include-only-schema] sales matches no schema",
        ),
        (
            "[include-only-table]\napp.nosuchtable\n",
            "line 2: [include-only-table] app.nosuchtable matches no table",
        ),
        (
            "[include-only-table]\n~/^nothing_like_this/\n",
            "line 2: [include-only-table] ~/^nothing_like_this/ matches no table",
        ),
        (
            "[include-only-extension]\ncitex\n",
            "line 2: [include-only-extension] citex matches no extension",
        ),
    ];
    for (text, expected) in cases {
        let path = write_filters(&pair, text);
        let path_arg = path.display().to_string();
        let out = pair.clone_with(false, &["--filters", &path_arg]);
        assert_one_line_error(&out, 2, expected);
        assert!(stderr(&out).contains(&path_arg), "{}", stderr(&out));
        assert_eq!(pair.target_relations().await, 0, "{text:?}");
        assert!(
            !pair.workdir.path().join("state.db").exists()
                || pair.state_count("select count(*) from run") == 0,
            "{text:?}: a refused clone records nothing"
        );
        for command in [
            vec!["check", "--target", &pair.target_uri(false)],
            vec!["list", "tables"],
            vec!["compare", "schema", "--target", &pair.target_uri(false)],
        ] {
            let mut args: Vec<String> = command.iter().map(|s| s.to_string()).collect();
            args.extend([
                "--source".to_string(),
                pair.source_uri(),
                "--filters".into(),
                path_arg.clone(),
            ]);
            let out = neoncopy(&args, &[]);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{command:?} {text:?}: {}",
                stderr(&out)
            );
            assert!(
                stderr(&out).contains(expected),
                "{command:?}: {}",
                stderr(&out)
            );
        }
    }
    let path = write_filters(&pair, "[exclude-table]\npublic.nosuchtable\napp.settings\n");
    let out = pair.clone_ok(false, &["--filters", &path.display().to_string()]);
    let err = stderr(&out);
    assert!(
        err.contains("line 2: [exclude-table] public.nosuchtable matches no table of the source; it leaves nothing out"),
        "{err}"
    );
    assert_eq!(
        count(
            &pair,
            "select count(*) from pg_tables where tablename = 'settings'"
        ),
        0
    );
}
