"""Hazards through the other ways of writing nodes: an async node routing with
``Command(update=..., goto=...)`` and a lambda node, started together. Expected: ``lam`` and
``first`` read what the other writes in the same superstep (parallel-read-write on state:a and
on state:b); ``second`` then overwrites ``lam``'s state:b without reading it (blind-overwrite);
and ``second`` uses state:a, which ``first`` derived from a state:b that ``lam`` has since
rewritten (stale-use of state:b via state:a)."""

from typing import TypedDict

from langgraph.graph import START, StateGraph
from langgraph.types import Command


class State(TypedDict, total=False):
    a: str
    b: str


async def first(state: State):
    return Command(update={"a": state.get("b", "")}, goto="second")


def second(state: State) -> dict:
    return {"b": state["a"]}


def build_graph():
    graph = StateGraph(State)
    graph.add_node("first", first, destinations=("second",))
    graph.add_node("second", second)
    graph.add_node("lam", lambda s: {"b": s["a"] + "!"})
    graph.add_edge(START, "first")
    graph.add_edge(START, "lam")
    return graph.compile()
