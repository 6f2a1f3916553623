//! Security across processes: segment modes (0600 by default, a group mode when asked, never
//! narrowed by the umask), another user's segment refused unless allowed, symbolic links never
//! followed, and names that cannot name a segment refused. See docs/security.md.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::os::unix::fs::PermissionsExt as _;

use agent_coherence::{Error, OpenOptions, Segment};
use common::{SegGuard, arg, backing_file, say, small_config, unique_name, unique_path};

/// The uid of `nobody`, to which the root-only tests give a segment.
const NOBODY: u32 = 65534;

#[test]
fn child_entry() {
    common::child_main(|role, seg, args| match role {
        // `create MODE_OCTAL UMASK_OCTAL`: create under that umask, report the file's mode.
        "create" => {
            let mode = u32::from_str_radix(&args[0], 8).unwrap();
            let umask = u32::from_str_radix(&args[1], 8).unwrap();
            // SAFETY: umask(2) only swaps the process's file-creation mask; it cannot fail.
            unsafe { libc::umask(umask as libc::mode_t) };
            let segment = OpenOptions::new()
                .mode(mode)
                .create(seg, small_config())
                .unwrap();
            let found = std::fs::metadata(backing_file(seg))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777;
            say(format!("MODE {found:o}"));
            drop(segment);
        }
        // `open ALLOW(0|1)`: open (and if it works, write once), report the outcome.
        "open" => {
            let allow: u8 = arg(args, 0);
            let opened = OpenOptions::new()
                .allow_other_owner(allow == 1)
                .open(seg)
                .and_then(|segment| {
                    let agent = segment.attach("visitor")?;
                    agent.put("visited", b"yes")
                });
            say(describe(opened));
        }
        other => panic!("unknown role {other}"),
    });
}

/// One line for the outcome of opening a segment and writing to it.
fn describe(result: agent_coherence::Result<u64>) -> String {
    match result {
        Ok(version) => format!("OK {version}"),
        Err(Error::ForeignOwner {
            owner_uid,
            your_uid,
            ..
        }) => format!("FOREIGN {owner_uid} {your_uid}"),
        Err(Error::Symlink { .. }) => "SYMLINK".to_owned(),
        Err(Error::SegmentNotFound { .. }) => "NOT_FOUND".to_owned(),
        Err(e) => format!("OTHER {e:?}"),
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn segments_are_0600_by_default_and_the_umask_never_narrows_a_mode() {
    for (mode, umask, expected) in [
        (0o600, 0o022, "600"),
        (0o600, 0o077, "600"),
        (0o660, 0o077, "660"),
        (0o640, 0o027, "640"),
    ] {
        for guard in [SegGuard::shm("mode"), SegGuard::file("mode")] {
            let mut child = guard.spawn("create", &[&format!("{mode:o}"), &format!("{umask:o}")]);
            assert_eq!(
                child.expect("MODE"),
                expected,
                "mode {mode:o} under umask {umask:o} at {}",
                guard.name
            );
            child.wait_ok();
            guard.finish();
        }
    }
    // The plain constructor is the 0600 default.
    let guard = SegGuard::file("mode-default");
    drop(Segment::create(&guard.name, small_config()).unwrap());
    let found = std::fs::metadata(backing_file(&guard.name))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(found & 0o7777, 0o600);
    guard.finish();
}

#[test]
fn another_users_segment_is_refused_unless_allowed() {
    if !is_root() {
        eprintln!("skipped: only root can give a segment to another user");
        return;
    }
    for guard in [SegGuard::shm("owner"), SegGuard::file("owner")] {
        drop(Segment::create(&guard.name, small_config()).unwrap());
        std::os::unix::fs::chown(backing_file(&guard.name), Some(NOBODY), None).unwrap();

        // Refused by default, in another process, with a typed error naming the owner.
        let mut refused = guard.spawn("open", &["0"]);
        assert_eq!(
            refused.line(),
            format!("FOREIGN {NOBODY} 0"),
            "{}",
            guard.name
        );
        refused.wait_ok();
        let err = Segment::open(&guard.name).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("uid 65534"), "{message}");
        assert!(message.contains("allow_other_owner"), "{message}");
        assert!(message.contains("--allow-other-owner"), "{message}");
        eprintln!("refused: {message}");

        // Allowed when asked: the whole open-attach-write path works.
        let mut allowed = guard.spawn("open", &["1"]);
        assert_eq!(allowed.line(), "OK 1", "{}", guard.name);
        allowed.wait_ok();
        guard.finish();
    }
}

#[test]
fn a_symlink_is_refused_never_followed() {
    // A file-path segment reached through a link in the last component.
    let real = SegGuard::file("real");
    drop(Segment::create(&real.name, small_config()).unwrap());
    let link = unique_path("link");
    std::os::unix::fs::symlink(&real.name, &link).unwrap();
    let _remove_link = RemoveFile(link.clone().into());
    let mut child = common::Proc::spawn("open", &link, &["1"], None);
    assert_eq!(child.line(), "SYMLINK");
    child.wait_ok();
    let err = Segment::open(&link).unwrap_err();
    assert!(matches!(err, Error::Symlink { .. }), "{err:?}");
    eprintln!("symlink: {err}");

    // A shared-memory name planted as a link in /dev/shm, pointing at a file-path segment.
    let shm = unique_name("shm-link");
    let shm_file = backing_file(&shm);
    std::os::unix::fs::symlink(&real.name, &shm_file).unwrap();
    let _remove_shm_link = RemoveFile(shm_file);
    let mut child = common::Proc::spawn("open", &shm, &["1"], None);
    assert_eq!(child.line(), "SYMLINK");
    child.wait_ok();

    // Creating through a link, even a dangling one, never creates its target.
    let target = unique_path("dangling-target");
    let dangling = unique_path("dangling");
    std::os::unix::fs::symlink(&target, &dangling).unwrap();
    let _remove_dangling = RemoveFile(dangling.clone().into());
    assert!(matches!(
        Segment::create(&dangling, small_config()),
        Err(Error::SegmentExists { .. })
    ));
    assert!(!std::path::Path::new(&target).exists());
    real.finish();
}

#[test]
fn names_that_cannot_name_a_segment_are_refused() {
    for bad in ["", ".", "..", "a\0b"] {
        for result in [
            Segment::open(bad).map(drop),
            Segment::create(bad, small_config()).map(drop),
            Segment::destroy(bad),
        ] {
            assert!(
                matches!(result, Err(Error::BadLocation { .. })),
                "{bad:?}: {result:?}"
            );
        }
    }
    let too_long = "x".repeat(201);
    assert!(matches!(
        Segment::create(&too_long, small_config()),
        Err(Error::BadLocation { .. })
    ));
    // A name with '/' is a path by design: `../x` names the file x in the parent directory,
    // as a shell would; it is not a shared-memory name that escapes /dev/shm.
    let dir = std::env::temp_dir().join(unique_name("names"));
    std::fs::create_dir(&dir).unwrap();
    let _remove_dir = RemoveDir(dir.clone());
    let inner = dir.join("sub");
    std::fs::create_dir(&inner).unwrap();
    let via_parent = format!("{}/../seg", inner.display());
    let segment = Segment::create(&via_parent, small_config()).unwrap();
    assert!(dir.join("seg").exists());
    drop(segment);
    Segment::destroy(&via_parent).unwrap();
}

#[test]
fn the_facade_error_messages_say_what_to_do() {
    let err = Error::Symlink {
        location: "/tmp/x".into(),
    };
    assert!(err.to_string().contains("name the file itself"), "{err}");
}

/// Removes a file (or link) on drop.
struct RemoveFile(std::path::PathBuf);

impl Drop for RemoveFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Removes a directory tree on drop.
struct RemoveDir(std::path::PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
