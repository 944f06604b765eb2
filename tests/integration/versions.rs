//! Across major versions: sources of PostgreSQL 12 to 18 into targets of 14 to 18 (servers
//! from scripts/ensure-deps.sh's cache; Debian's 15 as the default), each pair onto a
//! superuser and a managed-style target. The source holds every fixture of tests/ (each in
//! a schema of its own), large objects and a table of every type; the copy is compared with
//! pg_dump | pg_restore into the same target version by the client programs neoncopy chose,
//! and `compare schema` and `compare data` must find source and target identical. A target
//! older than its source is refused before anything is written.

use crate::fidelity::{all_fixtures, every_type_source};
use crate::support::*;

/// Fixtures that do not go into the shared database: the filters' fixture (written for the
/// filter tests, into public, with extensions and schemas of others' names).
const NOT_SHARED: &[&str] = &["filters"];
/// Fixtures that only a superuser target can take (an event trigger).
const SUPERUSER_ONLY: &[&str] = &["post_data"];
/// Fixtures that refer to public by name: loaded into public.
const IN_PUBLIC: &[&str] = &["more_objects"];

/// Loads the fixtures into one database, each into a schema of its own (those that block
/// others, like an event trigger, last), and a table of every type the source has.
async fn load_all(cluster: &'static Cluster, db: &str, managed: bool) {
    let mut names: Vec<String> = all_fixtures()
        .into_iter()
        .filter(|n| !NOT_SHARED.contains(&n.as_str()))
        .filter(|n| !(managed && SUPERUSER_ONLY.contains(&n.as_str())))
        .collect();
    names.sort_by_key(|n| SUPERUSER_ONLY.contains(&n.as_str()));
    for name in names {
        let sql = if IN_PUBLIC.contains(&name.as_str()) {
            fixture(&name)
        } else {
            format!(
                "create schema fx_{name}; set search_path = fx_{name}, public;\n{}",
                fixture(&name)
            )
        };
        let out = cluster.try_psql(db, &sql);
        assert!(
            out,
            "fixture {name} does not load into PostgreSQL {}",
            cluster.major
        );
    }
    every_type_source(cluster, db).await;
}

/// PATH for neoncopy with the PostgreSQL 18 client programs first; Debian's 15 is found
/// under /usr/lib/postgresql as well.
fn path_with_clients() -> String {
    format!(
        "{}:{}",
        client18_bin().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// The directory of the pg_dump a clone said it used.
fn tools_used(stderr: &str) -> std::path::PathBuf {
    let line = stderr
        .lines()
        .find(|l| l.contains("INFO using ") && l.contains("pg_dump"))
        .unwrap_or_else(|| panic!("no 'using pg_dump' line in:\n{stderr}"));
    let path = line
        .split("INFO using ")
        .nth(1)
        .unwrap()
        .split(" (")
        .next()
        .unwrap();
    std::path::Path::new(path).parent().unwrap().to_path_buf()
}

/// The major version of the pg_dump in `dir`.
fn major_of(dir: &std::path::Path) -> u32 {
    let out = std::process::Command::new(dir.join("pg_dump"))
        .arg("--version")
        .output()
        .expect("run pg_dump --version");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.split_whitespace()
        .find_map(|w| w.split('.').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no version in {text:?}"))
}

/// The client major neoncopy must pick with 15 and 18 installed: the target's own, else
/// the newest not newer than the target that reads the source, else the oldest newer one.
fn expected_client(source: u32, target: u32) -> u32 {
    let have = [15, 18];
    let usable: Vec<u32> = have.iter().copied().filter(|m| *m >= source).collect();
    if usable.contains(&target) {
        return target;
    }
    if let Some(m) = usable.iter().copied().filter(|m| *m < target).max() {
        return m;
    }
    usable
        .into_iter()
        .min()
        .expect("a client that reads the source")
}

fn compare(pair: &Pair, what: &str, managed: bool) -> std::process::Output {
    // With --no-owner the target's objects belong to the managed role.
    let args = vec![
        "compare".to_string(),
        what.to_string(),
        "--source".into(),
        pair.source_uri(),
        "--target".into(),
        pair.target_uri(managed),
        "--dir".into(),
        pair.workdir.path().display().to_string(),
    ];
    neoncopy(&args, &[("PATH", &path_with_clients())])
}

async fn pair_of_versions(source: u32, target: u32) {
    let (s, t) = (cluster(source), cluster(target));
    for managed in [false, true] {
        let kind = if managed { "mg" } else { "su" };
        let mut pair = fresh_pair_on(&format!("v{source}_{target}_{kind}"), managed, s, t);
        pair.env = vec![("PATH".into(), path_with_clients())];
        load_all(s, &pair.src, managed).await;
        let out = pair.clone_with(managed, &[]);
        let err = stderr(&out);
        assert!(
            out.status.success(),
            "{source} -> {target} ({kind}):\n{err}"
        );
        let tools = tools_used(&err);
        assert_eq!(
            major_of(&tools),
            expected_client(source, target),
            "{source} -> {target}: pg_dump of the wrong version:\n{err}"
        );
        *pair.reference_tools.lock().unwrap() = Some(tools);
        assert_faithful(&pair).await;
        // Compared as a superuser on the target: a table with forced row-level security hides
        // rows from its owner (the managed role), and compare refuses to be shown fewer rows.
        for what in ["schema", "data"] {
            let out = compare(&pair, what, false);
            assert_eq!(
                out.status.code(),
                Some(0),
                "compare {what}, {source} -> {target} ({kind}):\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                stderr(&out)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn from_12_to_17() {
    pair_of_versions(12, 17).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn from_13_to_17() {
    pair_of_versions(13, 17).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn from_14_to_17() {
    pair_of_versions(14, 17).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn from_15_to_17() {
    pair_of_versions(15, 17).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn from_16_to_17() {
    pair_of_versions(16, 17).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn from_17_to_17() {
    pair_of_versions(17, 17).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn from_13_to_14() {
    pair_of_versions(13, 14).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn from_15_to_16() {
    pair_of_versions(15, 16).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn from_15_to_18() {
    pair_of_versions(15, 18).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn from_17_to_18() {
    pair_of_versions(17, 18).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn from_18_to_18() {
    pair_of_versions(18, 18).await;
}

/// A target older than the source is refused by check and by clone, in one line naming both
/// versions, before anything is written.
#[tokio::test(flavor = "multi_thread")]
async fn an_older_target_is_refused() {
    for (source, target) in [(17, 15), (18, 17)] {
        let pair = fresh_pair_on(
            &format!("v{source}_{target}_down"),
            false,
            cluster(source),
            cluster(target),
        );
        pair.src_cluster.psql(&pair.src, &fixture("users"));
        let out = pair.clone_with(false, &[]);
        assert_one_line_error(
            &out,
            1,
            &format!(
                "the target runs PostgreSQL {target}, older than the source's PostgreSQL {source}"
            ),
        );
        assert_eq!(pair.target_relations().await, 0);
        let args = vec![
            "--source".to_string(),
            pair.source_uri(),
            "--target".into(),
            pair.target_uri(false),
        ];
        let (code, checks) = check_with(&args, &[("PATH", &path_with_clients())]);
        assert_eq!(code, Some(1), "{checks:?}");
        let versions = find(&checks, "versions");
        assert_eq!(versions["status"], "fail", "{versions}");
        assert!(
            versions["fix"]
                .as_str()
                .unwrap()
                .contains(&format!("PostgreSQL {source} or newer")),
            "{versions}"
        );
    }
}

/// `pg_dump -Fc <scope>` of `db` by the pg_dump in `client`: the archive's entries as
/// `pg_restore -l` lists them without their dump ids (the data objects pg_dump makes shift
/// them), and the script pg_restore writes of the entries `keep` selects.
fn dump_with_scope(
    cluster: &Cluster,
    db: &str,
    client: &std::path::Path,
    scope: &[&str],
    keep: &dyn Fn(&str) -> bool,
) -> (Vec<String>, String) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("schema.dump");
    let run = |program: &str, args: &[String]| {
        let out = std::process::Command::new(client.join(program))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        assert!(out.status.success(), "{program} {args:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let mut args: Vec<String> = ["--format=custom", "--no-subscriptions", "--encoding=UTF8"]
        .iter()
        .chain(scope)
        .map(|a| a.to_string())
        .collect();
    args.push(format!("--file={}", file.display()));
    args.push(format!("--dbname={}", cluster.uri(db)));
    run("pg_dump", &args);
    let listed = run("pg_restore", &["--list".into(), file.display().to_string()]);
    let mut entries = Vec::new();
    let mut list = String::new();
    for line in listed
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
    {
        let entry = line.split_once(';').map_or(line, |(_, rest)| rest);
        if keep(entry) {
            entries.push(entry.to_string());
            list.push_str(line);
            list.push('\n');
        }
    }
    let list_file = dir.path().join("restore.list");
    std::fs::write(&list_file, list).expect("write the restore list");
    let script = run(
        "pg_restore",
        &[
            format!("--use-list={}", list_file.display()),
            "--file=-".into(),
            file.display().to_string(),
        ],
    );
    // pg_restore 18's \restrict key is new on every run.
    let script = script
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n");
    (entries, script)
}

/// Whether an entry of `pg_restore -l` is a materialized view's REFRESH or a large object's.
fn refresh_or_large_object(entry: &str) -> bool {
    [
        " MATERIALIZED VIEW DATA ",
        " BLOB ",
        " BLOBS ",
        " BLOB METADATA ",
        "LARGE OBJECT",
    ]
    .iter()
    .any(|k| entry.contains(k))
}

/// clone asks pg_dump for `--schema-only` when the source has no materialized view and no
/// large object to copy, for `--section=pre-data --section=post-data` otherwise. The two
/// must then dump the same: for sources of 12, 15 and 18 holding every fixture, with each
/// pg_dump here that reads them, the archives hold the same entries in the same order, and
/// pg_restore writes the same script of them, but for the REFRESH and large object entries
/// only the sections hold.
#[tokio::test(flavor = "multi_thread")]
async fn schema_only_dumps_what_the_sections_dump_but_refresh_and_large_objects() {
    for source in [12, 15, 18] {
        let c = cluster(source);
        let db = format!("v{source}_scope");
        c.psql("postgres", &format!("drop database if exists {db}"));
        c.psql("postgres", &format!("create database {db}"));
        load_all(c, &db, false).await;
        for client in [15, 18].into_iter().filter(|m| *m >= source) {
            let bin = client_bin_of(client);
            let sections = ["--section=pre-data", "--section=post-data"];
            let (all, _) = dump_with_scope(c, &db, &bin, &sections, &|_| true);
            let (same, sections_script) =
                dump_with_scope(c, &db, &bin, &sections, &|e| !refresh_or_large_object(e));
            let (schema_only, script) =
                dump_with_scope(c, &db, &bin, &["--schema-only"], &|_| true);
            assert!(
                same.len() > 300,
                "{source} by {client}: {} entries",
                same.len()
            );
            assert_eq!(same, schema_only, "{source} by {client}");
            assert!(script.contains("CREATE TABLE"), "{source} by {client}");
            assert!(
                sections_script == script,
                "{source} by {client}: the scripts differ"
            );
            let only_sections: Vec<&String> =
                all.iter().filter(|e| refresh_or_large_object(e)).collect();
            assert!(
                only_sections
                    .iter()
                    .any(|e| e.contains("MATERIALIZED VIEW DATA")),
                "{source} by {client}: {only_sections:?}"
            );
            // pg_dump 17 and later put large objects' metadata in the data section.
            assert_eq!(
                only_sections
                    .iter()
                    .any(|e| e.contains("LARGE OBJECT") || e.contains(" BLOB ")),
                client < 17,
                "{source} by {client}: {only_sections:?}"
            );
        }
    }
}

/// pg_dump 17 and later put large objects' metadata in the data section, so a source with
/// large objects and no materialized view is dumped with `--schema-only` for a target of 18,
/// and the large objects step creates them all (OID, owner, comment, contents): the copy is
/// compared with pg_dump | pg_restore by the same pg_dump, onto both kinds of target.
#[tokio::test(flavor = "multi_thread")]
async fn large_objects_dumped_schema_only_by_pg_dump_18() {
    let (s, t) = (cluster(15), cluster(18));
    for managed in [false, true] {
        let kind = if managed { "mg" } else { "su" };
        let mut pair = fresh_pair_on(&format!("lo_schema_only_{kind}"), managed, s, t);
        pair.env = vec![("PATH".into(), path_with_clients())];
        s.psql(&pair.src, &fixture("large_objects"));
        let out = pair.clone_with(managed, &[]);
        let err = stderr(&out);
        assert!(out.status.success(), "{kind}:\n{err}");
        let tools = tools_used(&err);
        assert_eq!(major_of(&tools), 18, "{err}");
        *pair.reference_tools.lock().unwrap() = Some(tools);
        let log = pair.log();
        assert!(log.contains("pg_dump --schema-only"), "{log}");
        assert!(
            log.contains("created 3 large objects the schema archive does not hold"),
            "{log}"
        );
        assert_faithful(&pair).await;
    }
}
