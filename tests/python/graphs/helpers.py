"""Hazards behind the user's own helper functions, which the analysis follows: ``scout`` reads
the spec through ``fetch`` and the draft through ``describe``, while its parallel sibling
``editor`` rewrites both (the spec with ``get_store().put``, the draft through the dict that
``revise`` returns and ``editor`` returns). Expected: parallel-read-write on
store:specs/core/current (read at ``fetch``'s ``store.get``, written at ``editor``'s put) and
on state:draft (read in ``describe``, written in ``revise``)."""

from typing import TypedDict

from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    draft: str
    seen: str


def fetch(ns):
    return get_store().get(ns, "current")


def describe(s: State) -> str:
    return f"draft: {s['draft']}"


def scout(state: State) -> dict:
    item = fetch(("specs", "core"))
    return {"seen": describe(state) + (item.value["text"] if item else "")}


def revise(s: State) -> dict:
    return {"draft": s.get("draft", "") + " (revised)"}


def editor(state: State) -> dict:
    get_store().put(("specs", "core"), "current", {"text": "v2"})
    return revise(state)


def build_graph():
    graph = StateGraph(State)
    graph.add_node("scout", scout)
    graph.add_node("editor", editor)
    graph.add_edge(START, "scout")
    graph.add_edge(START, "editor")
    graph.add_edge("scout", END)
    graph.add_edge("editor", END)
    return graph.compile()
