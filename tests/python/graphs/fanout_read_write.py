"""Hazard: a fan-out where one branch reads the draft while its parallel sibling rewrites it.
Expected: one parallel-read-write on state:draft, read by reviewer (line of
``state["draft"]``), written by editor (line of the returned ``"draft"`` key). The editor reads
the draft it rewrites, so that write is no blind overwrite."""

import operator
from typing import Annotated, TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    draft: str
    notes: Annotated[list[str], operator.add]


def outline(state: State) -> dict:
    return {"draft": "v1"}


def reviewer(state: State) -> dict:
    return {"notes": [f"reviewed {state['draft']}"]}


def editor(state: State) -> dict:
    return {"draft": state["draft"] + ", edited"}


def build_graph():
    graph = StateGraph(State)
    graph.add_node("outline", outline)
    graph.add_node("reviewer", reviewer)
    graph.add_node("editor", editor)
    graph.add_edge(START, "outline")
    graph.add_edge("outline", "reviewer")
    graph.add_edge("outline", "editor")
    graph.add_edge(["reviewer", "editor"], END)
    return graph.compile()
