//! Fidelity against the reference, on databases nobody wrote a case for: every fixture in
//! tests/fixtures onto both kinds of target, with and without split tables; every type the
//! server has; awkward text and encodings. Each clone is compared with pg_dump | pg_restore
//! of the same source (`assert_faithful`).

use crate::support::*;

/// Every fixture file, by name.
pub fn all_fixtures() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("read tests/fixtures")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_suffix(".sql")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 19, "fixtures missing: {names:?}");
    names
}

/// Splits every table into parts (the threshold is one byte; parts are at most four).
const SPLIT: &[&str] = &["--split-tables-larger-than", "1", "--split-max-parts", "3"];

/// Clones each fixture and compares with the reference. Where the target cannot take an
/// object (a managed-style role and an object only a superuser may create), pg_restore
/// fails too; neoncopy must then refuse before it writes anything, naming the object.
async fn every_fixture(mode: &str, managed: bool, extra: &[&str]) {
    let mut refused = Vec::new();
    let mut schema_only = 0;
    for name in all_fixtures() {
        let pair = fresh_pair(&format!("fx_{mode}_{name}"), managed);
        source().psql(&pair.src, &fixture(&name));
        let out = pair.clone_with(managed, extra);
        if out.status.success() {
            assert_faithful(&pair).await;
            // pg_dump --schema-only where it dumps what the sections would (see versions.rs):
            // those clones were compared with the reference too.
            let client = source().client(&pair.src).await;
            let sections: bool = scalar(
                &client,
                "select exists (select from pg_class where relkind = 'm') \
                     or exists (select from pg_largeobject_metadata)",
            )
            .await;
            let chose = pair.log().contains("pg_dump --schema-only");
            assert_eq!(chose, !sections, "{name} ({mode})");
            schema_only += usize::from(chose);
            continue;
        }
        let err = stderr(&out);
        assert_one_line_error(&out, 1, "nothing was written to the target");
        assert_eq!(
            pair.target_relations().await,
            0,
            "{name} ({mode}): target written"
        );
        let reference = pair.try_reference();
        assert!(
            reference.is_err(),
            "{name} ({mode}): neoncopy refused what pg_restore restores: {err}"
        );
        refused.push((name, err));
    }
    if !managed {
        assert!(refused.is_empty(), "{refused:#?}");
    }
    // The one fixture only a superuser may restore: its event trigger.
    for (name, err) in &refused {
        assert!(
            name == "post_data" && err.contains("EVENT TRIGGER no_alter_table"),
            "{name}: {err}"
        );
    }
    assert_eq!(refused.len(), usize::from(managed), "{refused:#?}");
    assert!(
        schema_only >= 10,
        "{schema_only} clones with pg_dump --schema-only"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fixture_onto_a_superuser_target() {
    every_fixture("su", false, &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fixture_onto_a_managed_target() {
    every_fixture("mg", true, &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fixture_split_onto_a_superuser_target() {
    every_fixture("sus", false, SPLIT).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fixture_split_onto_a_managed_target() {
    every_fixture("mgs", true, SPLIT).await;
}

/// Literals tried as a value of every type: typical and extreme numbers, times, text with
/// awkward characters, geometric, network, range, JSON, XML, search, bit string and LSN
/// forms, and names of objects (rt.*) that the reg* types refer to. Each type keeps the ones
/// its input function accepts.
const CANDIDATES: &[&str] = &[
    "0",
    "1",
    "-1",
    "42",
    "-32768",
    "32767",
    "-2147483648",
    "2147483647",
    "-9223372036854775808",
    "9223372036854775807",
    "3.14159",
    "-0",
    "0.1",
    "1e-7",
    "1.7976931348623157e308",
    "2.2250738585072014e-308",
    "5e-324",
    "3.4028235e38",
    "1e-45",
    "123456789012345678901234567890.123456789012345678901234567890",
    "-0.000000000000000000000000000001",
    "NaN",
    "Infinity",
    "-Infinity",
    "t",
    "f",
    "",
    "a",
    "hello world",
    "tab\there",
    "line\nbreak\r\nand CR LF",
    "back\\slash\\",
    "quote'and\"double",
    "ünïcödé ✓ 日本語 😀",
    "\\x00ff10",
    "\\N",
    "{}",
    "{1,2,3}",
    "{a,\"b c\",NULL}",
    "(0,0)",
    "(1.5,-2)",
    "((0,0),(1,1))",
    "[(0,0),(1,1)]",
    "((0,0),(1,1),(1,0))",
    "<(0,0),1>",
    "{1,2,3}",
    "[1,10)",
    "(,)",
    "empty",
    "[1.5,2.5]",
    "[2024-01-01,2024-12-31)",
    "[\"2024-01-01 00:00\",\"2024-01-02 00:00\")",
    "{[1,3),[5,7)}",
    "2024-02-29",
    "4713-01-01 BC",
    "5874897-12-31",
    "2024-02-29 12:34:56.789012",
    "294276-12-31 23:59:59.999999",
    "2024-02-29 12:34:56.789012+05:30",
    "12:34:56.789012",
    "24:00:00",
    "00:00:00+14",
    "12:34:56-15:59",
    "1 day 02:03:04.5",
    "-178000000 years",
    "1 mon -1 day",
    "P1Y2M3DT4H5M6S",
    "192.168.0.1",
    "192.168.0.0/24",
    "::1",
    "2001:db8::/32",
    "::ffff:1.2.3.4/128",
    "08:00:2b:01:02:03",
    "08:00:2b:01:02:03:04:05",
    "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    "00000000-0000-0000-0000-000000000000",
    "{\"a\": 1,  \"b\": [1, 2.50, null]}",
    "[]",
    "\"text\"",
    "null",
    "{\"k\": \"\\u00e9\"}",
    "  {\"ws\" :  true }  ",
    "$.a[*] ? (@ > 1)",
    "strict $.x",
    "<a>x</a>",
    "text node",
    "a & b",
    "'fat' & ('rat' | !'cat')",
    "a:1 b:2B c",
    "101",
    "10101010101",
    "X1F",
    "0/16B6C50",
    "FFFFFFFF/FFFFFFFF",
    "10:20:10,14,15",
    "(0,1)",
    "(4294967295,65535)",
    "1 2 3",
    "postgres=arwdDxt/postgres",
    "app_owner=r*/postgres",
    "=r/postgres",
    "$1,234.56",
    "-12.34",
    "c",
    "rt.t1",
    "pg_catalog.pg_class",
    "rt.color",
    "integer",
    "rt.f",
    "rt.f(integer)",
    "rt.===",
    "rt.===(integer,integer)",
    "app_owner",
    "rt",
    "pg_catalog",
    "rt.tsc",
    "english",
    "rt.tsd",
    "simple",
    "rt.coll",
    "\"C\"",
];

/// Types whose input function accepts no value at all (the server makes them itself): no
/// copy can carry them, pg_dump's included.
const NOT_INPUTTABLE: &[&str] = &[
    "pg_node_tree",
    "pg_ndistinct",
    "pg_dependencies",
    "pg_mcv_list",
    "pg_brin_bloom_summary",
    "pg_brin_minmax_multi_summary",
    "gtsvector",
];

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A table of every base, range and multirange type of pg_catalog (arrays of each too) and
/// of domains over a few, filled with every candidate value each accepts. Returns how many
/// types it holds.
pub async fn every_type_source(cluster: &Cluster, db: &str) -> usize {
    cluster.psql(
        db,
        "create schema rt; create table rt.t1 (id int); \
         create type rt.color as enum ('red', 'green'); \
         create function rt.f(int) returns int language sql as 'select $1'; \
         create operator rt.=== (leftarg = int, rightarg = int, function = int4eq); \
         create text search dictionary rt.tsd (template = simple); \
         create text search configuration rt.tsc (copy = pg_catalog.simple); \
         create collation rt.coll (locale = 'C');",
    );
    let s = cluster.client(db).await;
    s.batch_execute(
        "create function try_cast(v text, t regtype) returns text language plpgsql as $$ \
         declare r text; begin execute format('select %L::%s::text', v, t) into r; return r; \
         exception when others then return null; end $$",
    )
    .await
    .unwrap();
    let types: Vec<(String, String, String)> = s
        .query(
            "select t.typname::text, format_type(t.oid, null), t.typdelim::text from pg_type t \
             join pg_namespace n on n.oid = t.typnamespace \
             where n.nspname = 'pg_catalog' and t.typtype in ('b', 'r', 'm') and t.typisdefined \
               and not exists (select 1 from pg_type e where e.typarray = t.oid) \
             order by 1",
            &[],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let mut missing = Vec::new();
    let mut covered = 0;
    for (name, sql_type, delimiter) in &types {
        let accepted: Vec<String> = s
            .query(
                "select c from unnest($1::text[]) with ordinality as x(c, i) \
                 where try_cast(c, $2::text::regtype) is not null \
                 order by i",
                &[&CANDIDATES, &sql_type],
            )
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.get::<_, String>(0))
            // A reg* value given as a number is an OID, which may name an object on one
            // server and none on the other: its text differs, not the value.
            .filter(|c| !(name.starts_with("reg") && c != "0" && c.parse::<i64>().is_ok()))
            // A "char" over 127 prints as that byte before PostgreSQL 15 (not UTF-8, which
            // the reference cannot load) and as an octal escape after: ASCII only here.
            .filter(|c| name != "char" || c.is_ascii())
            .collect();
        if accepted.is_empty() {
            if !NOT_INPUTTABLE.contains(&name.as_str()) {
                missing.push(name.clone());
            }
            continue;
        }
        covered += 1;
        let table = format!("\"t_{name}\"");
        let mut sql = format!("create table {table} (id int, v {sql_type}, a {sql_type}[]);\n");
        let lit = |c: &str| format!("{}::{sql_type}", quote(c));
        // Arrays are built with array_append, not ARRAY[]: before PostgreSQL 13, ARRAY[] of
        // an array-like type (int2vector) makes a two-dimensional array of its elements.
        let array = |items: &[String]| {
            items
                .iter()
                .fold(format!("'{{}}'::{sql_type}[]"), |acc, v| {
                    format!("array_append({acc}, {v})")
                })
        };
        for (i, c) in accepted.iter().enumerate() {
            let other = &accepted[(i + 1) % accepted.len()];
            let a = array(&[lit(c), format!("null::{sql_type}"), lit(other)]);
            sql.push_str(&format!(
                "insert into {table} values ({i}, {}, {a});\n",
                lit(c)
            ));
        }
        let pair = array(&[lit(&accepted[0]), lit(&accepted[accepted.len() - 1])]);
        sql.push_str(&format!(
            "insert into {table} values (-1, null, '{{}}'), \
             (-2, null, ('{{' || {pair}::text || '{delimiter}' || {pair}::text || '}}')::{sql_type}[]), \
             (-3, null, ('[0:1]=' || {pair}::text)::{sql_type}[]), (-4, null, null);\n"
        ));
        s.batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("fill {table}: {e:?}"));
    }
    assert!(
        missing.is_empty(),
        "no candidate value is accepted by these types: add one to CANDIDATES: {missing:?}"
    );
    // Domains over a few, and arrays of them.
    s.batch_execute(
        "drop function try_cast(text, regtype); \
         create domain rt.d_int as int4 check (value > -1000000); \
         create domain rt.d_text as text collate \"C\" check (value <> 'forbidden'); \
         create domain rt.d_json as jsonb; \
         create domain rt.d_at as timestamptz; \
         create domain rt.d_color as rt.color; \
         create domain rt.d_ints as int4[]; \
         create domain rt.d_d_int as rt.d_int; \
         create table t_domains (id int, i rt.d_int, t rt.d_text, j rt.d_json, at rt.d_at, \
           c rt.d_color, ints rt.d_ints, dd rt.d_d_int, ia rt.d_int[], ca rt.d_color[]); \
         insert into t_domains values \
           (1, -5, E'a\\tb', '{\"x\": [1, 2]}', '2024-02-29 12:00+01', 'green', '{1,2}', 7, '{1,NULL}', '{red,green}'), \
           (2, null, '', 'null', 'infinity', 'red', '[0:1]={3,4}', null, '{}', '[5:5]={green}'), \
           (3, 0, 'x', '{}', '-infinity', null, null, 0, null, null);",
    )
    .await
    .unwrap();
    covered
}

async fn every_type(test: &str, managed: bool, extra: &[&str]) {
    let pair = fresh_pair(test, managed);
    let covered = every_type_source(pair.src_cluster, &pair.src).await;
    assert!(covered >= 70, "only {covered} types");
    pair.clone_ok(managed, extra);
    assert_faithful(&pair).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_type_the_server_has() {
    every_type("every_type", false, &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_type_onto_a_managed_target_in_parts() {
    every_type("every_type_mg", true, SPLIT).await;
}

/// Text that a line-by-line reading of a schema script gets wrong: CR LF, backslashes at the
/// start of lines, lines that look like pg_restore's entry headers or psql meta-commands,
/// nested dollar quotes, SQL-standard bodies, semicolons in names, a body over a megabyte.
const AWKWARD_TEXT: &str = r#"
create table "odd;name" ("semi;colon" text default E'a\r\nb', "line
break" int check ("line
break" <> 7 or "semi;colon" <> E'\\d+\';\r\n--'));
comment on table "odd;name" is E'first line\r\n\\\\server\\share\\dir\r\n\\d+'';\n--\n-- Name: x; Type: TABLE; Schema: public; Owner: me\n--\n\\connect other\nlast';
comment on column "odd;name"."semi;colon" is E'\\restrict abc\n\\unrestrict abc';
create function awkward() returns text language plpgsql as $fn$
begin
  -- a comment inside a body
  return $q$
\d+';
--
-- Name: y; Type: TABLE; Schema: public; Owner: me
--
\i /etc/passwd
$$ not the end $$
$q$ || E'\r\n';
end $fn$;
create function crlf() returns int language sql as E'select 1\r\n-- trailing comment\r\n';
create function standard(a int) returns int language sql
begin atomic
  select case when a > 0 then a else -a end;
  select a + 1;
end;
create table items (id int primary key, label text default E'\\x\r\n');
insert into items select g, E'row\r\n\\' || g from generate_series(1, 20) g;
insert into "odd;name" values (E'x\ny', 1), (E'\\.', 2), (E'\\N', 3), (null, null);
create view crlf_view as select id, E'a\r\nb' as v, $$;$$ as semi from items where label <> E'\\.';
create rule items_log as on delete to items do also (select 1; select 2);
do $$ begin
  execute format('create function big() returns text language plpgsql as %L',
                 'begin return ' || quote_literal(repeat(E'x\\\r\n', 300000)) || '; end');
end $$;
"#;

#[tokio::test(flavor = "multi_thread")]
async fn awkward_text_in_the_schema_arrives_byte_for_byte() {
    for (test, managed) in [("awkward_su", false), ("awkward_mg", true)] {
        let pair = fresh_pair(test, managed);
        source().psql(&pair.src, AWKWARD_TEXT);
        pair.clone_ok(managed, &[]);
        assert_faithful(&pair).await;
        // And the body that holds lines starting with a backslash still works.
        let t = target().client(&pair.dst).await;
        let body: String = scalar(&t, "select awkward()").await;
        assert!(body.contains("\n\\d+';\n--\n-- Name: y;"), "{body:?}");
        assert!(body.ends_with("\r\n"), "{body:?}");
        let big: i64 = scalar(&t, "select length(big())::int8").await;
        assert_eq!(big, 4 * 300_000);
    }
}

/// Sources in other encodings than UTF-8, with non-ASCII text in the schema (names, comments,
/// bodies, enum labels, checks, views) and in the rows, cloned into UTF-8.
#[tokio::test(flavor = "multi_thread")]
async fn sources_in_latin1_win1252_and_euc_jp() {
    let cases = [
        ("LATIN1", "café", "Größe naïve ÿ"),
        ("WIN1252", "prix€", "œuvre — “quoted” €5"),
        ("EUC_JP", "表", "日本語のテキスト"),
    ];
    for (encoding, name, text) in cases {
        let pair = fresh_pair(&format!("enc_{}", encoding.to_lowercase()), false);
        source().psql("postgres", &format!("drop database \"{}\"", pair.src));
        source().psql(
            "postgres",
            &format!(
                "create database \"{}\" encoding '{encoding}' locale 'C' template template0",
                pair.src
            ),
        );
        source().psql(
            &pair.src,
            &format!(
                "set client_encoding = 'UTF8';
                 create type \"{name}_kind\" as enum ('{text}', 'plain');
                 create table \"{name}\" (id int primary key, \"{name}_col\" text default '{text}'
                   check (\"{name}_col\" <> '{text}!'), k \"{name}_kind\");
                 comment on table \"{name}\" is '{text}';
                 create index \"{name}_idx\" on \"{name}\" (\"{name}_col\");
                 create function \"{name}_fn\"() returns text language plpgsql as $$
                 begin return '{text}'; end $$;
                 create view \"{name}_view\" as select id, '{text}' || \"{name}_col\" as v from \"{name}\";
                 insert into \"{name}\" select g, '{text} ' || g, '{text}' from generate_series(1, 50) g;"
            ),
        );
        pair.clone_ok(false, &[]);
        assert_faithful(&pair).await;
    }
}

/// A table hash-partitioned on an enum: an enum hashes by its values' OIDs, which differ on
/// the target, so rows must be routed there by the target (as pg_dump's
/// --load-via-partition-root does); a sub-partitioned one too, and its indexes.
#[tokio::test(flavor = "multi_thread")]
async fn hash_partitions_on_an_enum_are_loaded_through_their_root() {
    let pair = fresh_pair("hash_enum", false);
    source().psql(
        &pair.src,
        "create type mood as enum ('sad', 'ok', 'happy', 'elated');
         create table hp (id int, m mood, primary key (id, m)) partition by hash (m);
         create table hp0 partition of hp for values with (modulus 3, remainder 0);
         create table hp1 partition of hp for values with (modulus 3, remainder 1);
         create table hp2 partition of hp for values with (modulus 3, remainder 2)
           partition by range (id);
         create table hp2_low partition of hp2 for values from (minvalue) to (500);
         create table hp2_high partition of hp2 for values from (500) to (maxvalue);
         create index hp_id on hp (id);
         insert into hp select g, (enum_range(null::mood))[1 + g % 4] from generate_series(1, 1000) g;
         create table plain_hash (id int primary key, t text) partition by hash (id);
         create table plain_hash0 partition of plain_hash for values with (modulus 2, remainder 0);
         create table plain_hash1 partition of plain_hash for values with (modulus 2, remainder 1);
         insert into plain_hash select g, 'x' from generate_series(1, 100) g;",
    );
    let out = pair.clone_ok(false, &[]);
    assert_faithful(&pair).await;
    let t = target().client(&pair.dst).await;
    let n: i64 = scalar(&t, "select count(*) from hp").await;
    assert_eq!(n, 1000);
    // Loaded as one unit through the root; the plain hash partitions as themselves.
    let units = pair.state_count("select count(*) from unit where table_name = 'hp'");
    assert_eq!(units, 1, "{}", stderr(&out));
    let leaves = pair.state_count("select count(*) from unit where table_name like 'plain_hash_'");
    assert_eq!(leaves, 2);
}

/// Database settings that hold an empty string, and a materialized view whose rows depend on
/// the database's TimeZone: refreshed with the database's settings in place.
#[tokio::test(flavor = "multi_thread")]
async fn database_settings_with_empty_strings_apply_before_views_refresh() {
    let pair = fresh_pair("db_empty", true);
    source().psql(
        &pair.src,
        "do $$ begin
           execute format('alter database %I set search_path = ''''', current_database());
           execute format('alter database %I set timezone = %L', current_database(), 'America/New_York');
           execute format('alter database %I set temp_tablespaces = ''''', current_database());
           execute format('alter database %I set default_text_search_config = %L', current_database(), 'pg_catalog.simple');
           execute format('alter role app_owner in database %I set work_mem = %L', current_database(), '3MB');
         end $$;",
    );
    // A new session: the database's TimeZone applies to what follows.
    source().psql(
        &pair.src,
        "create table public.events (at timestamptz);
         insert into public.events values ('2024-03-10 03:30:00+00'), ('2024-03-10 05:30:00+00');
         create materialized view public.event_days as
           select at::date as day, count(*) as n from public.events group by 1;",
    );
    pair.clone_ok(true, &[]);
    // Rows of the view, settings (role settings too) and comment against the source.
    assert_faithful(&pair).await;
    let t = target().client(&pair.dst).await;
    let days: String = scalar(
        &t,
        "select string_agg(day::text, ',' order by day) from public.event_days",
    )
    .await;
    assert_eq!(days, "2024-03-09,2024-03-10");
}

/// neoncopy's record of committed parts must not take a user's schema called neoncopy (nor
/// write into its table parts), and must never drop it.
#[tokio::test(flavor = "multi_thread")]
async fn a_user_schema_named_neoncopy_is_left_alone() {
    let pair = fresh_pair("user_neoncopy", false);
    source().psql(
        &pair.src,
        "create schema neoncopy;
         create table neoncopy.parts (table_oid int8, part int4, rows int8, note text);
         insert into neoncopy.parts values (1, 1, 1, 'the user''s own row');
         create table neoncopy.keep (id int primary key);
         insert into neoncopy.keep select generate_series(1, 1000);
         create table big (id int primary key, t text);
         insert into big select g, repeat('x', 100) from generate_series(1, 20000) g;",
    );
    let out = pair.clone_ok(false, SPLIT);
    assert_faithful(&pair).await;
    let err = stderr(&out);
    assert!(err.contains("split into"), "{err}");
    let t = target().client(&pair.dst).await;
    let rows: i64 = scalar(&t, "select count(*) from neoncopy.parts").await;
    assert_eq!(rows, 1);
    let ours: i64 = scalar(
        &t,
        "select count(*) from pg_namespace where nspname like 'neoncopy_parts%'",
    )
    .await;
    assert_eq!(ours, 0, "neoncopy's own schema is dropped after the copy");
}

/// An index marked as depending on an extension keeps the mark (pg_dump writes it in the
/// index's entry, after CREATE INDEX).
#[tokio::test(flavor = "multi_thread")]
async fn index_depends_on_extension_is_kept() {
    let pair = fresh_pair("idx_depends", false);
    source().psql(
        &pair.src,
        "create extension hstore;
         create table docs (id int primary key, h hstore);
         create index docs_h on docs using gist (h);
         alter index docs_h depends on extension hstore;
         create index docs_id_h on docs ((id * 2)) where h is not null;
         alter index docs_id_h alter column 1 set statistics 500;
         alter table docs cluster on docs_h;
         alter index docs_pkey depends on extension hstore;
         insert into docs select g, hstore('k', g::text) from generate_series(1, 100) g;",
    );
    pair.clone_ok(false, &[]);
    assert_faithful(&pair).await;
    let t = target().client(&pair.dst).await;
    let n: i64 = scalar(
        &t,
        "select count(*) from pg_depend d join pg_extension e on e.oid = d.refobjid \
         where d.classid = 'pg_class'::regclass and d.deptype = 'x' and e.extname = 'hstore'",
    )
    .await;
    assert_eq!(n, 2);
}

/// `check` rehearses the schema as clone does: what only a superuser may create is named
/// before anything is written, with the way out; a superuser target passes.
#[tokio::test(flavor = "multi_thread")]
async fn check_names_what_the_target_would_refuse() {
    let pair = fresh_pair("check_refuses", true);
    source().psql(&pair.src, &fixture("post_data"));
    let run = |managed: bool| {
        let mut args = vec![
            "--source".to_string(),
            pair.source_uri(),
            "--target".into(),
            pair.target_uri(managed),
        ];
        if managed {
            args.extend(["--no-owner".into(), "--no-acl".into()]);
        }
        let (code, checks) = check(&args);
        (code, find(&checks, "schema").clone())
    };
    let (code, schema) = run(true);
    assert_eq!(code, Some(1), "{schema}");
    assert_eq!(schema["status"], "fail", "{schema}");
    assert!(
        schema["detail"]
            .as_str()
            .unwrap()
            .contains("EVENT TRIGGER no_alter_table"),
        "{schema}"
    );
    assert!(
        schema["fix"].as_str().unwrap().contains("superuser"),
        "{schema}"
    );
    assert_eq!(pair.target_relations().await, 0);
    let (code, schema) = run(false);
    assert_eq!(schema["status"], "pass", "{schema}");
    assert_eq!(code, Some(0), "{schema}");
}
