"""The OpenAI Agents SDK adapter against the real SDK (pinned in requirements-frameworks.txt):
a scripted `Model` stands in for the LLM (no network); the Runner, the tools, the session and
the hooks are the SDK's own. The story runs in two processes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from agent_coherence_shm import Segment
from agent_coherence_shm.adapters import Artifacts
from agent_coherence_shm.adapters.openai_agents import CoherenceHooks, ShmSession, artifact_tools
from agents import Agent as SdkAgent
from agents import ModelSettings, Runner, set_tracing_disabled
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from conftest import SMALL
from story import TIMEOUT, V1, V2, executor_process


class ScriptedModel(Model):
    """Answers each model call with the next scripted step: a tool call or a final message."""

    def __init__(self, steps: list[tuple[str, Any]]) -> None:
        self.steps = list(steps)
        self.calls = 0

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        kind, what = self.steps.pop(0)
        self.calls += 1
        if kind == "call":
            name, arguments = what
            item: Any = ResponseFunctionToolCall(
                type="function_call",
                call_id=f"call-{self.calls}",
                name=name,
                arguments=json.dumps(arguments),
                id=f"fc-{self.calls}",
            )
        else:
            item = ResponseOutputMessage(
                id=f"msg-{self.calls}",
                type="message",
                role="assistant",
                status="completed",
                content=[ResponseOutputText(type="output_text", text=what, annotations=[])],
            )
        return ModelResponse(output=[item], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("the story does not stream")


def run_turn(art: Artifacts, prompt: str, steps: list[tuple[str, Any]]) -> list[str]:
    """One turn of the agent named after ``art``'s agent; the tool results, in order."""
    set_tracing_disabled(True)
    hooks = CoherenceHooks(art)
    before = len(art.events)
    agent = SdkAgent(
        name=art.name,
        instructions="You work on the shared task spec.",
        model=ScriptedModel(steps),
        model_settings=ModelSettings(),
        tools=artifact_tools(art),
    )
    asyncio.run(Runner.run(agent, prompt, session=ShmSession("refactor", art), hooks=hooks))
    return [
        f"{e.kind}:{e.key}:{e.version}:{e.detail}" if e.kind != "tool" else f"tool:{e.detail}"
        for e in art.events[before:]
        if e.kind in ("tool", "stale", "conflict")
    ]


def _executor(segment: str, go: Any, out: Any) -> None:
    with Segment.open(segment).attach("executor") as handle:
        art = Artifacts(handle)
        out.put(
            run_turn(
                art,
                "start on the spec",
                [
                    ("call", ("read_artifact", {"key": "task/spec"})),
                    ("say", "working from the spec"),
                ],
            )
        )
        go.get(timeout=TIMEOUT)  # the planner rewrote the spec
        out.put(
            run_turn(
                art,
                "commit your work",
                [
                    ("call", ("write_artifact", {"key": "task/spec", "text": "done, per v1"})),
                    ("call", ("read_artifact", {"key": "task/spec"})),
                    (
                        "call",
                        (
                            "write_artifact",
                            {"key": "task/result", "text": "renamed to authenticateUser"},
                        ),
                    ),
                    ("say", "committed against v2"),
                ],
            )
        )
        items = asyncio.run(ShmSession("refactor", art).get_items())
        out.put([i.get("role") or i.get("type") for i in items])


def test_two_processes_share_a_session_and_refuse_a_stale_write(name: str) -> None:
    Segment.create(name, **SMALL)
    with Segment.open(name).attach("planner") as handle:
        planner = Artifacts(handle)
        assert run_turn(
            planner,
            "write the spec",
            [
                ("call", ("write_artifact", {"key": "task/spec", "text": V1})),
                ("say", "spec v1 written"),
            ],
        ) == ["tool:wrote task/spec v1"]
        with executor_process(_executor, name) as (go, out):
            assert out.get(timeout=TIMEOUT) == [f"tool:task/spec v1: {V1}"]
            assert run_turn(
                planner,
                "the team chose authenticateUser",
                [
                    ("call", ("write_artifact", {"key": "task/spec", "text": V2})),
                    ("say", "spec v2 written"),
                ],
            ) == ["tool:wrote task/spec v2"]
            go.put("v2 written")
            assert out.get(timeout=TIMEOUT) == [
                # At the start of its turn the executor's copy of the spec is known stale...
                "stale:task/spec:2:1",
                # ...its write from that view is refused, its next read gets v2.
                "conflict:task/spec:2:1",
                "tool:refused (Conflict): task/spec is at v2, you last read v1; "
                "read it again before writing",
                f"tool:task/spec v2: {V2}",
                "tool:wrote task/result v1",
            ]
            # One conversation, written by both processes in order: each turn's user input,
            # tool calls, tool outputs and final message.
            roles = out.get(timeout=TIMEOUT)
        turn = ["user", "function_call", "function_call_output", "assistant"]
        calls = ["function_call", "function_call_output"]
        # The planner's v1, the executor's read, the planner's v2, the executor's three calls.
        assert roles == turn * 3 + ["user"] + calls * 3 + ["assistant"]
        assert planner.get("task/result") == "renamed to authenticateUser"


def test_session_operations_are_coherent_between_two_agents(seg: Segment) -> None:
    with seg.attach("a") as a_handle, seg.attach("b") as b_handle:
        a = ShmSession("s", Artifacts(a_handle))
        b = ShmSession("s", Artifacts(b_handle))

        async def story() -> None:
            await a.add_items([{"role": "user", "content": "one"}])
            assert await b.get_items() == [{"role": "user", "content": "one"}]
            await a.add_items([{"role": "user", "content": "two"}])
            # b's copy was invalidated: its append re-reads and keeps a's item.
            await b.add_items([{"role": "user", "content": "three"}])
            assert [i["content"] for i in await a.get_items()] == ["one", "two", "three"]
            assert [i["content"] for i in await a.get_items(limit=2)] == ["two", "three"]
            assert (await a.pop_item()) == {"role": "user", "content": "three"}
            assert [i["content"] for i in await b.get_items()] == ["one", "two"]
            await b.clear_session()
            assert await a.get_items() == [] and await a.pop_item() is None

        asyncio.run(story())
        events = [(e.kind, e.agent) for e in b.artifacts.events if e.kind == "read"]
        assert ("read", "b") in events
