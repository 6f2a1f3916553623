//! The fuzzer's corpus and crashers as a regular test: every file of
//! `fuzz/corpus/segment_image` and `fuzz/artifacts/segment_image` goes through the fuzz target's
//! own code, [`ccs_protocol::fuzzing::run_image`], which must return (no panic, no hang).
//! `scripts/fuzz` runs the fuzzer itself and adds what it finds to these directories.

#![cfg(not(loom))]

use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new(); // no crashers yet: the directory may be absent
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_file())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| !name.starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn corpus_and_crashers_return() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let corpus = inputs(&fuzz.join("corpus/segment_image"));
    assert!(
        !corpus.is_empty(),
        "no seed inputs in {}",
        fuzz.join("corpus/segment_image").display()
    );
    let crashers = inputs(&fuzz.join("artifacts/segment_image"));
    for path in corpus.iter().chain(&crashers) {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("{}", path.display());
        ccs_protocol::fuzzing::run_image(&data);
    }
}
