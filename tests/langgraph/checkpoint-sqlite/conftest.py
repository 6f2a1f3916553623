"""Runs LangGraph's vendored store tests (``tests/``) against ShmStore; see ../README.md."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import shm_factory  # noqa: E402


@pytest.fixture(autouse=True)
def _destroy_segments() -> Iterator[None]:
    yield
    shm_factory.destroy_all()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    left = sorted(p.name for p in Path("/dev/shm").glob(shm_factory.PREFIX + "*"))
    if left:
        print(f"\nthe suite left shared-memory objects behind: {left}")
        session.exitstatus = 1
