"""The planner/executor refactor story, told by two `ccs mcp` server processes.

The planner writes v1 of the task spec, the executor reads it, the planner finds a fourth
caller and writes v2; the executor's write from its v1 view is refused with a typed conflict
naming both versions, it re-reads v2 and writes v3, and the planner's copy is now stale."""

import anyio

SPEC_V1 = "Rename validateUser -> authenticateUser. Update 3 callers: middleware.ts, login.ts, refresh.ts."
SPEC_V2 = SPEC_V1.replace("3 callers", "4 callers").rstrip(".") + ", session.ts."
SPEC_V3 = SPEC_V2 + "\nDone: 4 callers renamed (executor)."


def test_refactor_story_two_processes(mcp_harness):
    async def main():
        async with mcp_harness.session("planner") as planner, mcp_harness.session("executor") as executor:
            assert await planner.ok("write", key="task/spec", content=SPEC_V1) == {"key": "task/spec", "version": 1}

            r = await executor.ok("read", key="task/spec")
            assert r["key"] == "task/spec"
            assert r["version"] == 1
            assert r["hit"] is False
            assert r["encoding"] == "utf-8"
            assert r["content_type"] == "text/plain; charset=utf-8"
            assert r["content"] == SPEC_V1
            assert r["size"] == len(SPEC_V1.encode())

            # A second read with nothing changed is a HIT on the executor's valid copy.
            r = await executor.ok("read", key="task/spec")
            assert (r["version"], r["hit"], r["content"]) == (1, True, SPEC_V1)

            # The planner discovers the fourth caller.
            assert (await planner.ok("write", key="task/spec", content=SPEC_V2))["version"] == 2

            # The executor still works from v1: its write is refused, naming both versions.
            c = await executor.refused("write", "conflict", key="task/spec", content="stale work from v1")
            assert c["current_version"] == 2
            assert c["your_version"] == 1
            assert c["retryable"] is True

            # Its next read is a MISS and gets v2.
            r = await executor.ok("read", key="task/spec")
            assert (r["version"], r["hit"], r["content"]) == (2, False, SPEC_V2)
            assert r["size"] == len(SPEC_V2.encode())

            assert await executor.ok("write", key="task/spec", content=SPEC_V3) == {"key": "task/spec", "version": 3}

            # The planner's copy is now stale.
            assert await planner.ok("check", key="task/spec") == {
                "key": "task/spec",
                "held": 2,
                "current": 3,
                "is_current": False,
            }
            r = await planner.ok("read", key="task/spec")
            assert (r["version"], r["hit"], r["content"]) == (3, False, SPEC_V3)
            c = await planner.ok("check", key="task/spec")
            assert (c["held"], c["current"], c["is_current"]) == (3, 3, True)

    anyio.run(main)


def test_expected_version_compare_and_set(mcp_harness):
    async def main():
        async with mcp_harness.session("planner") as planner, mcp_harness.session("executor") as executor:
            assert (await planner.ok("write", key="plan", content="a"))["version"] == 1
            assert (await planner.ok("write", key="plan", content="b"))["version"] == 2
            # expected_version is a compare-and-set on the current version, whatever the caller read.
            c = await executor.refused("write", "conflict", key="plan", content="x", expected_version=1)
            assert (c["current_version"], c["your_version"], c["retryable"]) == (2, 1, True)
            assert (await executor.ok("write", key="plan", content="c", expected_version=2))["version"] == 3
            r = await planner.ok("read", key="plan")
            assert (r["version"], r["content"]) == (3, "c")

    anyio.run(main)
