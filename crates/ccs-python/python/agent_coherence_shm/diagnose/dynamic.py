"""The dynamic half of `diagnose --graph`: run the graph once and record what it did.

The graph runs once on the given input with a recording store in place of its store (wrapping
the graph's own store when it has one, so its data is there) and LangGraph's ``debug`` event
stream, which names each task's node, superstep and channel writes as it happens. The store
records each get/search/put/delete with the node and superstep from the run's config
(``langgraph.config.get_config``) and the ``file:line`` of the first frame outside LangGraph and
this package, so accesses the source does not show (a store reached through a helper, a
computed namespace, a key built at run time) are seen with their real values. Reads of state
channels cannot be observed this way; they come from the source.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from typing import Any, Iterable

from langgraph.config import get_config
from langgraph.store.base import BaseStore, GetOp, PutOp, SearchOp
from langgraph.store.memory import InMemoryStore

from agent_coherence_shm.diagnose.model import Node, Site
from agent_coherence_shm.diagnose.risks import StepAccess
from agent_coherence_shm.diagnose.source import display_path, is_user_code


def _caller() -> tuple[str, int]:
    """The file and line of the user's code that called the store."""
    frame = sys._getframe(2)
    while frame is not None:
        if is_user_code(frame.f_code.co_filename):
            return display_path(frame.f_code.co_filename), frame.f_lineno
        frame = frame.f_back  # type: ignore[assignment]
    return "<unknown>", 0


class RecordingStore(BaseStore):
    """A store that records who read and wrote which item, delegating to another store."""

    def __init__(self, inner: BaseStore | None = None) -> None:
        self.inner = inner if inner is not None else InMemoryStore()
        #: (superstep, node, "read"|"write", artifact, site)
        self.log: list[tuple[int, str, str, str, Site]] = []

    def _record(self, ops: Iterable[Any]) -> None:
        try:
            meta = get_config().get("metadata", {})
        except RuntimeError:
            return  # outside a run: nothing to attribute
        node, step = meta.get("langgraph_node"), meta.get("langgraph_step")
        if node is None or step is None:
            return
        file, line = _caller()
        for op in ops:
            if isinstance(op, GetOp):
                access, artifact = "read", "/".join((*op.namespace, op.key))
            elif isinstance(op, SearchOp):
                access, artifact = "read", "/".join((*op.namespace_prefix, "*"))
            elif isinstance(op, PutOp):
                access, artifact = "write", "/".join((*op.namespace, op.key))
            else:
                continue
            self.log.append(
                (int(step), str(node), access, "store:" + artifact, Site(str(node), file, line))
            )

    def batch(self, ops: Iterable[Any]) -> list[Any]:
        ops = list(ops)
        self._record(ops)
        return self.inner.batch(ops)

    async def abatch(self, ops: Iterable[Any]) -> list[Any]:
        ops = list(ops)
        self._record(ops)
        return await self.inner.abatch(ops)


def run(compiled: Any, nodes: dict[str, Node], graph_input: Any) -> list[dict[str, StepAccess]]:
    """Run the graph once on ``graph_input``; the supersteps it took, with what each node did."""
    store = RecordingStore(getattr(compiled, "store", None))
    compiled.store = store
    config = {"configurable": {"thread_id": "agent-coherence-diagnose"}, "recursion_limit": 100}
    tasks: dict[int, dict[str, StepAccess]] = defaultdict(dict)
    counts: dict[tuple[int, str], int] = defaultdict(int)
    for event in compiled.stream(graph_input, config, stream_mode="debug"):
        step, payload = event.get("step"), event.get("payload", {})
        name = payload.get("name")
        if name not in nodes or step is None:
            continue
        node = nodes[name]
        acc = tasks[step].setdefault(name, StepAccess(_channel_reads(node), {}))
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
        acc = tasks[step].setdefault(name, StepAccess(_channel_reads(node), {}))
        (acc.reads if access == "read" else acc.writes).setdefault(artifact, site)
    return [tasks[s] for s in sorted(tasks)]


def _written_channels(result: Any) -> list[str]:
    if isinstance(result, dict):
        return [str(k) for k in result]
    if isinstance(result, (list, tuple)):
        return [str(w[0]) for w in result if isinstance(w, (list, tuple)) and w]
    return []


def _channel_reads(node: Node) -> dict[str, Site]:
    """The node's reads of state channels as its source shows them (the run cannot see them)."""
    return {a: s for a, s in node.reads.items() if a.startswith("state:")}
