//! Redis client-side caching over RESP3, on a server the caller started (`--port`).
//!
//! Two connections, each on its own thread pinned like the `ccs bench` processes: the writer
//! (first CPU) and a tracking peer (second CPU, `CLIENT TRACKING on`, so the server pushes an
//! `invalidate` message when a key it read changes). The peer's cache is what a client-side
//! cache holds: a hash map from key to value, served locally while no invalidation has come.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::clock::now_ns;
use crate::stats::{phase, report};
use crate::{Opts, fill, pin_to, validate};

const KEY: &str = "ccs-peers:artifact";

/// A RESP3 value, as much of it as this benchmark reads.
#[derive(Debug)]
enum Value {
    Simple(String),
    Bulk(Option<Vec<u8>>),
    Int,
    Array,
    Push(Vec<Value>),
    Null,
}

struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(port: u16) -> Result<Conn, String> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .map_err(|e| format!("cannot connect to redis on port {port}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let writer = stream.try_clone().map_err(|e| e.to_string())?;
        let mut conn = Conn {
            reader: BufReader::with_capacity(1 << 20, stream),
            writer,
        };
        conn.call(&[b"HELLO", b"3"])?;
        Ok(conn)
    }

    fn send(&mut self, args: &[&[u8]]) -> Result<(), String> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out).map_err(|e| e.to_string())
    }

    /// Send a command and read its reply, skipping push messages.
    fn call(&mut self, args: &[&[u8]]) -> Result<Value, String> {
        self.send(args)?;
        loop {
            match self.read()? {
                Value::Push(_) => continue,
                Value::Simple(s) if s.starts_with('-') => return Err(format!("redis: {s}")),
                v => return Ok(v),
            }
        }
    }

    fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        if line.is_empty() {
            return Err("redis closed the connection".to_owned());
        }
        Ok(line.trim_end().to_owned())
    }

    fn read(&mut self) -> Result<Value, String> {
        let line = self.line()?;
        let (kind, rest) = line.split_at(1);
        let n = || {
            rest.parse::<i64>()
                .map_err(|_| format!("bad RESP line {line:?}"))
        };
        Ok(match kind {
            "+" => Value::Simple(rest.to_owned()),
            "-" => Value::Simple(line.clone()),
            ":" | "#" | "," => Value::Int,
            "_" => Value::Null,
            "$" => {
                let len = n()?;
                if len < 0 {
                    Value::Bulk(None)
                } else {
                    let mut buf = vec![0u8; len as usize + 2];
                    self.reader
                        .read_exact(&mut buf)
                        .map_err(|e| e.to_string())?;
                    buf.truncate(len as usize);
                    Value::Bulk(Some(buf))
                }
            }
            "*" | "~" | ">" => {
                let items = (0..n()?.max(0))
                    .map(|_| self.read())
                    .collect::<Result<Vec<_>, _>>()?;
                if kind == ">" {
                    Value::Push(items)
                } else {
                    Value::Array
                }
            }
            "%" => {
                for _ in 0..2 * n()?.max(0) {
                    self.read()?;
                }
                Value::Array
            }
            _ => return Err(format!("unexpected RESP line {line:?}")),
        })
    }

    fn get(&mut self) -> Result<Vec<u8>, String> {
        match self.call(&[b"GET", KEY.as_bytes()])? {
            Value::Bulk(Some(v)) => Ok(v),
            other => Err(format!("GET returned {other:?}")),
        }
    }

    fn set(&mut self, value: &[u8]) -> Result<(), String> {
        match self.call(&[b"SET", KEY.as_bytes(), value])? {
            Value::Simple(_) => Ok(()),
            other => Err(format!("SET returned {other:?}")),
        }
    }
}

fn is_invalidate(v: &Value) -> bool {
    matches!(v, Value::Push(items) if matches!(items.first(), Some(Value::Bulk(Some(k))) if k == b"invalidate"))
}

/// Run every Redis phase and print the report.
pub fn run(opts: &Opts) -> Result<(), String> {
    if opts.port == 0 {
        return Err("redis needs --port".to_owned());
    }
    let mut writer = Conn::open(opts.port)?;
    let mut bytes = vec![0u8; opts.payload];
    fill(&mut bytes, 0, 0);
    writer.set(&bytes)?;

    let warmup = opts.warmup() as u64;
    let steps = warmup + opts.iterations as u64;
    let t0_word = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let peer = {
        let (t0_word, done, port, cpus) = (t0_word.clone(), done.clone(), opts.port, opts.cpus);
        std::thread::spawn(move || -> Result<(Vec<u64>, Vec<u64>), String> {
            if let Some((_, r)) = cpus {
                pin_to(r)?;
            }
            let mut conn = Conn::open(port)?;
            conn.call(&[b"CLIENT", b"TRACKING", b"on"])?;
            let mut cache: HashMap<String, Vec<u8>> = HashMap::new();
            cache.insert(KEY.to_owned(), conn.get()?);
            done.store(1, Ordering::Release);
            let (mut invalid, mut held) = (Vec::new(), Vec::new());
            for step in 1..=steps {
                let v = conn.read()?;
                let t1 = now_ns();
                if !is_invalidate(&v) {
                    return Err(format!("expected an invalidation, got {v:?}"));
                }
                cache.remove(KEY);
                // Re-reading re-arms the tracking of the key.
                let value = conn.get()?;
                let (_, seen) = validate(&value).ok_or("the value is not as written")?;
                let t2 = now_ns();
                if seen != step {
                    return Err(format!("expected step {step}, read {seen}"));
                }
                cache.insert(KEY.to_owned(), value);
                let t0 = t0_word.load(Ordering::Acquire);
                if step > warmup {
                    invalid.push(t1.saturating_sub(t0));
                    held.push(t2.saturating_sub(t0));
                }
                done.store(1 + step, Ordering::Release);
            }
            Ok((invalid, held))
        })
    };
    if let Some((w, _)) = opts.cpus {
        pin_to(w)?;
    }
    let wait = |step: u64| -> Result<(), String> {
        let started = Instant::now();
        while done.load(Ordering::Acquire) < step {
            std::hint::spin_loop();
            if started.elapsed().as_secs() > 30 {
                return Err(format!("the tracking peer never finished step {step}"));
            }
        }
        Ok(())
    };
    wait(1)?;
    let mut set_tracked = Vec::new();
    for step in 1..=steps {
        let t0 = now_ns();
        t0_word.store(t0, Ordering::Release);
        fill(&mut bytes, t0, step);
        writer.set(&bytes)?;
        let t1 = now_ns();
        if step > warmup {
            set_tracked.push(t1 - t0);
        }
        wait(1 + step)?;
    }
    let (mut invalid, mut held) = peer
        .join()
        .map_err(|_| "the tracking peer panicked".to_owned())??;

    let mut get_rtt = Vec::new();
    for step in 0..steps {
        let t0 = now_ns();
        let v = writer.get()?;
        let t1 = now_ns();
        std::hint::black_box(v);
        if step >= warmup {
            get_rtt.push(t1 - t0);
        }
    }
    let mut local_hit = local_hits(opts.payload, opts.iterations);
    report(
        "redis",
        opts.payload,
        vec![
            phase("get_rtt", &mut get_rtt),
            phase("set_tracked", &mut set_tracked),
            phase("invalidation", &mut invalid),
            phase("hold_new", &mut held),
            phase("local_hit", &mut local_hit),
        ],
    );
    Ok(())
}

/// A client-side cache HIT: a hash lookup by key and a copy of the value into the caller's
/// buffer; batches of 100, ns per HIT.
pub fn local_hits(payload: usize, iterations: usize) -> Vec<u64> {
    let mut cache: HashMap<String, Vec<u8>> = HashMap::new();
    for i in 0..1000 {
        cache.insert(format!("artifact/{i}"), vec![i as u8; payload]);
    }
    cache.insert(KEY.to_owned(), vec![7u8; payload]);
    let mut buf = vec![0u8; payload];
    let key = KEY.to_owned();
    (0..iterations.min(5000))
        .map(|_| {
            let t0 = Instant::now();
            for _ in 0..100 {
                let k = std::hint::black_box(&key);
                if let Some(v) = cache.get(k.as_str()) {
                    buf.copy_from_slice(v);
                }
                std::hint::black_box(&mut buf);
            }
            (t0.elapsed().as_nanos() / 100) as u64
        })
        .collect()
}
