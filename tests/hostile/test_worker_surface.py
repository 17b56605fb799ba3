"""The worker's local surface under attack from another local process: handshake floods, protocol abuse, SIGTERM.

Every test drives the real worker process over real sockets; the flood is a child process (``handshake_flood``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
from eventtools import WAIT_S, bearer, noop_worker, raw_connect, run_async
from handshake_flood import Flood

from engine.config import Paths
from engine.events.client import WorkerClient

resource = pytest.importorskip("resource")  # descriptor limits: not on Windows

COMMON_SOFT_LIMIT = 1024  # a common default soft RLIMIT_NOFILE (Linux)
MACOS_SOFT_LIMIT = 256  # macOS's default: a flood of 1,000 exhausts it however few descriptors the worker holds
OWNER_CONNECT_S = 2.0  # the owner's client must connect within this during a flood (the requirement)


# ------------------------------------------------------------------ helpers
def _handshake(port: int, headers: list[tuple[str, str]]) -> int:
    """The HTTP status the worker answers to a handshake with exactly these headers (Host included)."""
    lines = [
        "GET / HTTP/1.1",
        *(f"{name}: {value}" for name, value in headers),
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ]
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"closed without an answer after {answer!r}")
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def _host(port: int) -> tuple[str, str]:
    return ("Host", f"127.0.0.1:{port}")


def _token(info: dict[str, Any]) -> tuple[str, str]:
    return ("Authorization", f"Bearer {info['token']}")


async def _ask(conn: Any, message: str, timeout: float = WAIT_S) -> dict[str, Any]:
    """Send one raw message and read the reply; a silent worker fails the test at ``timeout`` (a hang guard)."""
    await conn.send(message)
    reply: dict[str, Any] = json.loads(await asyncio.wait_for(conn.recv(), timeout))
    return reply


async def _still_works(conn: Any) -> None:
    assert (await _ask(conn, '{"id": "alive", "op": "status"}'))["ok"] is True


@contextlib.contextmanager
def _soft_fd_limit(limit: int) -> Iterator[None]:
    """Children started inside inherit a soft open-file limit of ``limit`` (the hard limit is left alone)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= limit:
        pytest.skip(f"the hard open-file limit ({hard}) is not above {limit}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _worker_with_soft_limit(worker_factory: Callable[..., Any], limit: int) -> Any:
    worker = noop_worker(worker_factory, start=False)
    with _soft_fd_limit(limit):
        worker.start()
    return worker


def _write_config(home: Path, **settings: Any) -> None:
    (home / "config.json").write_text(json.dumps(settings), encoding="utf-8")


async def _run_one_job(home: Path, **parameters: Any) -> dict[str, Any]:
    """Connect as the owner within OWNER_CONNECT_S, submit a noop job, and wait for it to succeed."""
    client = await WorkerClient.connect(Paths(home), timeout=OWNER_CONNECT_S)
    try:
        job = await client.request("create", job_type="noop", parameters=parameters)
        async with asyncio.timeout(WAIT_S):
            while job["status"] != "succeeded":
                await asyncio.sleep(0.05)
                job = await client.request("get", job_id=job["id"])
        return job
    finally:
        await client.close()


# ------------------------------------------------------------------ the handshake
def test_a_repeated_handshake_header_is_refused_with_400_not_500(worker_factory: Callable[..., Any]) -> None:
    info = noop_worker(worker_factory).info()
    port = info["port"]
    repeated = {
        "Origin": [_host(port), _token(info), ("Origin", "http://a.example"), ("Origin", "http://b.example")],
        "Authorization": [_host(port), _token(info), _token(info)],
        "Host": [_host(port), _host(port), _token(info)],
    }
    for name, headers in repeated.items():
        assert _handshake(port, headers) == 400, name
    assert _handshake(port, [_host(port), _token(info)]) == 101  # the worker still serves


def test_the_host_must_name_this_worker(worker_factory: Callable[..., Any]) -> None:
    """A DNS-rebinding page reaches 127.0.0.1 under a name of its own; the worker answers only to its own names."""
    info = noop_worker(worker_factory).info()
    port = info["port"]
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.2:{port}", f"127.0.0.1:{port + 1}", "localhost"):
        assert _handshake(port, [("Host", host), _token(info)]) == 421, host
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LocalHost:{port}", f"[::1]:{port}"):
        assert _handshake(port, [("Host", host), _token(info)]) == 101, host


# ------------------------------------------------------------------ requests
@run_async
async def test_deeply_nested_json_gets_an_error_and_the_connection_keeps_working(
    worker_factory: Callable[..., Any],
) -> None:
    info = noop_worker(worker_factory).info()
    conn = await raw_connect(info["port"], bearer(info))
    deep = 100_000  # within the 1 MB message limit
    for message in (
        "[" * deep + "]" * deep,
        '{"id": 1, "op": "status", "args": ' + '{"a":' * deep + "1" + "}" * deep + "}",
        '{"id": 2, "op": "get", "args": {"job_id": ' + "[" * 40 + "]" * 40 + "}}",
    ):
        reply = await _ask(conn, message, timeout=10)
        assert reply["ok"] is False
        assert "nested deeper than 32 levels" in reply["error"]["message"]
    await _still_works(conn)
    await conn.close()


@run_async
async def test_since_beyond_a_64_bit_seq_gets_an_error(worker_factory: Callable[..., Any]) -> None:
    info = noop_worker(worker_factory).info()
    conn = await raw_connect(info["port"], bearer(info))
    for since in (2**63, 2**64 + 5, 10**30, -1, -(2**63)):
        reply = await _ask(conn, json.dumps({"id": 5, "type": "subscribe", "since": since}), timeout=10)
        assert reply["ok"] is False and reply["error"]["field"] == "since", since
        assert "at most 2^63-1" in reply["error"]["message"]
    await _still_works(conn)
    await conn.close()


@run_async
async def test_numbers_that_are_not_finite_or_over_a_day_of_seconds_are_refused(
    worker_factory: Callable[..., Any],
) -> None:
    """``retry_base_s=1e308`` once left a job running for ever; now nothing is written and the field is named."""
    info = noop_worker(worker_factory).info()
    conn = await raw_connect(info["port"], bearer(info))
    create = '{"id": 3, "op": "create", "args": {"job_type": "noop", "%s": %s}}'
    for field, value in [
        ("retry_base_s", "1e308"),
        ("retry_cap_s", "1e308"),
        ("retry_base_s", "86401"),
        ("retry_cap_s", str(10**400)),
        ("retry_base_s", "0"),
    ]:
        reply = await _ask(conn, create % (field, value), timeout=10)
        assert reply["ok"] is False and reply["error"]["field"] == field, (field, value, reply)
        assert "at most 86400" in reply["error"]["message"]
    for literal in ("NaN", "Infinity", "-Infinity", "1e999", "-1e400"):
        reply = await _ask(conn, create % ("retry_base_s", literal), timeout=10)
        assert reply["ok"] is False, literal
        assert "every number must be finite" in reply["error"]["message"], reply
    for hours in ("1e300", '"inf"', "-1"):
        reply = await _ask(conn, '{"id": 6, "op": "cleanup_uploads", "args": {"older_than_hours": ' + hours + "}}")
        assert reply["ok"] is False and reply["error"]["field"] == "older_than_hours", (hours, reply)
    listed = await _ask(conn, '{"id": 4, "op": "list"}')
    assert listed["result"]["total"] == 0  # nothing was written
    fine = await _ask(conn, create % ("retry_base_s", "86400"))
    assert fine["ok"] is True
    await conn.close()


def test_settings_refuse_a_retry_delay_over_a_day() -> None:
    from pydantic import ValidationError as PydanticValidationError

    from engine.config import Settings

    for field in ("retry_base_s", "retry_cap_s"):
        for value in (1e308, float("inf"), float("nan"), 86_401):
            with pytest.raises(PydanticValidationError):
                Settings(**{field: value})


def _rss_peak_while_busy(proc: psutil.Process, timeout: float = 120.0) -> int:
    """Sample RSS until the process has been idle for a second (it did all it was going to); the highest seen."""
    peak = proc.memory_info().rss
    cpu = sum(proc.cpu_times()[:2])
    quiet = 0
    deadline = time.monotonic() + timeout
    while quiet < 10 and time.monotonic() < deadline:
        time.sleep(0.1)
        peak = max(peak, proc.memory_info().rss)
        now = sum(proc.cpu_times()[:2])
        quiet = quiet + 1 if now - cpu < 0.02 else 0
        cpu = now
    return peak


@run_async
async def test_pipelined_big_lists_without_reading_do_not_grow_the_worker(
    worker_factory: Callable[..., Any], ops: Any
) -> None:
    """A client that pipelines ``list limit=10000`` and never reads: the worker's memory stays bounded.

    Measured: 100 unread 5 MB replies grew the worker by about 660 MB before the byte bound, about 100 MB since."""
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    body = "x" * 16_000
    for _ in range(320):  # each list reply is about 5 MB
        ops.create("send_email", {"recipient": "a@example.com", "subject": "s", "body": body}, scheduled_time=tomorrow)
    worker = noop_worker(worker_factory)
    info = worker.info()
    proc = psutil.Process(worker.pid)
    request = json.dumps({"id": 1, "op": "list", "args": {"limit": 10_000}})
    conn = await raw_connect(info["port"], bearer(info), max_size=None)
    await conn.send(request)
    reply_bytes = len(await asyncio.wait_for(conn.recv(), WAIT_S))  # warm: caches and one reply
    baseline = _rss_peak_while_busy(proc)
    pipelined = 100
    for _ in range(pipelined):
        await conn.send(request)
    # The socket to us fills and the worker keeps what it cannot send: today that is every reply.
    peak = await asyncio.to_thread(_rss_peak_while_busy, proc)
    grown = peak - baseline
    assert reply_bytes > 4_000_000
    assert grown < 200 * 1024**2, f"the worker grew by {grown / 1024**2:.0f} MB for {pipelined} unread replies"
    conn.transport.abort()
    other = await raw_connect(info["port"], bearer(info))
    await _still_works(other)
    await other.close()


# ------------------------------------------------------------------ the pre-authentication flood
class _FakeTransport:
    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.aborted = False

    def get_extra_info(self, name: str) -> Any:
        return (self.peer, 40000) if name == "peername" else None

    def abort(self) -> None:
        self.aborted = True


class _FakeConnection:
    """What ``Admission`` reads of a websockets connection: its transport and whether its request arrived."""

    def __init__(self, peer: str) -> None:
        self.transport = _FakeTransport(peer)
        self.request = None


def test_strangers_are_capped_in_all_and_per_peer_and_the_biggest_peer_loses_first() -> None:
    from engine.events.admission import Admission

    gate = Admission(cap=8, per_peer=5)
    flood = [_FakeConnection("127.0.0.2") for _ in range(20)]
    others = [_FakeConnection(f"127.0.0.{3 + i}") for i in range(3)]
    for conn in flood[:10] + others + flood[10:]:
        gate.admit(conn)  # type: ignore[arg-type]
    kept = [c for c in flood if not c.transport.aborted]
    assert kept == flood[-5:]  # its oldest were cut, down to its share
    assert not any(c.transport.aborted for c in others)  # the peers with fewer kept theirs
    assert len(gate) == 8
    owner = _FakeConnection("127.0.0.1")
    gate.admit(owner)  # type: ignore[arg-type]
    assert not owner.transport.aborted  # over the cap in all: the biggest peer lost one more
    assert [c for c in flood if not c.transport.aborted] == flood[-4:]
    gate.forget(owner)  # its token checked out: no longer a stranger
    assert len(gate) == 7


def test_the_soft_open_file_limit_is_raised_to_the_hard_one(worker_factory: Callable[..., Any]) -> None:
    worker = _worker_with_soft_limit(worker_factory, COMMON_SOFT_LIMIT)
    soft, hard = psutil.Process(worker.pid).rlimit(psutil.RLIMIT_NOFILE)
    assert soft == hard, (soft, hard)


def _flood_then_run_jobs(worker_factory: Callable[..., Any], home: Path, sockets: int, rounds: int) -> None:
    worker = _worker_with_soft_limit(worker_factory, MACOS_SOFT_LIMIT)
    with Flood(worker.info()["port"], sockets) as flood:
        flood.wait_ready()
        for _ in range(rounds):  # the owner connects within OWNER_CONNECT_S and its job runs, flood or not
            asyncio.run(_run_one_job(home, sleep_s=0.2))
        assert flood.proc is not None and flood.proc.poll() is None
    assert "Too many open files" not in worker.output()
    assert "Too many open files" not in (home / "logs" / "worker.log").read_text(errors="replace")


def test_the_owner_connects_and_jobs_run_during_a_flood_of_1000_half_open_handshakes(
    worker_factory: Callable[..., Any], jobdeck_home: Path
) -> None:
    _flood_then_run_jobs(worker_factory, jobdeck_home, 1000, rounds=3)


@pytest.mark.long
def test_the_owner_connects_and_jobs_run_during_a_long_flood_of_5000_half_open_handshakes(
    worker_factory: Callable[..., Any], jobdeck_home: Path
) -> None:
    _flood_then_run_jobs(worker_factory, jobdeck_home, 5000, rounds=30)


def test_accept_errors_are_logged_at_most_once_a_second(worker_factory: Callable[..., Any], jobdeck_home: Path) -> None:
    """With descriptors exhausted, accept fails continuously; the log gets one line a second, not a flood."""
    worker = noop_worker(worker_factory)
    proc = psutil.Process(worker.pid)
    tight = proc.num_fds() + 8
    proc.rlimit(psutil.RLIMIT_NOFILE, (tight, tight))  # as if the hard limit were this low
    started = time.monotonic()
    with Flood(worker.info()["port"], 300):
        time.sleep(4)  # the flood needs only a few connections to exhaust the descriptors left
    elapsed = time.monotonic() - started
    # Counted: every line about accepting in every log file (a flood of lines rotates the log), a traceback's
    # lines included. Other parts of a worker without descriptors fail too; what they log is not this test's concern.
    lines = [line for path in (jobdeck_home / "logs").glob("worker.log*") for line in path.read_text().splitlines()]
    accept_lines = [line for line in lines if "accept" in line.lower()]
    assert accept_lines, "accept never failed: the limit was not tight enough to test anything"
    assert len(accept_lines) <= elapsed + 2, accept_lines[:12]


# ------------------------------------------------------------------ SIGTERM
def _stop_within_grace(worker: Any, grace_s: float) -> None:
    worker.proc.send_signal(signal.SIGTERM)
    try:
        worker.proc.wait(grace_s + 5)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker was still running {grace_s + 5:.0f} s after SIGTERM:\n{worker.output()}")


def test_sigterm_ends_the_worker_while_a_job_is_stuck_and_the_ledger_is_locked(
    worker_factory: Callable[..., Any], jobdeck_home: Path
) -> None:
    _write_config(jobdeck_home, shutdown_grace_s=1)
    worker = noop_worker(worker_factory)
    job = asyncio.run(_submit(jobdeck_home, sleep_s=3600))  # sleeps through any request to stop
    asyncio.run(_wait_status(jobdeck_home, job["id"], "running"))
    # Another process holds the ledger's write lock, so recording what the stop does waits on it.
    blocker = sqlite3.connect(jobdeck_home / "jobdeck.db", timeout=1, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        _stop_within_grace(worker, 1)
    finally:
        blocker.close()


def test_sigterm_ends_the_worker_during_a_handshake_flood(
    worker_factory: Callable[..., Any], jobdeck_home: Path
) -> None:
    _write_config(jobdeck_home, shutdown_grace_s=1)
    worker = noop_worker(worker_factory)
    with Flood(worker.info()["port"], 1000) as flood:
        flood.wait_ready()
        _stop_within_grace(worker, 1)


async def _submit(home: Path, **parameters: Any) -> dict[str, Any]:
    client = await WorkerClient.connect(Paths(home), timeout=WAIT_S)
    try:
        job: dict[str, Any] = await client.request("create", job_type="noop", parameters=parameters)
        return job
    finally:
        await client.close()


async def _wait_status(home: Path, job_id: int, status: str) -> None:
    client = await WorkerClient.connect(Paths(home), timeout=WAIT_S)
    try:
        async with asyncio.timeout(WAIT_S):
            while (await client.request("get", job_id=job_id))["status"] != status:
                await asyncio.sleep(0.05)
    finally:
        await client.close()
