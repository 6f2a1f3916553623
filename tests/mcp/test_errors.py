"""Malformed requests and limits: the server refuses them and keeps serving."""

import anyio
from mcp import MCPError

TOOLS = {"read", "write", "check", "list", "status", "wait_changed", "acquire", "commit", "release"}


async def must_fail(tool, name, **arguments):
    """The call fails: the SDK raises, or the result is an error. Which of the two is not asserted."""
    try:
        result = await tool.raw(name, **arguments)
    except (MCPError, RuntimeError, ValueError) as e:
        return e
    assert result.is_error, f"{name}({arguments!r}) should fail, got {result!r}"
    return result


def test_lists_the_tools(mcp_harness):
    async def main():
        async with mcp_harness.session("planner") as planner:
            listed = await planner.session.list_tools()
            names = {t.name for t in listed.tools}
            assert TOOLS <= names, f"missing tools: {TOOLS - names}"
            for t in listed.tools:
                assert t.description, f"tool {t.name} has no description"
                assert t.input_schema.get("type") == "object"

    anyio.run(main)


def test_malformed_requests(mcp_harness):
    async def main():
        async with mcp_harness.session("planner") as planner:
            await must_fail(planner, "no_such_tool", key="x")
            await must_fail(planner, "read")  # missing key
            await must_fail(planner, "write", key="x")  # missing content
            await must_fail(planner, "wait_changed", key="x")  # missing since_version and timeout_ms
            await must_fail(planner, "read", key=42)  # wrong type
            await must_fail(planner, "write", key="x", content="y", encoding="latin-1")  # unknown encoding
            # Nothing was written by any of them, and the server still answers.
            assert (await planner.ok("list"))["keys"] == []
            assert (await planner.ok("write", key="x", content="fine"))["version"] == 1

    anyio.run(main)


def test_too_large(mcp_harness):
    async def main():
        async with mcp_harness.session("planner", "--max-content", "1024") as planner:
            await planner.ok("write", key="exact", content="a" * 1024)
            t = await planner.refused("write", "too_large", key="big", content="b" * 2000)
            assert (t["size"], t["max"]) == (2000, 1024)
            # The limit is on the decoded bytes, also for base64 content.
            import base64

            t = await planner.refused(
                "write", "too_large", key="big", content=base64.b64encode(b"\x00" * 1500).decode(), encoding="base64"
            )
            assert (t["size"], t["max"]) == (1500, 1024)
            assert (await planner.ok("list"))["keys"] == ["exact"]

    anyio.run(main)
