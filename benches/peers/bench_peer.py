#!/usr/bin/env python3
"""Time the nearest existing tool, the Python package `agent-coherence` (import `ccs`).

Ops, at each payload size, median ns/op over batches (time.perf_counter_ns):

- get_hit:  the same agent reads an artifact that has not changed since its last read.
- get_miss: another agent wrote since (the write is not timed; one get per write).
- put:      a write by the agent that wrote last, with one peer holding a copy
            (the peer re-reads before each put, untimed).

Two in-process implementations of the package are timed:

- `CCSStore` (ccs.adapters.ccsstore): the advertised LangGraph BaseStore drop-in. Values are
  JSON dicts; every op takes the store's lock, a tick, a JSON (de)serialisation and a metric
  event. The payload is `{"d": "<N-2-... ASCII bytes>"}`, sized so its JSON text is N bytes.
- `CoherenceAdapterCore` (ccs.adapters.base): the MESI core under CCSStore, string content,
  no LangGraph, no JSON. The fairest in-process comparison with our `get_into`/`put`.

Cross-process, the package's coordinator is an HTTP server (JSON over loopback) backed by
SQLite, started by `ccs.adapters.claude_code.lifecycle.ensure_coordinator` for a workspace
directory. Its API is the Claude Code hook protocol (pre-read / pre-edit / post-edit on file
paths whose bytes live in the workspace, plus snapshot sessions), gated by caller-principal
admission and a tracked-path policy. This script starts one on 127.0.0.1 for a temporary
directory and times one authenticated round trip (`GET /status`): every cross-process get or
put through it costs at least that, so it is reported as `http_roundtrip_floor` (a lower
bound, favourable to the package). Then it stops the coordinator.

Output: a JSON list of {impl, op, payload, median_ns, iterations} (plus `variant`/`note`),
to stdout or to the file named by the first argument.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

IMPL = "agent-coherence-py 0.15.0"
PAYLOADS = [int(p) for p in os.environ.get("PEER_PAYLOADS", "64,4096,65536").split(",")]
# Batches × iterations per batch; the median is taken over per-batch means.
BATCHES = int(os.environ.get("PEER_BATCHES", "15"))
TARGET_BATCH_NS = int(float(os.environ.get("PEER_BATCH_MS", "20")) * 1e6)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def median_ns(op, untimed=None) -> tuple[float, int]:
    """Median over BATCHES of the mean ns/op in a batch. With `untimed`, each op is timed
    alone (untimed() runs before it, outside the clock)."""
    # Size a batch to about TARGET_BATCH_NS of timed work.
    n = 1
    while True:
        t = _batch(op, untimed, n)
        if t * n >= TARGET_BATCH_NS or n >= 1 << 20:
            break
        n *= 2
    per_batch = [_batch(op, untimed, n) for _ in range(BATCHES)]
    return statistics.median(per_batch), n * BATCHES


def _batch(op, untimed, n: int) -> float:
    if untimed is None:
        start = time.perf_counter_ns()
        for _ in range(n):
            op()
        return (time.perf_counter_ns() - start) / n
    total = 0
    clock = time.perf_counter_ns
    for _ in range(n):
        untimed()
        start = clock()
        op()
        total += clock() - start
    return total / n


def json_value(size: int) -> dict:
    # json.dumps({"d": s}, separators=(",", ":")) is 8 + len(s) bytes.
    return {"d": "x" * max(0, size - 8)}


def bench_ccsstore(size: int, results: list) -> None:
    from ccs.adapters.ccsstore import CCSStore

    store = CCSStore(strategy="lazy")
    a, b = ("writer", "shared"), ("reader", "shared")
    value = json_value(size)
    store.put(a, "spec", value)
    item = store.get(b, "spec")
    assert item is not None and item.value == value

    def hit():
        store.get(b, "spec")

    def miss_setup():
        store.put(a, "spec", value)

    def peer_reread():
        store.get(b, "spec")

    def put():
        store.put(a, "spec", value)

    for op, fn, untimed in (
        ("get_hit", hit, None),
        ("get_miss", hit, miss_setup),
        ("put", put, peer_reread),
    ):
        med, iters = median_ns(fn, untimed)
        results.append(record(op, size, med, iters, "CCSStore"))


def bench_core(size: int, results: list) -> None:
    from ccs.adapters.base import CoherenceAdapterCore

    core = CoherenceAdapterCore(strategy_name="lazy")
    core.register_agent("writer")
    core.register_agent("reader")
    content = "x" * size
    art = core.register_artifact(name="spec", content=content)
    aid = art.id
    tick = [1]

    def next_tick() -> int:
        tick[0] += 1
        return tick[0]

    core.write(agent_name="writer", artifact_id=aid, content=content, now_tick=next_tick())
    assert core.read(agent_name="reader", artifact_id=aid, now_tick=next_tick()).content == content

    def hit():
        core.read(agent_name="reader", artifact_id=aid, now_tick=tick[0])

    def miss_setup():
        core.write(agent_name="writer", artifact_id=aid, content=content, now_tick=next_tick())

    def peer_reread():
        core.read(agent_name="reader", artifact_id=aid, now_tick=next_tick())

    def put():
        core.write(agent_name="writer", artifact_id=aid, content=content, now_tick=tick[0])

    for op, fn, untimed in (
        ("get_hit", hit, None),
        ("get_miss", hit, miss_setup),
        ("put", put, peer_reread),
    ):
        med, iters = median_ns(fn, untimed)
        results.append(record(op, size, med, iters, "CoherenceAdapterCore"))


def bench_http(results: list) -> None:
    """Start the package's HTTP/SQLite coordinator on 127.0.0.1 and time its round trip."""
    from ccs.adapters.claude_code import lifecycle
    from ccs.cli import _coherence_client as client

    root = Path(tempfile.mkdtemp(prefix="ccs-peer-bench-"))
    os.environ.setdefault("CCS_TELEMETRY", "off")
    port = lifecycle.ensure_coordinator(root, bind_host="127.0.0.1")
    if port == -1:
        raise RuntimeError("ensure_coordinator returned -1 (could not spawn)")
    try:
        endpoint = client.resolve_endpoint(root)
        client.get(endpoint, "/status")

        def status():
            client.get(endpoint, "/status")

        med, iters = median_ns(status)
        rec = record("http_roundtrip_floor", 0, med, iters, "coordinator HTTP+SQLite")
        rec["note"] = (
            "one authenticated GET /status over loopback to the package's coordinator: "
            "a lower bound for any cross-process get/put through it"
        )
        results.append(rec)
    finally:
        lifecycle.stop_coordinator(root)


def record(op: str, payload: int, med: float, iters: int, variant: str) -> dict:
    return {
        "impl": IMPL,
        "variant": variant,
        "op": op,
        "payload": payload,
        "median_ns": round(med, 1),
        "iterations": iters,
    }


def main() -> int:
    warnings.simplefilter("ignore")
    import importlib.metadata as md

    version = md.version("agent-coherence")
    if version != "0.15.0":
        log(f"warning: agent-coherence {version} installed, expected 0.15.0")
    log(f"agent-coherence {version}, python {platform.python_version()}")
    results: list = []
    for size in PAYLOADS:
        for name, bench in (("CCSStore", bench_ccsstore), ("core", bench_core)):
            try:
                bench(size, results)
            except Exception as exc:  # report, go on with the others
                log(f"{name} payload {size}: skipped: {exc!r}")
                results.append(
                    {"impl": IMPL, "variant": name, "op": "error", "payload": size, "note": repr(exc)}
                )
    if os.environ.get("PEER_HTTP", "1") != "0":
        try:
            bench_http(results)
        except Exception as exc:
            log(f"cross-process coordinator: skipped: {exc!r}")
            results.append(
                {
                    "impl": IMPL,
                    "variant": "coordinator HTTP+SQLite",
                    "op": "http_roundtrip_floor",
                    "payload": 0,
                    "note": f"not run: {exc!r}",
                }
            )
    text = json.dumps(results, indent=1)
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
