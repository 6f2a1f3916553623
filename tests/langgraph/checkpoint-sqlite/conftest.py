"""Runs LangGraph's vendored store tests (``tests/``) against ShmStore; see ../README.md."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shm_factory import destroy_segments, pytest_sessionfinish  # noqa: E402, F401
