"""AutoGen (``autogen-core`` / ``autogen-agentchat``) over the segment: a coherent ``Memory``.

`ShmMemory` implements ``autogen_core.memory.Memory``. Every memory content is an artifact of
its own, ``autogen/memory/<name>/<key>``: ``metadata["key"]`` names it (a task spec that agents
rewrite: ``{"key": "task-spec"}``), otherwise a fresh key is made. Agents in several processes
that use a memory of the same name see one set of contents: ``update_context`` (what an
``AssistantAgent`` calls before each model call) and ``query`` read the current version of each,
and ``add`` of a key whose current version this agent has not read (a peer rewrote it since)
is refused with ``Conflict``, instead of overwriting the peer's version from a stale view.

    memory = ShmMemory("team", Artifacts(Segment.open("team-42").attach("executor")))
    agent = AssistantAgent("executor", model_client=client, memory=[memory])
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from autogen_core import CancellationToken
from autogen_core.memory import Memory, MemoryContent, MemoryQueryResult, UpdateContextResult
from autogen_core.model_context import ChatCompletionContext
from autogen_core.models import SystemMessage

from agent_coherence_shm.adapters.artifacts import Artifacts

__all__ = ["ShmMemory"]


class ShmMemory(Memory):
    """An AutoGen memory whose contents live in the segment, shared by agents in several
    processes with MESI coherence."""

    def __init__(self, name: str, artifacts: Artifacts) -> None:
        self.name = name
        self.artifacts = artifacts
        self.prefix = f"autogen/memory/{name}/"

    def _entries(self) -> list[tuple[str, MemoryContent]]:
        entries = []
        for key in self.artifacts.keys(self.prefix):
            stored = self.artifacts.get(key)
            if stored is not None:
                entries.append(
                    (stored["added"], key, MemoryContent.model_validate(stored["content"]))
                )
        return [(key, content) for _, key, content in sorted(entries, key=lambda e: (e[0], e[1]))]

    async def update_context(self, model_context: ChatCompletionContext) -> UpdateContextResult:
        """Add the current contents to ``model_context`` as one system message."""
        contents = [content for _, content in self._entries()]
        if contents:
            lines = [f"{i}. {content.content}" for i, content in enumerate(contents, 1)]
            await model_context.add_message(
                SystemMessage(
                    content="\nShared memory (current versions):\n" + "\n".join(lines) + "\n"
                )
            )
        return UpdateContextResult(memories=MemoryQueryResult(results=contents))

    async def query(
        self,
        query: str | MemoryContent = "",
        cancellation_token: CancellationToken | None = None,
        **kwargs: Any,
    ) -> MemoryQueryResult:
        """The contents whose text contains ``query`` (all of them for an empty query), or the
        content whose key is ``query``."""
        text = query.content if isinstance(query, MemoryContent) else query
        text = str(text).lower()
        results = [
            content
            for key, content in self._entries()
            if not text or key == self.prefix + text or text in str(content.content).lower()
        ]
        return MemoryQueryResult(results=results)

    async def add(
        self, content: MemoryContent, cancellation_token: CancellationToken | None = None
    ) -> None:
        """Store ``content`` under ``metadata["key"]`` (or a new key): `Conflict` if a peer
        rewrote that key since this agent last read it."""
        key = str((content.metadata or {}).get("key") or uuid.uuid4().hex)
        full = self.prefix + key
        old = self.artifacts.agent.check(full)
        added = time.time_ns()
        if old.current:  # keep its place in the order: a rewrite is not a new memory
            previous = self.artifacts.get(full) if old.valid else None
            if previous is not None:
                added = previous["added"]
        self.artifacts.put(full, {"added": added, "content": content.model_dump(mode="json")})

    async def clear(self) -> None:
        """Delete every content (reading each first: clearing is a decision on what is there)."""
        for key in self.artifacts.keys(self.prefix):
            self.artifacts.get(key)
            self.artifacts.delete(key)

    async def close(self) -> None:
        """Nothing to release: the agent handle belongs to the caller."""
