"""A client that goes away mid-call: the server must notice and exit, releasing its agent."""

import json
import time

import anyio
import mcp.client.stdio as sdk_stdio

from conftest import ccs


def test_disconnect_during_wait_changed(mcp_harness, monkeypatch):
    # The SDK does not expose the server process; wrap its spawn function to see it.
    spawned = []
    real_spawn = sdk_stdio._create_platform_compatible_process

    async def spawn(*args, **kwargs):
        process = await real_spawn(*args, **kwargs)
        spawned.append(process)
        return process

    monkeypatch.setattr(sdk_stdio, "_create_platform_compatible_process", spawn)

    async def main():
        async with mcp_harness.session("planner") as planner:
            await planner.ok("write", key="task/spec", content="v1")

            # The long wait runs in a task of our own, so leaving the session does not cancel
            # the request first (a cancelled request would send notifications/cancelled and the
            # server could end the wait cleanly): the server sees its stdin close mid-call.
            outcome = {}

            async def long_wait(executor):
                try:
                    outcome["result"] = await executor.raw(
                        "wait_changed", key="task/spec", since_version=1, timeout_ms=120_000
                    )
                except Exception as e:  # the connection closes under the call
                    outcome["error"] = e

            async with anyio.create_task_group() as tg:
                async with mcp_harness.session("executor") as executor:
                    server = spawned[-1]
                    tg.start_soon(long_wait, executor)
                    await anyio.sleep(0.5)  # the request is in the server, blocked in the wait
                    assert server.returncode is None
                    assert not outcome, f"wait_changed returned early: {outcome}"
                    t0 = time.monotonic()
                # Leaving the session closed the server's stdin with the wait still pending.
                closed = time.monotonic() - t0
                tg.cancel_scope.cancel()
            assert "result" not in outcome, f"the wait should not have completed: {outcome}"

            # The SDK gives a server 2 s after closing stdin, then SIGTERMs it. A server that
            # exited on its own has a non-negative return code (not killed by a signal).
            assert server.returncode is not None, "the server process is still running"
            assert server.returncode >= 0, (
                f"the server did not exit on stdin EOF during wait_changed; the SDK killed it "
                f"(returncode {server.returncode}, after {closed:.1f} s)"
            )

            # A new server can attach as the same agent at once: the old one detached.
            deadline = time.monotonic() + 5
            while True:
                try:
                    async with mcp_harness.session("executor") as again:
                        r = await again.ok("read", key="task/spec")
                        assert r["content"] == "v1"
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    await anyio.sleep(0.2)

            # And the planner's server was not disturbed.
            assert (await planner.ok("write", key="task/spec", content="v2"))["version"] == 2

    anyio.run(main)

    # No server process of this test is left.
    for process in spawned:
        assert process.returncode is not None
    status = json.loads(ccs("status", mcp_harness.seg, "--json").stdout)
    alive = [a["name"] for a in status["agents"] if a["alive"]]
    assert alive == [], f"agents still attached after every session closed: {alive}"
