"""A LangGraph memory graph written for ``InMemoryStore``, run across two processes on ShmStore.

The graph code below (``remember``, ``recall``, ``build``) is LangGraph's everyday long-term
memory pattern and knows nothing of agent-coherence: it takes a ``BaseStore``. Only the two
lines in ``make_store`` differ from the in-memory version (shown in its comments). With
``--in-memory`` everything runs in this one process on ``InMemoryStore``; otherwise a *writer*
process runs the graph that remembers, and then a *reader* process, with nothing in common with
it but the segment's name, runs the graph that recalls. Both print the same memories, with
their values exactly as written (the ``datetime``, the tuple).

    python examples/python/memory_graph.py --in-memory
    python examples/python/memory_graph.py [SEGMENT]     # two processes, one segment
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from datetime import datetime, timezone
from typing import TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore

NOTES = [
    ("user-1", "prefers short answers"),
    ("user-1", "works on the auth service"),
    ("user-2", "writes Rust"),
]
WHEN = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)


# ------------------------------------------------------------ the graph (store-agnostic)


class State(TypedDict, total=False):
    user_id: str
    note: str
    recalled: list[str]


def remember(state: State, *, store: BaseStore) -> State:
    namespace = (state["user_id"], "memories")
    key = f"note-{len(store.search(namespace, limit=100))}"
    store.put(namespace, key, {"text": state["note"], "at": WHEN, "tags": ("note", "v1")})
    return {}


def recall(state: State, *, store: BaseStore) -> State:
    items = store.search((state["user_id"], "memories"), limit=100)
    return {
        "recalled": [
            f"{i.key}: {i.value['text']} (at {i.value['at'].isoformat()}, tags {i.value['tags']!r})"
            for i in items
        ]
    }


def build(node, store: BaseStore):  # type: ignore[no-untyped-def]
    graph = StateGraph(State)
    graph.add_node("step", node)
    graph.add_edge(START, "step")
    graph.add_edge("step", END)
    return graph.compile(store=store)


def write_notes(store: BaseStore) -> None:
    app = build(remember, store)
    for user, note in NOTES:
        app.invoke({"user_id": user, "note": note})


def read_notes(store: BaseStore) -> list[str]:
    app = build(recall, store)
    lines = []
    for user in ("user-1", "user-2"):
        for line in app.invoke({"user_id": user})["recalled"]:
            lines.append(f"{user} {line}")
    return lines


# ------------------------------------------------------------ the two changed lines


def make_store(segment: str, role: str) -> BaseStore:
    from agent_coherence_shm.langgraph import ShmStore  # was: from langgraph.store.memory import InMemoryStore

    return ShmStore(segment, agent=role)  # was: return InMemoryStore()


# ------------------------------------------------------------ running it


def writer(segment: str) -> None:
    store = make_store(segment, "writer")
    write_notes(store)
    store.close()  # type: ignore[attr-defined]


def reader(segment: str) -> None:
    store = make_store(segment, "reader")
    for line in read_notes(store):
        print(line, flush=True)
    store.close()  # type: ignore[attr-defined]


def main() -> int:
    if sys.argv[1:] == ["--in-memory"]:
        from langgraph.store.memory import InMemoryStore

        store = InMemoryStore()
        write_notes(store)
        for line in read_notes(store):
            print(line)
        return 0
    segment = sys.argv[1] if len(sys.argv) > 1 else f"memory-graph-{os.getpid()}"
    from agent_coherence_shm import Segment

    context = mp.get_context("spawn")
    try:
        for role in (writer, reader):
            process = context.Process(target=role, args=(segment,))
            process.start()
            process.join(60)
            if process.exitcode != 0:
                print(f"the {role.__name__} process failed ({process.exitcode})", file=sys.stderr)
                return 1
    finally:
        try:
            Segment.destroy(segment)
        except Exception:  # noqa: BLE001 - never created if the writer failed early
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
