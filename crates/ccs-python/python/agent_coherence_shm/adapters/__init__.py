"""Adapters that put other agent frameworks' shared state in the segment.

Each adapter uses only the core bindings (`Segment`, `Agent`): every framework-side agent is a
named `Agent` of the segment, so a peer's write invalidates its copy before the write returns,
its next read is a MISS that fetches the new version, and a write from a stale view is refused
with `Conflict`.

- :mod:`agent_coherence_shm.adapters.openai_agents`: a ``Session`` of the OpenAI Agents SDK,
  function tools over shared artifacts, and run hooks that record reads, writes and stale views;
- :mod:`agent_coherence_shm.adapters.crewai`: a CrewAI memory ``StorageBackend``;
- :mod:`agent_coherence_shm.adapters.autogen`: an AutoGen ``Memory``.

The frameworks are not dependencies of this package: import an adapter where its framework is
installed. See docs/python.md.
"""

from agent_coherence_shm.adapters.artifacts import Artifacts, Event

__all__ = ["Artifacts", "Event"]
