//! Criterion benchmarks of the in-process operations on a real shared-memory segment.
//!
//! Every fixture creates its own segment under `/dev/shm` with a unique name and destroys it
//! when dropped (also on a panic). The groups are named by operation and the ids by the
//! dimension that grows, so cost growth reads straight off the ids:
//!
//! | group | ids | what is timed |
//! | --- | --- | --- |
//! | `get_hit_handle` | `payload/N`, `peers/N`, `artifacts/N` | `get_into(&key, &mut buf)`, copy current |
//! | `get_hit_key` | `artifacts/N` | `get_into("key", &mut buf)`: string lookup + HIT |
//! | `get_miss` | `payload/N` | `get_into` right after a peer's put (the put is not timed) |
//! | `get_hit_cached` | `payload/N` | `refresh(&mut cached)` on a current private copy + touch a byte |
//! | `read_zero_copy` | `payload/N` | `read(&key)` + touch the first byte + drop the pin |
//! | `put_peers` | `payload/N` (8 peers), `peers/N` | `put` while every peer holds a copy (peers re-read untimed) |
//! | `is_valid` | `artifacts/N` | the one-load valid-bit check |
//! | `check` | `valid`, `invalid` | `check(&key)` |
//! | `put_if_refused` | `stale` | `put_if` with a stale version: the typed conflict |
//! | `acquire_commit` | `payload/64` | `acquire` + `WriteGuard::commit` |
//!
//! Full run (about ten minutes on a quiet 2-core machine): `cargo bench --bench ops`.
//! Quick run (criterion 0.5 has no `--quick`; its own flags shorten every group):
//! `cargo bench --bench ops -- --warm-up-time 0.3 --measurement-time 0.5 --sample-size 10`;
//! a regex filters ids, e.g. `-- 'payload/(64|4096)$'` or `-- 'peers/[0-9]'`.
//! `benches/plot.py` draws the results from `target/criterion`.

// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

use ccs_protocol::sync::{AtomicU32, Ordering};
use std::hint::black_box;
use std::time::{Duration, Instant};

use agent_coherence::{Agent, Config, Error, Key, Segment};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const PAYLOADS: [usize; 4] = [64, 4 << 10, 64 << 10, 1 << 20];
const PEERS: [usize; 4] = [1, 8, 64, 256];
const ARTIFACTS: [usize; 3] = [10, 10_000, 100_000];
/// Peers holding a copy in the `put_peers/payload/N` benchmarks.
const PAYLOAD_PEERS: usize = 8;
const LEASE: Duration = Duration::from_secs(60);

/// A segment name that is destroyed when dropped, so a run leaves nothing in `/dev/shm`.
struct ShmName(String);

impl ShmName {
    fn unique(what: &str) -> ShmName {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        ShmName(format!("ccs-bench-{}-{what}-{seq}", std::process::id()))
    }
}

impl Drop for ShmName {
    fn drop(&mut self) {
        let _ = Segment::destroy(&self.0);
    }
}

/// A segment with a writer, a reader and `peers` more agents, one artifact written once.
///
/// Fields drop in declaration order: the agents and segment first, the name last.
struct Fixture {
    writer: Agent,
    reader: Agent,
    peers: Vec<Agent>,
    wkey: Key,
    rkey: Key,
    peer_keys: Vec<Key>,
    payload: Vec<u8>,
    buf: Vec<u8>,
    _seg: Segment,
    _name: ShmName,
}

fn ok<T>(what: &str, result: Result<T, Error>) -> T {
    result.unwrap_or_else(|e| panic!("bench setup: {what}: {e}"))
}

impl Fixture {
    fn new(what: &str, config: Config, payload_len: usize, peers: usize) -> Fixture {
        let name = ShmName::unique(what);
        let seg = ok("create", Segment::create(&name.0, config));
        let writer = ok("attach writer", seg.attach("writer"));
        let reader = ok("attach reader", seg.attach("reader"));
        let peers: Vec<Agent> = (0..peers)
            .map(|i| ok("attach peer", seg.attach(&format!("peer-{i}"))))
            .collect();
        let payload: Vec<u8> = (0..payload_len).map(|i| (i % 251) as u8).collect();
        let wkey = ok("key", writer.key("bench/artifact"));
        let rkey = ok("key", reader.key("bench/artifact"));
        let peer_keys = peers
            .iter()
            .map(|p| ok("key", p.key("bench/artifact")))
            .collect();
        ok("first put", writer.put(&wkey, &payload));
        let mut fixture = Fixture {
            writer,
            reader,
            peers,
            wkey,
            rkey,
            peer_keys,
            payload,
            buf: Vec::with_capacity(payload_len),
            _seg: seg,
            _name: name,
        };
        fixture.refresh_all();
        fixture
    }

    /// Every agent but the writer reads the current version (MISS), so all hold copies.
    fn refresh_all(&mut self) {
        ok(
            "reader get",
            self.reader.get_into(&self.rkey, &mut self.buf),
        );
        self.refresh_peers();
        assert!(ok("is_valid", self.reader.is_valid(&self.rkey)));
    }

    /// The peers re-read (zero-copy: the pin marks them S without copying the payload).
    fn refresh_peers(&self) {
        for (peer, key) in self.peers.iter().zip(&self.peer_keys) {
            drop(ok("peer read", peer.read(key)));
        }
    }

    /// Time `iters` MISSes of the reader, each after an untimed write by the writer that
    /// invalidates its copy.
    fn time_misses(&mut self, iters: u64) -> Duration {
        let mut timed = Duration::ZERO;
        for _ in 0..iters {
            ok("writer put", self.writer.put(&self.wkey, &self.payload));
            let start = Instant::now();
            let result = black_box(self.reader.get_into(&self.rkey, &mut self.buf));
            timed += start.elapsed();
            assert!(!ok("get", result).1, "expected a MISS");
        }
        timed
    }

    fn assert_hit(&mut self) {
        let (_, hit) = ok("get", self.reader.get_into(&self.rkey, &mut self.buf));
        assert!(hit, "expected a HIT");
        assert_eq!(self.buf.len(), self.payload.len());
    }
}

fn payload_config() -> Config {
    Config {
        max_agents: 16,
        max_artifacts: 16,
        arena_bytes: 64 << 20,
        max_payload: 2 << 20,
        ..Config::default()
    }
}

/// Cost against payload size: HIT (copy), MISS, zero-copy read, and put with 8 peers.
fn by_payload(c: &mut Criterion) {
    for &size in &PAYLOADS {
        let mut fixture = None::<Fixture>;
        let make = move || Fixture::new("payload", payload_config(), size, PAYLOAD_PEERS);
        let id = BenchmarkId::new("payload", size);
        let big = size >= 64 << 10;

        let mut group = c.benchmark_group("get_hit_handle");
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(id.clone(), |b| {
            let f = fixture.get_or_insert_with(make);
            f.refresh_all();
            f.assert_hit();
            b.iter(|| black_box(f.reader.get_into(&f.rkey, &mut f.buf)));
            f.assert_hit();
        });
        group.finish();

        let mut group = c.benchmark_group("get_miss");
        group.throughput(Throughput::Bytes(size as u64));
        if big {
            group.sample_size(20);
        }
        group.bench_function(id.clone(), |b| {
            let f = fixture.get_or_insert_with(make);
            b.iter_custom(|iters| f.time_misses(iters));
        });
        group.finish();

        let mut group = c.benchmark_group("get_hit_cached");
        group.bench_function(id.clone(), |b| {
            let f = fixture.get_or_insert_with(make);
            f.refresh_all();
            let mut cached = agent_coherence::Cached::new(f.rkey.clone());
            ok("refresh", f.reader.refresh(&mut cached));
            b.iter(|| {
                black_box(ok("refresh", f.reader.refresh(&mut cached)));
                black_box(cached.bytes().first().copied())
            });
            assert!(
                ok("refresh", f.reader.refresh(&mut cached)),
                "expected a HIT"
            );
        });
        group.finish();

        let mut group = c.benchmark_group("read_zero_copy");
        group.bench_function(id.clone(), |b| {
            let f = fixture.get_or_insert_with(make);
            f.refresh_all();
            b.iter(|| {
                let guard = ok("read", f.reader.read(&f.rkey));
                black_box(guard.first().copied())
            });
            assert!(ok("read", f.reader.read(&f.rkey)).hit());
        });
        group.finish();

        let mut group = c.benchmark_group("put_peers");
        group.throughput(Throughput::Bytes(size as u64));
        if big {
            group.sample_size(20);
        }
        group.bench_function(id, |b| {
            let f = fixture.get_or_insert_with(make);
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    // Untimed: every peer takes a copy of the current version again.
                    f.refresh_peers();
                    let start = Instant::now();
                    let result = black_box(f.writer.put(&f.wkey, &f.payload));
                    timed += start.elapsed();
                    ok("put", result);
                }
                timed
            });
        });
        group.finish();
    }
}

/// Cost against the number of agents attached (all holding copies): HIT and put.
fn by_peers(c: &mut Criterion) {
    let config = Config {
        max_agents: 264,
        max_artifacts: 16,
        arena_bytes: 8 << 20,
        max_payload: 64 << 10,
        ..Config::default()
    };
    for &peers in &PEERS {
        let mut fixture = None::<Fixture>;
        let make = move || Fixture::new("peers", config, 64, peers);
        let id = BenchmarkId::new("peers", peers);

        let mut group = c.benchmark_group("get_hit_handle");
        group.bench_function(id.clone(), |b| {
            let f = fixture.get_or_insert_with(make);
            f.refresh_all();
            f.assert_hit();
            b.iter(|| black_box(f.reader.get_into(&f.rkey, &mut f.buf)));
        });
        group.finish();

        let mut group = c.benchmark_group("put_peers");
        if peers >= 64 {
            // The untimed re-reads of many peers dominate the wall time.
            group.sample_size(30);
        }
        group.bench_function(id, |b| {
            let f = fixture.get_or_insert_with(make);
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    f.refresh_peers();
                    let start = Instant::now();
                    let result = black_box(f.writer.put(&f.wkey, &f.payload));
                    timed += start.elapsed();
                    ok("put", result);
                }
                timed
            });
        });
        group.finish();
    }
}

/// A segment holding `count` artifacts of 64 bytes; the reader holds a copy of one of them.
struct Artifacts {
    reader: Agent,
    key_text: String,
    key: Key,
    buf: Vec<u8>,
    _writer: Agent,
    _seg: Segment,
    _name: ShmName,
}

impl Artifacts {
    fn new(count: usize) -> Artifacts {
        let name = ShmName::unique("artifacts");
        // The views table is max_agents × lines words: few agents keep 100k lines small.
        let config = Config {
            max_agents: 4,
            max_artifacts: 100_000,
            arena_bytes: 64 << 20,
            max_payload: 64 << 10,
            ..Config::default()
        };
        let seg = ok("create", Segment::create(&name.0, config));
        let writer = ok("attach writer", seg.attach("writer"));
        let reader = ok("attach reader", seg.attach("reader"));
        let payload = [7u8; 64];
        for i in 0..count {
            ok(
                "fill",
                writer.put(format!("bench/k/{i}").as_str(), &payload),
            );
        }
        let key_text = format!("bench/k/{}", count / 2);
        let key = ok("key", reader.key(&key_text));
        let mut buf = Vec::with_capacity(64);
        ok("get", reader.get_into(&key, &mut buf));
        assert!(ok("get", reader.get_into(key_text.as_str(), &mut buf)).1);
        Artifacts {
            reader,
            key_text,
            key,
            buf,
            _writer: writer,
            _seg: seg,
            _name: name,
        }
    }
}

/// Cost against the number of artifacts present: lookup by key, by handle, and `is_valid`.
fn by_artifacts(c: &mut Criterion) {
    for &count in &ARTIFACTS {
        let mut fixture = None::<Artifacts>;
        let make = move || Artifacts::new(count);
        let id = BenchmarkId::new("artifacts", count);

        let mut group = c.benchmark_group("get_hit_key");
        group.bench_function(id.clone(), |b| {
            let f = fixture.get_or_insert_with(make);
            b.iter(|| black_box(f.reader.get_into(f.key_text.as_str(), &mut f.buf)));
            assert!(ok("get", f.reader.get_into(f.key_text.as_str(), &mut f.buf)).1);
        });
        group.finish();

        let mut group = c.benchmark_group("get_hit_handle");
        group.bench_function(id.clone(), |b| {
            let f = fixture.get_or_insert_with(make);
            b.iter(|| black_box(f.reader.get_into(&f.key, &mut f.buf)));
        });
        group.finish();

        let mut group = c.benchmark_group("is_valid");
        group.bench_function(id, |b| {
            let f = fixture.get_or_insert_with(make);
            b.iter(|| black_box(f.reader.is_valid(&f.key)));
            assert!(ok("is_valid", f.reader.is_valid(&f.key)));
        });
        group.finish();
    }
}

/// The rest: `check`, a refused conditional write, and an acquire + commit pair.
fn misc(c: &mut Criterion) {
    let mut fixture = None::<Fixture>;
    let make = || Fixture::new("misc", payload_config(), 64, 0);

    let mut group = c.benchmark_group("check");
    group.bench_function("valid", |b| {
        let f = fixture.get_or_insert_with(make);
        f.refresh_all();
        b.iter(|| black_box(f.reader.check(&f.rkey)));
        assert!(ok("check", f.reader.check(&f.rkey)).is_current());
    });
    group.bench_function("invalid", |b| {
        let f = fixture.get_or_insert_with(make);
        ok("put", f.writer.put(&f.wkey, &f.payload));
        b.iter(|| black_box(f.reader.check(&f.rkey)));
        assert!(!ok("check", f.reader.check(&f.rkey)).valid);
    });
    group.finish();

    let mut group = c.benchmark_group("put_if_refused");
    group.bench_function("stale", |b| {
        let f = fixture.get_or_insert_with(make);
        f.refresh_all();
        let stale = ok("check", f.reader.check(&f.rkey)).current;
        ok("put", f.writer.put(&f.wkey, &f.payload));
        b.iter(|| {
            let refused = f.reader.put_if(&f.rkey, stale, &f.payload);
            debug_assert!(matches!(refused, Err(Error::Conflict { .. })));
            black_box(refused)
        });
        assert!(matches!(
            f.reader.put_if(&f.rkey, stale, &f.payload),
            Err(Error::Conflict { .. })
        ));
    });
    group.finish();

    let mut group = c.benchmark_group("acquire_commit");
    group.bench_function(BenchmarkId::new("payload", 64), |b| {
        let f = fixture.get_or_insert_with(make);
        b.iter(|| {
            let hold = ok("acquire", f.writer.acquire(&f.wkey, LEASE));
            black_box(ok("commit", hold.commit(&f.payload)))
        });
    });
    group.finish();
}

/// The operation log's cost: the same operations with logging on and off on one segment (the
/// switch flips between the two), each pair measured back to back.
fn logging(c: &mut Criterion) {
    let mut fixture = None::<Fixture>;
    let make = || Fixture::new("logging", payload_config(), 64, 1);
    let mut group = c.benchmark_group("logging");
    let states = [("on", true), ("off", false)];
    for (state, on) in states {
        group.bench_function(BenchmarkId::new("get_hit_handle_64", state), |b| {
            let f = fixture.get_or_insert_with(make);
            ok("switch", f._seg.set_logging(on));
            f.refresh_all();
            f.assert_hit();
            b.iter(|| black_box(f.reader.get_into(&f.rkey, &mut f.buf)));
            f.assert_hit();
        });
    }
    for (state, on) in states {
        group.bench_function(BenchmarkId::new("get_hit_key_64", state), |b| {
            let f = fixture.get_or_insert_with(make);
            ok("switch", f._seg.set_logging(on));
            f.refresh_all();
            b.iter(|| black_box(f.reader.get_into("bench/artifact", &mut f.buf)));
            f.assert_hit();
        });
    }
    for (state, on) in states {
        group.bench_function(BenchmarkId::new("get_hit_cached", state), |b| {
            let f = fixture.get_or_insert_with(make);
            ok("switch", f._seg.set_logging(on));
            f.refresh_all();
            let mut cached = agent_coherence::Cached::new(f.rkey.clone());
            ok("refresh", f.reader.refresh(&mut cached));
            b.iter(|| black_box(ok("refresh", f.reader.refresh(&mut cached))));
            assert!(ok("refresh", f.reader.refresh(&mut cached)), "a HIT");
        });
    }
    for (state, on) in states {
        group.bench_function(BenchmarkId::new("get_miss_64", state), |b| {
            let f = fixture.get_or_insert_with(make);
            ok("switch", f._seg.set_logging(on));
            b.iter_custom(|iters| f.time_misses(iters));
        });
    }
    for (state, on) in states {
        group.bench_function(BenchmarkId::new("put_64", state), |b| {
            let f = fixture.get_or_insert_with(make);
            ok("switch", f._seg.set_logging(on));
            b.iter(|| black_box(ok("put", f.writer.put(&f.wkey, &f.payload))));
        });
    }
    group.finish();
}

fn config() -> Criterion {
    // Modest defaults so the whole run stays near ten minutes; the CLI flags override them.
    Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .noise_threshold(0.03)
}

criterion_group! {
    name = benches;
    config = config();
    targets = by_payload, by_peers, by_artifacts, misc, logging
}
criterion_main!(benches);
