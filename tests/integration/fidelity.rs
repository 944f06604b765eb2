//! Fidelity against the reference, on databases nobody wrote a case for: every fixture in
//! tests/fixtures onto both kinds of target, with and without split tables; every type the
//! server has; awkward text and encodings. Each clone is compared with pg_dump | pg_restore
//! of the same source (`assert_faithful`).

use crate::support::*;

/// Every fixture file, by name.
fn all_fixtures() -> Vec<String> {
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
    for name in all_fixtures() {
        let pair = fresh_pair(&format!("fx_{mode}_{name}"), managed);
        source().psql(&pair.src, &fixture(&name));
        let out = pair.clone_with(managed, extra);
        if out.status.success() {
            assert_faithful(&pair).await;
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
