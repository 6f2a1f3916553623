"""The AutoGen adapter against the real autogen-core / autogen-agentchat (pinned in
requirements-frameworks.txt): an `AssistantAgent` with autogen-ext's
`ReplayChatCompletionClient` (no network) uses `ShmMemory`; the story runs in two processes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from agent_coherence_shm import Conflict, Segment
from agent_coherence_shm.adapters import Artifacts
from agent_coherence_shm.adapters.autogen import ShmMemory
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.messages import MemoryQueryEvent
from autogen_core.memory import MemoryContent, MemoryMimeType
from autogen_core.model_context import UnboundedChatCompletionContext
from autogen_ext.models.replay import ReplayChatCompletionClient

from conftest import SMALL
from story import TIMEOUT, V1, V2, executor_process


def spec(text: str) -> MemoryContent:
    return MemoryContent(content=text, mime_type=MemoryMimeType.TEXT, metadata={"key": "task-spec"})


def memories_seen(memory: ShmMemory, task: str) -> list[str]:
    """Run an AssistantAgent with ``memory``; what its memory query handed the model."""
    agent = AssistantAgent(
        memory.artifacts.name,
        model_client=ReplayChatCompletionClient(["on it"]),
        memory=[memory],
    )
    result = asyncio.run(agent.run(task=task))
    events = [m for m in result.messages if isinstance(m, MemoryQueryEvent)]
    assert len(events) == 1
    return [str(c.content) for c in events[0].content]


def _executor(segment: str, go: Any, out: Any) -> None:
    with Segment.open(segment).attach("executor") as handle:
        memory = ShmMemory("team", Artifacts(handle))
        out.put(memories_seen(memory, "start on the spec"))
        go.get(timeout=TIMEOUT)  # the planner rewrote the spec
        try:
            asyncio.run(memory.add(spec("done, per " + V1)))
            out.put("stale add admitted")
        except Conflict as refused:
            out.put(("Conflict", refused.current, refused.yours))
        out.put(memories_seen(memory, "commit your work"))
        asyncio.run(
            memory.add(
                MemoryContent(
                    content="renamed to authenticateUser",
                    mime_type=MemoryMimeType.TEXT,
                    metadata={"key": "task-result"},
                )
            )
        )
        out.put("done")


def test_two_processes_share_memory_and_refuse_a_stale_add(name: str) -> None:
    Segment.create(name, **SMALL)
    with Segment.open(name).attach("planner") as handle:
        memory = ShmMemory("team", Artifacts(handle))
        asyncio.run(memory.add(spec(V1)))
        with executor_process(_executor, name) as (go, out):
            assert out.get(timeout=TIMEOUT) == [V1]
            asyncio.run(memory.add(spec(V2)))  # the planner's own version: admitted
            go.put("v2 written")
            assert out.get(timeout=TIMEOUT) == ("Conflict", 2, 1)
            assert out.get(timeout=TIMEOUT) == [V2]  # the executor's next read
            assert out.get(timeout=TIMEOUT) == "done"
        result = asyncio.run(memory.query(""))
        assert [c.content for c in result.results] == [V2, "renamed to authenticateUser"]


def test_memory_interface(seg: Segment) -> None:
    with seg.attach("a") as a_handle, seg.attach("b") as b_handle:
        a, b = ShmMemory("m", Artifacts(a_handle)), ShmMemory("m", Artifacts(b_handle))

        async def story() -> None:
            await a.add(MemoryContent(content="alpha fact", mime_type=MemoryMimeType.TEXT))
            await a.add(spec(V1))
            await b.add(MemoryContent(content={"beta": 2}, mime_type=MemoryMimeType.JSON))
            assert [c.content for c in (await b.query("")).results] == [
                "alpha fact",
                V1,
                {"beta": 2},
            ]
            assert [c.content for c in (await a.query("ALPHA")).results] == ["alpha fact"]
            assert [c.content for c in (await a.query("task-spec")).results] == [V1]
            context = UnboundedChatCompletionContext()
            result = await b.update_context(context)
            assert len(result.memories.results) == 3
            (message,) = await context.get_messages()
            assert V1 in str(message.content) and "alpha fact" in str(message.content)
            # b read v1 of the spec; a rewrites it; b's add from its stale view is refused,
            # and keeps its place in the order once b re-read it.
            await a.add(spec(V2))
            with pytest.raises(Conflict):
                await b.add(spec("from b's stale view"))
            assert [c.content for c in (await b.query("rename")).results] == [V2]
            await b.add(spec("b's rewrite of v2"))
            assert [c.content for c in (await a.query("")).results] == [
                "alpha fact",
                "b's rewrite of v2",
                {"beta": 2},
            ]
            await a.clear()
            assert (await b.query("")).results == []
            await b.close()

        asyncio.run(story())
