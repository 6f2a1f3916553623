"""JSON artifacts of one `Agent`, with a log of what it read and wrote: what the adapters share.

`Artifacts` reads and writes JSON values under keys of the segment through one agent handle and
records each access as an `Event` (read with its version and whether it was a HIT, write with
the new version, a write refused with `Conflict`). `update` is the coherent read-modify-write
that the adapters use for values several agents change (a conversation, a list of memories): it
re-reads and re-applies the change when a peer wrote in between, which is safe because the
change is a function of the version it is applied to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from agent_coherence_shm import Agent, Conflict, NotFound

#: How many times `update` re-applies a change that met a peer's write before giving up.
MAX_RETRIES = 64


@dataclass(frozen=True)
class Event:
    """One access of a shared artifact: ``kind`` is read, write, conflict or stale."""

    kind: str
    agent: str
    key: str
    version: int
    #: For a read: whether the agent's copy was current (a HIT). For a conflict or a stale
    #: view: the version the agent held.
    detail: Any = None


class Artifacts:
    """The JSON artifacts an agent reads and writes, with the log of its accesses."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.events: list[Event] = []
        self.read_keys: set[str] = set()

    @property
    def name(self) -> str:
        return self.agent.name

    def get(self, key: str, default: Any = None) -> Any:
        """The current value of ``key`` (``default`` if it does not exist)."""
        return self.get_versioned(key, default)[0]

    def get_versioned(self, key: str, default: Any = None) -> tuple[Any, int]:
        """The current value of ``key`` and its version (``(default, 0)`` if it does not exist)."""
        try:
            data, version, hit = self.agent.get(key)
        except NotFound:
            return default, 0
        self.read_keys.add(key)
        self.events.append(Event("read", self.name, key, version, hit))
        return json.loads(data), version

    def put(self, key: str, value: Any) -> int:
        """Write ``value``, conditional on this agent's view: `Conflict` if a peer wrote a
        version this agent has not read. Returns the new version."""
        try:
            version = self.agent.put(key, json.dumps(value, separators=(",", ":")))
        except Conflict as refused:
            self.events.append(Event("conflict", self.name, key, refused.current, refused.yours))
            raise
        self.events.append(Event("write", self.name, key, version))
        return version

    def delete(self, key: str) -> bool:
        """Delete ``key`` (conditional like `put`); False if it did not exist."""
        try:
            version = self.agent.delete(key)
        except NotFound:
            return False
        self.events.append(Event("write", self.name, key, version, "deleted"))
        return True

    def update(self, key: str, change: Callable[[Any], Any], default: Any = None) -> Any:
        """Apply ``change`` to the current value of ``key`` and write the result; when a peer
        writes in between (`Conflict`), read again and re-apply. Returns the value written."""
        for _ in range(MAX_RETRIES):
            value, _version = self.get_versioned(key, default)
            new = change(value)
            try:
                self.put(key, new)
            except Conflict:
                continue
            return new
        raise RuntimeError(f"{key}: {MAX_RETRIES} peer writes in a row met this update")

    def keys(self, prefix: str) -> list[str]:
        """The existing keys under ``prefix``, sorted."""
        return list(self.agent.list(prefix))

    def stale(self) -> list[tuple[str, int | None, int]]:
        """The keys this agent read whose copy a peer's write has invalidated since:
        ``(key, held, current)``."""
        out = []
        for key in sorted(self.read_keys):
            check = self.agent.check(key)
            if not check.valid and check.current:
                out.append((key, check.held, check.current))
        return out
