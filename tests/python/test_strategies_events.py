"""Strategies, subscriptions and change events, and the operation log's stats (from main's
facade: Segment::attach_with, Agent::subscribe / try_events / wait_events, trace::stats)."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time

import pytest

import agent_coherence_shm as ccs
from agent_coherence_shm import Segment
from agent_coherence_shm.langgraph import ShmStore

from conftest import SMALL

CTX = mp.get_context("spawn")


def test_strategies_are_attached_and_shown(seg: Segment) -> None:
    cases = {
        "lazy": None,
        "eager": "eager",
        "lease:250ms": ("lease", 0.25),
        "access_count:3": ("access_count", 3),
        "lease:2000ms": "lease:2s",
    }
    for i, (shown, given) in enumerate(cases.items()):
        with seg.attach(f"a{i}", given) as agent:
            assert agent.strategy == shown
            status = {a["name"]: a for a in seg.status()["agents"]}
            assert status[f"a{i}"]["strategy"] == shown
    for bad in ["sometimes", ("lease", -1), ("access_count", "x"), ("other", 1), 42]:
        with pytest.raises(ValueError):
            seg.attach("bad", bad)
    with pytest.raises(ccs.InvalidConfig):
        seg.attach("zero", ("access_count", 0))


def test_access_count_and_lease_bound_hits(seg: Segment) -> None:
    with seg.attach("w") as w, seg.attach("n", ("access_count", 2)) as n, seg.attach("l", ("lease", 0.05)) as lease:
        w.put("k", b"v")
        assert [n.get("k").hit for _ in range(4)] == [False, True, True, False]
        assert [lease.get("k").hit for _ in range(2)] == [False, True]
        time.sleep(0.1)
        assert lease.get("k").hit is False


def test_subscriptions_and_events(seg: Segment) -> None:
    with seg.attach("planner") as planner, seg.attach("watcher", "eager") as watcher:
        watcher.subscribe("task/")
        assert watcher.subscriptions() == ["task/"]
        planner.put("task/spec", b"v1")
        planner.put("other", b"x")
        planner.delete("task/spec")
        events = watcher.poll_events()
        assert events["lost"] == 0
        assert [(e["key"], e["version"], e["writer"], e["deleted"]) for e in events["events"]] == [
            ("task/spec", 1, "planner", False),
            ("task/spec", 2, "planner", True),
        ]
        assert watcher.poll_events()["events"] == []
        assert seg.status()["agents"][1]["subscriptions"] == ["task/"]
        assert watcher.unsubscribe("task/") is True and watcher.unsubscribe("task/") is False
    with seg.attach("lazy") as lazy:
        with pytest.raises(ccs.CoherenceError):
            lazy.subscribe("task/")


def _write_later(segment: str, delay: float) -> None:
    with Segment.open(segment).attach("writer") as writer:
        time.sleep(delay)
        writer.put("task/spec", b"from another process")


def test_wait_events_across_processes_releases_the_gil(seg: Segment) -> None:
    with seg.attach("watcher", "eager") as watcher:
        watcher.subscribe("task/")
        assert watcher.wait_events(timeout=0.05)["events"] == []
        counted = 0
        stop = threading.Event()

        def count() -> None:
            nonlocal counted
            while not stop.is_set():
                counted += 1

        counter = threading.Thread(target=count)
        counter.start()
        child = CTX.Process(target=_write_later, args=(seg.location, 0.5))
        child.start()
        try:
            events = watcher.wait_events(timeout=30)
        finally:
            stop.set()
            counter.join()
            child.join(30)
        assert [(e["key"], e["writer"]) for e in events["events"]] == [("task/spec", "writer")]
        assert counted > 10_000
        assert child.exitcode == 0


def test_stats_and_switches(seg: Segment) -> None:
    with seg.attach("planner") as planner, seg.attach("executor") as executor:
        planner.put("task/spec", b"v1")
        executor.get("task/spec")
        executor.get("task/spec")
        planner.put("task/spec", b"v2")
        with pytest.raises(ccs.Conflict):
            executor.put("task/spec", b"stale")
        stats = seg.stats()
        assert stats["total"]["reads"] == 2 and stats["total"]["hits"] == 1
        assert stats["total"]["misses"] == 1 and stats["total"]["writes"] == 2
        assert stats["total"]["conflicts"] == 1 and stats["total"]["hit_rate"] == 0.5
        rows = {row["name"]: row for row in stats["agents"]}
        assert rows["executor"]["reads"] == 2 and rows["planner"]["writes"] == 2
        assert stats["window"]["records"] >= 5
        assert seg.switches() == {"logging": True, "invalidation": True}
        seg.set_logging(False)
        executor.get("task/spec")
        assert seg.stats()["total"]["reads"] == 2
        seg.set_logging(True)
        seg.set_invalidation(False)
        assert seg.switches()["invalidation"] is False
        seg.set_invalidation(True)


def test_no_log_segment(name: str) -> None:
    seg = Segment.create(name, **SMALL, log_records=0, inbox_events=0)
    assert seg.config["log_records"] == 0 and seg.config["inbox_events"] == 0
    with pytest.raises(ccs.CoherenceError):
        seg.stats()


def test_store_with_a_strategy(seg_name) -> None:  # type: ignore[no-untyped-def]
    store = ShmStore(seg_name(), agent_from_namespace=True, strategy=("access_count", 1), **SMALL)
    try:
        store.put(("planner", "s"), "k", {"v": 1})
        first = store.get(("executor", "s"), "k")
        assert store.get(("executor", "s"), "k") is first  # one HIT
        assert store.agent("executor").strategy == "access_count:1"
    finally:
        store.close(destroy=True)
