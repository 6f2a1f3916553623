//! The peers of `benches/peers/run`, timed the way `ccs bench invalidation` times ours: every
//! interval runs from the writer's operation start (CLOCK_MONOTONIC, comparable across
//! processes) to the moment the reader holds what it needs, one step at a time (the writer
//! waits for the reader's acknowledgement before the next step, so no two steps overlap).
//!
//! - `ccs-peers iceoryx2 --payload N`: iceoryx2 publish/subscribe, one publisher process and
//!   one subscriber process. The writer loans a slice, copies the whole payload into it from a
//!   private buffer (as our `put` does) and sends; the reader polls `receive()` and validates
//!   every byte of the sample before it counts as held.
//! - `ccs-peers redis --port P --payload N`: Redis client-side caching over RESP3 (`HELLO 3`,
//!   `CLIENT TRACKING on`): GET round trip, SET while a peer tracks the key, SET start → the
//!   peer's connection receives the `invalidate` push, SET start → the peer holds the new value
//!   (invalidate, then GET), and a local cache HIT (hash lookup + memcpy into a buffer).
//! - `ccs-peers handoff --payload N --read in-place|copy --slots 1|64`: no protocol, the
//!   machine's floor: the writer copies the payload into a shared slot and stores a flag; the
//!   reader spins on the flag, then reads the payload where it lies or copies it out.
//!
//! Output: one JSON object per run on stdout, `{"bench", "payload", "phases": [{"phase",
//! "samples", "min_ns", "p50_ns", "p90_ns", "p99_ns"}]}`.

mod clock;
mod handoff;
mod ice;
mod redis;
mod stats;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("iceoryx2") => ice::run(&Opts::parse(&args[1..])),
        Some("iceoryx2-reader") => ice::reader(&Opts::parse(&args[1..])),
        Some("redis") => redis::run(&Opts::parse(&args[1..])),
        Some("handoff") => handoff::parse(&args[1..])
            .and_then(|(read, slots)| handoff::run(&Opts::parse(&args[1..]), read, slots)),
        _ => Err(
            "usage: ccs-peers iceoryx2|redis|handoff --payload N [--iterations N] [--cpus A,B] [--port P] [--read in-place|copy] [--slots N]"
                .to_owned(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("ccs-peers: {why}");
            ExitCode::FAILURE
        }
    }
}

/// Command-line options shared by every peer.
#[derive(Debug, Clone)]
pub struct Opts {
    pub payload: usize,
    pub iterations: usize,
    pub cpus: Option<(usize, usize)>,
    pub port: u16,
    pub service: String,
}

impl Opts {
    fn parse(args: &[String]) -> Opts {
        let mut o = Opts {
            payload: 64,
            iterations: 10_000,
            cpus: None,
            port: 0,
            service: format!("ccs-peers/{}", std::process::id()),
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it.next().cloned().unwrap_or_default();
            match flag.as_str() {
                "--payload" => o.payload = value.parse().unwrap_or(o.payload),
                "--iterations" => o.iterations = value.parse().unwrap_or(o.iterations),
                "--port" => o.port = value.parse().unwrap_or(0),
                "--service" => o.service = value,
                "--cpus" => {
                    let mut parts = value.split(',').filter_map(|c| c.parse().ok());
                    if let (Some(a), Some(b)) = (parts.next(), parts.next()) {
                        o.cpus = Some((a, b));
                    }
                }
                _ => {}
            }
        }
        o.payload = o.payload.max(STAMP);
        o
    }

    /// The same options as arguments, for a child process.
    fn to_args(&self) -> Vec<String> {
        let mut a = vec![
            "--payload".to_owned(),
            self.payload.to_string(),
            "--iterations".to_owned(),
            self.iterations.to_string(),
            "--service".to_owned(),
            self.service.clone(),
        ];
        if let Some((w, r)) = self.cpus {
            a.push("--cpus".to_owned());
            a.push(format!("{w},{r}"));
        }
        a
    }

    /// Unrecorded steps before the recorded ones.
    pub fn warmup(&self) -> usize {
        (self.iterations / 10).min(200)
    }
}

/// Bytes of the payload stamp: the writer's start time, then the step (little-endian).
pub const STAMP: usize = 16;

/// Stamp `bytes` with `t0` and `step` and fill the rest with the step's byte.
pub fn fill(bytes: &mut [u8], t0: u64, step: u64) {
    bytes[STAMP..].fill(step as u8);
    bytes[..8].copy_from_slice(&t0.to_le_bytes());
    bytes[8..STAMP].copy_from_slice(&step.to_le_bytes());
}

/// `(t0, step)` of a payload whose every byte is as [`fill`] wrote it; `None` if any is not.
pub fn validate(bytes: &[u8]) -> Option<(u64, u64)> {
    let t0 = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let step = u64::from_le_bytes(bytes.get(8..STAMP)?.try_into().ok()?);
    // Every byte, with no early exit (so the compiler vectorises it): 8 bytes at a time.
    let want = u64::from_ne_bytes([step as u8; 8]);
    let body = &bytes[STAMP..];
    let mut words = body.chunks_exact(8);
    let mut diff = (&mut words).fold(0u64, |acc, w| {
        acc | (u64::from_ne_bytes(w.try_into().unwrap_or_default()) ^ want)
    });
    for &b in words.remainder() {
        diff |= u64::from(b ^ step as u8);
    }
    (diff == 0).then_some((t0, step))
}

/// Pin the calling thread to `cpu`.
pub fn pin_to(cpu: usize) -> Result<(), String> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity only read
    // and write the set we own.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(format!("cannot pin to CPU {cpu}"));
        }
    }
    Ok(())
}
