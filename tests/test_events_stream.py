"""The event stream end to end: replay without loss across killed clients and restarted workers, slow clients,
progress coalescing, and `jobdeck watch`."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eventtools import (
    CliWatch,
    Recorder,
    client,
    create_many,
    finished,
    ledger_events,
    noop_worker,
    run_async,
)

from engine.config import Paths
from engine.events.client import EventStream
from engine.watch import format_event


def _wire_seqs(events: list[dict[str, Any]]) -> list[int]:
    return [e["seq"] for e in events]


# ------------------------------------------------------------------ a client killed mid-stream resumes with since


@run_async
async def test_replay_after_a_killed_client_is_exact(worker_factory: Callable[..., Any], jobdeck_home: Path) -> None:
    noop_worker(worker_factory)
    first = CliWatch(jobdeck_home, "--json", "--since", "0")
    try:
        c = await client(jobdeck_home)
        creating = asyncio.create_task(create_many(c, 300))
        # Kill the watcher (SIGKILL: no goodbye) while events are still flowing.
        await asyncio.to_thread(first.read_until, lambda _: len(first.json_seqs()) >= 250)
    finally:
        first.kill()
    seen_before = first.json_seqs()
    await creating
    done = Recorder()
    c.on_event = done
    await c.subscribe(0)
    await done.wait_for(finished(300))
    everything = ledger_events(jobdeck_home)
    assert len(everything) == 900
    assert seen_before[-1] < everything[-1]["seq"], "the first client was not killed mid-stream"

    resumed = CliWatch(jobdeck_home, "--json", "--since", str(seen_before[-1]))
    try:
        await asyncio.to_thread(resumed.read_until, lambda _: bool(resumed.json_seqs()[-1:] == [everything[-1]["seq"]]))
    finally:
        resumed.kill()
    combined = [json.loads(line) for line in first.lines + resumed.lines]
    stream = [e for e in combined if "seq" in e and e["type"].startswith("job.")]
    assert _wire_seqs(stream) == _wire_seqs(everything)  # exact: no gap, no duplicate, same order
    assert stream == everything  # and each event is the ledger's, as stored
    await c.close()


# ------------------------------------------------------------------ worker restarts: seq continues, streams resume


def _printed(seq: int) -> Callable[[list[str]], bool]:
    return lambda lines: any(line.startswith(f"#{seq} ") for line in lines)


@run_async
async def test_worker_restart_seq_continues_and_streams_resume(
    worker_factory: Callable[..., Any], jobdeck_home: Path
) -> None:
    first = noop_worker(worker_factory)
    states: list[str] = []
    stream = EventStream(Paths(jobdeck_home), since=0, on_state=states.append, max_backoff_s=0.5)
    received = Recorder()

    async def consume() -> None:
        async for event in stream.events():
            received(event)

    consumer = asyncio.create_task(consume())
    watch = CliWatch(jobdeck_home, "--since", "0")  # human-readable
    try:
        c = await client(jobdeck_home)
        await create_many(c, 50)
        await received.wait_for(finished(50))
        await c.close()
        last_before = ledger_events(jobdeck_home)[-1]["seq"]
        await asyncio.to_thread(watch.read_until, _printed(last_before))  # watch is live on the first worker
        assert await asyncio.to_thread(first.stop) == 0

        second = noop_worker(worker_factory)
        assert second.info()["token"] != first.info_path and second.pid != first.pid
        c = await client(jobdeck_home)
        await create_many(c, 50)
        await received.wait_for(finished(100))
        await c.close()
        everything = ledger_events(jobdeck_home)
        assert everything[-1]["seq"] > last_before
        assert received.seqs() == _wire_seqs(everything) == list(range(1, len(everything) + 1))
        assert received.job_events() == everything
        assert states.count("connected") >= 2 and "reconnecting" in states
        assert stream.last_seq == everything[-1]["seq"]

        last = everything[-1]
        lines = await asyncio.to_thread(watch.read_until, _printed(last["seq"]))
        printed = [int(line.split()[0][1:]) for line in lines if line.startswith("#")]
        assert printed == list(range(1, last["seq"] + 1)), "watch lost or repeated events across the restart"
    finally:
        watch.kill()
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        await stream.close()


@run_async
async def test_a_worker_killed_mid_run_loses_no_event(worker_factory: Callable[..., Any], jobdeck_home: Path) -> None:
    """SIGKILL with jobs running: the next worker recovers them; the stream shows it all, in order, once."""
    first = noop_worker(worker_factory, concurrency=2)
    stream = EventStream(Paths(jobdeck_home), since=0, max_backoff_s=0.5)
    received = Recorder()

    async def consume() -> None:
        async for event in stream.events():
            received(event)

    consumer = asyncio.create_task(consume())
    try:
        c = await client(jobdeck_home)
        await create_many(c, 6, {"sleep_s": 0.5, "progress_steps": 5})
        await received.wait_for(lambda evs: any(e.get("type") == "job.progress" for e in evs))
        await c.close()
        first.kill()  # no clean exit: worker.json stays behind, naming a dead pid
        assert first.info_path.exists()
        noop_worker(worker_factory, concurrency=2)
        await received.wait_for(finished(6))
        everything = ledger_events(jobdeck_home)
        assert received.seqs() == [e["seq"] for e in everything] == list(range(1, len(everything) + 1))
        kinds = [e["event"] for e in everything]
        assert "lease_expired" in kinds  # the jobs the dead worker held were handed back, and ran again
        assert kinds.count("succeeded") == 6
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        await stream.close()


# ------------------------------------------------------------------ a client that stops reading


def _stalled_subscriber(port: int, token: str) -> socket.socket:
    """A websocket client written by hand, with a tiny receive buffer, that subscribes and then never reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)  # byte by byte: not one byte of the stream after the headers is read
    assert response.startswith(b"HTTP/1.1 101"), response
    payload = json.dumps({"type": "subscribe", "since": 0}).encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + masked)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server still sends; returns once the server has closed or cut the connection."""
    sock.settimeout(60)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


@run_async
async def test_a_client_that_stops_reading_delays_no_one(
    worker_factory: Callable[..., Any], jobdeck_home: Path
) -> None:
    # A stuck client is cut off once a send has waited this long (30 s by default; shorter keeps the test short).
    stall_s = 3.0
    info = noop_worker(worker_factory, env={"JOBDECK_EVENT_STALL_S": str(stall_s)}).info()
    stalled = await asyncio.to_thread(_stalled_subscriber, info["port"], info["token"])
    # Its sends block within the first few hundred events (a 2 KiB receive buffer), and the reaper looks every
    # stall_s / 2: by then it has been cut off, however fast the burst below ran.
    cut_by = asyncio.get_running_loop().time() + stall_s * 2 + 2.0
    try:
        live = Recorder()
        c = await client(jobdeck_home, live)
        await c.subscribe(0)
        total = 1500
        await create_many(c, total // 2)
        late = Recorder()  # joins mid-burst: its replay hands over to the live feed while events keep coming
        c2 = await client(jobdeck_home, late)
        await c2.subscribe(0)
        await create_many(c, total - total // 2)
        await live.wait_for(finished(total))
        await late.wait_for(finished(total))
        everything = ledger_events(jobdeck_home)
        assert len(everything) == 3 * total
        assert live.seqs() == late.seqs() == _wire_seqs(everything)
        stats = await c.request("stats")
        assert stats["by_status"]["succeeded"] == total
        # The stalled client was cut off rather than buffered for without bound: reading now ends at a close
        # (a client still being served would block here until the timeout), short of the whole stream.
        await asyncio.sleep(max(0.0, cut_by - asyncio.get_running_loop().time()))
        received = await asyncio.to_thread(_read_until_closed, stalled)
        whole = sum(len(json.dumps(e, separators=(",", ":"))) for e in everything)
        assert len(received) < whole
        await c.close()
        await c2.close()
    finally:
        stalled.close()


@run_async
async def test_a_burst_bigger_than_the_queue_does_not_disconnect_a_reading_client(
    worker_factory: Callable[..., Any], jobdeck_home: Path
) -> None:
    """Retrying 2,100 failed jobs commits 2,100 events at once: more than a client's queue holds."""
    from engine.events.server import CLIENT_QUEUE

    count = CLIENT_QUEUE + 100
    noop_worker(worker_factory)
    c = await client(jobdeck_home)
    await create_many(c, count, {"permanent": True})
    setup = Recorder()
    c.on_event = setup
    await c.subscribe(0)
    await setup.wait_for(finished(count, "failed"))
    start = setup.seqs()[-1]
    watcher = Recorder()
    w = await client(jobdeck_home, watcher)
    await w.subscribe(start)
    await watcher.wait_for(lambda evs: any(e.get("type") == "replay.done" for e in evs))
    assert (await c.request("retry_all_failed"))["count"] == count
    await watcher.wait_for(finished(count, "failed"))
    everything = ledger_events(jobdeck_home)
    assert len(everything) == start + 3 * count
    assert watcher.seqs() == [e["seq"] for e in everything if e["seq"] > start]
    assert not w.closed.is_set(), "a client that kept reading was disconnected"
    assert sum(1 for e in watcher.events if e.get("type") == "replay.done") == 1
    await w.close()
    await c.close()


# ------------------------------------------------------------------ progress


@run_async
async def test_progress_is_coalesced_and_not_stored(worker_factory: Callable[..., Any], jobdeck_home: Path) -> None:
    noop_worker(worker_factory)
    events = Recorder()
    c = await client(jobdeck_home, events)
    await c.subscribe(0)
    job = await c.request("create", job_type="noop", parameters={"sleep_s": 1.0, "progress_steps": 400})
    await events.wait_for(finished(1))
    progress = [e for e in events.events if e.get("type") == "job.progress"]
    assert progress, "no progress event arrived"
    assert all(e["job_id"] == job["id"] and "seq" not in e for e in progress)
    dones = [e["progress"]["done"] for e in progress]
    assert dones == sorted(dones) and dones[-1] <= 400 and all(e["progress"]["total"] == 400 for e in progress)
    finished_job = await c.request("get", job_id=job["id"])
    from datetime import datetime

    ran_s = datetime.fromisoformat(finished_job["finished_at"]) - datetime.fromisoformat(finished_job["started_at"])
    # 400 reports in the run; at most one event per 100 ms reached the client: +1 for the first one, +1 because the
    # coalescer's clock runs behind the ledger's (its last event may go out after finished_at was taken)
    assert len(progress) <= ran_s.total_seconds() * 10 + 2
    assert len(progress) < 400 / 4
    assert any(e["progress"]["rate"] for e in progress)
    assert [e["event"] for e in ledger_events(jobdeck_home)] == ["created", "started", "succeeded"]
    # Progress ends before the job's final event: nothing about a finished job follows its last state.
    last_progress = max(i for i, e in enumerate(events.events) if e.get("type") == "job.progress")
    succeeded = next(i for i, e in enumerate(events.events) if e.get("event") == "succeeded")
    assert last_progress < succeeded
    await c.close()


def test_rate_and_time_left_follow_the_last_seconds_not_the_whole_run() -> None:
    """A transfer that ran at 1 MB/s for a minute and then at 10 MB/s: the rate and the time left reported are the
    new speed's within a few seconds (an average since the start would still say about 1.2 MB/s)."""
    from engine.events.progress import RATE_WINDOW_S, ProgressCoalescer

    loop = asyncio.new_event_loop()
    sent: list[dict[str, Any]] = []
    try:
        coalescer = ProgressCoalescer(loop, lambda _job, data: sent.append(data), interval_s=0.0)
        total, done, now = 200_000_000, 0, 0.0
        for _ in range(600):  # 60 s at 1 MB/s, a report every 100 ms
            coalescer.report(7, {"done": done, "total": total, "unit": "bytes"}, now)
            done, now = done + 100_000, now + 0.1
        assert sent[-1]["rate"] == pytest.approx(1e6, rel=0.05)
        for _ in range(int(RATE_WINDOW_S * 10) + 10):  # then 10 MB/s for a little longer than the window
            coalescer.report(7, {"done": done, "total": total, "unit": "bytes"}, now)
            done, now = done + 1_000_000, now + 0.1
    finally:
        loop.close()
    last = sent[-1]
    assert last["unit"] == "bytes" and last["total"] == total
    assert last["rate"] == pytest.approx(10e6, rel=0.05)
    assert last["eta_s"] == pytest.approx((total - last["done"]) / 10e6, rel=0.05)


# ------------------------------------------------------------------ one readable line per event


def test_watch_prints_one_readable_line_per_event() -> None:
    job = {
        "id": 12, "job_type": "upload_file", "status": "retrying", "priority": 5, "parameters": {}, "attempts": 1,
        "max_retries": 3, "schedule_type": "immediate", "scheduled_time": None,
        "next_attempt_at": "2026-01-01T10:00:05+00:00", "created_at": "2026-01-01T10:00:00+00:00",
        "started_at": None, "finished_at": None, "result": None, "error": "connection refused",
    }  # fmt: skip
    at = "2026-01-01T10:00:01.5+00:00"
    line = format_event({"v": 1, "type": "job.updated", "seq": 7, "at": at, "event": "retry_scheduled", "job": job})
    assert line is not None and "\n" not in line
    assert line.split()[:5] == ["#7", "10:00:01", "job", "12", "retry_scheduled"]
    assert "connection refused" in line and "next attempt 10:00:05" in line
    done = {**job, "status": "succeeded", "error": None, "result": {"file_url": "https://b.s3/k"}}
    assert "→ https://b.s3/k" in (
        format_event({"type": "job.updated", "seq": 8, "at": at, "event": "x", "job": done}) or ""
    )
    progress = {"type": "job.progress", "at": at, "job_id": 12, "progress": {"done": 50, "total": 200, "rate": 2e6}}
    assert "25.0%" in (format_event(progress) or "") and "2.0 MB/s" in (format_event(progress) or "")
    worker = {"pid": 5, "worker_id": "w", "state": "paused", "running": [1, 2], "paused": True, "concurrency": 4}
    assert "worker pid 5 paused, running 2" in (
        format_event({"type": "worker.status", "at": at, "worker": worker}) or ""
    )
    # unknown types and fields are ignored, not fatal
    assert format_event({"v": 2, "type": "job.teleported", "seq": 9, "future": True}) is None
