//! Self-checking payloads for `ccs torture`, and the harness's pseudo-random numbers.
//!
//! **Payload artifacts** carry their own proof of integrity. Little-endian words:
//!
//! ```text
//! 0..8    total length in bytes (at least HEADER)
//! 8..16   seed, unique per write
//! 16..24  artifact index (low 32 bits) | writer index (high 32 bits)
//! 24..    the xorshift64* stream of mix(seed, artifact|writer, length), 8 bytes per step, truncated
//! ```
//!
//! Every byte after the header is a function of the header, so a torn read (bytes of two
//! versions, or of a freed-and-reused block), a read of another artifact's bytes, or a
//! truncated read all fail [`verify_payload`]: a torn copy would have to splice two streams
//! whose seeds differ, and the first 8-byte word after the splice point differs (with
//! probability 1 − 2⁻⁶⁴).
//!
//! **Counter artifacts** are 32 bytes: `value`, `counter index | writer << 32`, `seq` and
//! `check = mix(value, index|writer, seq)`. The check only guards against torn or foreign bytes;
//! the counter *rule* (value = version − 1) is checked by the caller.
//!
//! ```text
//! let p = make_payload(seed, artifact, writer, len);   verify_payload(&p, artifact) == Ok(())
//! ```

/// Bytes of a payload's header (length, seed, artifact|writer).
pub const HEADER: usize = 24;
/// Bytes of a counter's payload.
pub const COUNTER_BYTES: usize = 32;

/// splitmix64's finaliser: a bijective 64-bit mix (Steele, Lea & Flood, "Fast splittable
/// pseudorandom number generators", OOPSLA 2014).
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xorshift64* (Vigna, "An experimental exploration of Marsaglia's xorshift generators",
/// 2016): fast, and good enough to pick operations and generate payload streams.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `seed` (any value; zero is mapped away).
    pub fn new(seed: u64) -> Rng {
        Rng(mix(seed) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A uniform-enough value in `lo..=hi` (`lo` if `hi < lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }
}

fn word(bytes: &[u8], at: usize) -> Option<u64> {
    let chunk: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(chunk))
}

/// The stream's seed covers every header word, so a change to any header byte is detected too.
fn stream_seed(seed: u64, tag: u64, len: usize) -> u64 {
    mix(seed ^ mix(tag ^ mix(len as u64)))
}

/// Fill `out` with a payload of `len` bytes (at least [`HEADER`]) for `artifact`.
pub fn make_payload(out: &mut Vec<u8>, seed: u64, artifact: u32, writer: u32, len: usize) {
    let len = len.max(HEADER);
    out.clear();
    out.reserve(len);
    out.extend_from_slice(&(len as u64).to_le_bytes());
    out.extend_from_slice(&seed.to_le_bytes());
    let tag = u64::from(artifact) | (u64::from(writer) << 32);
    out.extend_from_slice(&tag.to_le_bytes());
    let mut rng = Rng::new(stream_seed(seed, tag, len));
    while out.len() < len {
        let word = rng.next_u64().to_le_bytes();
        let take = (len - out.len()).min(8);
        out.extend_from_slice(&word[..take]);
    }
}

/// Check a payload read for `artifact`: `Err` says what is wrong.
pub fn verify_payload(bytes: &[u8], artifact: u32) -> Result<(), String> {
    let (Some(len), Some(seed), Some(tag)) = (word(bytes, 0), word(bytes, 8), word(bytes, 16))
    else {
        return Err(format!("payload of {} bytes has no header", bytes.len()));
    };
    if len != bytes.len() as u64 {
        return Err(format!(
            "header says {len} bytes, {} were read",
            bytes.len()
        ));
    }
    if tag & 0xFFFF_FFFF != u64::from(artifact) {
        return Err(format!(
            "payload belongs to artifact {}, read from artifact {artifact}",
            tag & 0xFFFF_FFFF
        ));
    }
    let mut rng = Rng::new(stream_seed(seed, tag, bytes.len()));
    for (i, chunk) in bytes[HEADER..].chunks(8).enumerate() {
        let want = rng.next_u64().to_le_bytes();
        if chunk != &want[..chunk.len()] {
            return Err(format!(
                "bytes {}..{} differ from the stream of seed {seed:#x} (writer {})",
                HEADER + 8 * i,
                HEADER + 8 * i + chunk.len(),
                tag >> 32
            ));
        }
    }
    Ok(())
}

/// A counter's decoded payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterValue {
    /// The count.
    pub value: u64,
    /// The worker that wrote it (`u32::MAX`: the harness's initial write).
    pub writer: u32,
}

/// The payload of counter `index` holding `value`.
pub fn make_counter(value: u64, index: u32, writer: u32, seq: u64) -> [u8; COUNTER_BYTES] {
    let tag = u64::from(index) | (u64::from(writer) << 32);
    let check = mix(value ^ mix(tag ^ mix(seq)));
    let mut out = [0u8; COUNTER_BYTES];
    for (i, w) in [value, tag, seq, check].into_iter().enumerate() {
        out[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// Decode and check a counter read for counter `index`.
pub fn verify_counter(bytes: &[u8], index: u32) -> Result<CounterValue, String> {
    if bytes.len() != COUNTER_BYTES {
        return Err(format!(
            "counter payload is {} bytes, not {COUNTER_BYTES}",
            bytes.len()
        ));
    }
    let (Some(value), Some(tag), Some(seq), Some(check)) = (
        word(bytes, 0),
        word(bytes, 8),
        word(bytes, 16),
        word(bytes, 24),
    ) else {
        return Err("counter payload too short".to_owned());
    };
    if check != mix(value ^ mix(tag ^ mix(seq))) {
        return Err(format!(
            "counter payload fails its check word (value {value})"
        ));
    }
    if tag & 0xFFFF_FFFF != u64::from(index) {
        return Err(format!(
            "counter payload belongs to counter {}, read from counter {index}",
            tag & 0xFFFF_FFFF
        ));
    }
    Ok(CounterValue {
        value,
        writer: (tag >> 32) as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_at_every_small_length() {
        let mut p = Vec::new();
        for len in HEADER..HEADER + 40 {
            make_payload(&mut p, 7, 3, 1, len);
            assert_eq!(p.len(), len);
            assert_eq!(verify_payload(&p, 3), Ok(()));
        }
    }

    #[test]
    fn every_single_byte_change_is_detected() {
        let mut p = Vec::new();
        make_payload(&mut p, 42, 5, 2, 100);
        for i in 0..p.len() {
            let mut bad = p.clone();
            bad[i] ^= 0x10;
            assert!(verify_payload(&bad, 5).is_err(), "byte {i}");
        }
        assert!(verify_payload(&p, 6).is_err(), "another artifact's bytes");
        assert!(verify_payload(&p[..99], 5).is_err(), "truncated");
    }

    #[test]
    fn a_splice_of_two_versions_is_detected() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        make_payload(&mut a, 1, 0, 0, 4096);
        make_payload(&mut b, 2, 0, 0, 4096);
        for cut in [HEADER, 100, 2048, 4095] {
            let mut torn = a[..cut].to_vec();
            torn.extend_from_slice(&b[cut..]);
            assert!(verify_payload(&torn, 0).is_err(), "cut at {cut}");
            let mut torn = b[..cut].to_vec();
            torn.extend_from_slice(&a[cut..]);
            assert!(verify_payload(&torn, 0).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn counters_round_trip_and_detect_damage() {
        let c = make_counter(17, 2, 3, 99);
        assert_eq!(
            verify_counter(&c, 2),
            Ok(CounterValue {
                value: 17,
                writer: 3
            })
        );
        assert!(verify_counter(&c, 1).is_err());
        for i in 0..COUNTER_BYTES {
            let mut bad = c;
            bad[i] ^= 1;
            assert!(verify_counter(&bad, 2).is_err(), "byte {i}");
        }
    }

    #[test]
    fn rng_ranges_stay_in_bounds() {
        let mut rng = Rng::new(0);
        for _ in 0..1000 {
            let v = rng.range(5, 9);
            assert!((5..=9).contains(&v));
        }
        assert_eq!(rng.range(3, 3), 3);
        assert_eq!(rng.range(4, 2), 4);
    }
}
