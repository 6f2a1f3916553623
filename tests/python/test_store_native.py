"""ShmStore's native get and put (crates/ccs-python/src/hot.rs): bound on the instance where
they apply, with the store's contract kept (the same items as its locked Python path and as
InMemoryStore, through HITs, MISSes, own and peers' writes, deletions and options), a
subclass's own methods kept, no reference cycle, and threads sharing one store."""

from __future__ import annotations

import gc
import sys
import threading
import time
import weakref
from datetime import datetime
from typing import Any, Callable

import pytest
from langgraph.store.memory import InMemoryStore

import agent_coherence_shm as ccs
from agent_coherence_shm._native import StoreEntry
from agent_coherence_shm.langgraph import ShmStore

from conftest import SMALL

NATIVE = type(len)  # builtin_function_or_method: a native method bound to the index


def is_native(method: Any) -> bool:
    return type(method) is NATIVE


def shape(item: Any) -> Any:
    """What an item says, timestamps as they compare."""
    if item is None:
        return None
    return (item.namespace, item.key, item.value, type(item.created_at), type(item.updated_at))


def test_native_methods_are_bound_where_they_apply(seg_name: Callable[[], str]) -> None:
    name = seg_name()
    plain = ShmStore(name, agent="a", **SMALL)
    from_config = ShmStore(name, agent="b", agent_from_config="agent")
    compat = ShmStore(name, agent_from_namespace=True)
    indexed = ShmStore(name, agent="c", index={"dims": 2, "embed": lambda texts: [[1.0, 0.0] for _ in texts]})
    try:
        assert is_native(plain.get) and is_native(plain.put)
        assert not is_native(from_config.get) and not is_native(from_config.put)
        assert is_native(compat.get) and not is_native(compat.put)
        assert is_native(indexed.get) and not is_native(indexed.put)
    finally:
        for s in (indexed, compat, from_config):
            s.close()
        plain.close(destroy=True)


def test_native_paths_keep_the_stores_contract(seg_name: Callable[[], str]) -> None:
    """Each step on ShmStore (native get/put) and on InMemoryStore gives the same item; and
    every ShmStore item equals what its locked Python path reads."""
    name = seg_name()
    shm = ShmStore(name, agent="me", **SMALL)
    peer = ShmStore(name, agent="peer")
    mem = InMemoryStore()
    ns = ("docs", "a")
    try:
        assert is_native(shm.get) and is_native(shm.put)

        def both(op: str, *args: Any, via_peer: bool = False, **kw: Any) -> Any:
            mine = getattr(peer if via_peer else shm, op)(*args, **kw)
            theirs = getattr(mem, op)(*args, **kw)
            assert shape(mine) == shape(theirs), (op, args)
            if op == "get" and not via_peer:
                locked = shm._get_locked(tuple(args[0]), str(args[1]))
                assert shape(locked) == shape(mine)
                if mine is not None:
                    assert (locked.created_at, locked.updated_at) == (mine.created_at, mine.updated_at)
            return mine

        assert both("get", ns, "k") is None  # MISS of a key never written
        both("put", ns, "k", {"v": 1, "nested": {"x": [1, 2.5, None, True]}})  # first write
        first = both("get", ns, "k")  # after own put: made from the put's parts
        assert first.created_at == first.updated_at
        assert both("get", ns, "k") is first  # HIT: the same item
        time.sleep(0.002)
        both("put", ns, "k", {"v": 2})  # native rewrite
        second = both("get", ns, "k")
        assert second.created_at == first.created_at and second.updated_at > first.updated_at
        both("put", ns, "k", {"v": 3}, via_peer=True)  # a peer's write: MISS
        third = both("get", ns, "k")
        assert third.value == {"v": 3} and third.created_at == first.created_at
        both("put", ns, "k", {"when": datetime(2026, 1, 2), "pair": (1, 2)})  # not plain: codec
        both("get", ns, "k")
        both("put", ns, "k", {"v": 4}, ttl=None)  # the options the store takes
        assert both("get", ns, "k", refresh_ttl=True).value == {"v": 4}
        shm.put(list(ns), "k", {"v": 5})  # a list namespace (InMemoryStore refuses it)
        mem.put(ns, "k", {"v": 5})
        assert shm.get(list(ns), "k").value == {"v": 5} == both("get", ns, "k").value
        both("delete", ns, "k")  # deleted: None, then re-created
        assert both("get", ns, "k") is None
        both("put", ns, "k", {"v": 6})
        assert both("get", ns, "k").value == {"v": 6}
        peer.get(ns, "k")
        peer.delete(ns, "k")  # deleted by a peer
        mem.delete(ns, "k")
        assert both("get", ns, "k") is None
        with pytest.raises(NotImplementedError):
            shm.put(ns, "k", {"v": 7}, ttl=5)
        peer.put(ns, "c", {"v": 1})
        assert shm.get(ns, "c").value == {"v": 1}  # bound in the index
        peer.put(ns, "c", {"v": 2})  # a peer writes after this agent's read
        with pytest.raises(ccs.Conflict) as refused:  # the native rewrite is refused
            shm.put(ns, "c", {"v": "stale"})
        assert (refused.value.namespace, refused.value.item_key) == (ns, "c")
        assert shm.get(ns, "c").value == {"v": 2}
        shm.put(ns, "c", {"v": 3})  # built on v2: admitted
        assert peer.get(ns, "c").value == {"v": 3}
        with pytest.raises(ValueError):
            shm.put((), "k", {"v": 1})  # validated as by the Python path
        with pytest.raises(TypeError):
            shm.get(ns)  # type: ignore[call-arg]
    finally:
        peer.close()
        shm.close(destroy=True)


def test_a_subclass_keeps_its_own_get_and_put(name: str) -> None:
    calls: list[str] = []

    class Logged(ShmStore):
        def get(self, namespace: Any, key: Any, **kw: Any) -> Any:
            calls.append("get")
            return super().get(namespace, key, **kw)

        def put(self, namespace: Any, key: Any, value: Any, *args: Any, **kw: Any) -> None:
            calls.append("put")
            super().put(namespace, key, value, *args, **kw)

    store = Logged(name, agent="sub", **SMALL)
    try:
        assert not is_native(store.get) and not is_native(store.put)
        store.put(("s",), "k", {"v": 1})
        store.put(("s",), "k", {"v": 2})
        assert store.get(("s",), "k").value == {"v": 2}
        assert store.get(("s",), "k").value == {"v": 2}
        assert calls == ["put", "put", "get", "get"]
    finally:
        store.close(destroy=True)


def entries() -> int:
    """``StoreEntry`` objects alive (the garbage collector tracks them)."""
    return sum(type(o) is StoreEntry for o in gc.get_objects())


def test_a_dropped_store_is_collected(name: str) -> None:
    """The native methods hold the store weakly: no cycle keeps a dropped store alive."""
    gc.collect()
    before = entries()
    store = ShmStore(name, agent="gone", **SMALL)
    store.put(("s",), "k", {"v": 1})
    assert store.get(("s",), "k").value == {"v": 1}
    store.put(("s",), "k", {"v": 2})
    for i in range(5):
        store.put(("t", str(i)), "k", {"v": i})
        store.get(("t", str(i)), "k")
    assert entries() > before
    get = store.get
    ref = weakref.ref(store)
    gc.disable()
    try:
        del store
        assert ref() is None  # freed by its reference count alone: no cycle
    finally:
        gc.enable()
    gc.collect()
    with pytest.raises(RuntimeError, match="garbage-collected"):
        get(("s",), "other")  # a method kept past its store's life says so
    del get
    gc.collect()
    # Its entries (each in a cycle with its view) are collected too.
    assert entries() == before
    survivor = ShmStore(name, agent="gone")  # the process's attachment of the agent, shared
    try:
        assert survivor.get(("s",), "k").value == {"v": 2}
    finally:
        survivor.close(destroy=True)


class _Finalized:
    """Garbage in a cycle whose finalizer lets other threads run: a collection started by an
    allocation inside a native call switches threads there."""

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        time.sleep(0)


def test_threads_share_a_store_through_the_native_paths(name: str) -> None:
    store = ShmStore(name, agent="threads", **SMALL)
    assert is_native(store.get) and is_native(store.put)
    rounds, workers = 1500, 4
    errors: list[BaseException] = []
    switch = sys.getswitchinterval()
    thresholds = gc.get_threshold()

    def work(t: int) -> None:
        try:
            for i in range(rounds):
                _Finalized()
                store.put(("shared",), "k", {"t": t, "i": i})
                item = store.get(("shared",), "k")
                assert item is not None and set(item.value) == {"t", "i"}
                store.put(("own",), str(t), {"i": i})
                assert store.get(("own",), str(t)).value == {"i": i}
        except BaseException as error:  # a panic ("Already borrowed") is a BaseException
            errors.append(error)

    sys.setswitchinterval(1e-6)
    gc.set_threshold(5, 1, 1)
    try:
        store.put(("shared",), "k", {"t": -1, "i": -1})
        threads = [threading.Thread(target=work, args=(t,)) for t in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        sys.setswitchinterval(switch)
        gc.set_threshold(*thresholds)
    try:
        assert not errors, errors[:3]
        last = store.get(("shared",), "k").value
        assert last["i"] == rounds - 1  # some thread's last write is the item
        for t in range(workers):
            assert store.get(("own",), str(t)).value == {"i": rounds - 1}
        peer = ShmStore(name, agent="reader")
        assert peer.get(("shared",), "k").value == last  # what the segment holds
        peer.close()
    finally:
        store.close(destroy=True)
