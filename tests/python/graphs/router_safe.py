"""Known safe: a router whose branches both write the answer but never run in the same run,
and a reviewer loop that reads what it rewrites. Expected: no risk."""

from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    question: str
    answer: str
    rounds: int


def route(state: State) -> str:
    return "math" if "+" in state["question"] else "prose"


def math(state: State) -> dict:
    return {"answer": str(sum(int(x) for x in state["question"].split("+")))}


def prose(state: State) -> dict:
    return {"answer": state["question"].upper()}


def review(state: State) -> dict:
    return {"answer": state["answer"] + ".", "rounds": state.get("rounds", 0) + 1}


def again(state: State) -> str:
    return "review" if state["rounds"] < 2 else END


def build_graph():
    graph = StateGraph(State)
    graph.add_node("math", math)
    graph.add_node("prose", prose)
    graph.add_node("review", review)
    graph.add_conditional_edges(START, route, ["math", "prose"])
    graph.add_edge("math", "review")
    graph.add_edge("prose", "review")
    graph.add_conditional_edges("review", again, ["review", END])
    return graph.compile()
