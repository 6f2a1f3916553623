"""Hazard: the refactor story inside one graph. ``read_spec`` reads the spec from the store and
passes it on in ``state.plan``; ``revise`` then rewrites the spec; ``commit`` acts on
``state.plan`` without reading the spec again. Expected: one stale-use of store:task/spec
(read by read_spec, written by revise, via state:plan, used by commit)."""

from typing import TypedDict

from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph

TASK = ("task",)


class State(TypedDict, total=False):
    plan: str
    done: str


def read_spec(state: State) -> dict:
    item = get_store().get(TASK, "spec")
    return {"plan": item.value["text"] if item else "nothing"}


def revise(state: State) -> dict:
    get_store().put(TASK, "spec", {"text": "rename to authenticateUser"})
    return {}


def commit(state: State) -> dict:
    return {"done": f"committed {state['plan']}"}


def build_graph():
    graph = StateGraph(State)
    graph.add_node("read_spec", read_spec)
    graph.add_node("revise", revise)
    graph.add_node("commit", commit)
    graph.add_edge(START, "read_spec")
    graph.add_edge("read_spec", "revise")
    graph.add_edge("revise", "commit")
    graph.add_edge("commit", END)
    return graph.compile()
