//! Segments across processes: exclusive creation, file-path segments, permissions, missing
//! segments, and corrupted headers refused with a clear error (never a panic or a crash).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt as _;

use agent_coherence::{Error, Segment};
use common::{SegGuard, ask, backing_file, say, small_config, unique_name, unique_path};

#[test]
fn child_entry() {
    common::child_main(|role, seg, args| match role {
        "create" => say(describe(Segment::create(seg, small_config()).map(|_| ()))),
        "open" => say(describe(Segment::open(seg).map(|_| ()))),
        "open_or_create" => {
            let config = agent_coherence::Config {
                max_agents: 99,
                ..small_config()
            };
            let segment = Segment::open_or_create(seg, config).unwrap();
            say(format!("MAX_AGENTS {}", segment.config().max_agents));
        }
        "agent" => common::scripted_agent(seg, &args[0]),
        other => panic!("unknown role {other}"),
    });
}

/// One line for the outcome of creating or opening a segment.
fn describe(result: agent_coherence::Result<()>) -> String {
    match result {
        Ok(()) => "OK".to_owned(),
        Err(Error::SegmentExists { .. }) => "EXISTS".to_owned(),
        Err(Error::SegmentNotFound { .. }) => "NOT_FOUND".to_owned(),
        Err(e @ Error::Segment { .. }) => format!("SEGMENT {e}"),
        Err(e) => format!("OTHER {e:?}"),
    }
}

fn mode_of(location: &str) -> u32 {
    std::fs::metadata(backing_file(location))
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn create_is_exclusive_across_processes() {
    let guard = SegGuard::shm("excl");
    let segment = Segment::create(&guard.name, small_config()).unwrap();
    assert_eq!(mode_of(&guard.name), 0o600);
    let mut second = guard.spawn("create", &[]);
    assert_eq!(second.line(), "EXISTS");
    second.wait_ok();
    // open_or_create opens the existing one and keeps its sizes.
    let mut third = guard.spawn("open_or_create", &[]);
    assert_eq!(third.line(), "MAX_AGENTS 16");
    third.wait_ok();
    drop(segment);
    guard.finish();
}

#[test]
fn a_file_path_segment_works_across_processes() {
    let guard = SegGuard::file("path");
    let segment = Segment::create(&guard.name, small_config()).unwrap();
    assert_eq!(mode_of(&guard.name), 0o600);
    let reader = segment.attach("reader").unwrap();

    let mut writer = guard.spawn("agent", &["writer"]);
    writer.expect("READY");
    assert_eq!(
        ask(&mut writer, "put notes/design written elsewhere"),
        "OK 1"
    );
    let read = reader.get("notes/design").unwrap();
    assert_eq!(
        (read.bytes.as_slice(), read.version, read.hit),
        (&b"written elsewhere"[..], 1, false)
    );
    assert_eq!(reader.put("notes/design", b"answered").unwrap(), 2);
    assert_eq!(ask(&mut writer, "get notes/design"), "MISS 2 answered");
    writer.send("quit");
    writer.wait_ok();
    drop((reader, segment));
    guard.finish();
}

#[test]
fn opening_a_missing_segment_is_not_found() {
    for location in [unique_name("missing"), unique_path("missing")] {
        let mut child = common::Proc::spawn("open", &location, &[], None);
        assert_eq!(child.line(), "NOT_FOUND", "{location}");
        child.wait_ok();
        assert!(matches!(
            Segment::open(&location),
            Err(Error::SegmentNotFound { .. })
        ));
        assert!(!backing_file(&location).exists(), "open created {location}");
    }
}

/// Create a file-path segment, then overwrite bytes at `offset` with `bytes` (or truncate it
/// to `truncate` bytes); return what a fresh process says when it opens it.
fn open_corrupted(tag: &str, offset: u64, bytes: &[u8], truncate: Option<u64>) -> String {
    let guard = SegGuard::file(tag);
    drop(Segment::create(&guard.name, small_config()).unwrap());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&guard.name)
        .unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(bytes).unwrap();
    if let Some(len) = truncate {
        file.set_len(len).unwrap();
    }
    drop(file);
    let mut child = guard.spawn("open", &[]);
    let said = child.line();
    child.wait_ok();
    guard.finish();
    said
}

fn word(value: u64) -> [u8; 8] {
    value.to_le_bytes()
}

#[test]
fn a_garbage_magic_is_refused() {
    let said = open_corrupted("bad-magic", 0, b"garbage!", None);
    assert!(said.starts_with("SEGMENT "), "{said}");
    eprintln!("garbage magic: {said}");
}

#[test]
fn another_layout_version_is_refused() {
    let said = open_corrupted("bad-version", 8, &word(99), None);
    assert!(said.starts_with("SEGMENT "), "{said}");
    eprintln!("layout version 99: {said}");
}

#[test]
fn a_tampered_size_word_is_refused() {
    // Word 3: max agents. The header checksum (or the size check) must catch it.
    let said = open_corrupted("bad-size", 24, &word(60_000), None);
    assert!(said.starts_with("SEGMENT "), "{said}");
    eprintln!("tampered max agents: {said}");
}

#[test]
fn a_scrambled_header_is_refused() {
    // Magic and layout version intact, every other header word garbage.
    let garbage: Vec<u8> = (0..62 * 8).map(|i| (i * 37 + 11) as u8).collect();
    let said = open_corrupted("scrambled", 16, &garbage, None);
    assert!(said.starts_with("SEGMENT "), "{said}");
    eprintln!("scrambled header: {said}");
}

#[test]
fn a_truncated_segment_is_refused() {
    let said = open_corrupted("truncated", 0, &[], Some(4096));
    assert!(said.starts_with("SEGMENT "), "{said}");
    eprintln!("truncated to 4096 bytes: {said}");
}

#[test]
fn an_empty_segment_file_is_refused() {
    let said = open_corrupted("empty", 0, &[], Some(0));
    assert!(
        said.starts_with("SEGMENT ") || said.starts_with("OTHER Os("),
        "{said}"
    );
    eprintln!("empty file: {said}");
}

#[test]
fn a_never_initialised_header_is_refused() {
    // A zero magic reads as a creator still initialising: the opener waits a little, then
    // gives up with a segment error.
    let said = open_corrupted("zeroed", 0, &[0; 512], None);
    assert!(said.starts_with("SEGMENT "), "{said}");
    eprintln!("zeroed header: {said}");
}

#[test]
fn a_tampered_lease_word_is_refused_by_the_checksum() {
    // Word 7: the write lease; every size stays consistent, so only the checksum can tell.
    let said = open_corrupted("bad-lease", 56, &word(12_345), None);
    assert!(said.starts_with("SEGMENT "), "{said}");
    eprintln!("tampered write lease: {said}");
}
