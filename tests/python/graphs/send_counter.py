"""Hazard: a ``Send`` fan-out whose workers each read the shared counter and write it back
(no reducer). Expected: parallel-read-write on state:count (worker reads, another worker
instance writes) and blind-overwrite on state:count (two worker instances write it in the same
superstep)."""

from typing import TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send


class State(TypedDict, total=False):
    items: list[str]
    count: int


def split(state: State) -> dict:
    return {"count": 0}


def fan_out(state: State):
    return [Send("worker", {"items": [i], "count": state["count"]}) for i in state["items"]]


def worker(state: State) -> dict:
    return {"count": state["count"] + len(state["items"])}


def build_graph():
    graph = StateGraph(State)
    graph.add_node("split", split)
    graph.add_node("worker", worker)
    graph.add_edge(START, "split")
    graph.add_conditional_edges("split", fan_out, ["worker"])
    graph.add_edge("worker", END)
    return graph.compile()
