"""ShmStore's BaseStore semantics in one process: get, put, delete, search, list_namespaces."""

from __future__ import annotations

import asyncio
import time
from datetime import timezone
from typing import Callable, Iterator

import pytest
from langgraph.store.base import GetOp, ListNamespacesOp, PutOp, SearchOp

import agent_coherence_shm as ccs
from agent_coherence_shm.langgraph import ShmStore, artifact_key

from conftest import SMALL


@pytest.fixture
def store(seg_name: Callable[[], str]) -> Iterator[ShmStore]:
    s = ShmStore(seg_name(), agent_from_namespace=True, **SMALL)
    yield s
    s.close(destroy=True)


def test_put_get_delete_and_timestamps(store: ShmStore) -> None:
    assert store.get(("planner", "task"), "spec") is None
    before = time.time()
    store.put(("planner", "task"), "spec", {"rename": "validateUser", "n": 1})
    item = store.get(("executor", "task"), "spec")  # another agent, same scope
    assert item is not None
    assert (item.namespace, item.key, item.value) == (("executor", "task"), "spec", {"rename": "validateUser", "n": 1})
    assert item.created_at.tzinfo == timezone.utc and before - 1 < item.created_at.timestamp() < time.time() + 1
    assert item.created_at == item.updated_at
    time.sleep(0.002)
    store.put(("executor", "task"), "spec", {"rename": "validateUser", "n": 2})
    again = store.get(("planner", "task"), "spec")
    assert again is not None and again.value["n"] == 2
    assert again.created_at == item.created_at and again.updated_at > item.updated_at
    store.delete(("planner", "task"), "spec")
    assert store.get(("executor", "task"), "spec") is None
    store.delete(("planner", "task"), "spec")  # deleting nothing is a no-op
    store.put(("planner", "task"), "spec", {"n": 3})
    fresh = store.get(("planner", "task"), "spec")
    assert fresh is not None and fresh.created_at > item.created_at  # a new life after a delete


def test_hits_return_the_cached_item(store: ShmStore) -> None:
    store.put(("planner", "task"), "spec", {"n": 1})
    first = store.get(("executor", "task"), "spec")
    assert store.get(("executor", "task"), "spec") is first
    store.put(("planner", "task"), "spec", {"n": 2})
    second = store.get(("executor", "task"), "spec")
    assert second is not first and second.value == {"n": 2}


def test_stale_write_is_refused(store: ShmStore) -> None:
    store.put(("planner", "task"), "spec", {"v": 1})
    assert store.get(("executor", "task"), "spec").value == {"v": 1}
    store.put(("planner", "task"), "spec", {"v": 2})
    with pytest.raises(ccs.Conflict) as conflict:
        store.put(("executor", "task"), "spec", {"v": "built on v1"})
    assert (conflict.value.current, conflict.value.yours) == (2, 1)
    assert conflict.value.namespace == ("executor", "task") and conflict.value.item_key == "spec"
    with pytest.raises(ccs.Conflict):
        store.delete(("executor", "task"), "spec")
    assert store.get(("executor", "task"), "spec").value == {"v": 2}  # the MISS re-reads
    store.put(("executor", "task"), "spec", {"v": 3})  # now admitted
    store.put(("reviewer", "task"), "spec", {"v": 4})  # never read: a first write, admitted


def test_namespace_needs_an_agent_and_a_scope(store: ShmStore) -> None:
    with pytest.raises(ValueError):
        store.put(("planner",), "k", {"v": 1})
    with pytest.raises(ValueError):
        store.get(("planner",), "k")


def test_search_prefix_filter_pagination(store: ShmStore) -> None:
    for i in range(6):
        store.put(("planner", "docs", "a" if i % 2 else "b"), f"d{i}", {"i": i, "kind": "even" if i % 2 == 0 else "odd", "meta": {"score": i / 2}})
    store.put(("planner", "other"), "x", {"i": 100})
    items = store.search(("executor", "docs"))
    # InMemoryStore's order: namespaces as first written ("b" got d0), items as created.
    assert [i.key for i in items] == ["d0", "d2", "d4", "d1", "d3", "d5"]
    assert all(i.namespace[0] == "executor" and i.score is None for i in items)
    assert [i.key for i in store.search(("executor", "docs", "a"))] == ["d1", "d3", "d5"]
    assert len(store.search(("executor",), limit=100)) == 7
    keys = lambda **kw: sorted(i.key for i in store.search(("executor", "docs"), **kw))  # noqa: E731
    assert keys(filter={"kind": "even"}) == ["d0", "d2", "d4"]
    assert keys(filter={"kind": {"$eq": "odd"}}) == ["d1", "d3", "d5"]
    assert keys(filter={"kind": {"$ne": "odd"}}) == ["d0", "d2", "d4"]
    assert keys(filter={"i": {"$gt": 3}}) == ["d4", "d5"]
    assert keys(filter={"i": {"$gte": 3}}) == ["d3", "d4", "d5"]
    assert keys(filter={"i": {"$lt": 2}}) == ["d0", "d1"]
    assert keys(filter={"i": {"$lte": 2, "$gt": 0}}) == ["d1", "d2"]
    assert keys(filter={"meta": {"score": 1.5}}) == ["d3"]
    assert keys(filter={"i": {"$gt": True}}) == ["d2", "d3", "d4", "d5"]  # float(True) == 1
    assert keys(filter={"i": {"$gt": "3"}}) == ["d4", "d5"]  # a numeric string is its number
    with pytest.raises(ValueError):  # as InMemoryStore: float("x")
        keys(filter={"i": {"$gt": "x"}})
    with pytest.raises(TypeError):  # as InMemoryStore: float(None) for a missing field
        keys(filter={"missing": {"$lt": 1}})
    assert keys(filter={"meta.score": 1.5}) == ["d3"]  # a dotted path, as the SQL stores
    with pytest.raises(ValueError):
        store.search(("executor",), filter={"i": {"$in": [1]}})
    page = store.search(("executor", "docs"), limit=2, offset=1)
    assert [i.key for i in page] == ["d2", "d4"]
    assert store.search(("executor", "docs"), limit=2, offset=10) == []
    everyone = store.search((), limit=100)  # no agent named: items under their writer
    assert len(everyone) == 7 and {i.namespace[0] for i in everyone} == {"planner"}
    # Without an index a query is ignored, as InMemoryStore does.
    assert len(store.search(("executor", "docs"), query="renames", limit=100)) == 6


def test_list_namespaces(store: ShmStore) -> None:
    for ns in [("planner", "a", "x"), ("planner", "a", "y"), ("planner", "b"), ("executor", "c", "x")]:
        store.put(ns, "k", {"v": 1})
    assert store.list_namespaces() == [("executor", "c", "x"), ("planner", "a", "x"), ("planner", "a", "y"), ("planner", "b")]
    assert store.list_namespaces(prefix=("reviewer",)) == [
        ("reviewer", "a", "x"), ("reviewer", "a", "y"), ("reviewer", "b"), ("reviewer", "c", "x"),
    ]
    assert store.list_namespaces(prefix=("reviewer", "a")) == [("reviewer", "a", "x"), ("reviewer", "a", "y")]
    assert store.list_namespaces(suffix=("x",)) == [("executor", "c", "x"), ("planner", "a", "x")]
    assert store.list_namespaces(prefix=("*", "a")) == [("planner", "a", "x"), ("planner", "a", "y")]
    assert store.list_namespaces(suffix=("a", "*")) == [("planner", "a", "x"), ("planner", "a", "y")]
    assert store.list_namespaces(prefix=("reviewer",), max_depth=2) == [
        ("reviewer", "a"), ("reviewer", "b"), ("reviewer", "c"),
    ]
    assert store.list_namespaces(prefix=("reviewer",), limit=2, offset=1) == [("reviewer", "a", "y"), ("reviewer", "b")]
    store.delete(("planner", "b"), "k")
    assert ("planner", "b") not in store.list_namespaces()


def test_batch_ops_and_abatch(store: ShmStore) -> None:
    results = store.batch([
        PutOp(("planner", "s"), "a", {"v": 1}),
        GetOp(("executor", "s"), "a"),
        SearchOp(("executor", "s"), None, 10, 0),
        ListNamespacesOp(None, None, 10, 0),
        PutOp(("planner", "s"), "a", None),
        GetOp(("executor", "s"), "a"),
    ])
    # As InMemoryStore: the reads see the state before the batch, then the writes apply (the
    # last write of an item wins: here the delete).
    assert results[0] is None and results[1] is None
    assert results[2] == [] and results[3] == []
    assert results[4] is None and results[5] is None
    assert store.get(("executor", "s"), "a") is None
    store.batch([PutOp(("planner", "s"), "a", {"v": 1}), PutOp(("planner", "s"), "a", {"v": 2})])
    after = store.batch([GetOp(("executor", "s"), "a"), ListNamespacesOp(None, None, 10, 0)])
    assert after[0].value == {"v": 2} and after[1] == [("planner", "s")]

    async def run() -> None:
        await store.aput(("planner", "s"), "b", {"v": 2})
        item = await store.aget(("executor", "s"), "b")
        assert item is not None and item.value == {"v": 2}
        assert [i.key for i in await store.asearch(("executor", "s"))] == ["a", "b"]
        await store.adelete(("planner", "s"), "b")
        assert await store.aget(("executor", "s"), "b") is None

    asyncio.run(run())


def test_key_mapping_is_injective_and_bounded(store: ShmStore) -> None:
    tricky = ["a", "a/b", "a%2Fb", "a:b", "a#b", "%", "%25", "/", ":", "#", "b", "é", "a" * 200]
    pairs = [((x, y), k) for x in tricky for y in [None, "z"] for k in ["k", "k:1", "/k", "#k", "é" * 130]]
    keys = {}
    for (x, y), k in pairs:
        scope = (x,) if y is None else (x, y)
        akey = artifact_key("lg/", scope, k)
        assert len(akey.encode()) <= ccs.MAX_KEY_BYTES
        assert keys.setdefault(akey, (scope, k)) == (scope, k), f"{akey!r} maps two items"
    for i, ((x, y), k) in enumerate(pairs[:60]):  # through the store, long keys included
        scope = (x,) if y is None else (x, y)
        store.put(("planner",) + scope, k, {"i": i})
    for i, ((x, y), k) in enumerate(pairs[:60]):
        scope = (x,) if y is None else (x, y)
        assert store.get(("executor",) + scope, k).value == {"i": i}
    long_scope = ("s" * 150, "t" * 150)
    store.put(("planner",) + long_scope, "k", {"long": True})
    assert [i.value for i in store.search(("executor", "s" * 150))] == [{"long": True}]
    assert ("planner",) + long_scope in store.list_namespaces()
    assert ("executor",) + long_scope in store.list_namespaces(prefix=("executor",))


def test_ttl_is_ignored_with_a_warning(store: ShmStore) -> None:
    with pytest.warns(UserWarning, match="ttl"):
        store.batch([PutOp(("planner", "s"), "k", {"v": 1}, ttl=5.0)])
    assert store.get(("planner", "s"), "k").value == {"v": 1}


def test_close_detaches_agents(seg_name: Callable[[], str]) -> None:
    name = seg_name()
    first = ShmStore(name, agent_from_namespace=True, **SMALL)
    first.put(("planner", "s"), "k", {"v": 1})
    second = ShmStore(name, agent_from_namespace=True)
    # A second store of the same agent in this process shares its attachment: no AgentBusy.
    second.put(("planner", "s"), "k", {"v": 2})
    first.close()
    with pytest.raises(RuntimeError):
        first.get(("planner", "s"), "k")
    second.put(("planner", "s"), "k", {"v": 3})
    assert second.get(("executor", "s"), "k").value == {"v": 3}
    second.close()
    third = ShmStore(name, agent_from_namespace=True)  # the last close detached "planner"
    third.agent("planner")
    with pytest.raises(ccs.AgentBusy):
        ccs.Segment.open(name).attach("planner")
    third.close(destroy=True)


def test_recreate_after_seeing_a_delete(store: ShmStore) -> None:
    store.put(("planner", "s"), "k", {"v": 1})
    store.get(("executor", "s"), "k")
    store.get(("reviewer", "s"), "k")
    store.delete(("planner", "s"), "k")
    with pytest.raises(ccs.Conflict):  # executor's view (v1) is stale: the item was deleted
        store.put(("executor", "s"), "k", {"v": "from v1"})
    assert store.get(("executor", "s"), "k") is None  # now it has seen the deletion
    store.put(("executor", "s"), "k", {"v": 2})  # and may re-create the item
    with pytest.raises(ccs.Conflict):  # reviewer saw v1 and missed the delete and the re-create
        store.put(("reviewer", "s"), "k", {"v": "stale"})
    assert store.get(("reviewer", "s"), "k").value == {"v": 2}
    with pytest.raises(ccs.Conflict):  # planner's view is its own delete, older than v2
        store.put(("planner", "s"), "k", {"v": "stale"})
    store.delete(("executor", "s"), "k")
    store.put(("executor", "s"), "k", {"v": 4})  # after its own delete
    assert store.get(("planner", "s"), "k").value == {"v": 4}


def test_threads_never_see_an_item_older_than_one_they_saw(store: ShmStore) -> None:
    """The lock-free HIT path pairs each item with its version: readers in threads racing a
    writer see versions that never go back, and end on the last one."""
    store.put(("planner", "s"), "n", {"n": 0})
    last = 2000
    errors: list[str] = []

    def writer() -> None:
        for n in range(1, last + 1):
            store.put(("planner", "s"), "n", {"n": n})

    def reader() -> None:
        seen = -1
        while seen < last:
            n = store.get(("executor", "s"), "n").value["n"]
            if n < seen:
                errors.append(f"went back from {seen} to {n}")
                return
            seen = n

    import threading

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert store.get(("executor", "s"), "n").value == {"n": last}


def test_a_read_decodes_its_value_on_first_access(seg_name: Callable[[], str]) -> None:
    """A MISS returns before it decodes the value; the value, read later, is exactly what was
    written (plain, with LangGraph's extension types, with non-string keys); an item pickles
    and copies as the plain Item it stands for; a value that does not decode raises
    CoherenceError when it is read, not before."""
    import copy
    import pickle
    import uuid

    import ormsgpack

    name = seg_name()
    writer = ShmStore(name, agent="planner", **SMALL)
    reader = ShmStore(name, agent="executor")
    try:
        values = {
            "plain": {"n": 1, "s": "x" * 100, "l": [1, 2.5, None]},
            "ext": {"t": (1, ("a",)), "u": uuid.UUID(int=7), "d": {"nan": float("nan")}},
            "keys": {1: "int key", (2, 3): "tuple key"},
        }
        for key, value in values.items():
            writer.put(("s",), key, value)
        for key, value in values.items():
            item = reader.get(("s",), key)
            assert item is not None
            assert item._raw is not None  # not decoded yet
            restored = pickle.loads(pickle.dumps(reader.get(("s",), key)))
            assert type(restored).__name__ == "Item" and restored.key == key
            assert repr(restored.value) == repr(value)  # NaN != NaN: compare the text
            assert repr(copy.deepcopy(item).value) == repr(value)
            assert repr(item.value) == repr(value) and item.value is item.value
        bad = ormsgpack.packb([2, ["s"], "bad", "planner", 1, 1, 1, 1, b"\xc1", None, 0])
        writer.agent().put(artifact_key("lg/", ("s",), "bad"), bad)
        item = reader.get(("s",), "bad")
        assert item is not None and item.key == "bad"
        with pytest.raises(ccs.CoherenceError, match="does not decode"):
            item.value
    finally:
        reader.close()
        writer.close(destroy=True)


def test_native_encoding_is_the_serializers(seg_name: Callable[[], str]) -> None:
    """A rewrite of an item the agent holds encodes a plain value natively: its bytes are
    those LangGraph's serializer (ormsgpack under its options) writes, at every size and width
    the wire format distinguishes; a value that is not plain takes the serializer's path. Either
    way a peer's MISS (read natively) returns exactly the value written, types included."""
    import math
    import uuid
    from datetime import datetime

    import ormsgpack

    from agent_coherence_shm.langgraph._codec import _OPTIONS

    def same(a: object, b: object) -> bool:
        if type(a) is not type(b):
            return False
        if isinstance(a, float):
            return a == b or (math.isnan(a) and math.isnan(b)) and math.copysign(1, a) == math.copysign(1, b)
        if isinstance(a, dict):
            return list(a) == list(b) and all(same(a[k], b[k]) for k in a)  # type: ignore[index]
        if isinstance(a, (list, tuple)):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))  # type: ignore[arg-type]
        return a == b

    ints = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1]
    ints += [-1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**63)]
    nested: object = "leaf"
    for _ in range(300):  # deeper than ormsgpack's limit
        nested = [nested]
    plain = {
        "ints": ints,
        "floats": [0.0, -0.0, 1.5, float("inf"), float("-inf"), float("nan"), 1e308],
        "text": ["", "é✓", "x" * 31, "x" * 32, "x" * 255, "x" * 256, "x" * 65535, "x" * 65536],
        "bytes": [b"", b"\x00" * 255, b"\x01" * 256, b"\x02" * 65536],
        "flags": [True, False, None],
        "wide": {f"k{i}": i for i in range(70000)},
        "long": list(range(20)),
        "empty": [{}, []],
    }
    not_plain = {
        "tuple": {"t": (1, ("a",))},
        "keys": {1: "int key", True: "bool key"},
        "types": {"u": uuid.UUID(int=7), "d": datetime(2026, 1, 2, 3, 4, 5)},
    }
    name = seg_name()
    writer = ShmStore(name, agent="planner", **{**SMALL, "max_payload": 4 << 20, "arena_bytes": 32 << 20})
    reader = ShmStore(name, agent="executor")
    try:
        for key, value in {**plain, **not_plain}.items():
            writer.put(("s",), key, {"first": True})
            writer.get(("s",), key)
            writer.put(("s",), key, {"v": value})  # the rewrite: native for plain values
            item = reader.get(("s",), key)
            assert item is not None
            if key in plain:
                assert item._raw == ormsgpack.packb({"v": value}, option=_OPTIONS), key
            assert same(item.value, {"v": value}), key
            assert same(writer.get(("s",), key).value, {"v": value}), key
        for refused in (nested, 2**64, -(2**63) - 1):  # as the serializer refuses them
            with pytest.raises(TypeError):
                writer.put(("s",), "long", {"v": refused})
        assert same(reader.get(("s",), "long").value, {"v": plain["long"]})
    finally:
        reader.close()
        writer.close(destroy=True)


def test_rewrites_without_reads_keep_creation_and_place(seg_name: Callable[[], str]) -> None:
    """Puts of held items one after another (the native rewrite, whose snapshot is made only
    when read) keep each item's created_at and search place; reads, searches and a peer see
    the last value."""
    name = seg_name()
    store = ShmStore(name, agent="planner", **SMALL)
    peer = ShmStore(name, agent="executor")
    try:
        for key in ("a", "b", "c"):
            store.put(("s",), key, {"n": 0})
        first = {key: store.get(("s",), key) for key in ("a", "b", "c")}
        for n in range(1, 20):
            for key in ("b", "a"):
                store.put(("s",), key, {"n": n})
        for key in ("a", "b"):
            item = store.get(("s",), key)
            assert item.value == {"n": 19}
            assert item.created_at == first[key].created_at < item.updated_at
            assert peer.get(("s",), key).value == {"n": 19}
        assert [(i.key, i.value["n"]) for i in store.search(("s",))] == [("a", 19), ("b", 19), ("c", 0)]
        store.put(("s",), "a", {"n": 20})
        store.put(("s",), "a", {"n": 21})
        assert [i.value["n"] for i in peer.search(("s",))] == [21, 19, 0]
        peer.put(("s",), "a", {"n": 22})
        with pytest.raises(ccs.Conflict):
            store.put(("s",), "a", {"n": 23})  # stale: the peer wrote since
        assert store.get(("s",), "a").value == {"n": 22}
        store.put(("s",), "a", {"n": 24})
        assert peer.get(("s",), "a").value == {"n": 24}
    finally:
        peer.close()
        store.close(destroy=True)
