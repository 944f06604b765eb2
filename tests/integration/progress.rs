//! Run state and reporting: list progress during and after a clone, the summary, logging
//! without a terminal, and the list commands against the source catalog.

use crate::support::*;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn list(args: &[&str], dir: Option<&std::path::Path>) -> std::process::Output {
    let mut all: Vec<String> = vec!["list".into()];
    all.extend(args.iter().map(|s| s.to_string()));
    if let Some(d) = dir {
        all.push("--dir".into());
        all.push(d.display().to_string());
    }
    neoncopy(&all, &[])
}

fn json_of(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

const STEPS: [&str; 13] = [
    "Catalog Queries (table ordering, filtering, etc)",
    "Dump Schema",
    "Prepare Schema",
    "COPY, INDEX, CONSTRAINTS, VACUUM (wall clock)",
    "COPY (cumulative)",
    "CREATE INDEX (cumulative)",
    "CONSTRAINTS (cumulative)",
    "VACUUM (cumulative)",
    "Reset Sequences",
    "Large Objects (cumulative)",
    "Finalize Schema",
    "Total Wall Clock Duration",
    "Total Active Duration (runs only)",
];

#[tokio::test(flavor = "multi_thread")]
async fn progress_during_a_clone_only_grows_and_ends_complete() {
    let pair = fresh_pair("live_progress", false);
    source().psql(
        &pair.src,
        "create table big_a (id int primary key, pad text); \
         insert into big_a select g, repeat(md5(g::text), 6) from generate_series(1, 700000) g; \
         create table big_b (id int primary key, pad text); \
         insert into big_b select g, repeat(md5(g::text), 6) from generate_series(1, 500000) g; \
         create index on big_b (pad); \
         create table small (id int primary key); insert into small values (1);",
    );
    source().psql(&pair.src, &fixture("users"));
    let dir = pair.workdir.path().to_path_buf();
    pair.note_clone(false, &[]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_neoncopy"))
        .args([
            "clone",
            "--source",
            &pair.source_uri(),
            "--target",
            &pair.target_uri(false),
            "--dir",
            &dir.display().to_string(),
            "--table-jobs",
            "1",
            "--index-jobs",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut snapshots: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        if dir.join("state.db").exists() {
            let out = list(&["progress", "--json"], Some(&dir));
            if out.status.success() {
                snapshots.push(json_of(&out));
            }
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let running: Vec<&Value> = snapshots
        .iter()
        .filter(|s| s["status"] == "running")
        .collect();
    assert!(
        running.len() >= 3,
        "too few snapshots while running: {}",
        running.len()
    );
    assert!(
        running.iter().any(
            |s| s["workers"].as_array().is_some_and(|w| w
                .iter()
                .any(|w| w["doing"].as_str().unwrap_or("").starts_with("COPY")))
        ),
        "some snapshot shows a worker copying"
    );
    assert!(
        running
            .iter()
            .any(|s| s["bytes_copied"].as_u64().unwrap() > 0
                && s["tables"]["done"].as_u64().unwrap() < 4),
        "some snapshot shows bytes copied before all tables are done"
    );
    for key in [
        ("bytes_copied", ""),
        ("rows_copied", ""),
        ("tables", "done"),
        ("indexes", "done"),
    ] {
        let values: Vec<u64> = snapshots
            .iter()
            .map(|s| {
                let v = if key.1.is_empty() {
                    &s[key.0]
                } else {
                    &s[key.0][key.1]
                };
                v.as_u64().unwrap()
            })
            .collect();
        assert!(
            values.windows(2).all(|w| w[0] <= w[1]),
            "{key:?} went down: {values:?}"
        );
    }
    assert!(
        running.iter().any(|s| s["eta_secs"].as_f64().is_some()),
        "some snapshot has an ETA"
    );
    let last = json_of(&list(&["progress", "--json"], Some(&dir)));
    assert_eq!(last["status"], "done");
    assert_eq!(last["total_is_estimate"], false);
    assert_eq!(last["estimated_total_bytes"], last["bytes_copied"]);
    assert_eq!(last["tables"]["done"], last["tables"]["total"]);
    assert_eq!(last["tables"]["total"], 4);
    assert_eq!(last["indexes"]["done"], last["indexes"]["total"]);
    assert_eq!(last["rows_copied"], 1_200_003);
    assert_faithful(&pair).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn summary_has_every_step_and_the_numbers_add_up() {
    let pair = fresh_pair("summary", false);
    for f in ["users", "large_objects", "constraints", "indexes"] {
        source().psql(&pair.src, &fixture(f));
    }
    let out = pair.clone_ok(false, &[]);
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let s = json_of(&list(
        &["progress", "--summary", "--json"],
        Some(pair.workdir.path()),
    ));
    assert_eq!(s["status"], "done");
    let steps = s["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|l| l["step"].as_str().unwrap()).collect();
    assert_eq!(names, STEPS);
    let total = steps[11]["duration_secs"].as_f64().unwrap();
    assert!(total > 0.0);
    // One run: active and wall-clock time agree.
    let active = steps[12]["duration_secs"].as_f64().unwrap();
    assert!(
        (total - active).abs() < 1.0,
        "wall {total}, active {active}"
    );
    assert_eq!(s["sessions"], 1);
    let memory = s["peak_memory_bytes"].as_u64().unwrap();
    assert!(memory > 1 << 20 && memory < 1 << 30, "{memory}");
    assert_eq!(s["large_objects"], 3, "{s}");
    assert_eq!(
        s["indexes"].as_u64().unwrap(),
        s["tables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["indexes"].as_u64().unwrap())
            .sum::<u64>()
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "clone done in {}: {} tables",
            neoncopy::fmt::duration(total),
            s["tables"].as_array().unwrap().len()
        )),
        "the log's last line and the summary disagree: {err}"
    );
    for l in steps {
        let d = l["duration_secs"]
            .as_f64()
            .unwrap_or_else(|| panic!("no duration for {l}"));
        assert!(d >= 0.0, "{l}");
        let cumulative = l["step"].as_str().unwrap().contains("(cumulative)");
        if !cumulative {
            assert!(d <= total + 0.001, "{l} longer than the whole run");
        }
        assert!(
            printed.contains(l["step"].as_str().unwrap()),
            "clone's own summary lacks {l}"
        );
    }
    // The wall clock of the data step covers no more than the run; COPY moved bytes.
    let tables = s["tables"].as_array().unwrap();
    let table_bytes: u64 = tables.iter().map(|t| t["bytes"].as_u64().unwrap()).sum();
    assert_eq!(steps[4]["transfer_bytes"].as_u64().unwrap(), table_bytes);
    assert!(table_bytes > 100_000);
    let lo = steps[9]["transfer_bytes"].as_u64().unwrap();
    assert_eq!(lo, 2_400_000 + 18, "large object bytes");
    let t = target().client(&pair.dst).await;
    let n_tables: i64 = scalar(
        &t,
        "select count(*) from pg_tables where schemaname = 'public'",
    )
    .await;
    assert_eq!(tables.len() as i64, n_tables);
    assert!(tables.iter().all(|t| t["state"] == "done"));
    let rows: u64 = tables.iter().map(|t| t["rows"].as_u64().unwrap()).sum();
    let s_rows: i64 = source()
        .client(&pair.src)
        .await
        .query_one(
            "select (select count(*) from users) + (select count(*) from lo_refs) + (select count(*) from rooms) \
             + (select count(*) from bookings) + (select count(*) from tree) + (select count(*) from pairs) \
             + (select count(*) from legacy) + (select count(*) from child_of_rooms) + (select count(*) from docs)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows as i64, s_rows);
    let idx: u64 = tables.iter().map(|t| t["indexes"].as_u64().unwrap()).sum();
    let p = json_of(&list(&["progress", "--json"], Some(pair.workdir.path())));
    assert_eq!(p["indexes"]["total"].as_u64().unwrap(), idx);
    assert_eq!(p["indexes"]["done"], p["indexes"]["total"]);
    // The text form of the same.
    let text = list(&["progress", "--summary"], Some(pair.workdir.path()));
    let text = String::from_utf8_lossy(&text.stdout);
    for name in STEPS {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_terminal_there_are_no_escape_codes_and_quiet_and_verbose_work() {
    let pair = fresh_pair("no_tty", false);
    source().psql(&pair.src, &fixture("users"));
    let out = pair.clone_ok(false, &[]);
    let all = [out.stdout.clone(), out.stderr.clone()].concat();
    assert!(
        !all.contains(&0x1b),
        "escape codes in output without a terminal"
    );
    let err = stderr(&out);
    assert!(
        err.contains("copied public.users: 2 rows"),
        "one line per table:\n{err}"
    );
    assert!(
        err.contains("Dump Schema: done in"),
        "one line per step:\n{err}"
    );

    let quiet = pair.clone_with(false, &["--drop-if-exists", "--quiet"]);
    assert!(quiet.status.success(), "{}", stderr(&quiet));
    assert!(!stderr(&quiet).contains(" INFO "), "{}", stderr(&quiet));
    let verbose = pair.clone_with(false, &["--drop-if-exists", "--verbose"]);
    assert!(verbose.status.success());
    assert!(stderr(&verbose).contains(" DEBUG "), "{}", stderr(&verbose));
    let out = neoncopy(
        &[
            "clone".into(),
            "--source".into(),
            pair.source_uri(),
            "--target".into(),
            pair.target_uri(false),
            "--dir".into(),
            pair.workdir.path().display().to_string(),
            "--drop-if-exists".into(),
        ],
        &[("RUST_LOG", "warn")],
    );
    assert!(out.status.success());
    assert!(!stderr(&out).contains(" INFO "), "RUST_LOG=warn hides info");
}

#[tokio::test(flavor = "multi_thread")]
async fn list_commands_agree_with_the_source_catalog() {
    let pair = fresh_pair("lists", false);
    for f in [
        "users",
        "names",
        "columns",
        "indexes",
        "partitions",
        "extensions",
    ] {
        source().psql(&pair.src, &fixture(f));
    }
    source().psql(&pair.src, "analyze");
    let src = pair.source_uri();
    let s = source().client(&pair.src).await;

    let tables = json_of(&list(&["tables", "--json", "--source", &src], None));
    let mut listed: Vec<String> = tables
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
    listed.sort();
    let expected: Vec<String> = s
        .query(
            "select n.nspname || '.' || c.relname from pg_class c \
             join pg_namespace n on n.oid = c.relnamespace \
             where c.relkind = 'r' and n.nspname not in ('pg_catalog', 'information_schema') \
             order by 1",
            &[],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(listed, expected);
    let docs = tables
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "docs")
        .unwrap();
    assert_eq!(docs["split_key"], "id");

    let indexes = json_of(&list(&["indexes", "--json", "--source", &src], None));
    let n: i64 = s
        .query_one(
            "select count(*) from pg_indexes \
             where schemaname not in ('pg_catalog', 'information_schema')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(indexes.as_array().unwrap().len() as i64, n);
    let by_restore = indexes
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["built_by"] == "pg_restore")
        .count();
    assert!(by_restore > 0, "partitioned indexes are left to pg_restore");

    let seqs = json_of(&list(&["sequences", "--json", "--source", &src], None));
    let free = seqs
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "free_standing")
        .unwrap();
    assert_eq!(free["last_value"], 1010);
    assert_eq!(free["is_called"], true);

    let exts = json_of(&list(&["extensions", "--json", "--source", &src], None));
    let names: Vec<&str> = exts
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for e in ["citext", "hstore", "pg_trgm", "pgcrypto", "plpgsql"] {
        assert!(names.contains(&e), "{e} not in {names:?}");
    }

    // The parts of a table cover each row exactly once, by key and by pages.
    for (table, arg) in [("docs", "public.docs"), ("events_us", "events_us")] {
        let parts = json_of(&list(
            &[
                "table-parts",
                "--json",
                "--source",
                &src,
                "--split-tables-larger-than",
                "16kB",
                "--split-max-parts",
                "3",
                "--table",
                arg,
            ],
            None,
        ));
        let parts = parts.as_array().unwrap();
        assert!(parts.len() >= 2, "{table} should be split: {parts:?}");
        let mut sum = 0i64;
        for p in parts {
            let cond = p["condition"].as_str().unwrap();
            let n: i64 = scalar(&s, &format!("select count(*) from {table} where {cond}")).await;
            sum += n;
        }
        let total: i64 = scalar(&s, &format!("select count(*) from {table}")).await;
        assert_eq!(sum, total, "parts of {table} must cover every row once");
    }
    let bad = list(
        &[
            "table-parts",
            "--source",
            &src,
            "--split-tables-larger-than",
            "lots",
        ],
        None,
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("invalid size"), "{}", stderr(&bad));
}

#[tokio::test(flavor = "multi_thread")]
async fn list_progress_without_a_run_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = list(&["progress"], Some(dir.path()));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no clone has run in"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_are_one_object_per_line() {
    let pair = fresh_pair("json_logs", false);
    source().psql(&pair.src, &fixture("users"));
    let out = pair.clone_ok(false, &["--log-format", "json"]);
    let err = stderr(&out);
    let mut lines = 0;
    for line in err.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
        lines += 1;
    }
    assert!(lines > 5, "{err}");
    assert!(err.contains("\"copied public.users: 2 rows"), "{err}");
}

/// A run refused by its checks (the target now holds tables) leaves the record of the clone
/// before it as it was; a run that starts keeps a copy of it in earlier-runs/.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_rerun_keeps_the_record_of_the_finished_clone() {
    let pair = fresh_pair("record_kept", false);
    source().psql(&pair.src, &fixture("users"));
    pair.clone_ok(false, &[]);
    let dir = pair.workdir.path();
    let before = json_of(&list(&["progress", "--summary", "--json"], Some(dir)));
    let again = pair.clone_with(false, &[]);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("already holds"),
        "{}",
        stderr(&again)
    );
    let out = list(&["progress", "--summary", "--json"], Some(dir));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_of(&out), before, "the finished clone's record changed");
    assert_eq!(
        pair.state_count("select count(*) from run where status = 'done'"),
        1
    );
    let old_run: String = pair
        .state()
        .query_row("select run_id from run", [], |r| r.get(0))
        .unwrap();
    // A clone that passes its checks replaces the record, keeping the earlier one.
    pair.clone_ok(false, &["--drop-if-exists"]);
    let kept = dir.join("earlier-runs").join(format!("{old_run}.db"));
    let earlier =
        rusqlite::Connection::open(&kept).unwrap_or_else(|e| panic!("{}: {e}", kept.display()));
    let status: String = earlier
        .query_row("select status from run", [], |r| r.get(0))
        .unwrap();
    assert_eq!(status, "done");
    let units: i64 = earlier
        .query_row("select count(*) from unit where state = 'done'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(units > 0);
}

/// The clone's own summary shows the steps and the ten slowest tables, and points at
/// `list progress --summary`, which lists them all.
#[tokio::test(flavor = "multi_thread")]
async fn the_closing_summary_shows_the_slowest_tables_only() {
    let pair = fresh_pair("short_summary", false);
    let mut sql = String::new();
    for i in 0..40 {
        sql.push_str(&format!(
            "create table t{i} (id int primary key); insert into t{i} select generate_series(1, {});",
            10 + i
        ));
    }
    source().psql(&pair.src, &sql);
    let out = pair.clone_ok(false, &[]);
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let rows = printed
        .lines()
        .filter(|l| l.trim_start().starts_with("public.t"))
        .count();
    assert_eq!(rows, 10, "{printed}");
    assert!(
        printed.contains(&format!(
            "The 10 slowest of 40 tables; all of them: neoncopy list progress --summary --dir {}",
            pair.workdir.path().display()
        )),
        "{printed}"
    );
    let all = list(&["progress", "--summary"], Some(pair.workdir.path()));
    let all = String::from_utf8_lossy(&all.stdout).to_string();
    let rows = all
        .lines()
        .filter(|l| l.trim_start().starts_with("public.t"))
        .count();
    assert_eq!(rows, 40, "{all}");
}

/// On a terminal, the lines above the bars are warnings, errors and step changes: no line per
/// table (those stay in plain logs, as the other tests read them).
#[tokio::test(flavor = "multi_thread")]
async fn above_the_bars_no_line_per_table() {
    let pair = fresh_pair("bars_quiet", false);
    let mut sql = String::new();
    for i in 0..30 {
        sql.push_str(&format!(
            "create table t{i} (id int primary key); insert into t{i} values (1);"
        ));
    }
    source().psql(&pair.src, &sql);
    pair.note_clone(false, &[]);
    let command = format!(
        "{} clone --source {} --target {} --dir {}",
        env!("CARGO_BIN_EXE_neoncopy"),
        pair.source_uri(),
        pair.target_uri(false),
        pair.workdir.path().display()
    );
    // script(1) gives the clone a terminal.
    let out = std::process::Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env_remove("RUST_LOG")
        .env_remove("NEONCOPY_NO_BARS")
        .output()
        .expect("run script(1)");
    let screen = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{screen}");
    assert!(screen.contains("Dump Schema: done"), "{screen}");
    assert!(!screen.contains("copied public.t"), "{screen}");
    assert_faithful(&pair).await;
}

/// Sizes are binary units labelled as such, the same as the bars' (566.8 MiB, never a
/// "566.8 MB" that means 1024² bytes): in list, check and the clone's summary.
#[tokio::test(flavor = "multi_thread")]
async fn sizes_are_labelled_in_binary_units() {
    let pair = fresh_pair("size_units", false);
    source().psql(
        &pair.src,
        "create table wide (id int primary key, pad text); \
         insert into wide select g, repeat('x', 1000) from generate_series(1, 3000) g;",
    );
    let tables = list(&["tables", "--source", &pair.source_uri()], None);
    let check = neoncopy(
        &[
            "check".into(),
            "--source".into(),
            pair.source_uri(),
            "--target".into(),
            pair.target_uri(false),
        ],
        &[],
    );
    let clone = pair.clone_ok(false, &[]);
    for (what, out) in [
        ("list tables", &tables),
        ("check", &check),
        ("clone", &clone),
    ] {
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(out));
        assert!(
            text.contains(" MiB") || text.contains(" KiB"),
            "{what}: {text}"
        );
        for wrong in [" kB", " MB", " GB"] {
            assert!(
                !text.lines().any(|l| l.contains(wrong) && !l.contains("--")),
                "{what} says {wrong:?}: {text}"
            );
        }
    }
}

/// --quiet prints nothing but warnings and errors, not even the closing summary; the work
/// directory keeps the run's log (neoncopy.log), per-table lines included.
#[tokio::test(flavor = "multi_thread")]
async fn quiet_is_quiet_and_the_log_is_kept_in_the_work_directory() {
    let pair = fresh_pair("quiet_log", false);
    source().psql(&pair.src, &fixture("users"));
    let out = pair.clone_ok(false, &["--quiet"]);
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!stderr(&out).contains("INFO"), "{}", stderr(&out));
    let log = pair.log();
    assert!(log.contains("copied public.users"), "{log}");
    assert!(log.contains("clone done in"), "{log}");
    assert!(!log.contains('\u{1b}'), "no escape codes in the log file");
}
