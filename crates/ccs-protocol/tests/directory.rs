//! In-process tests of the protocol on a heap layout: semantics, capacity, reclamation, and
//! hostile segment contents (errors, never panics).

#![cfg(not(loom))]

mod common;

use ccs_protocol::sync::{AtomicU64, Ordering};
use ccs_protocol::testing::MemEnv;
use ccs_protocol::{
    AgentId, Condition, Config, Directory, Geometry, Mesi, ProtocolError, WaitResult,
};
use common::{agent, config, fixture};

fn read(dir: &Directory<MemEnv>, agent: AgentId, line: u32) -> (Vec<u8>, u64, bool) {
    let mut out = Vec::new();
    let info = dir.read(agent, line, &mut out).expect("read");
    (out, info.version, info.hit)
}

#[test]
fn miss_hit_invalidate_conflict() {
    let f = fixture(config());
    let (a, b) = (agent(&f.dir, "a"), agent(&f.dir, "b"));
    let line = f.dir.find_or_insert_key("k").expect("key");
    assert_eq!(
        f.dir.read(b, line, &mut Vec::new()),
        Err(ProtocolError::NotFound)
    );
    assert_eq!(f.dir.put(a, line, b"one", Condition::View), Ok(1));
    assert_eq!(read(&f.dir, b, line), (b"one".to_vec(), 1, false));
    assert_eq!(read(&f.dir, b, line), (b"one".to_vec(), 1, true));
    assert_eq!(f.dir.cell(b.slot, line).expect("cell").state, Mesi::Shared);
    assert_eq!(f.dir.put(a, line, b"two", Condition::View), Ok(2));
    assert_eq!(f.dir.cell(b.slot, line).expect("cell").state, Mesi::Invalid);
    assert!(!f.dir.check(b, line).expect("check").valid);
    assert_eq!(
        f.dir.put(b, line, b"stale", Condition::View),
        Err(ProtocolError::Conflict {
            current: 2,
            yours: 1
        })
    );
    assert_eq!(
        f.dir.put(b, line, b"x", Condition::Version(1)),
        Err(ProtocolError::Conflict {
            current: 2,
            yours: 1
        })
    );
    assert_eq!(read(&f.dir, b, line), (b"two".to_vec(), 2, false));
    assert_eq!(f.dir.put(b, line, b"three", Condition::Version(2)), Ok(3));
    assert_eq!(f.dir.put(a, line, b"blind", Condition::Blind), Ok(4));
    // The writer holds what it wrote.
    assert_eq!(read(&f.dir, a, line), (b"blind".to_vec(), 4, true));
}

#[test]
fn delete_is_a_version_and_writes_continue_after_it() {
    let f = fixture(config());
    let a = agent(&f.dir, "a");
    let line = f.dir.find_or_insert_key("notes/1").expect("key");
    assert_eq!(
        f.dir.delete(a, line, Condition::View),
        Err(ProtocolError::NotFound)
    );
    f.dir.put(a, line, b"x", Condition::View).expect("put");
    assert_eq!(
        f.dir.keys_with_prefix("notes/"),
        Ok(vec!["notes/1".to_string()])
    );
    assert_eq!(f.dir.delete(a, line, Condition::View), Ok(2));
    assert_eq!(
        f.dir.read(a, line, &mut Vec::new()),
        Err(ProtocolError::NotFound)
    );
    assert_eq!(f.dir.keys_with_prefix("notes/"), Ok(vec![]));
    assert_eq!(
        f.dir.delete(a, line, Condition::View),
        Err(ProtocolError::NotFound)
    );
    assert_eq!(f.dir.put(a, line, b"again", Condition::View), Ok(3));
    assert_eq!(read(&f.dir, a, line).0, b"again");
}

#[test]
fn keys_are_found_and_bounded() {
    let f = fixture(config());
    let long = "k".repeat(257);
    assert!(matches!(
        f.dir.find_or_insert_key(&long),
        Err(ProtocolError::BadKey { len: 257, .. })
    ));
    assert!(matches!(
        f.dir.find_or_insert_key(""),
        Err(ProtocolError::BadKey { .. })
    ));
    let max = "m".repeat(256);
    let line = f.dir.find_or_insert_key(&max).expect("256-byte key");
    assert_eq!(f.dir.find_key(&max), Ok(Some(line)));
    assert_eq!(f.dir.key_of(line), Ok(Some(max)));
    for i in 1..16 {
        f.dir.find_or_insert_key(&format!("key/{i}")).expect("fits");
    }
    assert!(matches!(
        f.dir.find_or_insert_key("one-too-many"),
        Err(ProtocolError::CapacityExceeded {
            what: "artifacts",
            limit: 16
        })
    ));
    assert_eq!(f.dir.find_key("key/7").map(|l| l.is_some()), Ok(true));
    assert_eq!(f.dir.find_key("absent"), Ok(None));
}

#[test]
fn arena_memory_is_reclaimed_and_a_full_arena_is_refused_cleanly() {
    let f = fixture(config());
    let a = agent(&f.dir, "a");
    let line = f.dir.find_or_insert_key("big").expect("key");
    // 64 KiB arena, 8 KiB payloads: without reclamation this would fill after 8 writes.
    for round in 0..1000u32 {
        let payload = vec![round as u8; 8 << 10];
        f.dir
            .put(a, line, &payload, Condition::Blind)
            .expect("reclaimed space is reused");
    }
    assert_eq!(read(&f.dir, a, line).0, vec![(999u32 % 256) as u8; 8 << 10]);

    // Fill the arena with live versions of other keys until it refuses.
    let mut refused = None;
    for i in 0..15 {
        let other = f.dir.find_or_insert_key(&format!("fill/{i}")).expect("key");
        if let Err(e) = f.dir.put(a, other, &vec![1u8; 8 << 10], Condition::Blind) {
            refused = Some((other, e));
            break;
        }
    }
    let (other, error) = refused.expect("the arena fills");
    assert!(
        matches!(
            error,
            ProtocolError::CapacityExceeded {
                what: "payload arena bytes",
                ..
            }
        ),
        "{error:?}"
    );
    // The refused write left no trace and the line is writable once space frees up.
    assert_eq!(
        f.dir.read(a, other, &mut Vec::new()),
        Err(ProtocolError::NotFound)
    );
    f.dir
        .delete(a, line, Condition::Blind)
        .expect("free the big one");
    f.dir
        .put(a, other, &vec![2u8; 8 << 10], Condition::Blind)
        .expect("space reused");
}

#[test]
fn a_pinned_version_survives_newer_writes_and_is_freed_after() {
    let f = fixture(config());
    let (a, b) = (agent(&f.dir, "a"), agent(&f.dir, "b"));
    let line = f.dir.find_or_insert_key("doc").expect("key");
    f.dir
        .put(a, line, &[7u8; 4096], Condition::View)
        .expect("v1");
    let (info, pin) = f.dir.read_pinned(b, line).expect("pin");
    assert_eq!((info.version, pin.len), (1, 4096));
    for v in 2..40u8 {
        f.dir
            .put(a, line, &[v; 4096], Condition::Blind)
            .expect("write");
    }
    let mut copy = Vec::new();
    let mut pinned_bytes = vec![0u8; pin.len];
    let words = f.dir.words();
    for (i, byte) in pinned_bytes.iter_mut().enumerate() {
        let word = words
            .at(pin.first_word.expect("payload") + i / 8)
            .expect("in range")
            .load(Ordering::Relaxed);
        *byte = word.to_le_bytes()[i % 8];
    }
    assert_eq!(pinned_bytes, vec![7u8; 4096], "pinned version untouched");
    f.dir.release_pin(pin).expect("unpin");
    assert!(
        matches!(f.dir.release_pin(pin), Err(ProtocolError::Corrupt { .. })),
        "double unpin is refused"
    );
    f.dir.read(b, line, &mut copy).expect("read");
    assert_eq!(copy, vec![39u8; 4096]);
}

#[test]
fn exclusive_holds_leases_and_fencing() {
    let f = fixture(config());
    let (a, b) = (agent(&f.dir, "a"), agent(&f.dir, "b"));
    let line = f.dir.find_or_insert_key("plan").expect("key");
    let hold = f.dir.acquire(a, line, 100).expect("acquire");
    assert_eq!(
        f.dir.cell(a.slot, line).expect("cell").state,
        Mesi::Exclusive
    );
    assert_eq!(
        f.dir.acquire(b, line, 100),
        Err(ProtocolError::Held { by: a.slot })
    );
    assert_eq!(
        f.dir.put(b, line, b"x", Condition::Blind),
        Err(ProtocolError::Held { by: a.slot })
    );
    f.dir.renew(hold, 100).expect("renew");
    f.dir.env().advance_ms(101);
    // Lease over: b reclaims, a is fenced.
    let taken = f.dir.acquire(b, line, 100).expect("reclaimed");
    assert_eq!(f.dir.commit(hold, b"from a"), Err(ProtocolError::Fenced));
    assert_eq!(f.dir.renew(hold, 100), Err(ProtocolError::Fenced));
    assert_eq!(f.dir.commit(taken, b"from b"), Ok(1));
    assert_eq!(read(&f.dir, a, line).0, b"from b");
    assert_eq!(f.dir.release(hold), Err(ProtocolError::Fenced));

    // A dead holder is reclaimed at once, whatever its lease.
    let hold = f.dir.acquire(a, line, 1_000_000).expect("acquire");
    f.dir.env().set_alive(a.slot, false);
    assert_eq!(f.dir.put(b, line, b"b wins", Condition::Blind), Ok(2));
    assert_eq!(f.dir.commit(hold, b"zombie"), Err(ProtocolError::Fenced));
}

#[test]
fn reattach_fences_the_old_handle_and_frees_its_holds() {
    let f = fixture(config());
    let old = agent(&f.dir, "worker");
    let line = f.dir.find_or_insert_key("t").expect("key");
    let _hold = f.dir.acquire(old, line, 1_000_000).expect("acquire");
    let new = f.dir.begin_attach(old.slot, 2).expect("re-attach");
    assert_eq!(new.generation, old.generation + 1);
    assert_eq!(
        f.dir.put(old, line, b"x", Condition::Blind),
        Err(ProtocolError::Fenced)
    );
    assert_eq!(f.dir.put(new, line, b"y", Condition::Blind), Ok(1));
}

#[test]
fn agents_are_persistent_and_bounded() {
    let f = fixture(config());
    let slot = f.dir.register_agent("planner").expect("register");
    assert_eq!(f.dir.register_agent("planner"), Ok(slot));
    assert_eq!(f.dir.find_agent("planner"), Ok(Some(slot)));
    assert!(matches!(
        f.dir.register_agent(&"n".repeat(65)),
        Err(ProtocolError::BadName { .. })
    ));
    for i in 1..8 {
        f.dir.register_agent(&format!("a{i}")).expect("fits");
    }
    assert!(matches!(
        f.dir.register_agent("ninth"),
        Err(ProtocolError::CapacityExceeded { what: "agents", .. })
    ));
}

#[test]
fn payloads_of_64_mib_round_trip() {
    let config = Config {
        arena_bytes: 192 << 20,
        max_payload: 64 << 20,
        ..config()
    };
    let f = fixture(config);
    let a = agent(&f.dir, "a");
    let line = f.dir.find_or_insert_key("huge").expect("key");
    let payload: Vec<u8> = (0..64usize << 20).map(|i| (i % 251) as u8).collect();
    f.dir
        .put(a, line, &payload, Condition::View)
        .expect("64 MiB");
    assert!(read(&f.dir, a, line).0 == payload);
    assert_eq!(
        f.dir
            .put(a, line, &vec![0; (64 << 20) + 1], Condition::View),
        Err(ProtocolError::PayloadTooLarge {
            len: (64 << 20) + 1,
            max: 64 << 20
        })
    );
}

#[test]
fn wait_returns_when_past_or_on_timeout() {
    let f = fixture(config());
    let a = agent(&f.dir, "a");
    let line = f.dir.find_or_insert_key("w").expect("key");
    f.dir.put(a, line, b"1", Condition::View).expect("v1");
    assert_eq!(
        f.dir.wait_changed(line, 0, Some(10)),
        Ok(WaitResult::Changed(1))
    );
    assert_eq!(
        f.dir.wait_changed(line, 1, Some(10)),
        Ok(WaitResult::TimedOut(1))
    );
}

/// Overwrite every word of a populated segment, one at a time, with hostile values, and run
/// the operations: each must return (Ok or an error), never panic or loop forever.
#[test]
fn hostile_words_give_errors_not_panics() {
    let config = Config {
        max_agents: 2,
        max_artifacts: 2,
        arena_bytes: 1024,
        max_payload: 256,
        write_lease_ms: 10,
        log_records: 64,
        inbox_events: 16,
    };
    let geometry = Geometry::new(config).expect("config");
    let words_total = geometry.total_bytes as usize / 8;
    // `1 << 62` alone: a tagged allocation record (agent word 6) that names no descriptor.
    for hostile in [u64::MAX, 1 << 40 | 3, 0x8000_0000_0000_0001, 1 << 62, 5] {
        for index in 0..words_total {
            let f = fixture(config);
            let a = agent(&f.dir, "a");
            let line = f.dir.find_or_insert_key("k").expect("key");
            f.dir
                .put(a, line, &[1u8; 100], Condition::View)
                .expect("v1");
            f.dir
                .put(a, line, &[2u8; 200], Condition::View)
                .expect("v2");
            let word: &AtomicU64 = f.dir.words().at(index).expect("in range");
            word.store(hostile, Ordering::Relaxed);
            f.dir.env().set_alive(a.slot, false);
            let _ = Geometry::read(&f.dir.words(), geometry.total_bytes);
            let _ = f.dir.artifact_rows();
            let _ = f.dir.agent_rows();
            let Ok(b) = f
                .dir
                .register_agent("b")
                .and_then(|slot| f.dir.begin_attach(slot, 2))
            else {
                continue;
            };
            let _ = f.dir.read(b, line, &mut Vec::new());
            let _ = f
                .dir
                .read_pinned(b, line)
                .map(|(_, pin)| f.dir.release_pin(pin));
            let _ = f.dir.put(b, line, &[3u8; 50], Condition::Blind);
            let _ = f.dir.find_or_insert_key("other");
            let _ = f.dir.check(b, line);
            let _ = f.dir.wait_changed(line, 100, Some(2));
        }
    }
}

/// A holder that took the line but never recorded its lease (stopped in between) is
/// reclaimed once the write lease has passed since a contender first saw it.
#[test]
fn a_holder_that_never_recorded_its_lease_is_reclaimed_after_the_write_lease() {
    let f = fixture(config());
    let (a, b) = (agent(&f.dir, "a"), agent(&f.dir, "b"));
    let line = f.dir.find_or_insert_key("k").expect("key");
    f.dir.put(a, line, b"v1", Condition::View).expect("v1");
    // Forge "a holds the line, lease not yet written": bump the head's holder by hand.
    let geometry = *f.dir.geometry();
    let head_index = geometry.lines_at + line as usize * geometry.line_words + 1;
    let head = f.dir.words().at(head_index).expect("head");
    let raw = head.load(Ordering::Relaxed);
    head.store(raw + 1 + ((u64::from(a.slot) + 1) << 24), Ordering::Relaxed);
    let env = f.dir.env();
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| f.dir.put(b, line, b"v2", Condition::Blind));
        while !writer.is_finished() {
            env.advance_ms(50);
            std::thread::yield_now();
        }
        assert_eq!(writer.join().expect("no panic"), Ok(2));
    });
}

/// A writer that dies at any step of a write leaves nothing behind once it is reclaimed: its
/// half-filled slot goes back to the arena, so crashes cannot fill the segment.
#[test]
fn dead_writers_slots_are_freed_by_their_reclaimer() {
    use ccs_protocol::StopAt;
    let f = fixture(config());
    let survivor = agent(&f.dir, "survivor");
    let line = f.dir.find_or_insert_key("k").expect("key");
    let mut expected = 0;
    // 64 KiB arena, 8 KiB payloads: a leak of one block per crash fills it within 8 crashes.
    for round in 0..200u32 {
        let stop = [StopAt::Taken, StopAt::Filled, StopAt::Invalidated][round as usize % 3];
        let victim = agent(&f.dir, "victim");
        f.dir.env().set_alive(victim.slot, true);
        let stopped =
            f.dir
                .write_stopping(victim, line, Some(&[9u8; 8 << 10]), Condition::Blind, stop);
        assert_eq!(stopped, Ok(None), "round {round}");
        f.dir.env().set_alive(victim.slot, false);
        expected += 1;
        assert_eq!(
            f.dir
                .put(survivor, line, &[round as u8; 8 << 10], Condition::Blind),
            Ok(expected),
            "round {round}"
        );
    }
    // And a re-attach of the dead agent frees what it held when it died.
    for _ in 0..20 {
        let victim = agent(&f.dir, "victim");
        f.dir.env().set_alive(victim.slot, true);
        let stopped = f.dir.write_stopping(
            victim,
            line,
            Some(&[9u8; 8 << 10]),
            Condition::Blind,
            StopAt::Filled,
        );
        assert_eq!(stopped, Ok(None));
        agent(&f.dir, "victim"); // re-attach: frees the hold and its slot
        expected += 1;
        assert_eq!(
            f.dir.put(survivor, line, &[1u8; 8 << 10], Condition::Blind),
            Ok(expected)
        );
    }
}

/// `being_written` is true from a put's take, through its invalidation and fill, until its
/// publication, and false once the line is published or reclaimed.
#[test]
fn a_write_in_flight_is_seen_until_it_publishes() {
    use ccs_protocol::StopAt;
    let f = fixture(config());
    let (writer, reader) = (agent(&f.dir, "writer"), agent(&f.dir, "reader"));
    let line = f.dir.find_or_insert_key("k").expect("key");
    assert_eq!(f.dir.being_written(line), Ok(false));
    f.dir.put(writer, line, b"v1", Condition::View).expect("v1");
    assert_eq!(f.dir.being_written(line), Ok(false));
    for stop in [StopAt::Taken, StopAt::Invalidated, StopAt::Filled] {
        let victim = agent(&f.dir, "victim");
        f.dir.env().set_alive(victim.slot, true);
        let stopped = f
            .dir
            .write_stopping(victim, line, Some(b"v?"), Condition::Blind, stop);
        assert_eq!(stopped, Ok(None), "{stop:?}");
        assert_eq!(f.dir.being_written(line), Ok(true), "{stop:?}");
        // The reclaimer's own write publishes: nothing is in flight afterwards.
        f.dir.env().set_alive(victim.slot, false);
        f.dir
            .put(reader, line, b"next", Condition::Blind)
            .expect("reclaimed and written");
        assert_eq!(f.dir.being_written(line), Ok(false), "{stop:?}");
    }
    assert!(f.dir.being_written(u32::MAX).is_err());
}

/// Pins held by a process that died are released by the agent's next attach, and the memory
/// they held is reused.
#[test]
fn a_dead_readers_pins_are_released_by_its_next_attach() {
    let f = fixture(config());
    let writer = agent(&f.dir, "writer");
    let reader = agent(&f.dir, "reader");
    let line = f.dir.find_or_insert_key("doc").expect("key");
    // 64 KiB arena of 8 KiB blocks: the current version plus seven pinned old ones fill it.
    let mut version = 0;
    for _ in 0..7 {
        version = f
            .dir
            .put(writer, line, &[1u8; 8 << 10], Condition::Blind)
            .expect("write");
        let (_, pin) = f.dir.read_pinned(reader, line).expect("pin");
        let _dies_holding_it = pin; // never released: the reader "dies" holding it
    }
    version = f
        .dir
        .put(writer, line, &[2u8; 8 << 10], Condition::Blind)
        .expect("fits")
        .max(version);
    assert!(matches!(
        f.dir.put(writer, line, &[3u8; 8 << 10], Condition::Blind),
        Err(ProtocolError::CapacityExceeded { .. })
    ));
    agent(&f.dir, "reader"); // the next attach under the dead reader's name
    assert_eq!(
        f.dir.put(writer, line, &[3u8; 8 << 10], Condition::Blind),
        Ok(version + 1)
    );
    assert_eq!(
        f.dir.put(writer, line, &[4u8; 8 << 10], Condition::Blind),
        Ok(version + 2)
    );
}

/// Issue 20's story in one process: 10,000 distinct keys put and deleted one after another in
/// a directory of 16 artifacts never run out of lines (deleted keys' lines are reused).
#[test]
fn deleted_keys_lines_are_reused() {
    let f = fixture(config());
    let a = agent(&f.dir, "a");
    let mut reused = 0;
    for i in 0..10_000 {
        let key = format!("task/{i}");
        let at = f.dir.insert_key(a, &key).expect("a line for a new key");
        reused += u32::from(at.generation > 0);
        let version = f.dir.put_at(a, at, b"x", Condition::View).expect("put");
        assert_eq!(f.dir.key_of_version(at.line, version), Ok(Some(key)));
        f.dir.delete_at(a, at, Condition::View).expect("delete");
    }
    assert!(reused > 9_000, "lines reused {reused} times");
    // Live keys still count against the limit.
    let live: Vec<_> = (0..16)
        .map(|i| {
            let at = f.dir.insert_key(a, &format!("live/{i}")).expect("fits");
            f.dir.put_at(a, at, b"x", Condition::Blind).expect("put");
            at
        })
        .collect();
    assert!(matches!(
        f.dir.insert_key(a, "one-too-many"),
        Err(ProtocolError::CapacityExceeded {
            what: "artifacts",
            ..
        })
    ));
    f.dir
        .delete_at(a, live[3], Condition::Blind)
        .expect("delete");
    f.dir.insert_key(a, "one-too-many").expect("room again");
}

/// A key resolved before its line was reused never reads or writes the new key's data, and a
/// key re-created after its line went to another key starts above its old versions.
#[test]
#[cfg_attr(ccs_mutant = "pinned_hit_unowned", should_panic)]
fn a_reused_line_refuses_stale_references() {
    let f = fixture(config());
    let a = agent(&f.dir, "a");
    let b = agent(&f.dir, "b");
    let old = f.dir.insert_key(a, "old").expect("key");
    for payload in [&b"1"[..], b"2", b"3"] {
        f.dir
            .put_at(a, old, payload, Condition::Blind)
            .expect("put");
    }
    assert_eq!(read(&f.dir, b, old.line).1, 3);
    assert_eq!(f.dir.delete_at(a, old, Condition::View), Ok(4));
    churn_until_reused(&f, a, old);
    let owner = f.dir.key_of(old.line).expect("key").expect("a key");
    assert_ne!(owner, "old");
    let (bytes, version, _) = read(&f.dir, b, old.line);
    assert_eq!(bytes, b"churn");
    assert!(
        version > 4,
        "the new key's version {version} is above the old tombstone"
    );
    assert_eq!(f.dir.key_of_version(old.line, 3), Ok(None));
    let mut out = Vec::new();
    assert_eq!(
        f.dir.read_at(b, old, &mut out),
        Err(ProtocolError::LineReused)
    );
    // The zero-copy read's inline HIT declines (b holds the new key's current version, which
    // is a HIT on the line) and its general path refuses.
    assert!(
        f.dir.pin_hit_at(b, old).is_none(),
        "a pinned HIT of another key"
    );
    assert!(matches!(
        f.dir.read_pinned_at(b, old),
        Err(ProtocolError::LineReused)
    ));
    assert_eq!(
        f.dir.put_at(b, old, b"stale", Condition::Blind),
        Err(ProtocolError::LineReused)
    );
    assert_eq!(
        f.dir.delete_at(b, old, Condition::Blind),
        Err(ProtocolError::LineReused)
    );
    assert!(matches!(
        f.dir.acquire_at(b, old, 100),
        Err(ProtocolError::LineReused)
    ));
    assert_eq!(read(&f.dir, b, old.line).0, b"churn", "nothing was written");
    // The old key comes back on another line, above every version it had.
    assert_eq!(f.dir.find_key_ref("old"), Ok(None));
    let again = f.dir.insert_key(a, "old").expect("key");
    assert_ne!(again, old);
    let first = f
        .dir
        .put_at(a, again, b"back", Condition::View)
        .expect("put");
    assert!(first > 4, "re-created at version {first}, not above 4");
    // An agent's view of the line's earlier key is no view of the new key.
    let check = f.dir.check(b, old.line).expect("check");
    assert_eq!((check.held, check.valid), (version, true));
    let check = f.dir.check(b, again.line).expect("check");
    assert!(!check.valid);
}

/// A deleted key's reader sees the tombstone: its next `View` write re-creates the key (before,
/// its read of the tombstone left its view behind, and every `put` was refused for good).
#[test]
fn reading_a_deletion_lets_the_reader_recreate_the_key() {
    let f = fixture(config());
    let a = agent(&f.dir, "a");
    let b = agent(&f.dir, "b");
    let line = f.dir.find_or_insert_key("plan").expect("key");
    f.dir.put(a, line, b"v1", Condition::View).expect("put");
    assert_eq!(read(&f.dir, b, line).1, 1);
    assert_eq!(f.dir.delete(a, line, Condition::View), Ok(2));
    assert_eq!(
        f.dir.put(b, line, b"stale", Condition::View),
        Err(ProtocolError::Conflict {
            current: 2,
            yours: 1
        })
    );
    assert_eq!(
        f.dir.read(b, line, &mut Vec::new()),
        Err(ProtocolError::NotFound)
    );
    assert_eq!(f.dir.put(b, line, b"again", Condition::View), Ok(3));
}

/// Put and delete other keys as `a` until `at`'s line goes to one of them (left written).
fn churn_until_reused(f: &common::Fixture, a: AgentId, at: ccs_protocol::LineRef) {
    for i in 0.. {
        let churn = f.dir.insert_key(a, &format!("churn/{i}")).expect("key");
        f.dir
            .put_at(a, churn, b"churn", Condition::Blind)
            .expect("put");
        if f.dir.generation(at.line).expect("generation") != at.generation {
            return;
        }
        f.dir.delete_at(a, churn, Condition::Blind).expect("delete");
    }
}

/// Delete the key at `at` as `a`, then churn until its line goes to another key.
fn delete_until_reused(f: &common::Fixture, a: AgentId, at: ccs_protocol::LineRef) {
    f.dir.delete_at(a, at, Condition::Blind).expect("delete");
    churn_until_reused(f, a, at);
}

/// An agent that read a key keeps its view across the key's move to another line: a write of
/// the re-created key from that stale knowledge is refused until it reads the key again
/// (without the ghost, it was admitted as a first write).
#[test]
fn a_moved_key_keeps_its_readers_stale_views_refused() {
    let f = fixture(config());
    let a = agent(&f.dir, "a");
    let b = agent(&f.dir, "b");
    let c = agent(&f.dir, "c");
    let old = f.dir.insert_key(a, "spec").expect("key");
    f.dir.put_at(a, old, b"v1", Condition::View).expect("put");
    f.dir.put_at(a, old, b"v2", Condition::View).expect("put");
    assert_eq!(read(&f.dir, b, old.line).1, 2);
    delete_until_reused(&f, a, old);
    // `a` deleted it (its view is the tombstone): it may re-create the key.
    let again = f.dir.insert_key(a, "spec").expect("key");
    assert_ne!(again.line, old.line);
    let created = f
        .dir
        .put_at(a, again, b"v3", Condition::View)
        .expect("the deleter re-creates the key");
    // `b` read version 2: its write is stale, and refused as a dropped view's is.
    assert_eq!(
        f.dir.put_at(b, again, b"from v2", Condition::View),
        Err(ProtocolError::Conflict {
            current: created,
            yours: 0
        })
    );
    // `c` never read the key: a first write, as always.
    let by_c = f
        .dir
        .put_at(c, again, b"blind", Condition::View)
        .expect("first write");
    // `b` reads, then writes.
    assert_eq!(read(&f.dir, b, again.line).1, by_c);
    assert_eq!(
        f.dir.put_at(b, again, b"current", Condition::View),
        Ok(by_c + 1)
    );
}

/// An agent that read a key which was then deleted and moved may not re-create it from its
/// stale view; having seen it absent, it may.
#[test]
fn a_stale_reader_recreates_a_moved_key_only_after_seeing_it_absent() {
    let f = fixture(config());
    let a = agent(&f.dir, "a");
    let b = agent(&f.dir, "b");
    let old = f.dir.insert_key(a, "spec").expect("key");
    f.dir.put_at(a, old, b"v1", Condition::View).expect("put");
    assert_eq!(read(&f.dir, b, old.line).1, 1);
    delete_until_reused(&f, a, old);
    let again = f.dir.insert_key(b, "spec").expect("key");
    assert!(matches!(
        f.dir.put_at(b, again, b"from v1", Condition::View),
        Err(ProtocolError::Conflict { yours: 0, .. })
    ));
    assert_eq!(
        f.dir.read_at(b, again, &mut Vec::new()),
        Err(ProtocolError::NotFound)
    );
    let created = f
        .dir
        .put_at(b, again, b"new", Condition::View)
        .expect("re-created after seeing it absent");
    assert!(created > 2, "above the tombstone: {created}");
    // The same through a lookup that finds no line at all.
    assert_eq!(read(&f.dir, a, again.line).1, created);
    delete_until_reused(&f, b, again);
    assert_eq!(f.dir.find_key_ref("spec"), Ok(None));
    f.dir.saw_absent(a, "spec").expect("saw absent");
    let third = f.dir.insert_key(a, "spec").expect("key");
    f.dir
        .put_at(a, third, b"third", Condition::View)
        .expect("re-created after seeing it absent");
}

/// Issue 20: a key started above 2^32 (`raise_version_floor`) with lease and access-count
/// agents, whose expiry state lives in the stamps table beside their 64-bit views: an access
/// count serves its n HITs per fetch then a MISS, a lease expires with the clock, and a write
/// makes both MISS at once. Log records and events carry the whole versions.
#[test]
fn strategies_and_records_above_2_pow_32() {
    const FLOOR: u64 = 5 << 32;
    let f = fixture(config());
    f.dir.raise_version_floor("hot", FLOOR).expect("floor");
    let line = f.dir.find_or_insert_key("hot").expect("key");
    let writer = agent(&f.dir, "writer");
    let attach = |name: &str, strategy| {
        let slot = f.dir.register_agent(name).expect("register");
        f.dir.begin_attach_with(slot, 2, strategy).expect("attach")
    };
    let counted = attach("counted", ccs_protocol::Strategy::AccessCount { hits: 2 });
    let leased = attach("leased", ccs_protocol::Strategy::Lease { ms: 100 });
    let eager = attach("eager", ccs_protocol::Strategy::Eager);
    f.dir.subscribe(eager, "hot").expect("subscribe");
    assert_eq!(
        f.dir.put(writer, line, b"v1", Condition::Blind),
        Ok(FLOOR + 1)
    );

    let hits = |agent: AgentId, n: usize| -> Vec<(u64, bool)> {
        (0..n)
            .map(|_| {
                let (_, version, hit) = read(&f.dir, agent, line);
                (version, hit)
            })
            .collect()
    };
    let v = FLOOR + 1;
    assert_eq!(
        hits(counted, 4),
        [(v, false), (v, true), (v, true), (v, false)]
    );
    assert_eq!(hits(leased, 2), [(v, false), (v, true)]);
    f.dir.env().advance_ms(100);
    assert_eq!(
        hits(leased, 2),
        [(v, false), (v, true)],
        "the lease expired"
    );
    assert_eq!(f.dir.put(writer, line, b"v2", Condition::View), Ok(v + 1));
    assert_eq!(hits(counted, 2), [(v + 1, false), (v + 1, true)]);
    assert_eq!(hits(leased, 1), [(v + 1, false)]);

    let events = f.dir.poll_events(eager, 8).expect("events");
    let versions: Vec<u64> = events.events.iter().map(|e| e.version).collect();
    assert_eq!(versions, [v, v + 1]);
    let seq = f.dir.log_next(writer.slot).expect("log");
    let last = match f.dir.read_record(writer.slot, seq - 1).expect("record") {
        ccs_protocol::RecordRead::Ready(record) => record.entry,
        other => panic!("the writer's last record: {other:?}"),
    };
    assert_eq!((last.version, last.held), (v + 1, v));
}

/// A second retire of a superseded version (a stalled writer's recovery that also claims the
/// supersede, docs/protocol.md §3.9) changes nothing once the version is freed: neither while
/// its descriptor is on the free list nor once another write has taken it. The retire expects
/// the control word of the use it names (the mutant `untagged_retire` ORs RETIRED into
/// whatever is there, and frees k's current version).
#[test]
fn a_second_retire_never_touches_a_freed_or_reused_descriptor() {
    let f = fixture(config());
    let (a, b) = (agent(&f.dir, "a"), agent(&f.dir, "b"));
    let (y, k) = (
        f.dir.find_or_insert_key("y").expect("key"),
        f.dir.find_or_insert_key("k").expect("key"),
    );
    assert_eq!(f.dir.put(a, y, &[2; 100], Condition::Blind), Ok(1));
    let (old, incarnation) = f.dir.published_slot(y).expect("slot").expect("published");
    assert_eq!(f.dir.put(a, y, &[3; 100], Condition::Blind), Ok(2));
    let free = f.dir.free_descriptors().expect("free");
    assert_eq!(f.dir.retire_again(old, incarnation, b.slot), Ok(false));
    assert_eq!(f.dir.free_descriptors().expect("free"), free);
    // The free list is LIFO: k's first version takes y's old descriptor.
    assert_eq!(f.dir.put(a, k, &[5; 100], Condition::Blind), Ok(1));
    assert_eq!(
        f.dir.published_slot(k).expect("slot").map(|s| s.0),
        Some(old)
    );
    assert_eq!(f.dir.retire_again(old, incarnation, b.slot), Ok(false));
    assert_eq!(read(&f.dir, b, k), (vec![5; 100], 1, false));
    assert_eq!(read(&f.dir, b, y), (vec![3; 100], 2, false));
    assert_eq!(f.dir.put(a, k, &[6; 100], Condition::Blind), Ok(2));
    assert_eq!(read(&f.dir, b, k), (vec![6; 100], 2, false));
    let report = f.dir.fsck().expect("fsck");
    assert!(report.is_clean(), "{:#?}", report.problems);
}
