"""check, list, status, wait_changed, acquire/commit/release and binary content, across sessions."""

import base64
import time

import anyio


def test_check_list_status(mcp_harness):
    async def main():
        async with mcp_harness.session("planner") as planner, mcp_harness.session("executor") as executor:
            for key in ("a/1", "a/2", "b/1"):
                assert (await planner.ok("write", key=key, content=f"content of {key}"))["version"] == 1

            assert (await executor.ok("list"))["keys"] == ["a/1", "a/2", "b/1"]
            assert (await executor.ok("list", prefix="a/"))["keys"] == ["a/1", "a/2"]
            assert (await executor.ok("list", prefix="zzz"))["keys"] == []

            assert await planner.ok("check", key="a/1") == {"key": "a/1", "held": 1, "current": 1, "is_current": True}
            # The executor never read a/1: it holds no version.
            c = await executor.ok("check", key="a/1")
            assert (c["key"], c["held"], c["current"], c["is_current"]) == ("a/1", None, 1, False)

            await executor.refused("read", "not_found", key="no/such/key")

            s = await executor.ok("status")
            assert s["schema"] == 1
            names = {a["name"] for a in s["agents"]}
            assert {"planner", "executor"} <= names
            alive = {a["name"]: a["alive"] for a in s["agents"]}
            assert alive["planner"] is True and alive["executor"] is True
            arts = {a["key"]: a for a in s["artifacts"]}
            assert arts["a/1"]["version"] == 1
            assert arts["a/1"]["writer"] == "planner"

    anyio.run(main)


def test_wait_changed(mcp_harness):
    async def main():
        async with mcp_harness.session("planner") as planner, mcp_harness.session("executor") as executor:
            assert (await planner.ok("write", key="task/spec", content="v1"))["version"] == 1

            # Nothing changes: a short wait times out.
            t0 = time.monotonic()
            w = await executor.ok("wait_changed", key="task/spec", since_version=1, timeout_ms=200)
            assert (w["key"], w["changed"], w["version"]) == ("task/spec", False, 1)
            assert time.monotonic() - t0 >= 0.15

            # Already past: returns at once.
            w = await executor.ok("wait_changed", key="task/spec", since_version=0, timeout_ms=10_000)
            assert (w["changed"], w["version"]) == (True, 1)

            # A wait in one session is woken by a write in the other.
            results = {}

            async def waiter():
                results["t0"] = time.monotonic()
                results["wait"] = await executor.ok("wait_changed", key="task/spec", since_version=1, timeout_ms=20_000)
                results["t1"] = time.monotonic()

            async with anyio.create_task_group() as tg:
                tg.start_soon(waiter)
                await anyio.sleep(0.5)  # let the wait reach the server and block
                assert "wait" not in results, "wait_changed returned before anything changed"
                assert (await planner.ok("write", key="task/spec", content="v2"))["version"] == 2

            w = results["wait"]
            assert (w["key"], w["changed"], w["version"]) == ("task/spec", True, 2)
            assert results["t1"] - results["t0"] < 10, "the wait was not woken by the write"

            # The server still answers other calls after a wait.
            assert (await executor.ok("read", key="task/spec"))["content"] == "v2"

    anyio.run(main)


def test_acquire_commit_release(mcp_harness):
    async def main():
        async with mcp_harness.session("planner") as planner, mcp_harness.session("executor") as executor:
            assert (await planner.ok("write", key="task/spec", content="v1"))["version"] == 1

            a = await executor.ok("acquire", key="task/spec", lease_ms=30_000)
            assert a["key"] == "task/spec"
            assert isinstance(a["version"], int)

            # While the executor holds it, the planner can neither write nor acquire it.
            h = await planner.refused("write", "held", key="task/spec", content="planner's v2")
            assert h["by"] == "executor"
            h = await planner.refused("acquire", "held", key="task/spec", lease_ms=1_000)
            assert h["by"] == "executor"
            # Nor commit or release what it does not hold.
            await planner.refused("commit", "not_held", key="task/spec", content="x")
            await planner.refused("release", "not_held", key="task/spec")

            c = await executor.ok("commit", key="task/spec", content="executor's v2")
            assert c == {"key": "task/spec", "version": 2}

            r = await planner.ok("read", key="task/spec")
            assert (r["version"], r["hit"], r["content"]) == (2, False, "executor's v2")

            # acquire then release without committing: nothing is written, the key is free again.
            await executor.ok("acquire", key="other", lease_ms=30_000)
            assert await executor.ok("release", key="other") == {"key": "other", "released": True}
            await executor.refused("release", "not_held", key="other")
            await planner.ok("acquire", key="other", lease_ms=30_000)
            await planner.ok("release", key="other")

    anyio.run(main)


def test_binary_content_base64(mcp_harness):
    blob = bytes(range(256)) * 4 + b"\xff\xfe\x00"

    async def main():
        async with mcp_harness.session("planner") as planner, mcp_harness.session("executor") as executor:
            w = await planner.ok("write", key="bin/blob", content=base64.b64encode(blob).decode(), encoding="base64")
            assert w == {"key": "bin/blob", "version": 1}

            r = await executor.ok("read", key="bin/blob")
            assert r["encoding"] == "base64", "bytes that are not UTF-8 must come back as base64"
            assert r["content_type"] == "application/octet-stream"
            assert base64.b64decode(r["content"]) == blob
            assert r["size"] == len(blob)

            # Text written as base64 reads back as the same bytes, in whichever encoding.
            text = "héllo, wörld\n".encode()
            await planner.ok("write", key="txt", content=base64.b64encode(text).decode(), encoding="base64")
            r = await executor.ok("read", key="txt")
            got = base64.b64decode(r["content"]) if r["encoding"] == "base64" else r["content"].encode()
            assert got == text
            assert r["size"] == len(text)

            # Empty content is a valid artifact.
            await planner.ok("write", key="empty", content="")
            r = await executor.ok("read", key="empty")
            assert (r["content"], r["size"]) == ("", 0)

            await planner.refused("write", "bad_request", key="bin/bad", content="!!! not base64 !!!", encoding="base64")
            await executor.refused("read", "not_found", key="bin/bad")

    anyio.run(main)
