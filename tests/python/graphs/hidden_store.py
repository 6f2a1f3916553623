"""Hazard the source does not show: ``scout`` reads the spec through a method of an object
(the analysis follows plain functions, not methods), with a namespace built at run time, while
its parallel sibling ``planner`` rewrites it. Statically the read is invisible (no risk); one
run (``--input '{"team": "core"}'``) sees it. Expected with the run: one parallel-read-write on
store:specs/core/current, read by scout (the method's ``store.get`` line), written by planner
(its ``store.put`` line)."""

from typing import TypedDict

from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    team: str
    seen: str


class Specs:
    def fetch(self, ns: tuple[str, ...]):
        store = get_store()
        return store.get(ns, "current")


SPECS = Specs()


def scout(state: State) -> dict:
    item = SPECS.fetch(("specs", state["team"]))
    return {"seen": item.value["text"] if item else "none"}


def planner(state: State) -> dict:
    get_store().put(("specs", state["team"] + ""), "current" + "", {"text": "v2"})
    return {}


def build_graph():
    graph = StateGraph(State)
    graph.add_node("scout", scout)
    graph.add_node("planner", planner)
    graph.add_edge(START, "scout")
    graph.add_edge(START, "planner")
    graph.add_edge("scout", END)
    graph.add_edge("planner", END)
    return graph.compile()
