"""A LangGraph store in an agent-coherence segment: ``ShmStore``, shared across processes.

A drop-in for LangGraph's ``InMemoryStore`` (same results, same search order, same ``batch``
semantics, vector search with ``index=``) whose items live in shared memory: graphs in several
Python processes that open the same segment share them, with MESI invalidation. Each store acts
as a named agent; a write from an agent whose copy is stale is refused with ``Conflict``.

>>> import os
>>> from agent_coherence_shm.langgraph import ShmStore
>>> name = f"team-42-{os.getpid()}"      # a name under /dev/shm, or a file path
>>> planner = ShmStore(name, agent="planner")
>>> executor = ShmStore(name, agent="executor")   # usually in another process
>>> planner.put(("user-1", "memories"), "spec", {"rename": "validateUser"})
>>> executor.get(("user-1", "memories"), "spec").value
{'rename': 'validateUser'}
>>> executor.close(); planner.close(destroy=True)

Modules: ``store`` (``ShmStore``: addressing, reads, writes, batches), ``_queries`` (its
searches and namespace listings), ``_keys`` (artifact keys),
``_codec`` (item bytes, LangGraph's serializer), ``_items`` (the ``Item``s returned, decoded on
first access), ``_filters`` (filters and namespace conditions), ``_index`` (vector search and a
batch's embeddings), ``_agents`` (one attachment per agent per process; the observer),
``_conflicts`` (conflicts named by namespace and key); the native ``StoreEntry`` does ``get`` and
the rewrite of a held item in one call each. See ``docs/python.md``.
"""

from agent_coherence_shm.langgraph._keys import artifact_key
from agent_coherence_shm.langgraph.store import DEFAULT_AGENT, DEFAULT_PREFIX, OBSERVER, ShmStore

__all__ = ["ShmStore", "DEFAULT_AGENT", "DEFAULT_PREFIX", "OBSERVER", "artifact_key"]
