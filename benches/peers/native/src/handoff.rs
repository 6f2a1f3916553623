//! The physical floor of a delivery on this machine: a bare shared-memory handoff between two
//! pinned processes, with no protocol at all. What any shared-memory protocol (ours, iceoryx2)
//! pays at least to move a payload from one core's cache to another's.
//!
//! The writer (CPU A) takes its start time, stamps a private buffer (as `ccs bench
//! invalidation`'s writer does before its `put`), copies it into a slot of a shared mapping
//! (every line of the slot is written) and publishes the step
//! with one Release store of a flag word on a cache line of its own. The reader (CPU B, a
//! forked child) spins on the flag with Acquire loads, notes when it sees the step, then holds
//! the payload:
//!
//! - `--read in-place`: reads the stamp where it lies (what our zero-copy reader does with its
//!   pinned borrow: the payload's first line moves, the rest stays in the writer's cache);
//! - `--read copy`: copies the whole payload into a private buffer first (what our copying
//!   reader does: every line moves).
//!
//! `--slots 1` writes every step into the same slot, whose lines the reader has just read
//! (each of the writer's stores must first take its line back from the reader's cache, as when
//! our put refills a block a reader has just copied); `--slots 64` rotates over 64 slots, so a
//! slot is written again only 64 steps later (a block no reader has just read). The reader
//! acknowledges each step on a third cache line before the writer starts the next one, so no
//! two steps overlap.
//!
//! Phases: `seen` (writer's start → the reader sees the flag), `hold` (→ the reader holds the
//! payload, stamp checked).

// The floor is no protocol code: plain std atomics (the workspace's rule, atomics through
// `ccs_protocol::sync` so that loom sees them, is for the protocol).
#![allow(clippy::disallowed_types)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::clock::now_ns;
use crate::stats::{phase, report};
use crate::{Opts, STAMP, pin_to};

/// How the reader holds the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    InPlace,
    Copy,
}

/// A step not handed over in this long means the other process is gone.
const STALL: Duration = Duration::from_secs(30);
/// Bytes of the header: the flag's line, the acknowledgement's line.
const HEADER: usize = 128;
/// The reader's acknowledgement of step 0: pinned and ready.
const READY: u64 = 1 << 63;

/// The shared mapping: two words on lines of their own, then the slots.
struct Shared {
    base: *mut u8,
    len: usize,
    slot_bytes: usize,
}

impl Shared {
    fn new(payload: usize, slots: usize) -> Result<Shared, String> {
        let slot_bytes = payload.div_ceil(64) * 64;
        let len = HEADER + slot_bytes * slots;
        // SAFETY: an anonymous shared mapping of `len` bytes at an address the kernel picks;
        // the result is checked below. It stays shared with the child after `fork`.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(format!("mmap of {len} bytes failed"));
        }
        Ok(Shared {
            base: base.cast(),
            len,
            slot_bytes,
        })
    }

    /// The writer's flag: the last step published.
    fn flag(&self) -> &AtomicU64 {
        // SAFETY: the mapping is page-aligned, at least HEADER bytes, zero-filled, and its
        // first word is only ever accessed atomically by both processes.
        unsafe { &*self.base.cast::<AtomicU64>() }
    }

    /// The reader's acknowledgement: the last step held.
    fn ack(&self) -> &AtomicU64 {
        // SAFETY: as for `flag`, at byte 64 (its own cache line).
        unsafe { &*self.base.add(64).cast::<AtomicU64>() }
    }

    /// Slot `i`'s first byte.
    fn slot(&self, i: usize) -> *mut u8 {
        // SAFETY: `i` is below the slot count the mapping was made for (callers take it
        // modulo that count), so the slot lies inside the mapping.
        unsafe { self.base.add(HEADER + i * self.slot_bytes) }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once, by the process that drops it.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// Spin until `word` reaches `at_least`; an error after [`STALL`].
fn spin_until(word: &AtomicU64, at_least: u64, what: &str) -> Result<(), String> {
    let mut spins = 0u32;
    let started = Instant::now();
    // Pairs with the other process's Release store of `word`.
    while word.load(Ordering::Acquire) < at_least {
        std::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(1 << 20) && started.elapsed() > STALL {
            return Err(format!("{what}: step {at_least} never came"));
        }
    }
    Ok(())
}

/// Parse `--read` and `--slots` from the raw arguments (the shared [`Opts`] take the rest).
pub fn parse(args: &[String]) -> Result<(Read, usize), String> {
    let mut read = Read::InPlace;
    let mut slots = 1;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--read" => {
                read = match it.next().map(String::as_str) {
                    Some("in-place") => Read::InPlace,
                    Some("copy") => Read::Copy,
                    other => return Err(format!("--read in-place|copy, not {other:?}")),
                }
            }
            "--slots" => {
                slots = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|&n: &usize| (1..=4096).contains(&n))
                    .ok_or("--slots takes a number from 1 to 4096")?;
            }
            _ => {}
        }
    }
    Ok((read, slots))
}

/// Run the handoff: fork the reader, write every step, wait for the reader's report.
pub fn run(opts: &Opts, read: Read, slots: usize) -> Result<(), String> {
    let shared = Shared::new(opts.payload, slots)?;
    let steps = (opts.warmup() + opts.iterations) as u64;
    // SAFETY: the process is single-threaded here (no thread was started), so the child may
    // run any code; it leaves through `exit` below, never returning into the parent's stack.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err("fork failed".to_owned());
    }
    if child == 0 {
        let code = match reader(opts, &shared, read, slots, steps) {
            Ok(()) => 0,
            Err(why) => {
                eprintln!("ccs-peers handoff reader: {why}");
                1
            }
        };
        std::process::exit(code);
    }
    let written = writer(opts, &shared, slots, steps);
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid out-pointer.
    unsafe { libc::waitpid(child, &mut status, 0) };
    written?;
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(format!("the reader failed (status {status})"));
    }
    Ok(())
}

fn writer(opts: &Opts, shared: &Shared, slots: usize, steps: u64) -> Result<(), String> {
    if let Some((w, _)) = opts.cpus {
        pin_to(w)?;
    }
    let mut bytes = vec![0u8; opts.payload];
    // The reader acknowledges with the step's number with the top bit set (a zeroed word
    // means "not started"): `READY` alone once it is pinned and waiting.
    spin_until(shared.ack(), READY, "writer waiting for the reader")?;
    for step in 1..=steps {
        let t0 = now_ns();
        // The stamp only (the floor: nothing a protocol must do); the copy below still writes
        // every line of the slot.
        bytes[..8].copy_from_slice(&t0.to_le_bytes());
        bytes[8..STAMP].copy_from_slice(&step.to_le_bytes());
        let slot = shared.slot(step as usize % slots);
        // SAFETY: the slot is `payload` bytes inside the mapping, and the reader touches it
        // only between this step's flag and its acknowledgement, which the writer awaited for
        // the previous step before writing again: no concurrent access.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), slot, bytes.len()) };
        // Pairs with the reader's Acquire load in `spin_until`: the payload is visible.
        shared.flag().store(step, Ordering::Release);
        spin_until(shared.ack(), READY | step, "writer")?;
    }
    Ok(())
}

fn reader(
    opts: &Opts,
    shared: &Shared,
    read: Read,
    slots: usize,
    steps: u64,
) -> Result<(), String> {
    if let Some((_, r)) = opts.cpus {
        pin_to(r)?;
    }
    let warmup = opts.warmup() as u64;
    let mut private = vec![0u8; opts.payload];
    let (mut seen, mut held) = (Vec::new(), Vec::new());
    // Pairs with the writer's Acquire spin: the reader is pinned and ready.
    shared.ack().store(READY, Ordering::Release);
    for step in 1..=steps {
        spin_until(shared.flag(), step, "reader")?;
        let t1 = now_ns();
        let slot = shared.slot(step as usize % slots);
        let stamp = match read {
            Read::InPlace => {
                let mut stamp = [0u8; STAMP];
                // SAFETY: the slot holds at least STAMP bytes (the payload is at least STAMP)
                // and the writer does not touch it until this step is acknowledged.
                unsafe { std::ptr::copy_nonoverlapping(slot, stamp.as_mut_ptr(), STAMP) };
                stamp
            }
            Read::Copy => {
                // SAFETY: as above, for the whole payload.
                unsafe { std::ptr::copy_nonoverlapping(slot, private.as_mut_ptr(), private.len()) };
                let mut stamp = [0u8; STAMP];
                stamp.copy_from_slice(&private[..STAMP]);
                stamp
            }
        };
        let t0 = u64::from_le_bytes(stamp[..8].try_into().unwrap_or_default());
        let got = u64::from_le_bytes(stamp[8..].try_into().unwrap_or_default());
        let t2 = now_ns();
        if got != step {
            return Err(format!("expected step {step}, read {got}"));
        }
        std::hint::black_box(&private);
        if step > warmup {
            seen.push(t1.saturating_sub(t0));
            held.push(t2.saturating_sub(t0));
        }
        // Pairs with the writer's Acquire spin: this step's reads are done.
        shared.ack().store(READY | step, Ordering::Release);
    }
    let bench = match read {
        Read::InPlace => "handoff-in-place",
        Read::Copy => "handoff-copy",
    };
    report(
        &format!("{bench}-{slots}"),
        opts.payload,
        vec![phase("seen", &mut seen), phase("hold", &mut held)],
    );
    Ok(())
}
