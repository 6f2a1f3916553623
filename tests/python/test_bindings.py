"""The bindings' protocol: reads, writes, conditional writes, holds, waiting, status, fsck."""

from __future__ import annotations

import pytest

import agent_coherence_shm as ccs
from agent_coherence_shm import Segment

from conftest import SMALL


def test_get_put_hit_miss_and_versions(seg: Segment) -> None:
    with seg.attach("planner") as planner, seg.attach("executor") as executor:
        assert planner.put("task/spec", b"rename foo to bar") == 1
        read = executor.get("task/spec")
        assert (read.bytes, read.version, read.hit) == (b"rename foo to bar", 1, False)
        data, version, hit = executor.get("task/spec")  # unpacks as a tuple
        assert (data, version, hit) == (b"rename foo to bar", 1, True)
        assert planner.put("task/spec", "rename foo to baz") == 2  # str is UTF-8
        assert not executor.is_valid("task/spec")
        check = executor.check("task/spec")
        assert (check.held, check.current, check.valid, check.is_current) == (1, 2, False, False)
        read = executor.get("task/spec")
        assert (read.bytes, read.version, read.hit) == (b"rename foo to baz", 2, False)
        assert executor.check("task/spec").is_current


def test_conditional_writes(seg: Segment) -> None:
    with seg.attach("a") as a, seg.attach("b") as b:
        a.put("k", b"1")
        b.get("k")
        a.put("k", b"2")
        with pytest.raises(ccs.Conflict) as refused:
            b.put("k", b"stale")
        assert (refused.value.current, refused.value.yours, refused.value.key) == (2, 1, "k")
        assert b.put_if("k", 2, bytearray(b"cas")) == 3
        with pytest.raises(ccs.Conflict):
            a.put_if("k", 2, b"lost")
        assert a.put_blind("k", memoryview(b"blind")) == 4
        assert b.get("k").bytes == b"blind"
        assert b.put_if("new", 0, b"first") == 1


def test_delete_is_a_version(seg: Segment) -> None:
    with seg.attach("a") as a, seg.attach("b") as b:
        a.put("k", b"1")
        assert a.delete("k") == 2
        with pytest.raises(ccs.NotFound):
            b.get("k")
        assert a.list() == []
        assert a.put("k", b"again") == 3
        assert seg.list("k") == ["k"]


def test_payload_types_are_checked(seg: Segment) -> None:
    with seg.attach("a") as a:
        with pytest.raises(TypeError):
            a.put("k", 42)  # type: ignore[arg-type]


def test_cached_copy(seg: Segment) -> None:
    with seg.attach("planner") as planner, seg.attach("executor") as executor:
        planner.put("plan", b"v1")
        plan = executor.cached("plan")
        assert (plan.version, plan.data) == (0, b"")
        assert plan.refresh() is False
        assert (plan.version, plan.data, plan.key) == (1, b"v1", "plan")
        assert plan.refresh() is True
        assert plan.data is plan.data  # one bytes object per version
        planner.put("plan", b"v2")
        assert plan.refresh() is False
        assert plan.data == b"v2"
        # update(): poll() and, on a MISS, the new version's (version, data) in one call.
        assert plan.update() == 2
        planner.put("plan", b"v3")
        version, data = plan.update()
        assert (version, data) == (3, b"v3") and data is plan.data
        assert plan.update() == 3 and plan.poll() == 3
        planner.delete("plan")
        with pytest.raises(ccs.NotFound):
            plan.update()


def test_write_guard_commit_release_renew(seg: Segment) -> None:
    with seg.attach("a") as a, seg.attach("b") as b:
        assert not b.being_written("design")
        with a.acquire("design", 30) as hold:
            assert hold.active and hold.key == "design" and hold.version == 0
            assert b.being_written("design")
            with pytest.raises(ccs.Held) as held:
                b.acquire("design", 30)
            assert held.value.by == "a"
            hold.renew(60)
            assert hold.commit(b"decided") == 1
            assert not hold.active
            assert not b.being_written("design")
            with pytest.raises(RuntimeError):
                hold.commit(b"again")
        with b.acquire("design", 30) as hold:  # released on exit without a commit
            pass
        assert not hold.active
        hold = a.acquire("design", 30)
        hold.release()
        assert b.acquire("design", 30).commit(b"b's") == 2
        with pytest.raises(ValueError):
            a.acquire("design", -1)


def test_wait_changed(seg: Segment) -> None:
    with seg.attach("a") as a:
        a.put("k", b"1")
        assert a.wait_changed("k", 0) == 1
        assert a.wait_changed("k", 1, timeout=0.05) is None
        with pytest.raises(ccs.NotFound):
            a.wait_changed("never", 0, timeout=0.01)


def test_status_list_fsck_config(seg: Segment) -> None:
    with seg.attach("planner") as planner, seg.attach("executor") as executor:
        planner.put("task/spec", b"v1")
        executor.get("task/spec")
        planner.put("task/notes", b"n")
        status = seg.status()
        assert status["config"] == seg.config
        assert seg.config["max_agents"] == SMALL["max_agents"]
        assert [a["name"] for a in status["agents"]] == ["planner", "executor"]
        assert all(a["alive"] for a in status["agents"])
        spec = next(a for a in status["artifacts"] if a["key"] == "task/spec")
        assert (spec["version"], spec["size"], spec["writer"], spec["deleted"]) == (1, 2, "planner", False)
        assert {s["agent"]: (s["state"], s["held"]) for s in spec["states"]} == {
            "planner": ("S", 1),
            "executor": ("S", 1),
        }
        assert seg.list("task/") == ["task/notes", "task/spec"]
        assert executor.list("task/s") == ["task/spec"]
        report = seg.fsck()
        assert report["clean"] and report["problems"] == [] and report["descriptors"]["live"] == 2
        assert seg.fsck(repair=True)["clean"]


def test_open_attach_close(name: str) -> None:
    created = Segment.open_or_create(name, **SMALL)
    opened = Segment.open(name)
    assert opened.location == created.location == name
    assert not opened.durable_puts
    agent = opened.attach("a")
    assert agent.name == "a" and agent.segment.location == name and not agent.closed
    agent.put("k", b"v")
    agent.close()
    agent.close()  # idempotent
    assert agent.closed and "closed" in repr(agent)
    with pytest.raises(RuntimeError):
        agent.get("k")
    again = created.attach("a")  # the name is free again, its state kept
    assert again.get("k").hit
    again.close()
    assert Segment.open_or_create(name, max_agents=2).config["max_agents"] == SMALL["max_agents"]
    Segment.destroy(name)


def test_module_constants() -> None:
    assert ccs.MAX_KEY_BYTES == 256 and ccs.MAX_NAME_BYTES == 64
    assert ccs.__version__
