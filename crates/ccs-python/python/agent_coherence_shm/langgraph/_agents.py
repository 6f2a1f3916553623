"""One attached ``Agent`` per (segment, agent name) per process, shared by every store.

The core admits one attachment of an agent name at a time (``AgentBusy`` otherwise), and that is
right across processes: an agent's view is one view. Within a process, two stores that act as
the same agent on the same segment are the same agent, so they share its attachment, counted:
it detaches when the last of them closes.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

from agent_coherence_shm._native import Agent, AgentBusy, Segment

#: Seconds ``observed`` waits for another process's use of the agent to end.
OBSERVER_WAIT = 5.0

_lock = threading.Lock()
_attached: dict[tuple[str, str], list[Any]] = {}  # (location, name) -> [agent, users]


def acquire(segment: Segment, name: str, strategy: Any = None) -> Agent:
    """The process's ``Agent`` for ``name`` on ``segment``, attached on first use."""
    slot = (segment.location, name)
    with _lock:
        entry = _attached.get(slot)
        if entry is None or entry[0].closed:
            entry = [segment.attach(name, strategy), 0]
            _attached[slot] = entry
        entry[1] += 1
        return entry[0]


def release(segment: Segment, name: str) -> None:
    """One user fewer of the agent; detach it when none is left."""
    slot = (segment.location, name)
    with _lock:
        entry = _attached.get(slot)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del _attached[slot]
            entry[0].close()


def attached(segment: Segment, name: str) -> bool:
    """Whether this process has ``name`` attached on ``segment``."""
    with _lock:
        entry = _attached.get((segment.location, name))
        return entry is not None and not entry[0].closed


@contextmanager
def observed(segment: Segment, name: str, strategy: Any = None) -> Iterator[Agent]:
    """Agent ``name`` for one operation: the process's attachment if it has one, else attached
    for the operation (waiting up to ``OBSERVER_WAIT`` seconds for another process using it)."""
    if attached(segment, name):
        agent = acquire(segment, name, strategy)
        try:
            yield agent
        finally:
            release(segment, name)
        return
    deadline = time.monotonic() + OBSERVER_WAIT
    pause = 0.0005
    while True:
        try:
            agent = acquire(segment, name, strategy)
            break
        except AgentBusy:
            if time.monotonic() >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.02)
    try:
        yield agent
    finally:
        release(segment, name)
