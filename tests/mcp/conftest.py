"""Fixtures for the real-client tests of `ccs mcp`.

Every test gets its own segment (created with `ccs init`, removed with `ccs destroy`) and talks
to real `ccs mcp` server processes through the official MCP Python SDK over stdio: one server
process per agent, exactly as a coding agent would start them.

The tests are plain synchronous pytest functions that drive async code with `anyio.run`, so no
pytest plugin is needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

ROOT = Path(__file__).resolve().parents[2]
CCS = Path(os.environ.get("CCS_BIN", ROOT / "target" / "release" / "ccs"))


def ccs(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the `ccs` binary (not through MCP) and return the completed process."""
    return subprocess.run([str(CCS), *args], capture_output=True, text=True, check=check, timeout=60)


class Tool:
    """An MCP client session on one `ccs mcp` server process (one agent)."""

    def __init__(self, session: ClientSession, agent: str):
        self.session = session
        self.agent = agent

    async def raw(self, name: str, **arguments: Any):
        """The SDK's CallToolResult, unparsed."""
        return await self.session.call_tool(name, arguments, read_timeout_seconds=30)

    async def call(self, name: str, **arguments: Any) -> tuple[bool, dict[str, Any]]:
        """Call a tool; return (is_error, the JSON object of its single text content)."""
        result = await self.raw(name, **arguments)
        assert len(result.content) == 1, f"{name}: expected one content, got {result.content!r}"
        content = result.content[0]
        assert content.type == "text", f"{name}: expected text content, got {content!r}"
        body = json.loads(content.text)
        assert isinstance(body, dict), f"{name}: expected a JSON object, got {body!r}"
        return bool(result.is_error), body

    async def ok(self, name: str, **arguments: Any) -> dict[str, Any]:
        """Call a tool that must succeed; return its JSON object."""
        is_error, body = await self.call(name, **arguments)
        assert not is_error, f"{self.agent}: {name}({arguments!r}) failed: {body!r}"
        return body

    async def refused(self, name: str, kind: str, **arguments: Any) -> dict[str, Any]:
        """Call a tool that must be refused with error KIND; return its JSON object."""
        is_error, body = await self.call(name, **arguments)
        assert is_error, f"{self.agent}: {name}({arguments!r}) should be refused with {kind}, got {body!r}"
        assert body.get("error") == kind, f"{self.agent}: {name}: expected error {kind!r}, got {body!r}"
        assert isinstance(body.get("message"), str) and body["message"], f"no message in {body!r}"
        return body


class Harness:
    """What a test needs: the segment, a way to open sessions, and a place for server logs."""

    def __init__(self, seg: str, tmp_path: Path):
        self.seg = seg
        self.tmp_path = tmp_path
        self.logs: list[Path] = []

    def params(self, agent: str, *extra: str) -> StdioServerParameters:
        return StdioServerParameters(command=str(CCS), args=["mcp", self.seg, "--agent", agent, *extra])

    @asynccontextmanager
    async def session(self, agent: str, *extra: str) -> AsyncIterator[Tool]:
        """Start `ccs mcp SEG --agent AGENT EXTRA...`, initialize, and yield a Tool on it.

        Leaving the context closes the server's stdin (and the SDK kills it if it lingers)."""
        log = self.tmp_path / f"server-{agent}-{len(self.logs)}.stderr"
        self.logs.append(log)
        with open(log, "w") as errlog:
            async with stdio_client(self.params(agent, *extra), errlog=errlog) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    yield Tool(session, agent)

    def server_logs(self) -> str:
        out = []
        for log in self.logs:
            if log.exists():
                text = log.read_text(errors="replace").strip()
                if text:
                    out.append(f"--- {log.name}\n{text}")
        return "\n".join(out)


def pytest_sessionstart(session: pytest.Session) -> None:
    if not CCS.exists():
        raise pytest.UsageError(f"{CCS} does not exist: run `cargo build --release -p ccs-cli` first")


@pytest.fixture
def segment() -> str:
    """A fresh segment for one test, destroyed at teardown."""
    seg = f"ccs-mcp-test-{os.getpid()}-{uuid.uuid4().hex[:10]}"
    ccs("init", seg, "--agents", "8", "--artifacts", "64", "--arena", "4M", "--max-payload", "64K")
    try:
        yield seg
    finally:
        ccs("destroy", seg, check=False)


@pytest.fixture
def mcp_harness(segment: str, tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    harness = Harness(segment, tmp_path)
    yield harness
    # Servers log on stderr only; show what they said when a test fails.
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        logs = harness.server_logs()
        if logs:
            print(f"\nserver stderr:\n{logs}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report
