//! Writes the man pages (man/) and shell completions (completions/) generated from the
//! command-line definitions:
//!
//!   cargo run --example gen-docs
//!
//! CI checks that the committed files are up to date (tests/docs.rs).

#[path = "../tests/docs_gen/mod.rs"]
mod docs_gen;

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (path, contents) in docs_gen::files() {
        let full = root.join(&path);
        if let Some(dir) = full.parent() {
            std::fs::create_dir_all(dir).expect("create directory");
        }
        std::fs::write(&full, contents).expect("write generated file");
        println!("wrote {path}");
    }
}
