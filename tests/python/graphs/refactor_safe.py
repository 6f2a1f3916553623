"""Known safe: the refactor story's planner/executor graph. The planner writes the task spec
(state and store), the executor reads it in the next superstep and writes its result; nothing
runs in parallel and nothing is read before a peer rewrites it. Expected: no risk."""

from typing import TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore

TASK = ("task",)


class State(TypedDict, total=False):
    request: str
    spec: str
    result: str


def planner(state: State, *, store: BaseStore) -> dict:
    spec = f"rename validateUser: {state['request']}"
    store.put(TASK, "spec", {"text": spec})
    return {"spec": spec}


def executor(state: State, *, store: BaseStore) -> dict:
    item = store.get(TASK, "spec")
    done = f"applied {item.value['text'] if item else state['spec']}"
    store.put(TASK, "result", {"text": done})
    return {"result": done}


def build_graph():
    graph = StateGraph(State)
    graph.add_node("planner", planner)
    graph.add_node("executor", executor)
    graph.add_edge(START, "planner")
    graph.add_edge("planner", "executor")
    graph.add_edge("executor", END)
    return graph
