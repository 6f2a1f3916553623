"""ShmStore as a LangGraph user uses it: the agent named by the store, free namespaces, exact
values across processes, conflicts that name the item, vector search shared by processes, the
agent from the run's config, and a graph written for InMemoryStore run in two processes."""

from __future__ import annotations

import math
import multiprocessing as mp
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, TypedDict

import pydantic
import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore

import agent_coherence_shm as ccs
from agent_coherence_shm.langgraph import ShmStore

from conftest import SMALL

ROOT = Path(__file__).resolve().parents[2]

def _langgraph_fake_embeddings() -> Any:
    """``CharacterEmbeddings``, the fake embeddings of LangGraph's own tests (vendored)."""
    import importlib.util

    path = ROOT / "tests" / "langgraph" / "checkpoint" / "tests" / "embed_test_utils.py"
    spec = importlib.util.spec_from_file_location("langgraph_embed_test_utils", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CharacterEmbeddings


CharacterEmbeddings = _langgraph_fake_embeddings()

CTX = mp.get_context("spawn")
TIMEOUT = 60


class Model(pydantic.BaseModel):
    name: str
    at: datetime


def exotic() -> dict[str, Any]:
    """A value JSON would not bring back."""
    return {
        "when": datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=timezone(timedelta(hours=2))),
        "naive": datetime(2026, 3, 4, 5, 6, 7),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "pair": (1, ("nested", 2.5)),
        "list": [1, (2, 3)],
        "nan": float("nan"),
        "inf": float("-inf"),
        "model": Model(name="spec", at=datetime(2026, 1, 1, tzinfo=timezone.utc)),
        "money": Decimal("12.34"),
        "set": {1, 2, 3},
        "bytes": b"\x00\xff",
        7: "an int key",
    }


def same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN and types compared exactly."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def _read_exotic(segment: str, out: Any) -> None:
    store = ShmStore(segment, agent="reader")
    try:
        out.put(store.get(("values",), "exotic").value)
    finally:
        store.close()


def test_values_round_trip_exactly_in_and_across_processes(name: str) -> None:
    store = ShmStore(name, agent="writer", **SMALL)
    try:
        store.put(("values",), "exotic", exotic())
        peer = ShmStore(name, agent="peer")  # another agent: a MISS, decoded from the segment
        assert same(peer.get(("values",), "exotic").value, exotic())
        peer.close()
        out = CTX.Queue()
        child = CTX.Process(target=_read_exotic, args=(name, out))
        child.start()
        value = out.get(timeout=TIMEOUT)
        child.join(TIMEOUT)
        assert child.exitcode == 0
        assert same(value, exotic())
    finally:
        store.close(destroy=True)


def test_namespaces_are_free_and_the_agent_is_the_stores(name: str) -> None:
    a = ShmStore(name, agent="a", max_agents=4, max_artifacts=1024, arena_bytes=16 << 20, max_payload=1 << 20)
    b = ShmStore(name, agent="b")
    try:
        a.put(("docs",), "k", {"v": "one label"})
        a.put(("a", "b", "f"), "k", {"v": "abf"})
        a.put(("b", "a", "f"), "k", {"v": "baf"})
        assert b.get(("docs",), "k").value == {"v": "one label"}
        assert b.get(("a", "b", "f"), "k").value == {"v": "abf"}
        assert b.get(("b", "a", "f"), "k").value == {"v": "baf"}
        # (user_id, "memories"): users are namespaces, not agents; more of them than the
        # segment has agent slots is fine, and no user sees another's items.
        for user in range(300):
            a.put((f"user-{user}", "memories"), "m", {"user": user})
        assert [i.value for i in b.search(("user-7", "memories"))] == [{"user": 7}]
        assert len(b.list_namespaces(suffix=("memories",), limit=1000)) == 300
        writers = {x["writer"] for x in a.segment.status()["artifacts"]}
        assert writers == {"a"}
    finally:
        b.close()
        a.close(destroy=True)


def test_stores_of_one_agent_in_one_process_share_it(name: str) -> None:
    first = ShmStore(name, agent="executor", **SMALL)
    second = ShmStore(name, agent="executor")
    try:
        assert first.agent() is second.agent()  # no AgentBusy: one attachment, shared
        first.put(("t",), "k", {"v": 1})
        assert second.get(("t",), "k").value == {"v": 1}
        second.put(("t",), "k", {"v": 2})
        assert first.get(("t",), "k").value == {"v": 2}
        # One agent, one view: first's snapshot is older than what the agent holds (second
        # wrote), and the write is still not stale.
        second.put(("t",), "k", {"v": 3})
        first.put(("t",), "k", {"v": 4})
        assert second.get(("t",), "k").value == {"v": 4}
        assert second.get(("t",), "k").created_at == first.get(("t",), "k").created_at
    finally:
        second.close()
        first.close(destroy=True)


def test_conflict_names_the_namespace_and_key(name: str) -> None:
    planner = ShmStore(name, agent="planner", **SMALL)
    executor = ShmStore(name, agent="executor")
    try:
        planner.put(("user-1", "task"), "spec", {"v": 1})
        executor.get(("user-1", "task"), "spec")
        planner.put(("user-1", "task"), "spec", {"v": 2})
        with pytest.raises(ccs.Conflict) as refused:
            executor.put(("user-1", "task"), "spec", {"v": "built on v1"})
        error = refused.value
        assert "'spec'" in str(error) and "('user-1', 'task')" in str(error)
        assert "lg/" not in str(error)  # not the internal artifact key
        assert (error.current, error.yours) == (2, 1)
        assert (error.namespace, error.item_key) == (("user-1", "task"), "spec")
        assert executor.get(("user-1", "task"), "spec").value == {"v": 2}
        executor.put(("user-1", "task"), "spec", {"v": 3})  # built on v2: admitted
    finally:
        executor.close()
        planner.close(destroy=True)


def test_search_order_is_insertion_order_as_in_memory_store(name: str) -> None:
    from langgraph.store.memory import InMemoryStore

    ours, theirs = ShmStore(name, agent="a", **SMALL), InMemoryStore()
    try:
        for store in (ours, theirs):
            for ns, key in [(("z",), "b"), (("a",), "z"), (("z",), "a"), (("m", "n"), "k")]:
                store.put(ns, key, {"key": key})
            store.put(("z",), "b", {"key": "b", "updated": True})  # keeps its place
            store.delete(("a",), "z")
            store.put(("a",), "z", {"key": "z"})  # re-created: at the end of its namespace
            store.put(("a",), "y", {"key": "y"})

        def page(store: BaseStore, **kw: Any) -> list[tuple[tuple[str, ...], str]]:
            return [(i.namespace, i.key) for i in store.search((), **kw)]

        assert page(ours, limit=100) == page(theirs, limit=100)
        assert page(ours, limit=2, offset=1) == page(theirs, limit=2, offset=1)
    finally:
        ours.close(destroy=True)


def _search_index(segment: str, out: Any) -> None:
    store = ShmStore(segment, agent="searcher", index={"dims": 64, "embed": CharacterEmbeddings(dims=64)})
    try:
        out.put([(i.key, i.score) for i in store.search(("docs",), query="zany zebra")])
    finally:
        store.close()


def test_vector_index_lives_in_the_segment(name: str) -> None:
    index = {"dims": 64, "embed": CharacterEmbeddings(dims=64), "fields": ["text"]}
    store = ShmStore(name, agent="writer", index=index, **SMALL)
    try:
        store.put(("docs",), "zebra", {"text": "zany zebra"})
        store.put(("docs",), "birds", {"text": "text about birds"})
        store.put(("docs",), "plain", {"text": "zany zebra"}, index=False)
        here = [(i.key, i.score) for i in store.search(("docs",), query="zany zebra")]
        assert here[0][0] == "zebra" and here[0][1] == pytest.approx(1.0, abs=1e-6)
        assert here[-1] == ("plain", None)  # no vector: after the scored ones, unscored
        out = CTX.Queue()
        child = CTX.Process(target=_search_index, args=(name, out))
        child.start()
        there = out.get(timeout=TIMEOUT)
        child.join(TIMEOUT)
        assert child.exitcode == 0
        assert there == here  # the same vectors, read from the segment: the same scores
    finally:
        store.close(destroy=True)


def test_native_cosine() -> None:
    from array import array

    from agent_coherence_shm._native import max_cosine

    def f32(*xs: float) -> bytes:
        return array("f", xs).tobytes()

    scores = max_cosine(f32(1, 0), [f32(1, 0), f32(0, 1, 1, 1), None, f32(0, 0), b""])
    assert scores[0] == pytest.approx(1.0)
    assert scores[1] == pytest.approx(math.sqrt(0.5))  # the best of its two vectors
    assert scores[2:] == [None, 0.0, None]
    with pytest.raises(ValueError):
        max_cosine(f32(1, 0), [f32(1, 0, 1)])  # not whole vectors of the query's length
    with pytest.raises(ValueError):
        max_cosine(b"", [f32(1)])


class _State(TypedDict, total=False):
    note: str


def test_agent_from_the_runs_config(name: str) -> None:
    store = ShmStore(name, agent="default", agent_from_config="agent", **SMALL)
    try:

        def note(state: _State, *, store: BaseStore) -> _State:
            store.put(("notes",), state["note"], {"text": state["note"]})
            return {}

        graph = StateGraph(_State)
        graph.add_node("note", note)
        graph.add_edge(START, "note")
        graph.add_edge("note", END)
        app = graph.compile(store=store)
        app.invoke({"note": "by-planner"}, {"configurable": {"agent": "planner"}})
        app.invoke({"note": "by-default"})
        store.put(("notes",), "outside", {"text": "outside a run"})
        writers = {
            a["key"].rsplit(":", 1)[1]: a["writer"] for a in store.segment.status()["artifacts"]
        }
        assert writers == {"by-planner": "planner", "by-default": "default", "outside": "default"}
    finally:
        store.close(destroy=True)


def test_graph_written_for_in_memory_store_runs_in_two_processes(name: str) -> None:
    example = str(ROOT / "examples" / "python" / "memory_graph.py")

    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, example, *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    in_memory = run("--in-memory")
    assert "user-1 note-1: works on the auth service" in in_memory
    assert run(name) == in_memory  # two processes on ShmStore: the same output, exact values


def test_closed_store_and_destroy(seg_name: Callable[[], str]) -> None:
    name = seg_name()
    store = ShmStore(name, **SMALL)
    store.setup()
    store.close()
    with pytest.raises(RuntimeError):
        store.put(("x",), "k", {"v": 1})
    ccs.Segment.open(name).attach("langgraph").close()  # the default agent was released
