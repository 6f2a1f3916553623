"""A LangGraph ``BaseStore`` whose items live in an agent-coherence segment, across processes.

``ShmStore`` is a drop-in for ``ccs.adapters.CCSStore`` (the PyPI package ``agent-coherence``)
and for LangGraph's ``InMemoryStore``, with one difference that is the point: two graphs in two
Python processes that open the same segment name share the items, with MESI invalidation. A
write invalidates every other agent's copy before it returns; the next read of that item by
another agent is a MISS that returns the new version; a write from a stale view is refused.

Namespace convention (the same as ``CCSStore``): ``namespace[0]`` is the agent doing the
operation, ``namespace[1:]`` is the shared scope. ``("planner", "task")`` and
``("executor", "task")`` address the same items, seen by two agents. Each agent name is
attached by one process at a time (``AgentBusy`` otherwise): a graph process uses its own
agent name(s).

>>> import os
>>> from agent_coherence_shm.langgraph import ShmStore
>>> store = ShmStore(f"team-42-{os.getpid()}")   # a name under /dev/shm, or a file path
>>> store.put(("planner", "task"), "spec", {"rename": "validateUser"})
>>> store.get(("executor", "task"), "spec").value
{'rename': 'validateUser'}
>>> store.close(destroy=True)

Stale writes. ``put`` is conditional on the writing agent's view: if that agent read an older
version of the item than the current one, the write is refused with
``agent_coherence_shm.Conflict`` (raised from ``batch``/``put``), nothing is written, and the
exception carries ``current``, ``yours``, ``namespace`` and ``item_key``. An agent that never
read the item may write it (a first write). In a graph, let the node fail and re-run it
(``RetryPolicy(retry_on=Conflict)``): its re-read is a MISS that returns the current version, and
its next write is built on it. ``CCSStore`` instead re-fetches and overwrites silently.

What is stored: each item is one artifact whose payload is a JSON document holding the value,
its scope and key, the agent that wrote it, and real ``created_at`` (kept from the first write
until a delete) and ``updated_at`` timestamps. Values must be JSON-serialisable mappings;
orjson is used when installed (``pip install agent-coherence-shm[fast]``), the standard
library's json otherwise.
"""

from __future__ import annotations

import hashlib
import time
import threading
import warnings
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Iterator, Mapping

from langgraph.store.base import (
    NOT_PROVIDED,
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)

from agent_coherence_shm._native import (
    MAX_KEY_BYTES,
    Agent,
    AgentBusy,
    Cached,
    CoherenceError,
    NotFound,
    Segment,
)

try:  # BaseStore's own checks, so that put/get/delete refuse exactly what it refuses.
    from langgraph.store.base import _validate_namespace, _validate_namespace_labels
except ImportError:  # pragma: no cover - a LangGraph that renamed them
    from langgraph.store.base import InvalidNamespaceError

    def _validate_namespace_labels(namespace: tuple[str, ...]) -> None:
        for label in namespace:
            if not isinstance(label, str) or not label or "." in label or "\x00" in label:
                raise InvalidNamespaceError(f"invalid namespace label {label!r} in {namespace}")

    def _validate_namespace(namespace: tuple[str, ...]) -> None:
        if not namespace or namespace[0] == "langgraph":
            raise InvalidNamespaceError(f"invalid namespace {namespace}")
        _validate_namespace_labels(namespace)


try:  # LangGraph >= 1.2 exports the label check that batch() callers skip.
    from langgraph.store.base import validate_op_namespace as _validate_op
except ImportError:  # pragma: no cover - older LangGraph

    def _validate_op(op: Op) -> None:
        return None


try:
    import orjson as _orjson

    def _dumps(doc: Any) -> bytes:
        return _orjson.dumps(doc)

    _loads = _orjson.loads
    JSON_CODEC = "orjson"
except ImportError:  # pragma: no cover - depends on the environment
    import json as _json

    def _dumps(doc: Any) -> bytes:
        return _json.dumps(doc, separators=(",", ":")).encode()

    _loads = _json.loads
    JSON_CODEC = "json"

__all__ = ["ShmStore", "DEFAULT_PREFIX", "OBSERVER", "JSON_CODEC", "artifact_key"]

#: Prefix of every artifact key the store writes (``ShmStore(prefix=...)`` changes it).
DEFAULT_PREFIX = "lg/"
#: The agent name that reads for searches and listings whose namespace names no agent.
OBSERVER = "shmstore-observer"

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_HASH_HEX = 64  # sha256
_OBSERVER_WAIT = 5.0  # seconds to wait for another process's observer to finish


def _escape(label: str) -> str:
    """A namespace label with the four characters the key syntax uses escaped."""
    if "%" in label or "/" in label or ":" in label or "#" in label:
        label = (
            label.replace("%", "%25").replace("/", "%2F").replace(":", "%3A").replace("#", "%23")
        )
    return label


def _unescape(label: str) -> str:
    if "%" not in label:
        return label
    return label.replace("%2F", "/").replace("%3A", ":").replace("%23", "#").replace("%25", "%")


def _scope_text(prefix: str, scope: tuple[str, ...]) -> str:
    return prefix + "".join(_escape(label) + "/" for label in scope)


def _kept(prefix: str, scope: tuple[str, ...], budget: int) -> str:
    """The longest run of whole leading labels of ``scope`` that fits in ``budget`` bytes."""
    kept = prefix
    for label in scope:
        longer = kept + _escape(label) + "/"
        if len(longer.encode()) > budget:
            break
        kept = longer
    return kept


def artifact_key(prefix: str, scope: tuple[str, ...], key: str) -> str:
    """The artifact key of item ``key`` in ``scope`` (the namespace without its agent).

    ``prefix + escaped(label) + "/" ... + ":" + key``, where each label has ``%``, ``/``, ``:``
    and ``#`` percent-escaped: injective, and the items of every scope that starts with a given
    scope share a key prefix. A key longer than ``MAX_KEY_BYTES`` (256) bytes becomes the
    longest whole-label prefix that fits, ``#``, and the SHA-256 of the full form; the full
    scope and key are kept in the document and checked on every read.
    """
    full = _scope_text(prefix, scope) + ":" + key
    if len(full.encode()) <= MAX_KEY_BYTES:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()
    return _kept(prefix, scope, MAX_KEY_BYTES - 1 - _HASH_HEX) + "#" + digest


def _decode(prefix: str, akey: str) -> tuple[tuple[str, ...], str] | None:
    """(scope, key) of a full-form artifact key; ``None`` for a hashed one."""
    rest = akey[len(prefix) :]
    colon = rest.find(":")
    hashed = rest.find("#")
    if colon < 0 or (0 <= hashed < colon):
        return None
    labels = rest[:colon].split("/")[:-1]  # each label ends with "/"
    return tuple(_unescape(label) for label in labels), rest[colon + 1 :]


def _datetime(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _item(
    value: dict[str, Any], key: str, namespace: tuple[str, ...], created: datetime, updated: datetime
) -> Item:
    """An Item from values already of its attributes' types: what ``Item.__init__`` stores
    after normalising (it converts a list namespace and string timestamps), set directly."""
    item = Item.__new__(Item)
    item.value = value
    item.key = key
    item.namespace = namespace
    item.created_at = created
    item.updated_at = updated
    return item


class _Entry:
    """One agent's cached view of one artifact: the native copy and the Item parsed from it."""

    __slots__ = (
        "cached", "version", "snap", "created", "created_at", "created_at_us", "updated", "scope", "key", "writer",
        "value", "tomb",
    )

    def __init__(self) -> None:
        self.cached: Cached | None = None
        self.version = 0
        # (version, item) of the version parsed last: one attribute, so that a reader without
        # the lock never pairs a version with another version's item.
        self.snap: tuple[int, Item] | None = None
        self.created = 0
        self.created_at: datetime | None = None  # made from created_at_us
        self.created_at_us = 0
        self.updated = 0
        self.scope: tuple[str, ...] = ()
        self.key = ""
        self.writer = ""
        self.value: dict[str, Any] | None = None
        # The deletion version this agent saw (a read found the item deleted), else 0.
        self.tomb = 0


class _AgentState:
    __slots__ = ("agent", "entries")

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.entries: dict[str, _Entry] = {}


def _match_path(labels: tuple[str, ...], path: tuple[str, ...]) -> bool:
    return all(p == "*" or p == label for label, p in zip(labels, path))


def _matches(namespace: tuple[str, ...], condition: MatchCondition) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        return _match_path(namespace[: len(path)], path)
    if condition.match_type == "suffix":
        return _match_path(namespace[len(namespace) - len(path) :], path)
    raise ValueError(f"unsupported match type {condition.match_type!r}")


_ORDER = {"$gt": (1,), "$gte": (0, 1), "$lt": (-1,), "$lte": (0, -1)}


def _compare(actual: Any, expected: Any) -> int | None:
    """-1, 0 or 1 for two numbers or two strings; ``None`` if they are not comparable."""
    numbers = (int, float)
    if isinstance(actual, bool) or isinstance(expected, bool):
        return None
    if isinstance(actual, numbers) and isinstance(expected, numbers):
        pass
    elif not (isinstance(actual, str) and isinstance(expected, str)):
        return None
    return (actual > expected) - (actual < expected)


def _condition(actual: Any, operator: str, expected: Any) -> bool:
    if operator == "$eq":
        return actual == expected
    if operator == "$ne":
        return actual != expected
    if operator in _ORDER:
        order = _compare(actual, expected)
        return order is not None and order in _ORDER[operator]
    raise ValueError(
        f"unsupported filter operator {operator!r}: use $eq, $ne, $gt, $gte, $lt or $lte"
    )


def _filter_matches(value: Any, wanted: Any) -> bool:
    """LangGraph's filter semantics: a dict of fields to values (nested dicts match nested
    fields, lists match element-wise) or to ``{"$op": operand}`` comparisons."""
    if isinstance(wanted, dict):
        if any(isinstance(k, str) and k.startswith("$") for k in wanted):
            return all(_condition(value, op, operand) for op, operand in wanted.items())
        if not isinstance(value, dict):
            return False
        return all(_filter_matches(value.get(field), sub) for field, sub in wanted.items())
    if isinstance(wanted, (list, tuple)):
        return (
            isinstance(value, (list, tuple))
            and len(value) == len(wanted)
            and all(_filter_matches(v, w) for v, w in zip(value, wanted))
        )
    return value == wanted


class ShmStore(BaseStore):
    """A LangGraph store in an agent-coherence segment, shared by every process that opens it.

    ``segment`` is a segment name (under /dev/shm) or path, opened or created with the sizes in
    ``segment_options`` (``max_agents``, ``max_artifacts``, ``arena_bytes``, ``max_payload``,
    ...; see ``Segment.create``), or an open ``Segment``. ``prefix`` is the artifact-key prefix
    of this store's items, so other data can share the segment. ``observer`` is the agent name
    used for searches and listings whose namespace names no agent. ``strategy`` is the freshness
    strategy the store's agents attach with (``Segment.attach``; default ``"lazy"``).

    Agents named by ``namespace[0]`` are attached on first use and stay attached until
    ``close()``. Returned items are shared with the store's cache (as ``InMemoryStore``'s
    are): treat their ``value`` as read-only.
    """

    supports_ttl = False

    def __init__(
        self,
        segment: str | Segment,
        *,
        create: bool = True,
        prefix: str = DEFAULT_PREFIX,
        observer: str = OBSERVER,
        strategy: Any = None,
        **segment_options: Any,
    ) -> None:
        if isinstance(segment, Segment):
            if segment_options:
                raise TypeError("segment options apply only when the segment is given by name")
            self.segment = segment
        elif create:
            self.segment = Segment.open_or_create(segment, **segment_options)
        else:
            self.segment = Segment.open(segment, **segment_options)
        if ":" in prefix or "#" in prefix:
            raise ValueError("the key prefix cannot contain ':' or '#'")
        self.prefix = prefix
        self.observer = observer
        self.strategy = strategy
        self._lock = threading.Lock()
        self._agents: dict[str, _AgentState] = {}
        # (namespace, key) -> entry, for the get() fast path.
        self._hot: dict[tuple[tuple[str, ...], str], _Entry] = {}
        self._keys: dict[tuple[tuple[str, ...], str], str] = {}
        self._closed = False

    # ---------------------------------------------------------------- lifecycle

    def close(self, *, destroy: bool = False) -> None:
        """Detach every agent this store attached; with ``destroy``, also remove the segment's
        name (processes that have it open keep using it)."""
        with self._lock:
            for entry in self._hot.values():
                entry.cached = None
            self._hot.clear()
            for state in self._agents.values():
                state.entries.clear()
                state.agent.close()
            self._agents.clear()
            self._closed = True
        if destroy:
            try:
                Segment.destroy(self.segment.location)
            except CoherenceError:
                pass

    def __enter__(self) -> "ShmStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def agent(self, name: str) -> Agent:
        """The native ``Agent`` this store acts as for ``namespace[0] == name`` (attached on
        first use)."""
        with self._lock:
            return self._state(name).agent

    def is_current(self, namespace: tuple[str, ...], key: str) -> bool:
        """Whether agent ``namespace[0]``'s copy of the item is current: its next ``get`` would
        be a HIT. ``False`` if it never read the item or a peer wrote it since."""
        with self._lock:
            akey = self._akey(tuple(namespace), key)
            return self._state(namespace[0]).agent.check(akey).is_current

    def wait_for(
        self,
        namespace: tuple[str, ...],
        key: str,
        *,
        since: int = 0,
        timeout: float | None = None,
    ) -> int | None:
        """Block until the item's version exceeds ``since`` (0: until it exists); the new
        version, or ``None`` on timeout. Sleeps in the kernel across processes with the GIL
        released; Ctrl-C interrupts it. Waits for an item never written yet by polling."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            akey = self._akey(tuple(namespace), key)
            agent = self._state(namespace[0]).agent
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return agent.wait_changed(akey, since, timeout=left)
            except NotFound:
                if left is not None and left <= 0:
                    return None
                time.sleep(0.005 if left is None else min(0.005, left))

    # ---------------------------------------------------------------- BaseStore

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Execute ``ops`` in order (gets, puts, deletes, searches, listings)."""
        with self._lock:
            self._open()
            results: list[Result] = []
            for op in ops:
                _validate_op(op)
                if isinstance(op, GetOp):
                    results.append(self._get(tuple(op.namespace), op.key))
                elif isinstance(op, PutOp):
                    if op.value is None:
                        self._delete(tuple(op.namespace), op.key)
                    else:
                        if op.ttl is not None:
                            warnings.warn(
                                "ShmStore does not expire items: ttl is ignored",
                                UserWarning,
                                stacklevel=3,
                            )
                        self._put(tuple(op.namespace), op.key, op.value)
                    results.append(None)
                elif isinstance(op, SearchOp):
                    results.append(self._search(op))
                elif isinstance(op, ListNamespacesOp):
                    results.append(self._list_namespaces(op))
                else:
                    raise ValueError(f"unknown operation type: {type(op).__name__}")
            return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """``batch``, run inline: every operation is a few microseconds of lock-free work (a put
        waits only for a writer stuck mid-write, at most the segment's write lease)."""
        return self.batch(ops)

    def get(
        self,
        namespace: tuple[str, ...],
        key: str,
        *,
        refresh_ttl: bool | None = None,
    ) -> Item | None:
        """The item at ``(namespace, key)`` as agent ``namespace[0]`` sees it, or ``None``.

        A HIT (this agent's copy is current) returns the cached item after two atomic loads;
        a MISS fetches the current version. Same contract as ``BaseStore.get``, without
        building an operation."""
        try:
            entry = self._hot.get((namespace, key))
        except TypeError:  # an unhashable namespace: let BaseStore validate it
            entry = None
        if entry is not None:
            cached, snap = entry.cached, entry.snap
            if cached is not None and snap is not None:
                try:
                    # Lock-free HIT: one native call; `snap` pairs the item with its version.
                    if cached.poll() == snap[0]:
                        return snap[1]
                    # A MISS fetched the current version into `cached`: parse it (the namespace
                    # was validated when the entry was made).
                    with self._lock:
                        if entry.cached is cached:
                            item = self._parse(entry, namespace[0])
                            if entry.scope == namespace[1:] and entry.key == key:
                                return item
                except NotFound:
                    pass  # handled below, under the lock
        _validate_namespace_labels(namespace)
        with self._lock:
            self._open()
            return self._get(tuple(namespace), str(key))

    def put(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: Mapping[str, Any],
        index: Any = None,
        *,
        ttl: Any = NOT_PROVIDED,
    ) -> None:
        """Write an item, as agent ``namespace[0]``, conditional on its view (``Conflict`` if
        it read an older version than the current one). Same contract as ``BaseStore.put``
        (``index`` is ignored: there is no vector index), without building an operation."""
        _validate_namespace(namespace)
        if ttl not in (NOT_PROVIDED, None):
            raise NotImplementedError("TTL is not supported by ShmStore; use ttl=None")
        with self._lock:
            self._open()
            self._put(tuple(namespace), str(key), value)

    def delete(self, namespace: tuple[str, ...], key: str) -> None:
        """Delete an item, as agent ``namespace[0]``, conditional on its view like ``put``."""
        _validate_namespace_labels(namespace)
        with self._lock:
            self._open()
            self._delete(tuple(namespace), str(key))

    # ---------------------------------------------------------------- operations

    def _open(self) -> None:
        if self._closed:
            raise RuntimeError("this ShmStore was closed")

    def _state(self, name: str) -> _AgentState:
        state = self._agents.get(name)
        if state is None:
            state = _AgentState(self.segment.attach(name, self.strategy))
            self._agents[name] = state
        return state

    def _akey(self, namespace: tuple[str, ...], key: str) -> str:
        akey = self._keys.get((namespace, key))
        if akey is None:
            if len(namespace) < 2:
                raise ValueError(
                    "ShmStore needs a namespace of at least 2 labels, (agent, scope...); "
                    f"got {namespace!r}"
                )
            akey = artifact_key(self.prefix, namespace[1:], key)
            self._keys[(namespace, key)] = akey
        return akey

    def _get(self, namespace: tuple[str, ...], key: str) -> Item | None:
        akey = self._akey(namespace, key)
        state = self._state(namespace[0])
        entry = self._entry(state, akey)
        if entry is None:
            return None
        try:
            item = self._current(entry, namespace[0])
        except NotFound:
            self._saw_deleted(state, entry)
            return None
        if (entry.scope, entry.key) != (namespace[1:], key):
            raise CoherenceError(
                f"artifact {akey!r} holds item {entry.key!r} of scope {entry.scope!r}, not "
                f"{key!r} of {namespace[1:]!r}: a key-hash collision or a foreign writer"
            )
        self._hot[(namespace, key)] = entry
        return item

    def _current(self, entry: _Entry, agent: str) -> Item:
        """Refresh the entry's copy; its item, parsed again only if the version moved."""
        cached = entry.cached
        assert cached is not None
        version = cached.poll() or cached.version
        snap = entry.snap
        if snap is not None and snap[0] == version:
            return snap[1]
        return self._parse(entry, agent)

    def _entry(self, state: _AgentState, akey: str) -> _Entry | None:
        """The agent's entry for ``akey``, with its native copy; ``None`` if the artifact was
        never written (no directory line is created for a miss)."""
        entry = state.entries.get(akey)
        if entry is not None and entry.cached is not None:
            return entry
        if state.agent.check(akey).current == 0:
            return None
        if entry is None:
            entry = _Entry()
            state.entries[akey] = entry
        entry.cached = state.agent.cached(akey)
        return entry

    def _parse(self, entry: _Entry, agent: str) -> Item:
        """Parse the version held by ``entry.cached`` into the entry, and its item as ``agent``
        sees it."""
        cached = entry.cached
        assert cached is not None
        # The version is read before the bytes: if a lock-free poll fetches a newer version in
        # between, the item is newer than its label (re-parsed at the next poll), never older.
        version = cached.version
        doc = _loads(cached.data)
        scope = tuple(doc["ns"])
        entry.version = version
        entry.tomb = 0
        entry.scope = scope
        entry.key = doc["k"]
        entry.writer = doc["w"]
        entry.created = doc["c"]
        if entry.created_at is None or entry.created_at_us != entry.created:
            entry.created_at = _datetime(entry.created)
            entry.created_at_us = entry.created
        entry.updated = doc["u"]
        entry.value = doc["v"]
        item = _item(entry.value, entry.key, (agent,) + scope, entry.created_at, _datetime(entry.updated))
        entry.snap = (version, item)
        return item

    def _put(self, namespace: tuple[str, ...], key: str, value: Mapping[str, Any]) -> None:
        akey = self._akey(namespace, key)
        state = self._state(namespace[0])
        agent = state.agent
        now = time.time_ns() // 1000
        created = now
        expected: int | None = None  # None: the core's own view-conditional put
        entry = state.entries.get(akey)
        if entry is not None and entry.tomb:
            # This agent saw the item deleted: re-create it on that deletion, unless a peer
            # wrote since (then Conflict).
            expected = entry.tomb
        elif entry is not None and entry.version and entry.created:
            # This agent's view is the version it last read or wrote through this store, whose
            # created_at is known: write on exactly that version. A peer's newer write makes
            # this a Conflict naming it, as the core's view-conditional put would.
            created, expected = entry.created, entry.version
        else:
            check = agent.check(akey)
            if check.current != 0:
                if check.is_current:
                    created = self._created_of(agent, akey, now)
                    expected = check.current
                elif check.held is None:
                    # Never read by this agent: the core admits the write (a first write). Read
                    # the current version first to carry its created_at over, then write on it.
                    try:
                        read = agent.get(akey)
                        created = _loads(read.bytes)["c"]
                        expected = read.version
                    except NotFound:
                        pass
                # else: a stale view; the core refuses the put below with Conflict.
        doc = {"ns": namespace[1:], "k": key, "w": namespace[0], "c": created, "u": now, "v": value}
        data = _dumps(doc)
        try:
            if expected is None:
                version = agent.put(akey, data)
            else:
                version = agent.put_if(akey, expected, data)
        except CoherenceError as error:
            error.namespace = namespace  # type: ignore[attr-defined]
            error.item_key = key  # type: ignore[attr-defined]
            raise
        if entry is None:
            entry = _Entry()
            state.entries[akey] = entry
        entry.version = version
        entry.created = created
        entry.tomb = 0
        entry.snap = None

    @staticmethod
    def _saw_deleted(state: _AgentState, entry: _Entry) -> None:
        """A read by this agent found the item deleted: remember the deletion's version, which
        the agent's next put writes on."""
        entry.snap = None
        entry.created = 0
        cached = entry.cached
        if cached is not None:
            entry.tomb = state.agent.check(cached.key).current

    def _created_of(self, agent: Agent, akey: str, default: int) -> int:
        try:
            return _loads(agent.get(akey).bytes)["c"]
        except NotFound:  # the current version is a deletion
            return default

    def _delete(self, namespace: tuple[str, ...], key: str) -> None:
        akey = self._akey(namespace, key)
        state = self._state(namespace[0])
        try:
            version = state.agent.delete(akey)
        except NotFound:
            return  # never written, or deleted already: nothing to do (as CCSStore)
        except CoherenceError as error:
            error.namespace = namespace  # type: ignore[attr-defined]
            error.item_key = key  # type: ignore[attr-defined]
            raise
        entry = state.entries.get(akey)
        if entry is None:
            entry = _Entry()
            state.entries[akey] = entry
        entry.snap = None
        entry.created = 0
        entry.version = entry.tomb = version

    @contextmanager
    def _observer(self) -> Iterator[Agent]:
        """The observer agent, attached for one operation (another process may be using it:
        wait for it, up to 5 s)."""
        deadline = time.monotonic() + _OBSERVER_WAIT
        pause = 0.0005
        while True:
            try:
                agent = self.segment.attach(self.observer)
                break
            except AgentBusy:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.02)
        try:
            yield agent
        finally:
            agent.close()

    def _candidates(self, scope: tuple[str, ...]) -> list[str]:
        """Artifact keys that may hold items of scopes starting with ``scope``."""
        text = _scope_text(self.prefix, scope)
        keys = self.segment.list(text)
        budget = MAX_KEY_BYTES - 1 - _HASH_HEX
        if len(text.encode()) > budget:
            # Hashed keys of these scopes keep only the labels that fit.
            hashed = self.segment.list(_kept(self.prefix, scope, budget) + "#")
            keys = sorted(set(keys) | set(hashed))
        return keys

    def _search(self, op: SearchOp) -> list[SearchItem]:
        if op.query is not None:
            warnings.warn(
                "ShmStore has no vector index: query= is ignored (items are filtered and "
                "paginated as if it were absent, with score None)",
                UserWarning,
                stacklevel=4,
            )
        prefix = tuple(op.namespace_prefix)
        scope_prefix = prefix[1:]
        found: list[SearchItem] = []
        if prefix:
            state = self._state(prefix[0])
            for akey in self._candidates(scope_prefix):
                entry = self._entry(state, akey)
                if entry is None:
                    continue
                try:
                    self._current(entry, prefix[0])
                except NotFound:
                    self._saw_deleted(state, entry)
                    continue
                self._collect(found, (prefix[0],) + entry.scope, entry, scope_prefix, op)
        else:
            with self._observer() as observer:
                for akey in self._candidates(()):
                    try:
                        doc = _loads(observer.get(akey).bytes)
                    except NotFound:
                        continue
                    entry = _Entry()
                    entry.scope, entry.key, entry.writer = tuple(doc["ns"]), doc["k"], doc["w"]
                    entry.created, entry.updated, entry.value = doc["c"], doc["u"], doc["v"]
                    self._collect(found, (entry.writer,) + entry.scope, entry, (), op)
        start = max(op.offset, 0)
        return found[start : start + op.limit]

    @staticmethod
    def _collect(
        found: list[SearchItem],
        namespace: tuple[str, ...],
        entry: _Entry,
        scope_prefix: tuple[str, ...],
        op: SearchOp,
    ) -> None:
        if entry.scope[: len(scope_prefix)] != scope_prefix:
            return  # a hashed key of another scope
        if op.filter and not _filter_matches(entry.value, op.filter):
            return
        found.append(
            SearchItem(
                namespace=namespace,
                key=entry.key,
                value=entry.value,  # type: ignore[arg-type]
                created_at=_datetime(entry.created),
                updated_at=_datetime(entry.updated),
                score=None,
            )
        )

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        conditions = tuple(op.match_conditions or ())
        agent = next(
            (
                c.path[0]
                for c in conditions
                if c.match_type == "prefix" and len(c.path) > 0 and c.path[0] != "*"
            ),
            None,
        )
        keys = self.segment.list(self.prefix)
        namespaces: set[tuple[str, ...]] = set()
        if agent is not None:
            # From that agent's view: every shared scope is addressable as (agent, scope...).
            undecoded = []
            for akey in keys:
                decoded = _decode(self.prefix, akey)
                if decoded is None:
                    undecoded.append(akey)
                else:
                    namespaces.add((agent,) + decoded[0])
            if undecoded:
                state = self._state(agent)
                for akey in undecoded:
                    try:
                        doc = _loads(state.agent.get(akey).bytes)
                    except NotFound:
                        continue
                    namespaces.add((agent,) + tuple(doc["ns"]))
        else:
            # No agent named: each scope under the agent that wrote its current version.
            writers = {
                a["key"]: a["writer"]
                for a in self.segment.status()["artifacts"]
                if a["key"].startswith(self.prefix)
            }
            undecoded = []
            for akey in keys:
                decoded = _decode(self.prefix, akey)
                writer = writers.get(akey)
                if decoded is None:
                    undecoded.append(akey)
                elif writer is not None:
                    namespaces.add((writer,) + decoded[0])
            if undecoded:
                with self._observer() as observer:
                    for akey in undecoded:
                        try:
                            doc = _loads(observer.get(akey).bytes)
                        except NotFound:
                            continue
                        namespaces.add((doc["w"],) + tuple(doc["ns"]))
        selected = [ns for ns in namespaces if all(_matches(ns, c) for c in conditions)]
        if op.max_depth is not None:
            selected = list({ns[: op.max_depth] for ns in selected})
        selected.sort()
        start = max(op.offset, 0)
        return selected[start : start + op.limit]
