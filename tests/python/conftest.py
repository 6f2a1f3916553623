"""Fixtures for the tests of the Python bindings and the LangGraph store.

Every test gets fresh segment names and destroys its segments at teardown; the session checks
that no shared-memory object it made is left in /dev/shm.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest

from agent_coherence_shm import Segment, SegmentNotFound

PREFIX = f"ccs-py-test-{os.getpid()}-"
SMALL = dict(max_agents=16, max_artifacts=256, arena_bytes=4 << 20, max_payload=256 << 10)


def _destroy(name: str) -> None:
    try:
        Segment.destroy(name)
    except SegmentNotFound:
        pass


@pytest.fixture
def seg_name() -> Iterator[Callable[[], str]]:
    """A factory of fresh segment names; every name it gave is destroyed at teardown."""
    names: list[str] = []

    def make() -> str:
        name = PREFIX + uuid.uuid4().hex[:10]
        names.append(name)
        return name

    yield make
    for name in names:
        _destroy(name)


@pytest.fixture
def name(seg_name: Callable[[], str]) -> str:
    """One fresh segment name, destroyed at teardown."""
    return seg_name()


@pytest.fixture
def seg(name: str) -> Iterator[Segment]:
    """A small fresh segment, destroyed at teardown."""
    segment = Segment.create(name, **SMALL)
    yield segment
    _destroy(name)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    left = sorted(p.name for p in Path("/dev/shm").glob(PREFIX + "*"))
    if left:
        print(f"\ntests left shared-memory objects behind: {left}")
        session.exitstatus = 1
