//! Subscriptions and inboxes: how an eager agent is told of writes as they happen.
//!
//! An eager agent subscribes to key prefixes. Each line has a subscriber mask beside its valid
//! mask; subscribing sets the agent's bit on every matching line, and adding a key sets the bits
//! of every agent whose prefixes match before the key becomes visible. After publishing, a writer
//! pushes an event (line, version, writer) into each subscriber's inbox and wakes it.
//!
//! An inbox is a multi-producer ring (after the bounded MPMC queues of Vyukov and of the Linux
//! `io_uring` completion ring, simplified: producers never wait). A producer claims a position
//! with a `fetch_add` on the inbox's tail and fills the event, stamped `n + 1` last; the owner
//! consumes from its head. A producer a whole ring ahead overwrites the oldest event instead of
//! waiting: the owner counts it as lost. A writer never blocks on a slow or dead subscriber.

use crate::directory::{AgentId, Directory};
use crate::env::Env;
use crate::error::{ProtocolError, Result};
use crate::freshness::Strategy;
use crate::layout::{
    EVENT_WORDS, I_HEAD, I_STUCK, I_TAIL, I_WAIT, L_MASK, MAX_KEY_BYTES, MAX_SUBSCRIPTIONS,
};
use crate::sync::{AtomicU64, Ordering, fence};

/// How long an event may stay half-written before its reader gives up on it (its producer
/// died between claiming and stamping it).
const ABANDONED_MS: u64 = 1000;

/// A write to a subscribed artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeEvent {
    /// The artifact's line.
    pub line: u32,
    /// The version written.
    pub version: u64,
    /// The writer's slot.
    pub writer: u32,
    /// The write was a delete.
    pub deleted: bool,
}

/// What one poll of an inbox returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Events, oldest first.
    pub events: Vec<ChangeEvent>,
    /// Events overwritten before they were read (the inbox was full), or abandoned by a
    /// producer that died mid-push, since the last poll.
    pub lost: u64,
}

impl<E: Env> Directory<E> {
    /// Subscribe eager `agent` to every key starting with `prefix` (the empty prefix: all keys).
    pub fn subscribe(&self, agent: AgentId, prefix: &str) -> Result<()> {
        self.check_generation(agent)?;
        self.require_eager(agent)?;
        if prefix.len() > MAX_KEY_BYTES {
            return Err(ProtocolError::BadKey {
                len: prefix.len(),
                max: MAX_KEY_BYTES,
            });
        }
        self.env.with_structure_lock(|| {
            let mut free = None;
            for index in 0..MAX_SUBSCRIPTIONS {
                match self.subscription(agent.slot, index)? {
                    Some(existing) if existing == prefix => return Ok(()),
                    Some(_) => {}
                    None => free = free.or(Some(index)),
                }
            }
            let index = free.ok_or(ProtocolError::CapacityExceeded {
                what: "subscriptions of one agent",
                limit: MAX_SUBSCRIPTIONS as u64,
            })?;
            let first = self.geo.sub_word(agent.slot, index);
            self.words.copy_in(first + 1, prefix.as_bytes())?;
            // Pairs with the Acquire load in `subscription`.
            self.words
                .at(first)?
                .store(prefix.len() as u64 + 1, Ordering::Release);
            for (line, key) in self.keyed_lines()? {
                if key.starts_with(prefix) {
                    self.set_subscriber(agent.slot, line, true)?;
                }
            }
            Ok(())
        })?
    }

    /// Drop `agent`'s subscription to `prefix`; false if it had none.
    pub fn unsubscribe(&self, agent: AgentId, prefix: &str) -> Result<bool> {
        self.check_generation(agent)?;
        self.env.with_structure_lock(|| {
            let mut found = false;
            for index in 0..MAX_SUBSCRIPTIONS {
                if self.subscription(agent.slot, index)?.as_deref() == Some(prefix) {
                    self.words
                        .at(self.geo.sub_word(agent.slot, index))?
                        .store(0, Ordering::Release);
                    found = true;
                }
            }
            if found {
                let remaining = self.subscriptions(agent.slot)?;
                for (line, key) in self.keyed_lines()? {
                    let still = remaining.iter().any(|p| key.starts_with(p.as_str()));
                    self.set_subscriber(agent.slot, line, still)?;
                }
            }
            Ok(found)
        })?
    }

    /// The prefixes `slot` is subscribed to.
    pub fn subscriptions(&self, slot: u32) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for index in 0..MAX_SUBSCRIPTIONS {
            if let Some(prefix) = self.subscription(slot, index)? {
                out.push(prefix);
            }
        }
        Ok(out)
    }

    fn subscription(&self, slot: u32, index: usize) -> Result<Option<String>> {
        if slot >= self.geo.config.max_agents {
            return Err(ProtocolError::corrupt(format!("agent {slot} out of range")));
        }
        let first = self.geo.sub_word(slot, index);
        // Pairs with the Release store in `subscribe`.
        let len = match self.words.at(first)?.load(Ordering::Acquire) {
            0 => return Ok(None),
            n if n - 1 <= MAX_KEY_BYTES as u64 => (n - 1) as usize,
            _ => return Err(ProtocolError::corrupt("subscription length out of range")),
        };
        let mut bytes = Vec::with_capacity(len);
        self.words.copy_out(first + 1, len, &mut bytes)?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| ProtocolError::corrupt("subscription prefix is not UTF-8"))
    }

    /// Set the subscriber bits of a key being added (under the structure lock, before the key
    /// is visible): a write to it can never miss a subscriber.
    pub(crate) fn subscribe_new_line(&self, line: u32, key: &[u8]) -> Result<()> {
        if self.geo.inbox_words == 0 {
            return Ok(());
        }
        for slot in 0..self.agent_count()? {
            for index in 0..MAX_SUBSCRIPTIONS {
                if let Some(prefix) = self.subscription(slot, index)?
                    && key.starts_with(prefix.as_bytes())
                {
                    self.set_subscriber(slot, line, true)?;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Forget every subscription of `slot` and skip its inbox to the end: a new name taking
    /// the slot over starts with neither (see `agents.rs`). The slot is unattached.
    pub(crate) fn drop_subscriptions(&self, slot: u32) -> Result<()> {
        if self.geo.inbox_words == 0 {
            return Ok(());
        }
        for index in 0..MAX_SUBSCRIPTIONS {
            // Pairs with the Acquire load in `subscription`.
            self.words
                .at(self.geo.sub_word(slot, index))?
                .store(0, Ordering::Release);
        }
        for line in 0..self.geo.lines as u32 {
            self.set_subscriber(slot, line, false)?;
        }
        let tail = self
            .words
            .at(self.geo.inbox_word(slot, I_TAIL))?
            .load(Ordering::Acquire);
        // Only the owner moves the head, and there is none.
        self.words
            .at(self.geo.inbox_word(slot, I_HEAD))?
            .store(tail, Ordering::Release);
        Ok(())
    }

    fn subscriber_word(&self, slot: u32, line: u32) -> Result<(&AtomicU64, u64)> {
        let index = L_MASK + self.geo.mask_words + slot as usize / 64;
        Ok((
            self.words.at(self.geo.line_word(line, index))?,
            1u64 << (slot % 64),
        ))
    }

    fn set_subscriber(&self, slot: u32, line: u32, on: bool) -> Result<()> {
        let (word, bit) = self.subscriber_word(slot, line)?;
        // Pairs with the SeqCst load in `push_events`: a write published after this returns
        // sees the bit.
        if on {
            word.fetch_or(bit, Ordering::SeqCst);
        } else {
            word.fetch_and(!bit, Ordering::SeqCst);
        }
        Ok(())
    }

    /// After publishing `version` of `line`, push an event to every subscriber but the writer.
    pub(crate) fn push_events(&self, line: u32, version: u64, writer: u32, deleted: bool) {
        if self.geo.inbox_words == 0 {
            return;
        }
        for index in 0..self.geo.mask_words {
            let Ok(word) = self.words.at(self
                .geo
                .line_word(line, L_MASK + self.geo.mask_words + index))
            else {
                return;
            };
            // Pairs with the SeqCst read-modify-writes in `set_subscriber`.
            let mut bits = word.load(Ordering::SeqCst);
            while bits != 0 {
                let slot = (index * 64) as u32 + bits.trailing_zeros();
                bits &= bits - 1;
                if slot != writer && slot < self.geo.config.max_agents {
                    let event = ChangeEvent {
                        line,
                        version,
                        writer,
                        deleted,
                    };
                    // A corrupt inbox loses its event; the write itself stands.
                    let _ = self.push_event(slot, event);
                }
            }
        }
    }

    fn push_event(&self, slot: u32, event: ChangeEvent) -> Result<()> {
        let n = self
            .words
            .at(self.geo.inbox_word(slot, I_TAIL))?
            .fetch_add(1, Ordering::AcqRel);
        let words = self
            .words
            .slice(self.geo.event_word(slot, n), EVENT_WORDS)?;
        let fields = encode_event(event);
        words[0].store(0, Ordering::Relaxed);
        // Pairs with the Acquire fence in `read_event`.
        fence(Ordering::Release);
        words[1].store(fields[0], Ordering::Relaxed);
        words[2].store(fields[1], Ordering::Relaxed);
        words[3].store(event_check(n, &fields), Ordering::Relaxed);
        // Pairs with the Acquire load in `read_event`.
        words[0].store(n.wrapping_add(1), Ordering::Release);
        self.wake_inbox(slot)
    }

    fn wake_inbox(&self, slot: u32) -> Result<()> {
        let base = self.geo.inbox_word(slot, I_WAIT) * 2;
        // The handshake of `wait.rs`, with `wait_events`.
        self.bump_and_wake(self.words.at32(base)?, self.words.at32(base + 1)?);
        Ok(())
    }

    /// Take up to `max` events from `agent`'s inbox without blocking.
    pub fn poll_events(&self, agent: AgentId, max: usize) -> Result<Delivery> {
        self.check_generation(agent)?;
        self.require_eager(agent)?;
        let head_word = self.words.at(self.geo.inbox_word(agent.slot, I_HEAD))?;
        let capacity = u64::from(self.geo.config.inbox_events);
        loop {
            let head = head_word.load(Ordering::Acquire);
            let tail = self
                .words
                .at(self.geo.inbox_word(agent.slot, I_TAIL))?
                .load(Ordering::Acquire);
            if head > tail {
                return Err(ProtocolError::corrupt("inbox head is past its tail"));
            }
            let mut delivery = Delivery::default();
            let mut next = head;
            if tail - next > capacity {
                delivery.lost += tail - capacity - next;
                next = tail - capacity;
            }
            while next < tail && delivery.events.len() < max {
                match self.read_event(agent.slot, next)? {
                    EventRead::Ready(event) => delivery.events.push(event),
                    EventRead::Lost => delivery.lost += 1,
                    EventRead::NotYet if self.abandoned(agent.slot, next)? => delivery.lost += 1,
                    EventRead::NotYet => break,
                }
                next += 1;
            }
            // Threads of one agent may poll together: the exchange hands each event to one.
            if head_word
                .compare_exchange(head, next, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(delivery);
            }
        }
    }

    /// Take up to `max` events, blocking until at least one arrives (or a loss is reported) or
    /// `timeout_ms` passes (forever if `None`).
    pub fn wait_events(
        &self,
        agent: AgentId,
        max: usize,
        timeout_ms: Option<u64>,
    ) -> Result<Delivery> {
        let base = self.geo.inbox_word(agent.slot, I_WAIT) * 2;
        let deadline = timeout_ms.map(|ms| self.env.now_ms().saturating_add(ms));
        loop {
            let change = self.words.at32(base)?;
            let seen = change.load(Ordering::SeqCst);
            let delivery = self.poll_events(agent, max)?;
            if !delivery.events.is_empty() || delivery.lost != 0 {
                return Ok(delivery);
            }
            let remaining = match deadline {
                Some(deadline) => {
                    let now = self.env.now_ms();
                    if now >= deadline {
                        return Ok(delivery);
                    }
                    Some(deadline - now)
                }
                None => None,
            };
            // The handshake of `wait.rs`, with `wake_inbox`; `seen` was loaded before the
            // poll above, which is this side's last check.
            crate::wait::raise_waiter_flag(self.words.at32(base + 1)?);
            // A half-written event wakes nobody when it is finished, so poll again soon.
            let nap = remaining.map_or(ABANDONED_MS / 4, |r| r.min(ABANDONED_MS / 4));
            self.env.wait(change, seen, Some(nap))?;
        }
    }

    fn read_event(&self, slot: u32, n: u64) -> Result<EventRead> {
        let words = self
            .words
            .slice(self.geo.event_word(slot, n), EVENT_WORDS)?;
        // Pairs with the Release store of the stamp in `push_event`.
        let stamp = words[0].load(Ordering::Acquire);
        if n == u64::MAX {
            return Ok(EventRead::Lost);
        }
        if stamp <= n {
            return Ok(EventRead::NotYet);
        }
        if stamp != n + 1 {
            return Ok(EventRead::Lost);
        }
        let fields = [
            words[1].load(Ordering::Relaxed),
            words[2].load(Ordering::Relaxed),
        ];
        let check = words[3].load(Ordering::Relaxed);
        // Pairs with the Release fence in `push_event`.
        fence(Ordering::Acquire);
        if words[0].load(Ordering::Relaxed) != stamp || check != event_check(n, &fields) {
            return Ok(EventRead::Lost);
        }
        let event = decode_event(&fields);
        if event.line as usize >= self.geo.lines || event.writer >= self.geo.config.max_agents {
            return Ok(EventRead::Lost);
        }
        Ok(EventRead::Ready(event))
    }

    /// Whether event `n` has stayed unwritten for longer than a live producer takes; the first
    /// call for an event starts its clock in the inbox header.
    fn abandoned(&self, slot: u32, n: u64) -> Result<bool> {
        let word = self.words.at(self.geo.inbox_word(slot, I_STUCK))?;
        let now = self.env.now_ms();
        let mark = (n & 0xffff_ffff) << 32 | (now & 0xffff_ffff);
        let seen = word.load(Ordering::Relaxed);
        if seen >> 32 != n & 0xffff_ffff {
            word.store(mark, Ordering::Relaxed);
            return Ok(false);
        }
        Ok((now as u32).wrapping_sub(seen as u32) as u64 >= ABANDONED_MS)
    }

    fn require_eager(&self, agent: AgentId) -> Result<()> {
        if self.geo.inbox_words == 0 {
            return Err(ProtocolError::InvalidConfig(
                "this segment was created without inboxes (inbox_events = 0)".into(),
            ));
        }
        if agent.strategy != Strategy::Eager {
            return Err(ProtocolError::InvalidConfig(
                "only an eager agent has an inbox: attach it with the eager strategy".into(),
            ));
        }
        Ok(())
    }
}

enum EventRead {
    Ready(ChangeEvent),
    NotYet,
    Lost,
}

/// An event's checked words: `line << 32 | writer << 1 | deleted` (writer slots are below
/// 65,535), and the version, a whole word.
fn encode_event(event: ChangeEvent) -> [u64; 2] {
    [
        u64::from(event.line) << 32 | u64::from(event.writer) << 1 | u64::from(event.deleted),
        event.version,
    ]
}

fn decode_event(fields: &[u64; 2]) -> ChangeEvent {
    ChangeEvent {
        line: (fields[0] >> 32) as u32,
        writer: (fields[0] as u32) >> 1,
        deleted: fields[0] & 1 != 0,
        version: fields[1],
    }
}

fn event_check(n: u64, fields: &[u64; 2]) -> u64 {
    let mut hash = 0x9e37_79b9_7f4a_7c15u64 ^ n;
    for value in fields {
        hash = (hash ^ value).wrapping_mul(0x0100_0000_01b3);
        hash ^= hash >> 31;
    }
    hash
}
