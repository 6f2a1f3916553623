"""The OpenAI Agents SDK over the segment: a coherent ``Session``, artifact tools, run hooks.

- `ShmSession` implements the SDK's ``Session`` (``agents.memory.SessionABC``): the
  conversation items of ``session_id`` are one artifact, ``openai-agents/sessions/<id>``, shared
  by agents in several processes. Appending and popping are coherent read-modify-writes
  (`Artifacts.update`): an agent that appends after a peer did re-reads and keeps both.
- `artifact_tools` makes two function tools over shared artifacts (a task spec, a plan):
  ``read_artifact(key)`` and ``write_artifact(key, text)``. A write from a stale view (a peer
  wrote since this agent's last read) is refused with ``Conflict`` and the tool tells the model
  to read again, instead of silently overwriting the peer's version.
- `CoherenceHooks` (``agents.RunHooks``) records, per agent turn, the artifacts whose copy a
  peer's write invalidated (``stale``) next to the reads and writes the tools log.

Each process attaches its agent by name (``Segment.attach("planner")``) and passes the handle.

    from agents import Agent as OpenAIAgent, Runner
    seg = Segment.open_or_create("team-42")
    me = Artifacts(seg.attach("executor"))
    session = ShmSession("refactor", me)
    agent = OpenAIAgent(name="executor", tools=artifact_tools(me), ...)
    await Runner.run(agent, "go", session=session, hooks=CoherenceHooks(me))
"""

from __future__ import annotations

from typing import Any

from agents import FunctionTool, RunContextWrapper, RunHooks, function_tool
from agents.memory import SessionABC

from agent_coherence_shm import Conflict
from agent_coherence_shm.adapters.artifacts import Artifacts, Event

__all__ = ["ShmSession", "artifact_tools", "CoherenceHooks"]

PREFIX = "openai-agents/sessions/"


class ShmSession(SessionABC):
    """The conversation history of ``session_id`` in the segment, shared across processes."""

    def __init__(self, session_id: str, artifacts: Artifacts, session_settings: Any = None) -> None:
        self.session_id = session_id
        self.session_settings = session_settings
        self.artifacts = artifacts
        self.key = PREFIX + session_id

    async def get_items(self, limit: int | None = None) -> list[Any]:
        """The items, oldest first; the last ``limit`` of them if given."""
        items = self.artifacts.get(self.key, [])
        return items[-limit:] if limit else items

    async def add_items(self, items: list[Any]) -> None:
        """Append ``items`` after every item already there, whoever wrote them."""
        new = [dict(item) if isinstance(item, dict) else item for item in items]
        self.artifacts.update(self.key, lambda old: list(old) + new, [])

    async def pop_item(self) -> Any | None:
        """Remove and return the newest item (``None`` if there is none)."""
        popped: list[Any] = []

        def pop(old: list[Any]) -> list[Any]:
            popped[:] = old[-1:]
            return old[:-1]

        if not self.artifacts.get(self.key, []):
            return None
        self.artifacts.update(self.key, pop, [])
        return popped[0] if popped else None

    async def clear_session(self) -> None:
        """Remove every item."""
        self.artifacts.update(self.key, lambda _old: [], [])


def artifact_tools(artifacts: Artifacts) -> list[FunctionTool]:
    """``read_artifact`` and ``write_artifact`` function tools for ``artifacts``' agent."""

    @function_tool
    def read_artifact(key: str) -> str:
        """Read the current version of a shared artifact (a task spec, a plan).

        Args:
            key: The artifact's key, e.g. task/spec.
        """
        value, version = artifacts.get_versioned(key)
        if version == 0:
            return f"{key} does not exist"
        return f"{key} v{version}: {value}"

    @function_tool
    def write_artifact(key: str, text: str) -> str:
        """Write a new version of a shared artifact. Refused if another agent changed it since
        you last read it: then read it again and redo your work against the new version.

        Args:
            key: The artifact's key, e.g. task/spec.
            text: The new content.
        """
        try:
            version = artifacts.put(key, text)
        except Conflict as refused:
            return (
                f"refused (Conflict): {key} is at v{refused.current}, you last read "
                f"v{refused.yours}; read it again before writing"
            )
        return f"wrote {key} v{version}"

    return [read_artifact, write_artifact]


class CoherenceHooks(RunHooks[Any]):
    """Run hooks that log, at the start of each agent turn, which artifacts the agent read
    have changed since (``stale`` events), and every tool call; the reads and writes themselves
    are logged by `Artifacts` in the same list (``artifacts.events``)."""

    def __init__(self, artifacts: Artifacts) -> None:
        self.artifacts = artifacts

    @property
    def events(self) -> list[Event]:
        return self.artifacts.events

    async def on_agent_start(self, context: RunContextWrapper[Any], agent: Any) -> None:
        for key, held, current in self.artifacts.stale():
            self.events.append(Event("stale", self.artifacts.name, key, current, held))

    async def on_tool_end(
        self, context: RunContextWrapper[Any], agent: Any, tool: Any, result: object
    ) -> None:
        self.events.append(
            Event("tool", self.artifacts.name, getattr(tool, "name", "?"), 0, str(result))
        )
