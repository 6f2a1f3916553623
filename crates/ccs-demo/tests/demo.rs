//! The refactor story through real processes and a real `cargo check`: each variant's verdict,
//! its narration, and that nothing is left behind in /dev/shm or the temp directory.
//!
//! The role processes are this test binary re-executed as `role_entry` (see [`ROLE_PREFIX`]):
//! libtest runs only that test, which hands the arguments after `--` to `ccs_demo::role_main`
//! and exits with its status.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::ffi::OsString;
use std::path::Path;
use std::sync::Mutex;

use ccs_demo::{Build, CommitRead, DemoError, Variant, Verdict};

/// The word after `--` that marks a re-executed role process.
const ROLE_MARK: &str = "ccs-demo-role";

/// How the demo re-executes this binary as a role process: libtest runs only `role_entry`
/// (free arguments after `--` are test-name filters, and with `--exact` none but `role_entry`
/// matches), which finds the role's arguments after [`ROLE_MARK`].
fn role_prefix() -> Vec<OsString> {
    [
        "role_entry",
        "--exact",
        "--nocapture",
        "--quiet",
        "--",
        ROLE_MARK,
    ]
    .map(OsString::from)
    .to_vec()
}

#[test]
fn role_entry() {
    let args: Vec<OsString> = std::env::args_os().collect();
    let Some(at) = args
        .windows(2)
        .position(|pair| pair[0] == "--" && pair[1] == ROLE_MARK)
    else {
        return; // the test run itself: nothing to do
    };
    let code = ccs_demo::role_main(args[at + 2..].iter().cloned());
    std::process::exit(if code == std::process::ExitCode::SUCCESS {
        0
    } else {
        1
    });
}

/// One demo run at a time in this process, so that the clean-up checks see only their own run.
static SERIAL: Mutex<()> = Mutex::new(());

/// Everything named after this process in `dir` starting with `ccs-demo-`.
fn leftovers(dir: &Path) -> Vec<String> {
    let prefix = format!("ccs-demo-{}-", std::process::id());
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                .filter(|name| name.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

fn assert_clean() {
    assert_eq!(leftovers(Path::new("/dev/shm")), Vec::<String>::new());
    assert_eq!(leftovers(&std::env::temp_dir()), Vec::<String>::new());
}

/// Run `variants` through real processes; the verdicts and the narration.
fn demo(variants: &[Variant]) -> (Vec<Verdict>, String) {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let exe = std::env::current_exe().unwrap();
    let mut out = Vec::new();
    let result = ccs_demo::run(variants, &exe, &role_prefix(), &mut out);
    let text = String::from_utf8(out).unwrap();
    assert_clean();
    match result {
        Ok(verdicts) => (verdicts, text),
        Err(error) => panic!("{error}\n--- output so far:\n{text}"),
    }
}

fn assert_fails_on_the_fourth_caller(verdict: &Verdict) {
    assert_eq!((verdict.spec_version, verdict.callers_renamed), (1, 3));
    match &verdict.build {
        Build::Fails { first_error } => {
            assert!(first_error.contains("error[E0425]"), "{first_error}");
            assert!(first_error.contains("`validate_user`"), "{first_error}");
            assert!(first_error.starts_with("src/billing.rs:"), "{first_error}");
        }
        Build::Passes => panic!("{verdict}"),
    }
    assert!(verdict.as_expected());
}

#[test]
fn with_coherence_the_commit_time_read_misses_and_the_build_passes() {
    let (verdicts, text) = demo(&[Variant::With]);
    let [verdict] = verdicts.as_slice() else {
        panic!("{verdicts:?}")
    };
    assert_eq!(verdict.commit_read, CommitRead::Miss);
    assert_eq!((verdict.spec_version, verdict.callers_renamed), (2, 4));
    assert_eq!(verdict.build, Build::Passes);
    assert!(verdict.as_expected());
    assert_eq!(
        verdict.to_string(),
        "with: build PASSES (4/4 callers renamed)"
    );
    for line in [
        "planner   put task/spec v1: rename validate_user → authenticate_user in auth.rs, login.rs, api.rs, admin.rs\n",
        "executor  get task/spec [MISS] v1:",
        "executor  refresh task/spec [MISS] v2 (the commit-time read)\n",
        "with: build PASSES (4/4 callers renamed)\n",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
    // The steps are narrated in the story's order.
    let at = |needle: &str| text.find(needle).unwrap_or(usize::MAX);
    let order = [
        "put task/spec v1",
        "get task/spec [MISS] v1",
        "put demo/executor-started v1",
        "put task/spec v2",
        "put demo/planner-done v1",
        "refresh task/spec",
        "renamed validate_user",
        "cargo check (",
        "put task/result v1",
        "get task/result",
    ];
    assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{text}");
}

#[test]
fn with_a_context_cache_the_executor_commits_from_v1_and_the_build_fails() {
    let (verdicts, text) = demo(&[Variant::ContextCache]);
    let [verdict] = verdicts.as_slice() else {
        panic!("{verdicts:?}")
    };
    assert_eq!(verdict.commit_read, CommitRead::Skipped);
    assert_fails_on_the_fourth_caller(verdict);
    assert!(
        text.contains("context-cache: build FAILS — src/billing.rs:"),
        "{text}"
    );
}

#[test]
fn without_invalidation_the_commit_time_read_hits_v1_and_the_build_fails() {
    let (verdicts, text) = demo(&[Variant::NoInvalidation]);
    let [verdict] = verdicts.as_slice() else {
        panic!("{verdicts:?}")
    };
    assert_eq!(verdict.commit_read, CommitRead::Hit);
    assert_fails_on_the_fourth_caller(verdict);
    assert!(
        text.contains("executor  refresh task/spec [HIT] v1"),
        "{text}"
    );
}

#[test]
fn a_role_process_that_fails_is_an_error_and_nothing_is_left_behind() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let exe = std::env::current_exe().unwrap();
    // `role_entry` with a role it does not know: the role processes exit 1.
    let mut prefix = role_prefix();
    prefix.push("no-such-role".into());
    let mut out = Vec::new();
    let result = ccs_demo::run(&[Variant::With], &exe, &prefix, &mut out);
    assert_clean();
    match result {
        Err(DemoError::RoleFailed { stderr, .. }) => {
            assert!(stderr.contains("unknown role `no-such-role`"), "{stderr}");
        }
        other => panic!("{other:?}"),
    }
}
