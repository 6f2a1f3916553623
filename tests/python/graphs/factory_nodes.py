"""Hazard in nodes made by a factory, whose channel names are closure variables: ``draft``
(spec → plan) and ``review`` (plan → notes) run in the same superstep. Expected: one
parallel-read-write on state:plan, read by review, written by draft (both at the factory's
``return`` line)."""

from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    spec: str
    plan: str
    notes: str


def copier(source: str, target: str):
    def node(state: State) -> dict:
        return {target: f"from {state[source]}"}

    return node


def build_graph():
    graph = StateGraph(State)
    graph.add_node("draft", copier("spec", "plan"))
    graph.add_node("review", copier("plan", "notes"))
    graph.add_edge(START, "draft")
    graph.add_edge(START, "review")
    graph.add_edge(["draft", "review"], END)
    return graph.compile()
