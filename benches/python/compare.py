"""ShmStore (cross-process segment) against ccs.adapters.CCSStore (in-process), in one run.

Measures, at the same payload (a JSON document of about 1 KiB), through the LangGraph
``BaseStore`` API (``store.get`` / ``store.put``):

- get HIT: the agent's copy is current (repeated gets of one item);
- get MISS: a peer wrote the item since this agent's last read (ShmStore: the peer is an agent
  in another process; CCSStore: another agent of the same store, as it runs in one process);
- put: a write of the item while a peer holds a copy.

ShmStore runs as InMemoryStore code would use it: the namespace is the item's (``("task",)``)
and each process's store names its agent (``agent="executor"`` here, ``"planner"`` in the peer).
CCSStore takes its agent from ``namespace[0]``. Values go through LangGraph's serializer.

The bench's own messages (the main process asks the peer to read or write, the peer
acknowledges) go through a second, small segment by default (``--signal separate``): they are
the bench's scaffolding, not traffic of the store under test, and through the store's own
segment (``--signal same``, how the numbers before were taken) each acknowledgement is a write
whose descriptor and blocks the timed ``put`` then takes from the segment's free lists, lines
the peer's core has just written.

Prints medians (ns per operation) and ratios against the targets (get HIT 100x, get MISS 20x,
put 50x), and for context: a MISS followed by the first read of its ``value`` (ShmStore decodes
a value on first access), the native binding's own costs, and ormsgpack encoding and decoding
the value alone (what a put and a value's first read cannot avoid).
Usage: target/py-venv/bin/python benches/python/compare.py [--reps N] [--signal separate|same]
(scripts/test-python installs everything this needs into target/py-venv).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
import warnings
from typing import Any, Callable

from ormsgpack import OPT_NON_STR_KEYS, packb, unpackb

from agent_coherence_shm import Segment
from agent_coherence_shm.langgraph import ShmStore
from agent_coherence_shm.langgraph._codec import _OPTIONS as VALUE_OPTIONS

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import ccs
    from ccs.adapters import CCSStore

DOC = {"title": "rename validateUser", "spec": "x" * 880, "steps": [1, 2, 3], "owner": "planner", "version": 1}
P, E = ("planner", "task"), ("executor", "task")  # CCSStore: (agent, scope)
T = ("task",)  # ShmStore: the namespace itself
TARGETS = {"get HIT": 100.0, "get MISS": 20.0, "put": 50.0}


def doc(i: int) -> dict[str, Any]:
    return {**DOC, "version": i}


def per_op(f: Callable[[], Any], reps: int, inner: int) -> float:
    """Median over ``reps`` rounds of the mean time of ``inner`` calls, in ns."""
    rounds = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        for _ in range(inner):
            f()
        rounds.append((time.perf_counter_ns() - t0) / inner)
    return statistics.median(rounds)


def timed(samples: list[int]) -> float:
    return float(statistics.median(samples))


def spin_for(agent: Any, key: str, seq: int) -> bytes:
    """Spin on the agent's valid bit of ``key`` until a peer's write clears it, and read it;
    again until the message carries sequence number ``seq`` (``b"<seq>:<what>"``)."""
    while True:
        while agent.is_valid(key):
            pass
        seen, _, what = agent.get(key).bytes.partition(b":")
        if int(seen) == seq:
            return what


def peer(segment: str, control: str) -> None:
    """The planner's process: on each request (an artifact write it spins on), read or write
    the spec through its own ShmStore, then acknowledge. Spinning, not sleeping, keeps both
    processes on their cores, so no wake-up latency lands in the timed operations."""
    store = ShmStore(segment)
    with Segment.open(control).attach("bench-peer") as ctl:
        ctl.get("bench/req")
        ctl.put_blind("bench/ack", b"0:ready")
        i, seq = 1, 0
        while True:
            seq += 1
            request = spin_for(ctl, "bench/req", seq)
            if request == b"stop":
                break
            if request == b"read":
                store.get(T, "spec")
            else:
                i += 1
                store.put(T, "spec", doc(i))
            ctl.put_blind("bench/ack", b"%d:done" % seq)
    store.close()


def bench_shm(reps: int, signal: str) -> dict[str, float]:
    name = f"bench-py-{os.getpid()}"
    store = ShmStore(name, agent="executor", max_agents=8, max_artifacts=64, arena_bytes=16 << 20, max_payload=1 << 16)
    control = name if signal == "same" else f"{name}-signal"
    if signal == "same":
        ctl = store.segment.attach("bench-main")
    else:
        ctl = Segment.create(control, max_agents=4, max_artifacts=8, arena_bytes=1 << 20, max_payload=4096).attach("bench-main")
    child = None
    seq = 0
    try:
        store.put(T, "spec", doc(1))  # the planner agent belongs to the peer process
        ctl.put_blind("bench/req", b"0:hello")
        child = mp.get_context("spawn").Process(target=peer, args=(name, control), daemon=True)
        child.start()
        while True:  # the peer's first acknowledgement
            try:
                ctl.get("bench/ack")
                break
            except Exception:  # NotFound until the peer is up
                time.sleep(0.01)

        def request(what: bytes) -> None:
            nonlocal seq
            seq += 1
            ctl.put_blind("bench/req", b"%d:%s" % (seq, what))
            if what != b"stop":
                spin_for(ctl, "bench/ack", seq)

        request(b"read")  # the peer holds a copy
        store.get(T, "spec")
        hit = per_op(lambda: store.get(T, "spec"), reps, 2000)
        miss_samples = []
        for _ in range(reps * 40):
            request(b"write")
            t0 = time.perf_counter_ns()
            item = store.get(T, "spec")
            miss_samples.append(time.perf_counter_ns() - t0)
        assert item is not None and item.value["version"] > 1
        # The same MISS, then the first read of the value (a MISS decodes it on first access).
        miss_value_samples = []
        for _ in range(reps * 40):
            request(b"write")
            t0 = time.perf_counter_ns()
            store.get(T, "spec").value  # noqa: B018 - the access is what is timed
            miss_value_samples.append(time.perf_counter_ns() - t0)
        # The executor re-reads, then writes while the peer holds a copy.
        put_samples = []
        for _ in range(reps * 40):
            request(b"read")
            store.get(T, "spec")
            t0 = time.perf_counter_ns()
            store.put(T, "spec", DOC)
            put_samples.append(time.perf_counter_ns() - t0)
        request(b"stop")
        child.join(30)
        agent = store.agent()
        payload = json.dumps(DOC).encode()
        agent.put("native", payload)
        native_hit = per_op(lambda: agent.get("native"), reps, 5000)
        native_put = per_op(lambda: agent.put("native", payload), reps, 2000)
        packed = packb(DOC, option=VALUE_OPTIONS)
        encode = per_op(lambda: packb(DOC, option=VALUE_OPTIONS), reps, 5000)
        decode = per_op(lambda: unpackb(packed, option=OPT_NON_STR_KEYS), reps, 5000)
        return {
            "get HIT": hit,
            "get MISS": timed(miss_samples),
            "put": timed(put_samples),
            "get MISS, then .value": timed(miss_value_samples),
            "native Agent.get HIT (copy 1 KiB)": native_hit,
            "native Agent.put (1 KiB)": native_put,
            "value encode (ormsgpack.packb)": encode,
            "value decode (ormsgpack.unpackb)": decode,
        }
    finally:
        if child is not None and child.is_alive():
            child.kill()
        ctl.close()
        store.close(destroy=True)
        if control != name:
            Segment.destroy(control)


def bench_ccs(reps: int) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store = CCSStore()
        store.put(P, "spec", doc(1))
        store.get(E, "spec")
        hit = per_op(lambda: store.get(E, "spec"), reps, 200)
        miss_samples, put_samples = [], []
        for i in range(reps * 40):
            store.put(P, "spec", doc(i + 2))
            t0 = time.perf_counter_ns()
            store.get(E, "spec")
            miss_samples.append(time.perf_counter_ns() - t0)
        for _ in range(reps * 40):
            store.get(P, "spec")  # the peer holds a copy
            t0 = time.perf_counter_ns()
            store.put(E, "spec", DOC)
            put_samples.append(time.perf_counter_ns() - t0)
    return {"get HIT": hit, "get MISS": timed(miss_samples), "put": timed(put_samples)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=25)
    parser.add_argument("--signal", choices=("separate", "same"), default="separate",
                        help="the bench's own messages through a second segment (default) or the store's")
    args = parser.parse_args()
    size = len(json.dumps(DOC))
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cpus; "
          f"payload: a {size}-byte JSON document (ShmStore: LangGraph's msgpack serializer); "
          f"agent-coherence (PyPI) {getattr(ccs, '__version__', '?')}; the bench's messages: {args.signal} segment")
    shm = bench_shm(args.reps, args.signal)
    ref = bench_ccs(args.reps)
    print(f"\n{'operation':<36}{'ShmStore ns':>14}{'CCSStore ns':>14}{'ratio':>10}  target")
    missed = []
    for op in ("get HIT", "get MISS", "put"):
        ratio = ref[op] / shm[op]
        ok = ratio >= TARGETS[op]
        if not ok:
            missed.append(op)
        verdict = "met" if ok else "MISSED"
        print(f"{op:<36}{shm[op]:>14,.0f}{ref[op]:>14,.0f}{ratio:>9.1f}x  {TARGETS[op]:.0f}x {verdict}")
    for op, ns in shm.items():
        if op not in TARGETS:
            print(f"{op:<36}{ns:>14,.0f}")
    if missed:
        print(f"\ntargets missed: {', '.join(missed)} (see docs/python.md for why)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
