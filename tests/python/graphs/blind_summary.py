"""Hazard: two nodes write the summary one after the other, the second without reading the
first's. Expected: one blind-overwrite on state:summary (earlier writer draft, writer polish)."""

from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    topic: str
    summary: str


def draft(state: State) -> dict:
    return {"summary": f"about {state['topic']}"}


def polish(state: State) -> dict:
    return {"summary": f"a polished note on {state['topic']}"}


def build_graph():
    graph = StateGraph(State)
    graph.add_node("draft", draft)
    graph.add_node("polish", polish)
    graph.add_edge(START, "draft")
    graph.add_edge("draft", "polish")
    graph.add_edge("polish", END)
    return graph.compile()
