//! Agent slot reuse in one process (docs/protocol.md §5, "Agent slots"): the slot of the agent
//! dead longest is taken over when the table is full, a live one never; forgetting; and the
//! dropped-view rule (dropped views on written lines, 0 on lines never written).

#![cfg(not(loom))] // fsck, which these tests run, is not built under loom
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use ccs_protocol::{Condition, Config, DROPPED_VIEW, ProtocolError, SlotState};
use common::{agent, fixture};

fn three_agents() -> Config {
    Config {
        max_agents: 3,
        ..common::config()
    }
}

#[test]
fn the_longest_dead_slot_is_taken_over_and_a_live_one_never() {
    let f = fixture(three_agents());
    let env = f.dir.env();
    let a = agent(&f.dir, "a");
    env.advance_ms(10);
    let b = agent(&f.dir, "b");
    env.advance_ms(10);
    let c = agent(&f.dir, "c");
    // All alive: a fourth name is refused, and the message says what frees a slot.
    let full = f.dir.register_agent("d").unwrap_err();
    assert!(matches!(
        full,
        ProtocolError::CapacityExceeded { what: "agents", .. }
    ));
    assert!(full.to_string().contains("reused automatically"), "{full}");

    // c and a die (a detaches later than c attached, so c is the one dead longest).
    env.advance_ms(10);
    f.dir.detach(a).unwrap();
    env.set_alive(a.slot, false);
    env.set_alive(c.slot, false);
    let d = f.dir.register_agent("d").unwrap();
    assert_eq!(d, c.slot);
    assert_eq!(f.dir.find_agent("c"), Ok(None));
    // c's old handle is fenced.
    assert_eq!(
        f.dir.put(c, 0, b"x", Condition::Blind),
        Err(ProtocolError::Fenced)
    );
    env.set_alive(d, true);
    assert_eq!(f.dir.register_agent("e"), Ok(a.slot));
    assert_eq!(f.dir.find_agent("b"), Ok(Some(b.slot)));
    assert!(f.dir.fsck().unwrap().is_clean());
}

#[test]
fn a_new_name_after_a_drop_holds_dropped_views_on_written_lines_only() {
    let f = fixture(three_agents());
    let env = f.dir.env();
    let w = agent(&f.dir, "w");
    let written = f.dir.find_or_insert_key("written").unwrap();
    let empty = f.dir.find_or_insert_key("empty").unwrap();
    f.dir.put(w, written, b"v1", Condition::Blind).unwrap();
    let mut buf = Vec::new();
    f.dir.read(w, written, &mut buf).unwrap();
    assert_eq!(f.dir.views_of(w.slot), Ok((1, 0)));
    assert_eq!(f.dir.drops(), Ok(0));

    // Forget w (dead): the slot is forgotten, its view of what it read dropped.
    assert_eq!(
        f.dir.forget_agent("w", |_| Ok(false)),
        Err(ProtocolError::AgentAlive { slot: w.slot })
    );
    env.set_alive(w.slot, false);
    assert_eq!(f.dir.forget_agent("w", |_| Ok(true)), Ok(Some(w.slot)));
    assert_eq!(f.dir.slot_state(w.slot), Ok(SlotState::Forgotten));
    assert_eq!(f.dir.views_of(w.slot), Ok((0, 1)));
    assert_eq!(f.dir.drops(), Ok(1));
    assert_eq!(f.dir.forget_agent("w", |_| Ok(true)), Ok(None));

    // w returns, into its forgotten slot, with a dropped view of what was written.
    let back = agent(&f.dir, "w");
    env.set_alive(back.slot, true);
    assert_eq!(back.slot, w.slot);
    let check = f.dir.check(back, written).unwrap();
    assert_eq!((check.held, check.valid), (DROPPED_VIEW, false));
    assert_eq!(f.dir.check(back, empty).unwrap().held, 0);
    assert!(matches!(
        f.dir.put(back, written, b"stale", Condition::View),
        Err(ProtocolError::Conflict { current: 1, .. })
    ));
    // A line never written is its to create; a read restores the right to write.
    assert_eq!(f.dir.put(back, empty, b"new", Condition::View), Ok(1));
    f.dir.read(back, written, &mut buf).unwrap();
    assert_eq!(f.dir.put(back, written, b"v2", Condition::View), Ok(2));
    // A brand-new name registered after the drop is treated the same way.
    let fresh = agent(&f.dir, "fresh");
    assert_eq!(f.dir.views_of(fresh.slot), Ok((0, 2)));
    assert!(f.dir.fsck().unwrap().is_clean());
}
