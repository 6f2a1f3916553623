"""The refactor story with two LangGraph graphs in two processes sharing one ShmStore.

A planner graph writes the task spec (v1: rename `validateUser` to `verifyUser`). An executor
graph, in another process, reads it (a MISS, v1) and prepares its edits. The planner then
revises the spec (v2: the new name is `authenticateUser`). Before committing, the executor
reads the spec again: that read is a MISS (the planner's write invalidated its copy before it
returned) and returns v2, so the executor redoes its edits against v2 and commits the right
rename. Had it written from its stale view, the write would have been refused with Conflict.

The language model is LangChain's GenericFakeChatModel: no API key, no network.

    pip install agent-coherence-shm[langgraph] langchain-core
    python examples/python/refactor_graphs.py            # spawns the planner and executor
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from typing import TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import END, START, StateGraph

import agent_coherence_shm as ccs
from agent_coherence_shm.langgraph import ShmStore

TASK = ("task",)  # the shared scope; namespace[0] is the agent
TIMEOUT = 30.0


def log(who: str, text: str) -> None:
    print(f"{who:>8}: {text}", flush=True)


# ------------------------------------------------------------------------------- planner


class PlanState(TypedDict, total=False):
    request: str
    spec: str
    version: int


def planner(segment: str) -> None:
    store = ShmStore(segment, agent_from_namespace=True)
    model = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage("Rename validateUser to verifyUser in src/auth.ts and every caller."),
                AIMessage("Rename validateUser to authenticateUser in src/auth.ts and every caller."),
            ]
        )
    )
    ns = ("planner",) + TASK

    def plan(state: PlanState) -> PlanState:
        spec = model.invoke([HumanMessage(state["request"])]).content
        version = state.get("version", 0) + 1
        store.put(ns, "spec", {"text": spec, "version": version})
        log("planner", f"wrote task/spec v{version}: {spec}")
        return {"spec": str(spec), "version": version}

    graph = StateGraph(PlanState)
    graph.add_node("plan", plan)
    graph.add_edge(START, "plan")
    graph.add_edge("plan", END)
    app = graph.compile(store=store)

    state = app.invoke({"request": "plan the rename of validateUser"})
    # Wait until the executor has started working from v1, then revise the spec.
    if store.wait_for(ns, "progress", timeout=TIMEOUT) is None:
        raise SystemExit("planner: the executor never started")
    log("planner", "executor is working from v1; revising the spec")
    app.invoke({"request": "the team chose authenticateUser", "version": state["version"]})
    store.close()


# ------------------------------------------------------------------------------ executor


class ExecState(TypedDict, total=False):
    spec: str
    spec_version: int
    edits: str
    committed: str


def executor(segment: str) -> None:
    store = ShmStore(segment, agent_from_namespace=True)
    model = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage("edit src/auth.ts: validateUser -> verifyUser (4 call sites)"),
                AIMessage("edit src/auth.ts: validateUser -> authenticateUser (4 call sites)"),
            ]
        )
    )
    ns = ("executor",) + TASK

    def read_spec(state: ExecState) -> ExecState:
        item = store.get(ns, "spec")
        assert item is not None
        log("executor", f"read task/spec v{item.value['version']}: {item.value['text']}")
        return {"spec": item.value["text"], "spec_version": item.value["version"]}

    def work(state: ExecState) -> ExecState:
        edits = str(model.invoke([HumanMessage(state["spec"])]).content)
        log("executor", f"prepared {edits!r}")
        store.put(ns, "progress", {"working_from": state["spec_version"]})
        # Meanwhile the planner revises the spec (in this story it does so now).
        store.wait_for(ns, "spec", since=state["spec_version"], timeout=TIMEOUT)
        return {"edits": edits}

    def commit(state: ExecState) -> ExecState:
        current = store.is_current(ns, "spec")
        item = store.get(ns, "spec")  # the commit-time read
        assert item is not None
        kind = "HIT" if current else "MISS"
        log("executor", f"commit-time read of task/spec: {kind}, v{item.value['version']}")
        edits = state["edits"]
        if item.value["version"] != state["spec_version"]:
            log("executor", f"spec changed under me (v{state['spec_version']} -> v{item.value['version']}): redoing the edits")
            edits = str(model.invoke([HumanMessage(item.value["text"])]).content)
        store.put(ns, "result", {"edits": edits, "spec_version": item.value["version"]})
        log("executor", f"committed {edits!r} against spec v{item.value['version']}")
        return {"committed": edits}

    graph = StateGraph(ExecState)
    graph.add_node("read_spec", read_spec)
    graph.add_node("work", work)
    graph.add_node("commit", commit)
    graph.add_edge(START, "read_spec")
    graph.add_edge("read_spec", "work")
    graph.add_edge("work", "commit")
    graph.add_edge("commit", END)
    app = graph.compile(store=store)

    if store.wait_for(ns, "spec", timeout=TIMEOUT) is None:
        raise SystemExit("executor: no spec was written")
    final = app.invoke({})
    # A stale write is refused: from a view of v1, writing the spec fails with Conflict.
    store.close()
    assert "authenticateUser" in final["committed"], final
    stale = ShmStore(segment, agent_from_namespace=True)
    stale.get(("reviewer",) + TASK, "spec")
    store2 = ShmStore(segment, agent_from_namespace=True)
    store2.put(("planner2",) + TASK, "spec", {"text": "v3 by another planner", "version": 3})
    try:
        stale.put(("reviewer",) + TASK, "spec", {"text": "approved v2", "version": 2})
        raise SystemExit("executor: a stale write was admitted")
    except ccs.Conflict as refused:
        log("reviewer", f"stale write refused: {refused}")
    stale.close()
    store2.close()


def main() -> int:
    segment = sys.argv[1] if len(sys.argv) > 1 else f"refactor-graphs-{os.getpid()}"
    ShmStore(segment, agent_from_namespace=True).close()  # create the segment before either process opens it
    try:
        ctx = mp.get_context("spawn")
        procs = [
            ctx.Process(target=executor, args=(segment,), name="executor"),
            ctx.Process(target=planner, args=(segment,), name="planner"),
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(TIMEOUT * 2)
        failed = [p.name for p in procs if p.exitcode != 0]
        if failed:
            print(f"failed: {failed}", file=sys.stderr)
            return 1
        with ShmStore(segment, agent_from_namespace=True) as store:
            result = store.get(("main",) + TASK, "result")
            assert result is not None
            print(f"    main: task/result = {result.value}")
        return 0
    finally:
        ccs.Segment.destroy(segment)


if __name__ == "__main__":
    sys.exit(main())
