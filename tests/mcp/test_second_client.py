"""Defects found by driving `ccs mcp` with a second real client (the TypeScript SDK and the MCP
Inspector), each pinned here: a closed stderr must not stop the server answering or make it
exit with a panic; wait_changed on a never-written key waits for its first write; --mirror
never follows a symbolic link out of its directory; an unknown tool or a wrongly typed
argument is named in the error."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time

import anyio
from mcp import MCPError

from conftest import CCS


class RawClient:
    """Newline-delimited JSON-RPC over a `ccs mcp` process's stdio, with its stderr closed by
    the client right after the start (as a client that does not drain stderr may do)."""

    def __init__(self, seg: str, agent: str):
        self.proc = subprocess.Popen(
            [str(CCS), "mcp", seg, "--agent", agent],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.proc.stderr.close()
        self.next_id = 0

    def send(self, message: dict) -> None:
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        self.proc.stdin.flush()

    def receive(self, want_id: int, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no answer to request {want_id} within {timeout} s"
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if not ready:
                continue
            line = self.proc.stdout.readline()
            assert line, f"the server closed stdout (exit {self.proc.poll()}) before answering {want_id}"
            message = json.loads(line)
            if message.get("id") == want_id:
                return message

    def request(self, method: str, params: dict, wait: bool = True):
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        return self.receive(self.next_id) if wait else self.next_id

    def initialize(self) -> None:
        self.request(
            "initialize",
            {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
        )
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def close(self) -> int:
        """Close stdin and return the exit status (killing the server after 10 s)."""
        self.proc.stdin.close()
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the server did not exit within 10 s of stdin closing")


def test_closed_stderr_neither_silences_nor_kills_the_server(segment):
    client = RawClient(segment, "planner")
    try:
        client.initialize()
        # A refused call is logged on stderr, which is closed: it must still be answered.
        answer = client.request("tools/call", {"name": "read", "arguments": {"key": "missing"}})
        result = answer["result"]
        assert result["isError"] is True
        assert json.loads(result["content"][0]["text"])["error"] == "not_found"
        ok = client.request("tools/call", {"name": "write", "arguments": {"key": "k", "content": "v"}})
        assert json.loads(ok["result"]["content"][0]["text"])["version"] == 1
        # The client goes away in the middle of a wait: a clean exit, not a panic (101).
        client.request(
            "tools/call",
            {"name": "wait_changed", "arguments": {"key": "k", "since_version": 1, "timeout_ms": 60000}},
            wait=False,
        )
        time.sleep(0.3)
        assert client.proc.poll() is None
    finally:
        status = client.close()
    assert status == 0, f"the server exited with status {status}"


def test_wait_changed_waits_for_the_first_write(mcp_harness):
    async def main():
        async with mcp_harness.session("planner") as planner, mcp_harness.session("sub-agent") as sub:
            outcome = {}

            async def wait_for_spec():
                outcome["wait"] = await sub.ok("wait_changed", key="task/spec", since_version=0, timeout_ms=20_000)

            async with anyio.create_task_group() as tg:
                tg.start_soon(wait_for_spec)
                await anyio.sleep(0.5)
                assert not outcome, f"the wait returned before the first write: {outcome}"
                await planner.ok("write", key="task/spec", content="the first spec")
            assert outcome["wait"] == {"key": "task/spec", "changed": True, "version": 1}
            # A wait that times out on a key still never written says so, without an error.
            t = await sub.ok("wait_changed", key="never/written", since_version=0, timeout_ms=300)
            assert t == {"key": "never/written", "changed": False, "version": 0}
            assert (await sub.ok("list"))["keys"] == ["task/spec"]

    anyio.run(main)


def test_mirror_does_not_follow_links_out_of_its_directory(mcp_harness, tmp_path):
    mirror = tmp_path / "mirror"
    outside = tmp_path / "outside"
    mirror.mkdir()
    outside.mkdir()
    os.symlink(outside, mirror / "notes")  # planted inside the mirror directory
    os.symlink(outside / "victim", mirror / "plan")

    async def main():
        async with mcp_harness.session("planner", "--mirror", str(mirror)) as planner:
            r = await planner.refused("write", "mirror_link", key="notes/x", content="must not land outside")
            assert "symbolic link" in r["message"], r
            r = await planner.refused("write", "mirror_link", key="plan", content="the plan")
            assert "symbolic link" in r["message"], r
            await planner.ok("write", key="elsewhere", content="ok")

    anyio.run(main)
    assert list(outside.iterdir()) == [], "something was written outside the mirror directory"
    assert (mirror / "plan").is_symlink() and (mirror / "elsewhere").read_text() == "ok"


async def failure_message(tool, name, **arguments) -> str:
    """The text of a failed call: the protocol error's message, or the refused result's."""
    try:
        result = await tool.raw(name, **arguments)
    except MCPError as e:
        return str(e)
    assert result.is_error, f"{name}({arguments!r}) should fail"
    return result.content[0].text


def test_errors_name_the_tool_and_the_argument(mcp_harness):
    async def main():
        async with mcp_harness.session("planner") as planner:
            m = await failure_message(planner, "no_such_tool", key="x")
            assert "no_such_tool" in m and "read" in m, m
            m = await failure_message(planner, "read", key=42)
            assert "`key`" in m and "read" in m and "string" in m, m
            m = await failure_message(planner, "wait_changed", key="x", since_version="one", timeout_ms=5)
            assert "`since_version`" in m and "integer" in m, m
            m = await failure_message(planner, "write", key="x")
            assert "`content`" in m and "missing" in m, m
            assert (await planner.ok("write", key="x", content="fine"))["version"] == 1

    anyio.run(main)
