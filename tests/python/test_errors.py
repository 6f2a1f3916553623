"""Every agent_coherence::Error variant arrives as its own CoherenceError subclass, with the
Rust message and the variant's fields as attributes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import agent_coherence_shm as ccs
from agent_coherence_shm import Segment

from conftest import SMALL

ALL = [
    ccs.NotFound, ccs.Conflict, ccs.Held, ccs.Fenced, ccs.AgentBusy, ccs.BadLocation,
    ccs.SegmentNotFound, ccs.SegmentExists, ccs.ForeignOwner, ccs.Symlink, ccs.NotDurable,
    ccs.Corrupt, ccs.CapacityExceeded, ccs.PayloadTooLarge, ccs.BadKey, ccs.BadName,
    ccs.InvalidConfig, ccs.OsFailure,
]


def test_hierarchy() -> None:
    for error in ALL:
        assert issubclass(error, ccs.CoherenceError) and error.__module__ == "agent_coherence_shm"
        assert error.__doc__
    assert issubclass(ccs.CoherenceError, Exception)


def test_not_found_and_conflict_messages(seg: Segment) -> None:
    with seg.attach("a") as a, seg.attach("b") as b:
        with pytest.raises(ccs.NotFound) as e:
            a.get("nope")
        assert str(e.value) == "artifact `nope` does not exist (never written, or deleted)"
        assert e.value.key == "nope"
        a.put("k", b"1")
        b.get("k")
        a.put("k", b"2")
        with pytest.raises(ccs.Conflict) as c:
            b.put("k", b"3")
        assert str(c.value) == (
            "stale write to `k` refused: it is at version 2, your view is version 1; "
            "read it again, then write"
        )
        assert (c.value.key, c.value.current, c.value.yours) == ("k", 2, 1)


def test_held_and_fenced(seg: Segment) -> None:
    with seg.attach("a") as a, seg.attach("b") as b:
        hold = a.acquire("k", 0.02)
        with pytest.raises(ccs.Held) as held:
            b.acquire("k", 30)
        assert (held.value.key, held.value.by) == ("k", "a")
        assert "held exclusively by agent `a`" in str(held.value)
        time.sleep(0.1)  # the lease runs out: b reclaims, a is fenced
        b.acquire("k", 30).commit(b"b")
        with pytest.raises(ccs.Fenced) as fenced:
            hold.commit(b"late")
        assert fenced.value.key == "k" and "reclaimed" in str(fenced.value)
        assert b.get("k").bytes == b"b"


def test_agent_busy_bad_name(seg: Segment) -> None:
    with seg.attach("a"):
        with pytest.raises(ccs.AgentBusy) as busy:
            seg.attach("a")
        assert (busy.value.name, busy.value.pid) == ("a", os.getpid())
    with pytest.raises(ccs.BadName) as bad:
        seg.attach("")
    assert (bad.value.len, bad.value.max) == (0, 64)


def test_bad_key_payload_capacity(name: str) -> None:
    seg = Segment.create(name, max_agents=4, max_artifacts=3, arena_bytes=1 << 20, max_payload=1 << 12)
    with seg.attach("a") as a:
        with pytest.raises(ccs.BadKey) as bad:
            a.put("k" * 257, b"")
        assert (bad.value.len, bad.value.max) == (257, 256)
        with pytest.raises(ccs.PayloadTooLarge) as large:
            a.put("k", b"x" * 5000)
        assert (large.value.len, large.value.max) == (5000, 4096)
        a.put("k1", b"1")  # the refused "k" took a directory line: keys are never removed
        a.put("k2", b"2")
        with pytest.raises(ccs.CapacityExceeded) as full:
            a.put("k3", b"3")
        assert full.value.limit == 3 and full.value.what == "artifacts"
        assert str(full.value).startswith("segment is full:")


def test_segment_errors(name: str, tmp_path: Path) -> None:
    with pytest.raises(ccs.SegmentNotFound) as missing:
        Segment.open(name)
    assert missing.value.location == name
    Segment.create(name, **SMALL)
    with pytest.raises(ccs.SegmentExists) as exists:
        Segment.create(name, **SMALL)
    assert exists.value.location == name and "already exists" in str(exists.value)
    with pytest.raises(ccs.BadLocation) as bad:
        Segment.open("")
    assert bad.value.location == "" and bad.value.reason
    with pytest.raises(ccs.InvalidConfig):
        Segment.create(str(tmp_path / "invalid"), max_agents=0)
    with pytest.raises(ccs.OsFailure):
        Segment.open(str(tmp_path) + "/")  # a directory


def test_file_segment_errors(tmp_path: Path) -> None:
    path = tmp_path / "seg"
    Segment.create(str(path), **SMALL)
    link = tmp_path / "link"
    link.symlink_to(path)
    with pytest.raises(ccs.Symlink) as symlink:
        Segment.open(str(link))
    assert symlink.value.location == str(link)
    if os.geteuid() == 0:  # only root can give the file away
        os.chown(path, 65534, 65534)
        with pytest.raises(ccs.ForeignOwner) as foreign:
            Segment.open(str(path))
        assert foreign.value.owner_uid == 65534 and foreign.value.your_uid == 0
        Segment.open(str(path), allow_other_owner=True)
        os.chown(path, 0, 0)
    with open(path, "r+b") as f:
        f.write(b"\xff" * 8)  # the magic
    with pytest.raises(ccs.Corrupt) as corrupt:
        Segment.open(str(path))
    assert corrupt.value.location == str(path) and "corrupted" in str(corrupt.value)


def test_not_durable_is_mapped() -> None:
    # A failing msync needs a failing device; the variant's mapping is exercised by type only.
    assert issubclass(ccs.NotDurable, ccs.CoherenceError)
