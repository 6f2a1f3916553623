"""``ShmStore``: a LangGraph ``BaseStore`` in an agent-coherence segment, shared across processes.

Every operation acts as one *agent* of the segment: the store's own (``ShmStore(segment,
agent="executor")``), or the one the run names in its config when ``agent_from_config`` is set,
or ``namespace[0]`` in the compatibility mode ``agent_from_namespace=True``. A write invalidates
every other agent's copy before it returns; another agent's next read of the item is a MISS that
fetches the new version; a write by an agent whose copy is stale is refused with ``Conflict``.

Namespaces are free, as in every LangGraph store: ``("user-1", "memories")`` is a namespace like
any other, one label is enough, and the number of namespaces is bounded only by the segment's
``max_artifacts`` (one artifact per item).
"""

from __future__ import annotations

import threading
import time
import warnings
from typing import Any, Iterable, Mapping

from langgraph.store.base import (
    NOT_PROVIDED,
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchOp,
    _validate_namespace,
)

from agent_coherence_shm._native import (
    Agent,
    CoherenceError,
    Conflict,
    HotIndex,
    NotFound,
    Segment,
    StoreEntry,
)
from agent_coherence_shm.langgraph import _agents
from agent_coherence_shm.langgraph._codec import (
    BODY,
    CREATED,
    FORMAT,
    ITEM_ORDER,
    KEY,
    NAMESPACE,
    NS_ORDER,
    UPDATED,
    KIND,
    VALUE,
    Codec,
    Doc,
)
from agent_coherence_shm.langgraph._conflicts import restated
from agent_coherence_shm.langgraph._index import Index, aembed_ops, embed_ops, pack
from agent_coherence_shm.langgraph._items import StoredItem, plain_item, stored_item
from agent_coherence_shm.langgraph._keys import artifact_key, decode, scope_text
from agent_coherence_shm.langgraph._queries import Queries

#: Prefix of every artifact key the store writes (``ShmStore(prefix=...)`` changes it).
DEFAULT_PREFIX = "lg/"
#: The agent a store acts as when none is named.
DEFAULT_AGENT = "langgraph"
#: In ``agent_from_namespace`` mode, the agent that reads for searches and listings whose
#: namespace names no agent.
OBSERVER = "shmstore-observer"

#: Insertion stamps: nanoseconds since the epoch (a put takes far longer than the clock's
#: resolution, so one thread's stamps increase; ties sort by key).
_stamp = time.time_ns
#: Items pickled before ``_items`` existed name this.
_plain_item = plain_item


#: One agent's cached view of one item (``view``, ``cached``, ``snap``, ``tomb``): native, with
#: the hot paths of ``get`` and of a rewrite (``crates/ccs-python/src/store_entry.rs``). ``snap``
#: is ``None`` or ``(version, doc, item)`` of the version decoded (or written) last: one
#: attribute, so that a reader never pairs a version with another version's item; the item is
#: made on the first read after a write (``None`` until then).
_Entry = StoreEntry


class _View:
    """An agent as this store uses it: the shared attachment and this store's cache."""

    __slots__ = ("name", "agent", "entries")

    def __init__(self, name: str, agent: Agent) -> None:
        self.name = name
        self.agent = agent
        self.entries: dict[str, _Entry] = {}


class ShmStore(Queries, BaseStore):
    """A LangGraph store in an agent-coherence segment, shared by every process that opens it.

    ``segment``: a segment name (under /dev/shm) or path, opened or created with the sizes in
    ``segment_options`` (``max_agents``, ``max_artifacts``, ``arena_bytes``, ``max_payload``,
    ...; see ``Segment.create``), or an open ``Segment``.

    ``agent``: the agent this store acts as (default ``"langgraph"``). One process at a time
    may attach an agent name (``AgentBusy`` otherwise): give each graph process its own. Stores
    of one process that name the same agent share its attachment.

    ``agent_from_config``: a key of the run's ``config["configurable"]``; inside a LangGraph run
    whose config has it, operations act as the agent it names (the store's ``agent`` outside
    runs and when the key is absent).

    ``agent_from_namespace``: the convention of ``ccs.adapters.CCSStore`` (the PyPI package
    ``agent-coherence``), for code written against it: ``namespace[0]`` is the agent and the
    rest the shared scope, so ``("planner", "task")`` and ``("executor", "task")`` are one item
    seen by two agents. Namespaces then need two labels.

    ``index``: vector search, as ``InMemoryStore`` takes it (``{"dims", "embed", "fields"}``);
    embeddings are stored in the segment. ``serde``: the value serializer (default LangGraph's
    ``JsonPlusSerializer``). ``prefix``: the artifact-key prefix of this store's items.
    ``strategy``: the freshness strategy agents attach with (``Segment.attach``).

    Returned items are shared with the store's cache (as ``InMemoryStore``'s are): treat their
    ``value`` as read-only.
    """

    supports_ttl = False

    def __init__(
        self,
        segment: str | Segment,
        *,
        agent: str | None = None,
        agent_from_config: str | None = None,
        agent_from_namespace: bool = False,
        index: IndexConfig | None = None,
        serde: Any = None,
        create: bool = True,
        prefix: str = DEFAULT_PREFIX,
        observer: str = OBSERVER,
        strategy: Any = None,
        **segment_options: Any,
    ) -> None:
        if ":" in prefix or "#" in prefix:
            raise ValueError("the key prefix cannot contain ':' or '#'")
        if isinstance(segment, Segment):
            if segment_options:
                raise TypeError("segment options apply only when the segment is given by name")
            self.segment = segment
        elif create:
            self.segment = Segment.open_or_create(segment, **segment_options)
        else:
            self.segment = Segment.open(segment, **segment_options)
        self.agent_name = agent if agent is not None else DEFAULT_AGENT
        self.agent_from_config = agent_from_config
        self.agent_from_namespace = agent_from_namespace
        self.prefix = prefix
        self.observer = observer
        self.strategy = strategy
        self._codec = Codec(serde)
        self._decoders = self._codec.decoders
        self._index = Index(index) if index else None
        self.index_config = self._index.config if self._index else None
        self.embeddings = self._index.embeddings if self._index else None
        self._lock = threading.RLock()
        self._views: dict[str, _View] = {}
        self._valid: set[tuple[str, ...]] = set()  # namespaces _validate_namespace admitted
        # (namespace, key) -> entry bound to the item, for the lock-free get() and put()
        # (crates/ccs-python/src/hot.rs); it holds the store weakly.
        self._hot = HotIndex(self, ShmStore.put, self._valid)
        self._own: _View | None = None  # the view of the store's agent, once attached
        self._keys: dict[tuple[tuple[str, ...], str], str] = {}
        self._ns_order: dict[tuple[str, ...], int] = {}
        # The get() fast path caches by (namespace, key): only when the agent is fixed by them.
        self._hot_ok = agent_from_config is None
        self._closed = False
        # get() and put() as one native call each, on the instance (the Python methods below
        # do the same, slower): not where a subclass overrides them, nor where the agent comes
        # from the run's config (the index then stays empty), nor, for put(), where a vector
        # index embeds the value or the namespace names the agent.
        cls = type(self)
        if self._hot_ok:
            if cls.get is ShmStore.get:
                self.get = self._hot.get  # type: ignore[method-assign]
            if cls.put is ShmStore.put and self._index is None and not agent_from_namespace:
                self.put = self._hot.put  # type: ignore[method-assign]

    # ---------------------------------------------------------------- lifecycle

    def setup(self) -> None:
        """Attach the store's agent now (it is attached on first use otherwise), so that an
        ``AgentBusy`` shows at start-up. The segment exists from the constructor on; the name
        is that of the SQL stores' ``setup()``, so code written for them runs unchanged."""
        with self._lock:
            self._open()
            if not self.agent_from_namespace:
                self._view(self.agent_name)

    def close(self, *, destroy: bool = False) -> None:
        """Release this store's agents (detached when no other store of the process uses
        them); with ``destroy``, also remove the segment's name (processes that have it open
        keep using it). Idempotent."""
        with self._lock:
            self._hot.clear()
            self._own = None
            for view in self._views.values():
                for entry in view.entries.values():
                    entry.snap = None  # a get() holding an entry takes the checked path
                view.entries.clear()
                _agents.release(self.segment, view.name)
            self._views.clear()
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

    async def __aenter__(self) -> "ShmStore":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def agent(self, name: str | None = None) -> Agent:
        """The native ``Agent`` this store acts as (``name``: another agent, attached on
        first use)."""
        with self._lock:
            return self._view(name if name is not None else self.agent_name).agent

    def is_current(self, namespace: tuple[str, ...], key: str) -> bool:
        """Whether the acting agent's copy of the item is current: its next ``get`` would be
        a HIT. ``False`` if it never read the item or a peer wrote it since."""
        with self._lock:
            view, scope = self._address(tuple(namespace))
            return view.agent.check(self._akey(scope, key)).is_current

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
            view, scope = self._address(tuple(namespace))
            akey = self._akey(scope, key)
            agent = view.agent
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
        """Execute ``ops`` as ``InMemoryStore`` does: reads (gets, searches, listings) in
        order against the state before the batch, then its writes (the last write of an item
        wins)."""
        ops = list(ops)
        queries, vectors = embed_ops(self._index, ops)
        return self._run(ops, queries, vectors)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """``batch`` with the embeddings' async API; the store's own work is a few
        microseconds of lock-free reads per item, run inline."""
        ops = list(ops)
        queries, vectors = await aembed_ops(self._index, ops)
        return self._run(ops, queries, vectors)

    def get(
        self,
        namespace: tuple[str, ...],
        key: str,
        *,
        refresh_ttl: bool | None = None,
    ) -> Item | None:
        """The item at ``(namespace, key)``, or ``None``. A HIT (the agent's copy is current)
        returns the decoded item after two atomic loads; a MISS fetches the current version
        and returns its item, whose ``value`` is decoded on first access (``CoherenceError``
        then if it does not decode). Same contract as ``BaseStore.get``."""
        # One native call (the method a store binds on itself, see __init__): a HIT returns
        # the item held; a MISS of an item bound in the index fetches the current version and
        # returns its new item; anything else takes _get_locked.
        return self._hot.get(namespace, key)

    def _get_locked(self, namespace: tuple[str, ...], key: str) -> Item | None:
        """``get`` under the store's lock: what the index cannot answer."""
        with self._lock:
            self._open()
            namespace = tuple(namespace)
            view, scope = self._address(namespace)
            return self._get(view, scope, str(key))

    def put(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: Mapping[str, Any],
        index: Any = None,
        *,
        ttl: Any = NOT_PROVIDED,
    ) -> None:
        """Write an item, conditional on the acting agent's view (``Conflict`` if it read an
        older version than the current one). Same contract as ``BaseStore.put``."""
        if type(namespace) is not tuple:
            namespace = tuple(namespace)
        if namespace not in self._valid:
            _validate_namespace(namespace)
            if len(self._valid) < 10_000:
                self._valid.add(namespace)
        if ttl is not NOT_PROVIDED and ttl is not None:
            raise NotImplementedError("TTL is not supported by ShmStore; use ttl=None")
        vectors = None
        if self._index is not None:
            texts = self._index.texts(value, index)  # type: ignore[arg-type]
            if texts:
                embedded = self._index.embeddings.embed_documents(texts)
                self._index.check(embedded)
                vectors = pack(embedded)
        if type(key) is not str:
            key = str(key)
        if self._own is not None and not self._closed:
            # The common rewrite, without the lock: the store's agent holds the item through
            # this store (a bound entry), and a plain value is encoded and written on exactly
            # the version held in one native call, which also takes the new version into the
            # entry (atomically under the GIL). Anything else, a Conflict included, is decided
            # under the lock below, as every other write.
            entry = self._hot.lookup(namespace, key)
            if entry is not None:
                try:
                    if entry.rewrite(value, vectors):
                        return
                except Conflict:
                    pass
        self._put_locked(namespace, key, value, vectors)

    def _put_locked(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: Mapping[str, Any],
        vectors: bytes | None,
    ) -> None:
        """``put``'s write under the store's lock (``namespace`` a validated tuple, ``key`` a
        ``str``, ``vectors`` embedded): what the lock-free rewrite did not write."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this ShmStore was closed")
            own = self._own
            if own is not None:
                # The store's agent holds this item through this store: a value that is not
                # plain (or a conflict) takes the codec's path.
                entry = self._hot.lookup(namespace, key)
                if entry is not None and entry.snap is not None and not entry.tomb:
                    self._rewrite(own, entry, namespace, key, value, vectors)
                    return
            view, scope = self._address(namespace)
            self._put(view, scope, namespace, key, value, vectors)

    def delete(self, namespace: tuple[str, ...], key: str) -> None:
        """Delete an item, conditional on the acting agent's view like ``put``."""
        with self._lock:
            self._open()
            namespace = tuple(namespace)
            view, scope = self._address(namespace)
            self._delete(view, scope, namespace, str(key))

    # ---------------------------------------------------------------- batches

    def _run(
        self,
        ops: list[Op],
        queries: dict[str, list[float]],
        vectors: dict[int, bytes | None],
    ) -> list[Result]:
        with self._lock:
            self._open()
            results: list[Result] = []
            writes: dict[tuple[tuple[str, ...], str], int] = {}
            for i, op in enumerate(ops):
                if isinstance(op, GetOp):
                    namespace = tuple(op.namespace)
                    view, scope = self._address(namespace)
                    results.append(self._get(view, scope, str(op.key)))
                elif isinstance(op, SearchOp):
                    results.append(self._search(op, queries.get(op.query) if op.query else None))
                elif isinstance(op, ListNamespacesOp):
                    results.append(self._list_namespaces(op))
                elif isinstance(op, PutOp):
                    if op.ttl is not None:
                        warnings.warn(
                            "ShmStore does not expire items: ttl is ignored",
                            UserWarning,
                            stacklevel=3,
                        )
                    writes.pop((tuple(op.namespace), str(op.key)), None)
                    writes[(tuple(op.namespace), str(op.key))] = i
                    results.append(None)
                else:
                    raise ValueError(f"Unknown operation type: {type(op)}")
            for i in writes.values():
                op = ops[i]
                namespace = tuple(op.namespace)
                view, scope = self._address(namespace)
                if op.value is None:
                    self._delete(view, scope, namespace, str(op.key))
                else:
                    self._put(view, scope, namespace, str(op.key), op.value, vectors.get(i))
            return results

    # ---------------------------------------------------------------- addressing

    def _open(self) -> None:
        if self._closed:
            raise RuntimeError("this ShmStore was closed")

    def _view(self, name: str) -> _View:
        view = self._views.get(name)
        if view is None:
            view = _View(name, _agents.acquire(self.segment, name, self.strategy))
            self._views[name] = view
        return view

    def _address(self, namespace: tuple[str, ...]) -> tuple[_View, tuple[str, ...]]:
        """The view that acts on ``namespace`` and the namespace as stored."""
        own = self._own
        if own is not None:
            return own, namespace
        if self.agent_from_namespace:
            if len(namespace) < 2:
                raise ValueError(
                    "with agent_from_namespace=True a namespace is (agent, scope...), at least "
                    f"2 labels; got {namespace!r}"
                )
            return self._view(namespace[0]), namespace[1:]
        view = self._view(self._acting())
        if self.agent_from_config is None:
            self._own = view  # the agent is fixed: skip the lookup from now on
        return view, namespace

    def _acting(self) -> str:
        """The agent of the current run: ``configurable[agent_from_config]`` inside a run
        that sets it, the store's agent otherwise."""
        if self.agent_from_config is not None:
            try:
                from langgraph.config import get_config

                name = get_config().get("configurable", {}).get(self.agent_from_config)
            except (RuntimeError, ImportError):  # outside a run
                name = None
            if name:
                return str(name)
        return self.agent_name

    def _shown(self, view: _View, scope: tuple[str, ...]) -> tuple[str, ...]:
        """The namespace an item of ``scope`` has, as ``view``'s agent sees it."""
        return (view.name,) + scope if self.agent_from_namespace else scope

    def _akey(self, scope: tuple[str, ...], key: str) -> str:
        akey = self._keys.get((scope, key))
        if akey is None:
            akey = artifact_key(self.prefix, scope, key)
            if len(self._keys) > 100_000:
                self._keys.clear()
            self._keys[(scope, key)] = akey
        return akey

    # ---------------------------------------------------------------- reads

    def _read(self, view: _View, akey: str) -> tuple[int, Doc, Item] | None:
        """The current version of ``akey`` as ``view`` sees it, decoded; ``None`` if it was
        never written or is deleted."""
        entry = view.entries.get(akey)
        if entry is None or entry.cached is None:
            if view.agent.check(akey).current == 0:
                return None  # never written: no directory line is made for a miss
            if entry is None:
                entry = _Entry(view)
                view.entries[akey] = entry
            entry.cached = view.agent.cached(akey)
        cached = entry.cached
        try:
            got = cached.update()
        except NotFound:
            entry.snap = None
            entry.tomb = view.agent.check(akey).current
            return None
        return self._snap(view, entry, got)

    def _snap(
        self, view: _View, entry: _Entry, got: int | tuple[int, bytes]
    ) -> tuple[int, Doc, Item]:
        """The entry's (version, doc, item) for the version its copy holds (``got``, from
        ``Cached.update()``: the version, or ``(version, bytes)`` of one just fetched): decoded
        only if it is not the one decoded or written last."""
        if type(got) is int:
            version, data = got, None
        else:
            version, data = got  # type: ignore[misc]
        snap = entry.snap
        if snap is not None and snap[0] == version:
            if snap[2] is not None:
                return snap  # type: ignore[return-value]
            doc = snap[1]
            done = (version, doc, stored_item(doc, self._shown(view, doc[NAMESPACE]), self._codec))
            entry.snap = done
            return done
        cached = entry.cached
        assert cached is not None
        try:
            doc = self._codec.decode(cached.data if data is None else data)
        except ValueError as error:
            raise CoherenceError(
                f"artifact {cached.key!r} does not hold a store item: {error}"
            ) from None
        # stored_item(), inline: this is most of a MISS on the store's Python path.
        namespace = doc[NAMESPACE]
        item = StoredItem.__new__(StoredItem)
        item._raw = doc[BODY]
        item._decode = self._decoders[doc[KIND]]
        item.key = doc[KEY]
        item.namespace = (view.name,) + namespace if self.agent_from_namespace else namespace
        item._created_us = created = doc[CREATED]
        item._updated_us = doc[UPDATED]
        # The same life as the version decoded before: its created_at, if made.
        old = snap[2] if snap is not None else None
        item._created = old._created if old is not None and old._created_us == created else None
        item._updated = None
        done = entry.snap = (version, doc, item)
        entry.tomb = 0
        if namespace not in self._ns_order:
            self._ns_order[namespace] = doc[NS_ORDER]
        return done

    def _get(self, view: _View, scope: tuple[str, ...], key: str) -> Item | None:
        akey = self._akey(scope, key)
        snap = self._read(view, akey)
        if snap is None:
            return None
        doc = snap[1]
        if (doc[NAMESPACE], doc[KEY]) != (scope, key):
            raise CoherenceError(
                f"artifact {akey!r} holds item {doc[KEY]!r} of namespace {doc[NAMESPACE]!r}, not "
                f"{key!r} of {scope!r}: a key-hash collision or a foreign writer"
            )
        if self._hot_ok:
            self._make_hot(view, view.entries[akey], scope, key)
        return snap[2]

    def _make_hot(self, view: _View, entry: _Entry, scope: tuple[str, ...], key: str) -> None:
        """Serve ``get(namespace, key)`` from ``entry`` without the lock (and, for the store's
        own agent, ``put`` without the lookups): bound to its item, in ``_hot``."""
        shown = self._shown(view, scope)
        entry.bind(view.agent, view.name, scope, key, shown, self._decoders, StoredItem)
        self._hot.insert(shown, key, entry)

    # ---------------------------------------------------------------- writes

    def _put(
        self,
        view: _View,
        scope: tuple[str, ...],
        namespace: tuple[str, ...],
        key: str,
        value: Mapping[str, Any],
        vectors: bytes | None,
    ) -> None:
        akey = self._akey(scope, key)
        agent = view.agent
        now_ns = _stamp()
        now = now_ns // 1000
        created, item_order = now, now_ns
        expected: int | None = None  # None: the core's own view-conditional put
        entry = view.entries.get(akey)
        if entry is not None and entry.tomb:
            # This agent saw the item deleted: re-create it on that deletion, unless a peer
            # wrote since (then Conflict).
            expected = entry.tomb
        elif entry is not None and entry.snap is not None:
            # The version this agent last read or wrote through this store: write on exactly
            # that version, keeping its creation; a peer's newer write makes this a Conflict.
            expected, doc = entry.snap[0], entry.snap[1]
            created, item_order = doc[CREATED], doc[ITEM_ORDER]
        else:
            check = agent.check(akey)
            if check.current == 0:
                expected = 0
            elif check.held is None or check.is_current:
                # Never read by this agent (the core admits such a first write), or read
                # through another store of the process: carry the current version's creation
                # over and write on it.
                try:
                    doc = self._codec.decode(agent.get(akey).bytes)
                    created, item_order = doc[CREATED], doc[ITEM_ORDER]
                except NotFound:
                    pass  # the current version is a deletion
                expected = agent.check(akey).current
            # else: a stale view; the core refuses the put below with Conflict.
        ns_order = self._namespace_order(view, scope, now_ns)
        doc = [FORMAT, scope, key, view.name, created, now, ns_order, item_order, value, vectors, VALUE]
        data = self._codec.encode(doc)
        try:
            if expected is None:
                version = agent.put(akey, data)
            else:
                version = agent.put_if(akey, expected, data)
        except Conflict as error:
            if entry is not None and entry.snap is not None and agent.check(akey).is_current:
                # As in _rewrite: the agent's view, through another store, is current.
                entry.snap = None
                self._put(view, scope, namespace, key, value, vectors)
                return
            raise restated(error, namespace, key, view.name) from None
        except CoherenceError as error:
            error.namespace = namespace  # type: ignore[attr-defined]
            error.item_key = key  # type: ignore[attr-defined]
            raise
        if entry is None:
            entry = _Entry(view)
            view.entries[akey] = entry
        entry.tomb = 0
        if entry.cached is None:
            entry.cached = agent.cached(akey)
        # The version just written is what this agent holds: its next read fetches the bytes
        # into the copy (a MISS of the copy, not of the agent) and needs no decoding.
        entry.snap = (version, doc, None)
        if view is self._own and self._hot_ok:
            self._make_hot(view, entry, scope, key)

    def _rewrite(
        self,
        view: _View,
        entry: _Entry,
        namespace: tuple[str, ...],
        key: str,
        value: Mapping[str, Any],
        vectors: bytes | None,
    ) -> None:
        """``_put``'s first case alone (the agent wrote or read the item through this store,
        which bound ``entry`` to it), encoded by the codec (``put`` writes plain values with
        ``entry.rewrite``): write on exactly the version it holds, keeping the item's creation
        and places."""
        try:
            version, held, _ = entry.snap
            doc = [
                FORMAT,
                namespace,
                key,
                view.name,
                held[CREATED],
                _stamp() // 1000,
                held[NS_ORDER],
                held[ITEM_ORDER],
                value,
                vectors,
                VALUE,
            ]
            data = self._codec.encode(doc)
            version = view.agent.put_if(self._akey(namespace, key), version, data)
        except Conflict as error:
            if view.agent.check(self._akey(namespace, key)).is_current:
                # Another store of this process, acting as the same agent, read or wrote a
                # newer version: the agent's view is current, so the write is not stale.
                entry.snap = None
                self._put(view, namespace, namespace, key, value, vectors)
                return
            raise restated(error, namespace, key, view.name) from None
        entry.snap = (version, doc, None)

    def _namespace_order(self, view: _View, scope: tuple[str, ...], now: int) -> int:
        """The insertion stamp of namespace ``scope``: that of its items if it has any (known
        to this process or read from one of them), ``now`` for a new namespace."""
        known = self._ns_order.get(scope)
        if known is not None:
            return known
        text = scope_text(self.prefix, scope)
        for akey in self.segment.list(text):
            decoded = decode(self.prefix, akey)
            if decoded is not None and decoded[0] != scope:
                continue
            snap = self._read(view, akey)
            if snap is not None and snap[1][NAMESPACE] == scope:
                return self._ns_order.setdefault(scope, snap[1][NS_ORDER])
        self._ns_order[scope] = now
        return now

    def _delete(
        self, view: _View, scope: tuple[str, ...], namespace: tuple[str, ...], key: str
    ) -> None:
        akey = self._akey(scope, key)
        try:
            version = view.agent.delete(akey)
        except NotFound:
            return  # never written, or deleted already: nothing to do (as InMemoryStore)
        except Conflict as error:
            raise restated(error, namespace, key, view.name) from None
        entry = view.entries.get(akey)
        if entry is None:
            entry = _Entry(view)
            view.entries[akey] = entry
        entry.snap = None
        entry.tomb = version
