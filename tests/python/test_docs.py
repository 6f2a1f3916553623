"""The examples in the package's docstrings run."""

from __future__ import annotations

import doctest

import pytest

import agent_coherence_shm
import agent_coherence_shm.langgraph


@pytest.mark.parametrize("module", [agent_coherence_shm, agent_coherence_shm.langgraph])
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module, raise_on_error=False)  # type: ignore[arg-type]
    assert result.attempted > 0 and result.failed == 0


def test_everything_public_has_a_docstring() -> None:
    for name in agent_coherence_shm.__all__:
        obj = getattr(agent_coherence_shm, name)
        if callable(obj):
            assert obj.__doc__, f"{name} has no docstring"
            for attr, member in vars(obj).items() if isinstance(obj, type) else []:
                if not attr.startswith("_") and callable(member):
                    assert member.__doc__, f"{name}.{attr} has no docstring"
    assert agent_coherence_shm.langgraph.ShmStore.__doc__
