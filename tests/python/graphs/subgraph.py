"""Hazards with a subgraph node: the compiled subgraph ``research`` reads ``brief`` while the
parallel node ``rewrite`` writes it; inside it, ``gather`` and ``tally`` both write ``facts``
in one superstep. Expected: a parallel-read-write on state:brief, read by research (at its
node ``gather``'s read), written by rewrite; and a blind-overwrite of state:facts by
research/tally over research/gather."""

from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    brief: str
    facts: str


def gather(state: State) -> dict:
    return {"facts": f"facts for {state['brief']}"}


def tally(state: State) -> dict:
    return {"facts": "counted"}


def rewrite(state: State) -> dict:
    return {"brief": "a new brief"}


def build_graph():
    inner = StateGraph(State)
    inner.add_node("gather", gather)
    inner.add_node("tally", tally)
    inner.add_edge(START, "gather")
    inner.add_edge(START, "tally")
    inner.add_edge("gather", END)
    inner.add_edge("tally", END)
    graph = StateGraph(State)
    graph.add_node("research", inner.compile())
    graph.add_node("rewrite", rewrite)
    graph.add_edge(START, "research")
    graph.add_edge(START, "rewrite")
    graph.add_edge("research", END)
    graph.add_edge("rewrite", END)
    return graph.compile()
