"""``make_store``: the ShmStore that LangGraph's own store tests run against.

The vendored tests call ``make_store(...)`` where they built an ``InMemoryStore``, a
``SqliteStore`` or an ``AsyncSqliteStore``. ``":memory:"`` (or nothing) gives a store in a fresh
segment under /dev/shm; a file name gives one in a fresh file-backed segment beside it (the
SQLite tests' "file" variants). Every store made during a test is closed and its segment
destroyed after the test (``destroy_segments``, which each suite's ``conftest.py`` uses).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from agent_coherence_shm import Segment, SegmentNotFound
from agent_coherence_shm.langgraph import ShmStore

PREFIX = f"ccs-lg-suite-{os.getpid()}-"
SIZES = dict(max_agents=4, max_artifacts=2048, arena_bytes=32 << 20, max_payload=1 << 20)
made: list[ShmStore] = []


def make_store(where: str = ":memory:", **options: Any) -> ShmStore:
    """A ShmStore in a fresh segment (``options``: ``index=...`` and the like)."""
    if where == ":memory:":
        location = PREFIX + uuid.uuid4().hex[:12]
    else:
        location = f"{where}.{uuid.uuid4().hex[:8]}.ccs"
    store = ShmStore(location, agent="langgraph-suite", **SIZES, **options)
    made.append(store)
    return store


def destroy_all() -> None:
    """Close every store made so far and destroy its segment."""
    while made:
        store = made.pop()
        store.close()
        try:
            Segment.destroy(store.segment.location)
        except SegmentNotFound:
            pass


@pytest.fixture(autouse=True)
def destroy_segments() -> Iterator[None]:
    """After each test, close its stores and destroy their segments."""
    yield
    destroy_all()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    left = sorted(p.name for p in Path("/dev/shm").glob(PREFIX + "*"))
    if left:
        print(f"\nthe suite left shared-memory objects behind: {left}")
        session.exitstatus = 1
