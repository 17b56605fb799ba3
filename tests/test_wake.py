"""The wake datagram: the listener on its own with real sockets, then a real worker woken by ``try_wake``."""

from __future__ import annotations

import json
import socket
import stat
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import psutil
import pytest
from eventtools import noop_worker

import bench.noop_jobs  # noqa: F401 - registers the noop type in this process too
from engine.events import auth
from engine.events.client import try_wake
from engine.events.wake import MAX_DATAGRAM, WakeListener, send_wake, wake_message

TOKEN = auth.new_token()
IDLE_POLL_S = 1.0  # the worker's idle poll (engine.queue.huey_queue.IDLE_POLL_S): what a missed wake costs


@pytest.fixture
def listener() -> Iterator[tuple[WakeListener, threading.Event]]:
    woken = threading.Event()
    wake = WakeListener(TOKEN, woken.set)
    wake.start()
    yield wake, woken
    wake.stop()


def send_raw(port: int, data: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(data, ("127.0.0.1", port))


# ------------------------------------------------------------------ the listener alone


def test_the_right_token_wakes(listener: tuple[WakeListener, threading.Event]) -> None:
    wake, woken = listener
    assert send_wake({"wake_port": wake.port, "token": TOKEN}) is True
    assert woken.wait(2.0)
    woken.clear()
    assert send_wake({"wake_port": wake.port, "token": TOKEN})  # again: every datagram is a wake
    assert woken.wait(2.0)


@pytest.mark.parametrize(
    "data",
    [
        wake_message("not-the-token"),
        wake_message(TOKEN[:-1]),
        TOKEN.encode(),  # the token without the prefix
        b"",
        b"\x00\xffgarbage\r\n",
        wake_message(TOKEN) + b"\n",
        wake_message(TOKEN) + b"x" * (4 * MAX_DATAGRAM),  # oversized: the token comes first, but it is not the datagram
    ],
    ids=["wrong-token", "short-token", "no-prefix", "empty", "garbage", "trailing-byte", "oversized"],
)
def test_anything_else_is_ignored(listener: tuple[WakeListener, threading.Event], data: bytes) -> None:
    wake, woken = listener
    send_raw(wake.port, data)
    assert not woken.wait(0.3)
    assert wake.thread is not None and wake.thread.is_alive()  # ignored, and still listening:
    send_wake({"wake_port": wake.port, "token": TOKEN})
    assert woken.wait(2.0)


def test_a_wrong_token_through_send_wake_is_ignored(listener: tuple[WakeListener, threading.Event]) -> None:
    wake, woken = listener
    assert send_wake({"wake_port": wake.port, "token": auth.new_token()}) is True  # sent, unanswered
    assert not woken.wait(0.3)


def test_a_failing_callback_does_not_end_the_listener() -> None:
    calls: list[float] = []
    woken = threading.Event()

    def on_wake() -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("boom")
        woken.set()

    wake = WakeListener(TOKEN, on_wake)
    wake.start()
    try:
        send_wake({"wake_port": wake.port, "token": TOKEN})
        send_wake({"wake_port": wake.port, "token": TOKEN})
        assert woken.wait(2.0)
        assert len(calls) == 2
    finally:
        wake.stop()


def test_stop_ends_the_thread_and_frees_the_port() -> None:
    woken = threading.Event()
    wake = WakeListener(TOKEN, woken.set)
    port = wake.start()
    assert port == wake.port and port > 0
    thread = wake.thread
    assert thread is not None and thread.is_alive() and thread.daemon
    started = time.monotonic()
    wake.stop()
    assert time.monotonic() - started < 1.0
    assert not thread.is_alive()
    assert not woken.is_set()  # the stop's own datagram is no wake
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", port))  # free again
    wake.stop()  # twice is harmless


def test_listens_on_loopback_only(listener: tuple[WakeListener, threading.Event]) -> None:
    wake, _ = listener
    ours = [c for c in psutil.Process().net_connections(kind="udp") if c.laddr.port == wake.port]
    assert [c.laddr.ip for c in ours] == ["127.0.0.1"]


@pytest.mark.parametrize("info", [{"token": TOKEN}, {"token": TOKEN, "wake_port": "1234"}, {"wake_port": 1234}])
def test_send_wake_without_a_usable_port_or_token_sends_nothing(info: dict[str, Any]) -> None:
    assert send_wake(info) is False


def test_try_wake_without_a_worker_is_false(jobdeck_home: Any) -> None:
    assert try_wake() is False


# ------------------------------------------------------------------ the real worker


def start_delays(ops: Any, count: int, spacing_s: float) -> list[float]:
    """Seconds from commit to start of ``count`` noop jobs, each submitted ``spacing_s`` after the previous one
    finished, so the worker is idle, waiting out its poll, every time."""
    delays = []
    for _ in range(count):
        time.sleep(spacing_s)
        job = ops.create("noop", {})
        deadline = time.monotonic() + 10
        while (done := ops.get(job["id"]))["status"] != "succeeded":
            assert time.monotonic() < deadline, done
            time.sleep(0.01)
        started, created = datetime.fromisoformat(done["started_at"]), datetime.fromisoformat(done["created_at"])
        delays.append((started - created).total_seconds())
    return delays


def test_a_submission_starts_at_once_with_a_datagram(ops: Any, worker_factory: Callable[..., Any]) -> None:
    worker = noop_worker(worker_factory)
    info = worker.info()
    assert isinstance(info["wake_port"], int) and not isinstance(info["wake_port"], bool) and info["wake_port"] > 0
    assert stat.S_IMODE(worker.info_path.stat().st_mode) == 0o600
    udp = [c for c in psutil.Process(worker.pid).net_connections(kind="udp") if c.laddr.port == info["wake_port"]]
    assert [c.laddr.ip for c in udp] == ["127.0.0.1"]

    wakes: list[bool] = []
    ops.after_enqueue = lambda: wakes.append(try_wake(ops.paths))
    # Each job waits for nothing but the wake: without it, it would start at the worker's next poll, which, 1.2 s
    # after the last job finished, is some 0.8 s away.
    delays = start_delays(ops, 5, spacing_s=1.2 * IDLE_POLL_S)
    assert wakes == [True] * 5
    assert max(delays) < 0.5 * IDLE_POLL_S, delays
    assert statistics.median(delays) < 0.25 * IDLE_POLL_S, delays


def test_an_older_worker_without_a_wake_port_is_woken_over_the_websocket(
    ops: Any, worker_factory: Callable[..., Any]
) -> None:
    worker = noop_worker(worker_factory)
    info = worker.info()
    del info["wake_port"]  # as an older worker writes the file
    worker.info_path.write_text(json.dumps(info))
    assert "wake_port" not in worker.info()

    wakes: list[bool] = []
    ops.after_enqueue = lambda: wakes.append(try_wake(ops.paths))
    delays = start_delays(ops, 2, spacing_s=1.2 * IDLE_POLL_S)
    assert wakes == [True, True]
    assert max(delays) < 0.5 * IDLE_POLL_S, delays
