"""Hazards the source does not show: ``scout`` reads the spec and the notes through methods of
an object (the analysis follows plain functions, not methods), the spec with a namespace built
at run time, while its parallel sibling ``planner`` rewrites both. Statically the reads are
invisible (no risk); one run (``--input '{"team": "core"}'``) sees them. Expected with the run:
parallel-read-write on store:specs/core/current (read at the method's ``store.get`` line,
written at planner's ``store.put`` line) and on state:notes (read at the method's
``state.get``, written at planner's returned ``"notes"``)."""

from typing import TypedDict

from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    team: str
    seen: str
    notes: str


class Specs:
    def fetch(self, ns: tuple[str, ...]):
        store = get_store()
        return store.get(ns, "current")

    def notes_of(self, state: State) -> str:
        return state.get("notes", "")


SPECS = Specs()


def scout(state: State) -> dict:
    item = SPECS.fetch(("specs", state["team"]))
    return {"seen": (item.value["text"] if item else "none") + SPECS.notes_of(state)}


def planner(state: State) -> dict:
    get_store().put(("specs", state["team"] + ""), "current" + "", {"text": "v2"})
    return {"notes": "planned v2"}


def build_graph():
    graph = StateGraph(State)
    graph.add_node("scout", scout)
    graph.add_node("planner", planner)
    graph.add_edge(START, "scout")
    graph.add_edge(START, "planner")
    graph.add_edge("scout", END)
    graph.add_edge("planner", END)
    return graph.compile()
