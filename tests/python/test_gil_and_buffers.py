"""The GIL is released while blocking; Ctrl-C interrupts a wait; zero-copy reads pin their
version through the buffer protocol."""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import threading
import time

import pytest

import agent_coherence_shm as ccs
from agent_coherence_shm import Segment


def test_wait_changed_releases_the_gil(seg: Segment) -> None:
    with seg.attach("waiter") as waiter, seg.attach("writer") as writer:
        writer.put("k", b"1")
        counted = 0
        stop = threading.Event()

        def count() -> None:  # pure Python: runs only while the waiter does not hold the GIL
            nonlocal counted
            while not stop.is_set():
                counted += 1

        counter = threading.Thread(target=count)
        counter.start()
        try:
            started = time.monotonic()
            assert waiter.wait_changed("k", 1, timeout=0.5) is None
            assert time.monotonic() - started >= 0.5
            during = counted
        finally:
            stop.set()
            counter.join()
        assert during > 10_000, f"the counter ran only {during} times while the wait blocked"


def test_wait_changed_wakes_on_a_write_from_another_thread(seg: Segment) -> None:
    with seg.attach("waiter") as waiter, seg.attach("writer") as writer:
        writer.put("k", b"1")
        timer = threading.Timer(0.1, writer.put, args=("k", b"2"))
        timer.start()
        try:
            assert waiter.wait_changed("k", 1, timeout=10) == 2
        finally:
            timer.join()


def test_wait_changed_is_interrupted_by_a_signal(seg: Segment) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with seg.attach("waiter") as waiter, seg.attach("writer") as writer:
            writer.put("k", b"1")
            timer = threading.Timer(0.2, os.kill, args=(os.getpid(), signal.SIGINT))
            timer.start()
            started = time.monotonic()
            with pytest.raises(KeyboardInterrupt):
                waiter.wait_changed("k", 1)  # no timeout: only the signal ends it
            assert time.monotonic() - started < 5
            timer.join()
    finally:
        signal.signal(signal.SIGINT, previous)


def test_memoryview_keeps_its_version_after_newer_puts(seg: Segment) -> None:
    with seg.attach("reader") as reader, seg.attach("writer") as writer:
        writer.put("doc", b"version one")
        buf = reader.read("doc")
        assert (buf.version, buf.hit, len(buf)) == (1, False, 11)
        view = memoryview(buf)
        assert view.readonly and view.format == "B" and view.nbytes == 11
        del buf  # the view alone keeps the pin
        gc.collect()
        for i in range(50):  # newer versions, each needing arena space
            writer.put("doc", b"version %d" % (i + 2) + b"." * 1000)
        assert bytes(view) == b"version one"
        assert view[0:7].tobytes() == b"version"
        with pytest.raises(TypeError):
            view[0] = 0  # read-only
        assert reader.get("doc").version == 51
        view.release()


def test_pins_are_released_when_views_are_gone(seg: Segment) -> None:
    with seg.attach("reader") as reader, seg.attach("writer") as writer:
        writer.put("doc", b"v1")
        live_before = seg.fsck()["descriptors"]["live"]
        buf = reader.read("doc")
        views = [memoryview(buf) for _ in range(3)]
        writer.put("doc", b"v2")
        assert seg.fsck()["descriptors"]["live"] == live_before + 1  # v1 pinned beside v2
        del buf
        views.pop().release()
        gc.collect()
        assert seg.fsck()["descriptors"]["live"] == live_before + 1  # two views still pin it
        views.clear()
        gc.collect()
        assert seg.fsck()["descriptors"]["live"] == live_before  # v1 freed


def test_buffer_refuses_writable_requests_and_copies(seg: Segment) -> None:
    with seg.attach("a") as a:
        a.put("doc", b"abc")
        buf = a.read("doc")
        assert buf.tobytes() == bytes(buf) == b"abc"
        assert a.put("copy", buf) == 1  # a buffer is a valid payload (copied)
        assert a.get("copy").bytes == b"abc"
        with pytest.raises((TypeError, BufferError)):
            ctypes.c_char.from_buffer(buf)  # asks for a writable buffer
        a.put("empty", b"")
        assert bytes(memoryview(a.read("empty"))) == b""
        with pytest.raises(ccs.NotFound):
            a.read("missing")


def test_a_live_buffer_keeps_its_agent_attached(seg: Segment) -> None:
    # The buffer's pin is recorded under its agent, and re-attaching a name releases the
    # previous holder's pins: so a buffer keeps its agent attached even after `close()`.
    writer = seg.attach("writer")
    reader = seg.attach("reader")
    writer.put("doc", b"version one")
    view = memoryview(reader.read("doc"))
    reader.close()
    with pytest.raises(ccs.AgentBusy):
        seg.attach("reader")
    for i in range(20):
        writer.put("doc", b"version %d" % (i + 2) + b"." * 1000)
    assert bytes(view) == b"version one"
    view.release()
    gc.collect()
    again = seg.attach("reader")
    assert again.get("doc").version == 21
    again.close()
    writer.close()
