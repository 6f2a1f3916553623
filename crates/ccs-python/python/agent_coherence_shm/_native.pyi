"""Type stubs of the native module (Rust, PyO3): see crates/ccs-python/src."""

from types import TracebackType
from typing import Any, Iterator, Literal, TypedDict

__version__: str
MAX_KEY_BYTES: int
"""Longest key, in UTF-8 bytes (256)."""
MAX_NAME_BYTES: int
"""Longest agent name, in UTF-8 bytes (64)."""
MAX_AGENTS_LIMIT: int
"""Most agents a segment can be created for."""

Payload = bytes | bytearray | memoryview | str

Strategy = str | tuple[Literal["lease"], float] | tuple[Literal["access_count"], int]
"""``"lazy"``, ``"eager"``, ``("lease", seconds)``, ``("access_count", n)``, or ``"lease:2s"``."""

def max_cosine(query: bytes, vectors: list[bytes | None]) -> list[float | None]:
    """For each entry (an item's vectors, little-endian f32, concatenated; ``None``: none), the
    best cosine similarity of one of its vectors to ``query``; ``None`` for an item without
    vectors. ``ValueError`` if the lengths do not fit the query's."""

class ConfigDict(TypedDict):
    max_agents: int
    max_artifacts: int
    arena_bytes: int
    max_payload: int
    write_lease_ms: int
    log_records: int
    inbox_events: int

class AgentStatusDict(TypedDict):
    name: str
    pid: int | None
    alive: bool
    generation: int
    strategy: str
    subscriptions: list[str]

class ChangeEventDict(TypedDict):
    key: str
    version: int
    writer: str
    deleted: bool

class EventsDict(TypedDict):
    events: list[ChangeEventDict]
    lost: int

class UsageDict(TypedDict):
    reads: int
    hits: int
    misses: int
    bytes_from_copy: int
    bytes_fetched: int
    writes: int
    conflicts: int
    hit_rate: float | None
    tokens_saved_estimate: int

class UsageRowDict(UsageDict):
    name: str

class StatsWindowDict(TypedDict):
    records: int
    lost: int
    first_t_ns: int | None
    last_t_ns: int | None
    span_ns: int

class StatsDict(TypedDict):
    window: StatsWindowDict
    total: UsageDict
    agents: list[UsageRowDict]
    artifacts: list[UsageRowDict]

class SwitchesDict(TypedDict):
    logging: bool
    invalidation: bool

class AgentStateDict(TypedDict):
    agent: str
    state: Literal["M", "E", "S", "I"]
    held: int | None

class ArtifactStatusDict(TypedDict):
    key: str
    version: int
    size: int
    writer: str | None
    deleted: bool
    holder: str | None
    states: list[AgentStateDict]

class StatusDict(TypedDict):
    config: ConfigDict
    agents: list[AgentStatusDict]
    artifacts: list[ArtifactStatusDict]

class FsckProblemDict(TypedDict):
    kind: str
    subject: str
    message: str
    repairable: bool

class ArenaUsageDict(TypedDict):
    live_bytes: int
    free_bytes: int
    leaked_bytes: int
    untouched_bytes: int

class DescriptorUsageDict(TypedDict):
    live: int
    free: int
    leaked: int
    untouched: int

class FsckReportDict(TypedDict):
    clean: bool
    problems: list[FsckProblemDict]
    found: int
    arena: ArenaUsageDict
    descriptors: DescriptorUsageDict
    notes: list[str]
    repaired: list[str]
    not_repaired: list[str]

class Segment:
    """An open shared-memory segment: the directory of artifacts agents on this machine share.

    A location is a name under /dev/shm (``"team-42"``) or a file path containing ``/``.
    """

    @staticmethod
    def create(
        location: str,
        *,
        max_agents: int | None = None,
        max_artifacts: int | None = None,
        arena_bytes: int | None = None,
        max_payload: int | None = None,
        write_lease_ms: int | None = None,
        log_records: int | None = None,
        inbox_events: int | None = None,
        mode: int = 0o600,
        durable_puts: bool = False,
        allow_other_owner: bool = False,
    ) -> Segment:
        """Create a new segment; ``SegmentExists`` if there is one."""
    @staticmethod
    def open(location: str, *, durable_puts: bool = False, allow_other_owner: bool = False) -> Segment:
        """Open an existing segment; ``SegmentNotFound`` if there is none."""
    @staticmethod
    def open_or_create(
        location: str,
        *,
        max_agents: int | None = None,
        max_artifacts: int | None = None,
        arena_bytes: int | None = None,
        max_payload: int | None = None,
        write_lease_ms: int | None = None,
        log_records: int | None = None,
        inbox_events: int | None = None,
        mode: int = 0o600,
        durable_puts: bool = False,
        allow_other_owner: bool = False,
    ) -> Segment:
        """Open the segment, creating it with these sizes if it does not exist."""
    @staticmethod
    def destroy(location: str) -> None:
        """Remove the segment's name; open handles keep working. ``SegmentNotFound`` if none."""
    def attach(self, name: str, strategy: Strategy | None = None) -> Agent:
        """Attach as agent ``name`` with a freshness strategy (default ``"lazy"``);
        ``AgentBusy`` while another live handle has that name."""
    def stats(self) -> StatsDict:
        """Usage statistics from the operation log (reads, HITs, MISSes, writes, conflicts)."""
    def switches(self) -> SwitchesDict:
        """The run-time switches (logging, invalidation)."""
    def set_logging(self, on: bool) -> None:
        """Pause or resume the operation log, for every process."""
    def set_invalidation(self, on: bool) -> None:
        """Turn invalidation off or on, for every process (off: demonstrations only)."""
    def list(self, prefix: str = "") -> list[str]:
        """Keys of existing artifacts starting with ``prefix``, sorted."""
    def status(self) -> StatusDict:
        """Agents, artifacts and every agent's MESI state on every artifact."""
    def fsck(self, repair: bool = False) -> FsckReportDict:
        """Check every structure; with ``repair``, repair what is safe."""
    def flush(self) -> None:
        """Write the segment back to its file (``msync``); a no-op for /dev/shm."""
    @property
    def config(self) -> ConfigDict:
        """The sizes the segment was created with."""
    @property
    def location(self) -> str:
        """Where the segment lives, as it was named."""
    @property
    def durable_puts(self) -> bool:
        """Whether writes through this handle are flushed before they return."""

class Agent:
    """A named agent attached by this process. A context manager: ``close()`` on exit."""

    @property
    def name(self) -> str: ...
    @property
    def segment(self) -> Segment: ...
    @property
    def closed(self) -> bool: ...
    def get(self, key: str) -> Read:
        """Read ``key``: its bytes, version, and whether this agent's copy was current (HIT)."""
    def read(self, key: str) -> ReadBuffer:
        """Zero-copy read: a buffer over the pinned version (``memoryview(agent.read(k))``)."""
    def cached(self, key: str) -> Cached:
        """A private copy of ``key`` kept current by ``Cached.refresh()``."""
    def check(self, key: str) -> Check:
        """This agent's standing on ``key``, without reading it."""
    def is_valid(self, key: str) -> bool:
        """Whether this agent's copy is current (one load); False for an unknown key."""
    def being_written(self, key: str) -> bool:
        """Whether a writer holds ``key`` now, until it publishes (one load); False if unknown."""
    def put(self, key: str, data: Payload) -> int:
        """Write, conditional on this agent's view (``Conflict`` if stale); the new version."""
    def put_if(self, key: str, version: int, data: Payload) -> int:
        """Write only if ``key`` is at ``version`` (0: never written)."""
    def put_blind(self, key: str, data: Payload) -> int:
        """Overwrite whatever version is there."""
    def delete(self, key: str) -> int:
        """Delete, conditional on this agent's view; the deletion's version."""
    def acquire(self, key: str, lease_seconds: float) -> WriteGuard:
        """Take ``key`` exclusively for ``lease_seconds``; ``Held`` if a live agent holds it."""
    def wait_changed(self, key: str, since: int, timeout: float | None = None) -> int | None:
        """Block (GIL released, Ctrl-C works) until the version exceeds ``since``; None on timeout."""
    def list(self, prefix: str = "") -> list[str]:
        """Keys of existing artifacts starting with ``prefix``, sorted."""
    @property
    def strategy(self) -> str:
        """The strategy attached with: ``lazy``, ``eager``, ``lease:<ms>ms``, ``access_count:<n>``."""
    def subscribe(self, prefix: str) -> None:
        """Receive change events for keys starting with ``prefix`` (needs ``"eager"``)."""
    def unsubscribe(self, prefix: str) -> bool:
        """Stop receiving events for ``prefix``; False if it was not subscribed."""
    def subscriptions(self) -> list[str]:
        """The prefixes subscribed to."""
    def poll_events(self, max: int = 64) -> EventsDict:
        """Up to ``max`` waiting change events, without blocking."""
    def wait_events(self, max: int = 64, timeout: float | None = None) -> EventsDict:
        """Up to ``max`` change events, blocking (GIL released, Ctrl-C works) until one arrives."""
    def close(self) -> None:
        """Detach (once guards, buffers and cached copies made from it are gone too)."""
    def __enter__(self) -> Agent: ...
    def __exit__(self, *exc: object) -> bool: ...

class Read:
    """The result of ``Agent.get``; unpacks as ``data, version, hit``."""

    @property
    def bytes(self) -> bytes: ...
    @property
    def version(self) -> int: ...
    @property
    def hit(self) -> bool: ...
    def __iter__(self) -> Iterator[bytes | int | bool]: ...

class Check:
    """The result of ``Agent.check``."""

    @property
    def held(self) -> int | None:
        """The version the agent last read or wrote; None if it never did."""
    @property
    def current(self) -> int:
        """The artifact's current version (0: never written)."""
    @property
    def valid(self) -> bool:
        """The agent's copy is current: its next read would be a HIT."""
    @property
    def is_current(self) -> bool:
        """``valid`` and ``held == current``."""

class Cached:
    """An agent's private copy of one artifact; ``refresh()`` keeps it current."""

    def refresh(self) -> bool:
        """True on a HIT (nothing copied), False on a MISS (the current version fetched)."""
    def poll(self) -> int:
        """``refresh()``, returning the version held on a HIT and 0 on a MISS."""
    @property
    def data(self) -> bytes: ...
    @property
    def version(self) -> int: ...
    @property
    def key(self) -> str: ...

class StoreEntry:
    """``ShmStore``'s cached view of one item for one agent (internal to the LangGraph store)."""
    view: Any
    cached: Cached | None
    snap: tuple[int, list[Any], Any] | None
    tomb: int
    def __init__(self, view: Any) -> None: ...
    def bind(
        self,
        agent: Agent,
        writer: str,
        scope: tuple[str, ...],
        key: str,
        shown: tuple[str, ...],
        decoders: tuple[Any, ...],
        item_class: type,
    ) -> None: ...
    def get(self) -> Any | None: ...
    def rewrite(self, value: Any, vectors: bytes | None) -> bool: ...

class HotIndex:
    """``ShmStore``'s index of its bound entries by ``(namespace, key)``, with ``get`` and
    ``put`` served natively (internal to the LangGraph store; it holds the store weakly)."""

    def __init__(self, store: Any, put_function: Any, valid: set[tuple[str, ...]]) -> None: ...
    def lookup(self, namespace: Any, key: Any) -> StoreEntry | None: ...
    def insert(self, namespace: tuple[str, ...], key: str, entry: StoreEntry) -> None: ...
    def clear(self) -> None: ...
    def __len__(self) -> int: ...
    def get(self, namespace: Any, key: Any, *, refresh_ttl: bool | None = None) -> Any: ...
    def put(
        self, namespace: Any, key: Any, value: Any, index: Any = None, *, ttl: Any = None
    ) -> None: ...

class ReadBuffer:
    """A zero-copy read: a read-only buffer over one pinned version (buffer protocol)."""

    @property
    def version(self) -> int: ...
    @property
    def hit(self) -> bool: ...
    def tobytes(self) -> bytes: ...
    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...

class WriteGuard:
    """An exclusive hold (E) from ``Agent.acquire``; a context manager that releases on exit."""

    def commit(self, data: Payload) -> int:
        """Publish the next version and end the hold; ``Fenced`` if it was reclaimed."""
    def release(self) -> None:
        """End the hold without writing; ``Fenced`` if it was reclaimed."""
    def renew(self, lease_seconds: float) -> None:
        """Extend the lease to ``lease_seconds`` from now."""
    @property
    def key(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def active(self) -> bool: ...
    def __enter__(self) -> WriteGuard: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool: ...

class CoherenceError(Exception):
    """Base class of every error agent-coherence raises."""

class NotFound(CoherenceError):
    key: str

class Conflict(CoherenceError):
    key: str
    current: int
    yours: int

class Held(CoherenceError):
    key: str
    by: str

class Fenced(CoherenceError):
    key: str

class AgentBusy(CoherenceError):
    name: str
    pid: int

class BadLocation(CoherenceError):
    location: str
    reason: str

class SegmentNotFound(CoherenceError):
    location: str

class SegmentExists(CoherenceError):
    location: str

class ForeignOwner(CoherenceError):
    location: str
    owner: str
    owner_uid: int
    your_uid: int

class Symlink(CoherenceError):
    location: str

class NotDurable(CoherenceError):
    key: str
    version: int

class Corrupt(CoherenceError):
    location: str

class CapacityExceeded(CoherenceError):
    what: str
    limit: int

class PayloadTooLarge(CoherenceError):
    len: int
    max: int

class BadKey(CoherenceError):
    len: int
    max: int

class BadName(CoherenceError):
    len: int
    max: int

class InvalidConfig(CoherenceError): ...
class OsFailure(CoherenceError): ...
