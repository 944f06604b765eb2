//! scripts/demo.sh, the first thing a newcomer runs: its table of rows per table must show
//! the same numbers on both sides, and it ends with `neoncopy compare data` finding the copy
//! identical.

use crate::support::*;

#[test]
fn the_demo_shows_a_faithful_copy() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(root.join("scripts/demo.sh"))
        .env("NEONCOPY_BIN", env!("CARGO_BIN_EXE_neoncopy"))
        .env_remove("KEEP")
        .output()
        .expect("run scripts/demo.sh");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("== the result"))
        .skip(2)
        .take_while(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(table.len(), 5, "{text}");
    for line in table {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let n = cols.len();
        assert_eq!(cols[n - 2], cols[n - 1], "source and target differ: {line}");
        assert_ne!(cols[n - 1], "0", "{line}");
    }
    assert!(text.contains("compare data exit code: 0"), "{text}");
}
