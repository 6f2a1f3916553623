//! `ccs demo refactor` end to end: the binary re-executes itself as the role processes
//! (`ccs demo-role`), exits 0 when the verdicts are the story's, and leaves nothing behind.
//! The verdicts themselves are tested in `crates/ccs-demo/tests/demo.rs`.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::Path;
use std::process::{Command, Stdio};

const CCS: &str = env!("CARGO_BIN_EXE_ccs");

/// Entries of `dir` that the `ccs` process `pid` named after itself.
fn leftovers(dir: &Path, pid: u32) -> Vec<String> {
    let prefix = format!("ccs-demo-{pid}-");
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(&prefix))
        .collect()
}

/// Run `ccs ARGS`: (exit code, stdout, stderr), checking that it cleaned up.
fn ccs(args: &[&str]) -> (i32, String, String) {
    let child = Command::new(CCS)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    assert_eq!(leftovers(Path::new("/dev/shm"), pid), Vec::<String>::new());
    assert_eq!(leftovers(&std::env::temp_dir(), pid), Vec::<String>::new());
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn demo_refactor_with_exits_0_with_the_passing_verdict() {
    let (code, stdout, stderr) = ccs(&["demo", "refactor", "--variant", "with"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("\nwith: build PASSES (4/4 callers renamed)\n"),
        "{stdout}"
    );
}

#[test]
fn demo_refactor_context_cache_exits_0_with_the_failing_build() {
    let (code, stdout, stderr) = ccs(&["demo", "refactor", "--variant", "context-cache"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("\ncontext-cache: build FAILS — src/billing.rs:"),
        "{stdout}"
    );
}

#[test]
fn demo_refactor_refuses_an_unknown_variant() {
    let (code, _, stderr) = ccs(&["demo", "refactor", "--variant", "sometimes"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("possible values"), "{stderr}");
}
