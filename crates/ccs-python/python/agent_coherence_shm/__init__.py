"""agent-coherence in shared memory, from Python.

Agents that run as separate processes on one machine share artifacts (a task spec, a plan, a
design note) through a segment of shared memory that keeps a MESI directory: a writer
invalidates every peer's copy before its write returns, a peer's next read is a MISS that
fetches the current version, and a write from a stale view is refused with ``Conflict``.

>>> import os
>>> from agent_coherence_shm import Segment, Conflict
>>> name = f"team-42-{os.getpid()}"
>>> seg = Segment.open_or_create(name)
>>> planner, executor = seg.attach("planner"), seg.attach("executor")  # usually 2 processes
>>> planner.put("task/spec", b"rename foo to bar")
1
>>> executor.get("task/spec")
Read(bytes=<17 bytes>, version=1, hit=False)
>>> planner.put("task/spec", b"rename foo to baz")
2
>>> try:
...     executor.put("task/spec", b"done, per v1")
... except Conflict as e:
...     print(e.current, e.yours)
2 1
>>> planner.close(); executor.close(); Segment.destroy(name)

The LangGraph store is in :mod:`agent_coherence_shm.langgraph` (``ShmStore``). See
``docs/python.md``.
"""

from agent_coherence_shm._native import (
    MAX_AGENTS_LIMIT,
    MAX_KEY_BYTES,
    MAX_NAME_BYTES,
    Agent,
    AgentBusy,
    BadKey,
    BadLocation,
    BadName,
    CapacityExceeded,
    Cached,
    Check,
    CoherenceError,
    Conflict,
    Corrupt,
    Fenced,
    ForeignOwner,
    Held,
    InvalidConfig,
    NotDurable,
    NotFound,
    OsFailure,
    PayloadTooLarge,
    Read,
    ReadBuffer,
    Segment,
    SegmentExists,
    SegmentNotFound,
    Symlink,
    WriteGuard,
    __version__,
)

__all__ = [
    "MAX_AGENTS_LIMIT",
    "MAX_KEY_BYTES",
    "MAX_NAME_BYTES",
    "Agent",
    "AgentBusy",
    "BadKey",
    "BadLocation",
    "BadName",
    "CapacityExceeded",
    "Cached",
    "Check",
    "CoherenceError",
    "Conflict",
    "Corrupt",
    "Fenced",
    "ForeignOwner",
    "Held",
    "InvalidConfig",
    "NotDurable",
    "NotFound",
    "OsFailure",
    "PayloadTooLarge",
    "Read",
    "ReadBuffer",
    "Segment",
    "SegmentExists",
    "SegmentNotFound",
    "Symlink",
    "WriteGuard",
    "__version__",
]
