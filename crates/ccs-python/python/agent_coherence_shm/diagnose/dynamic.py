"""The dynamic half of `diagnose --graph`: run the graph once and record what it did.

The graph runs once on the given input with a recording store in place of its store (wrapping
the graph's own store when it has one, so its data is there) and LangGraph's ``debug`` event
stream, which names each task's node, superstep and channel writes as it happens. The store
records each get/search/put/delete with the node and superstep from the run's config
(``langgraph.config.get_config``) and the ``file:line`` of the first frame outside LangGraph and
this package, so accesses the source does not show (a store reached through a helper, a
computed namespace, a key built at run time) are seen with their real values. Each function
node is handed its state as a `RecordingState`, a dict that logs the keys the node's code reads
(through methods and installed code too); a node whose state is not a dict (a dataclass or
pydantic state) keeps the reads its source shows. The node functions are restored after the
run.
"""

from __future__ import annotations

import inspect
import sys
from collections import defaultdict
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from langgraph.config import get_config
from langgraph.store.base import BaseStore, GetOp, PutOp, SearchOp
from langgraph.store.memory import InMemoryStore

from agent_coherence_shm.diagnose.model import Node, Site
from agent_coherence_shm.diagnose.risks import StepAccess
from agent_coherence_shm.diagnose.source import display_path, is_user_code


def _caller(skip: int) -> tuple[str, int]:
    """The file and line of the user's code that called, ``skip`` frames above this one or
    higher (frames of LangGraph and of this package are passed over)."""
    frame = sys._getframe(skip)
    while frame is not None:
        if is_user_code(frame.f_code.co_filename):
            return display_path(frame.f_code.co_filename), frame.f_lineno
        frame = frame.f_back  # type: ignore[assignment]
    return "<unknown>", 0


#: What the run recorded: (superstep, node, "read"|"write", artifact, site).
Log = list[tuple[int, str, str, str, Site]]


def _context() -> tuple[str, int] | None:
    """The node and superstep of the running task, from its config (None outside a task)."""
    try:
        meta = get_config().get("metadata", {})
    except RuntimeError:
        return None
    node, step = meta.get("langgraph_node"), meta.get("langgraph_step")
    return None if node is None or step is None else (str(node), int(step))


class RecordingState(dict):  # type: ignore[type-arg]
    """The state a node is handed in the recorded run: a dict that logs each key the node's
    code reads (``state["k"]``, ``get``, ``in``; iterating or copying it reads every key)."""

    def __init__(self, data: dict[str, Any], log: Log) -> None:
        super().__init__(data)
        self._log = log

    def _read(self, *keys: Any) -> None:
        where = _context()
        if where is None:
            return
        node, step = where
        file, line = _caller(3)
        for key in keys:
            self._log.append((step, node, "read", f"state:{key}", Site(node, file, line)))

    def __getitem__(self, key: Any) -> Any:
        self._read(key)
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        self._read(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self._read(key)
        return super().__contains__(key)

    def _read_all(self) -> None:
        self._read(*super().keys())

    def keys(self) -> Any:
        self._read_all()
        return super().keys()

    def items(self) -> Any:
        self._read_all()
        return super().items()

    def values(self) -> Any:
        self._read_all()
        return super().values()

    def __iter__(self) -> Any:
        self._read_all()
        return super().__iter__()

    def copy(self) -> dict[str, Any]:
        self._read_all()
        return dict(super().items())


class RecordingStore(BaseStore):
    """A store that records who read and wrote which item, delegating to another store."""

    def __init__(self, inner: BaseStore | None = None) -> None:
        self.inner = inner if inner is not None else InMemoryStore()
        self.log: Log = []

    def _record(self, ops: Iterable[Any]) -> None:
        where = _context()
        if where is None:
            return  # outside a run: nothing to attribute
        node, step = where
        file, line = _caller(3)
        for op in ops:
            if isinstance(op, GetOp):
                access, artifact = "read", "/".join((*op.namespace, op.key))
            elif isinstance(op, SearchOp):
                access, artifact = "read", "/".join((*op.namespace_prefix, "*"))
            elif isinstance(op, PutOp):
                access, artifact = "write", "/".join((*op.namespace, op.key))
            else:
                continue
            self.log.append((step, node, access, "store:" + artifact, Site(node, file, line)))

    def batch(self, ops: Iterable[Any]) -> list[Any]:
        ops = list(ops)
        self._record(ops)
        return self.inner.batch(ops)

    async def abatch(self, ops: Iterable[Any]) -> list[Any]:
        ops = list(ops)
        self._record(ops)
        return await self.inner.abatch(ops)


def _wrap(func: Any, log: Log) -> Any:
    """``func`` handed a `RecordingState` in place of a dict state."""

    def record(state: Any) -> Any:
        return RecordingState(state, log) if type(state) is dict else state

    if inspect.iscoroutinefunction(func):

        async def wrapped_async(state: Any, *args: Any, **kwargs: Any) -> Any:
            return await func(record(state), *args, **kwargs)

        return wrapped_async

    def wrapped(state: Any, *args: Any, **kwargs: Any) -> Any:
        return func(record(state), *args, **kwargs)

    return wrapped


@contextmanager
def _recording_states(compiled: Any, log: Log) -> Iterator[None]:
    """Hand every function node a `RecordingState` for the duration of the run."""
    saved = []
    for spec in compiled.builder.nodes.values():
        runnable = spec.runnable
        for attr in ("func", "afunc"):
            func = getattr(runnable, attr, None)
            if func is not None:
                saved.append((runnable, attr, func))
                setattr(runnable, attr, _wrap(func, log))
    try:
        yield
    finally:
        for runnable, attr, func in saved:
            setattr(runnable, attr, func)


def run(compiled: Any, nodes: dict[str, Node], graph_input: Any) -> list[dict[str, StepAccess]]:
    """Run the graph once on ``graph_input``; the supersteps it took, with what each node did:
    the state keys and store items it read as recorded (a node whose state is not a dict keeps
    the reads its source shows), what it wrote as its task result and store writes."""
    store = RecordingStore(getattr(compiled, "store", None))
    compiled.store = store
    config = {"configurable": {"thread_id": "agent-coherence-diagnose"}, "recursion_limit": 100}
    tasks: dict[int, dict[str, StepAccess]] = defaultdict(dict)
    counts: dict[tuple[int, str], int] = defaultdict(int)
    with _recording_states(compiled, store.log):
        events = list(compiled.stream(graph_input, config, stream_mode="debug"))
    recorded = {
        (step, node) for step, node, _, artifact, _ in store.log if artifact.startswith("state:")
    }
    for event in events:
        step, payload = event.get("step"), event.get("payload", {})
        name = payload.get("name")
        if name not in nodes or step is None:
            continue
        node = nodes[name]
        reads = {} if (step, name) in recorded else _channel_reads(node)
        acc = tasks[step].setdefault(name, StepAccess(reads, {}))
        if event.get("type") == "task":
            counts[(step, name)] += 1
            acc.instances = counts[(step, name)] > 1
        elif event.get("type") == "task_result":
            for channel in _written_channels(payload.get("result")):
                artifact = f"state:{channel}"
                site = node.writes.get(artifact) or Site(
                    name, node.file or "<unknown>", node.line or 0
                )
                acc.writes.setdefault(artifact, site)
    for step, name, access, artifact, site in store.log:
        node = nodes.get(name) or Node(name)
        acc = tasks[step].setdefault(name, StepAccess({}, {}))
        (acc.reads if access == "read" else acc.writes).setdefault(artifact, site)
    return [tasks[s] for s in sorted(tasks)]


def _written_channels(result: Any) -> list[str]:
    if isinstance(result, dict):
        return [str(k) for k in result]
    if isinstance(result, (list, tuple)):
        return [str(w[0]) for w in result if isinstance(w, (list, tuple)) and w]
    return []


def _channel_reads(node: Node) -> dict[str, Site]:
    """The node's reads of state channels as its source shows them."""
    return {a: s for a, s in node.reads.items() if a.startswith("state:")}
