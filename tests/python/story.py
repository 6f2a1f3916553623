"""The two-process story the adapter tests share: the planner (this process) writes the task
spec, the executor (a spawned process) reads v1; the planner rewrites it; the executor's write
from its stale view is refused with Conflict and its next read gets v2. The steps are ordered
through queues: ``go`` tells the executor to continue, ``out`` carries what it saw."""

from __future__ import annotations

import multiprocessing as mp
from contextlib import contextmanager
from typing import Any, Callable, Iterator

CTX = mp.get_context("spawn")
TIMEOUT = 60
V1 = "rename validateUser to verifyUser"
V2 = "rename validateUser to authenticateUser"


@contextmanager
def executor_process(target: Callable[..., None], segment: str) -> Iterator[tuple[Any, Any]]:
    """Run ``target(segment, go, out)`` in a spawned process; yields ``(go, out)``. On leaving,
    the process must have exited with status 0; it is killed if it is still running."""
    go, out = CTX.Queue(), CTX.Queue()
    child = CTX.Process(target=target, args=(segment, go, out))
    child.start()
    try:
        yield go, out
        child.join(TIMEOUT)
        assert child.exitcode == 0
    finally:
        if child.is_alive():
            child.kill()
            child.join()
