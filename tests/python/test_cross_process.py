"""Real processes: two ShmStores (two graphs) in two Python processes share items with
invalidation; a native wait is woken by another process's write; the example runs."""

from __future__ import annotations

import multiprocessing as mp
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import agent_coherence_shm as ccs
from agent_coherence_shm import Segment
from agent_coherence_shm.langgraph import ShmStore

from conftest import SMALL

ROOT = Path(__file__).resolve().parents[2]
CTX = mp.get_context("spawn")
TIMEOUT = 30


def _executor(segment: str, steps: Any, out: Any) -> None:
    """The executor's process: read v1, wait, check, try a stale write, re-read."""
    store = ShmStore(segment, agent_from_namespace=True)
    try:
        ns = ("executor", "task")
        item = store.get(ns, "spec")
        out.put(("read", item.value, store.is_current(ns, "spec")))
        steps.get(timeout=TIMEOUT)  # the planner wrote v2
        out.put(("current after peer write", store.is_current(ns, "spec")))
        try:
            store.put(ns, "spec", {"v": "built on v1"})
            out.put(("stale put", "admitted"))
        except ccs.Conflict as refused:
            out.put(("stale put", (refused.current, refused.yours)))
        item = store.get(ns, "spec")
        out.put(("re-read", item.value, store.is_current(ns, "spec")))
        store.put(ns, "spec", {"v": 3, "by": "executor"})
        out.put(("put", "ok"))
    finally:
        store.close()


def test_two_processes_share_items_with_invalidation(name: str) -> None:
    store = ShmStore(name, agent_from_namespace=True, **SMALL)
    try:
        planner = ("planner", "task")
        store.put(planner, "spec", {"v": 1})
        steps, out = CTX.Queue(), CTX.Queue()
        child = CTX.Process(target=_executor, args=(name, steps, out))
        child.start()
        assert out.get(timeout=TIMEOUT) == ("read", {"v": 1}, True)
        store.put(planner, "spec", {"v": 2})
        steps.put("v2 written")
        assert out.get(timeout=TIMEOUT) == ("current after peer write", False)
        assert out.get(timeout=TIMEOUT) == ("stale put", (2, 1))
        assert out.get(timeout=TIMEOUT) == ("re-read", {"v": 2}, True)
        assert out.get(timeout=TIMEOUT) == ("put", "ok")
        child.join(TIMEOUT)
        assert child.exitcode == 0
        assert not store.is_current(planner, "spec")
        item = store.get(planner, "spec")
        assert item.value == {"v": 3, "by": "executor"}
        assert [i.key for i in store.search(("planner",))] == ["spec"]
    finally:
        store.close(destroy=True)


def _writer(segment: str, delay: float) -> None:
    seg = Segment.open(segment)
    with seg.attach("writer") as writer:
        time.sleep(delay)
        writer.put("k", b"from another process")


def test_wait_changed_is_woken_by_another_process(seg: Segment) -> None:
    with seg.attach("waiter") as waiter:
        waiter.put("k", b"1")
        child = CTX.Process(target=_writer, args=(seg.location, 0.3))
        child.start()
        started = time.monotonic()
        assert waiter.wait_changed("k", 1, timeout=TIMEOUT) == 2
        assert time.monotonic() - started < TIMEOUT
        assert waiter.get("k").bytes == b"from another process"
        child.join(TIMEOUT)
        assert child.exitcode == 0


def _attach_and_hold(segment: str, ready: Any, done: Any) -> None:
    with Segment.open(segment).attach("busy"):
        ready.set()
        done.wait(TIMEOUT)


def test_agent_busy_across_processes(seg: Segment) -> None:
    ready, done = CTX.Event(), CTX.Event()
    child = CTX.Process(target=_attach_and_hold, args=(seg.location, ready, done))
    child.start()
    try:
        assert ready.wait(TIMEOUT)
        try:
            seg.attach("busy")
            raise AssertionError("attached an agent held by a live process")
        except ccs.AgentBusy as busy:
            assert busy.pid == child.pid
    finally:
        done.set()
        child.join(TIMEOUT)
    seg.attach("busy").close()  # free once that process detached


def test_refactor_graphs_example(name: str) -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "python" / "refactor_graphs.py"), name],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "executor: read task/spec v1" in run.stdout
    assert "executor: commit-time read of task/spec: MISS, v2" in run.stdout
    assert "against spec v2" in run.stdout and "authenticateUser" in run.stdout
    assert "stale write refused" in run.stdout
