"""The worker's websocket against a real worker process: who may connect, where it listens, every request."""

from __future__ import annotations

import asyncio
import base64
import json
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from eventtools import (
    Recorder,
    bearer,
    client,
    create_many,
    env_for_cli,
    finished,
    ledger_events,
    noop_worker,
    raw_connect,
    run_async,
)
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus
from workerproc import ROOT

from engine.cli import as_typed
from engine.errors import JobdeckError, ValidationError

# ------------------------------------------------------------------ the runtime file and the listening socket


def test_worker_json_is_private_and_removed_on_clean_exit(worker_factory: Callable[..., Any]) -> None:
    worker = noop_worker(worker_factory)
    info = worker.info()
    assert set(info) >= {"pid", "port", "token", "started_at"}
    assert info["pid"] == worker.pid
    assert stat.S_IMODE(worker.info_path.stat().st_mode) == 0o600
    raw = base64.urlsafe_b64decode(info["token"] + "=" * (-len(info["token"]) % 4))
    assert len(raw) * 8 >= 128
    assert worker.stop() == 0
    assert not worker.info_path.exists()


def test_each_start_gets_a_new_token(worker_factory: Callable[..., Any]) -> None:
    first = noop_worker(worker_factory)
    token = first.info()["token"]
    first.stop()
    assert noop_worker(worker_factory).info()["token"] != token


def test_listens_on_loopback_only(worker_factory: Callable[..., Any]) -> None:
    worker = noop_worker(worker_factory)
    listening = [c for c in psutil.Process(worker.pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert listening, "the worker listens on no socket"
    assert {c.laddr.ip for c in listening} == {"127.0.0.1"}
    assert worker.info()["port"] in {c.laddr.port for c in listening}


def test_configured_port_is_used(worker_factory: Callable[..., Any], jobdeck_home: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port that is free now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (jobdeck_home / "config.json").write_text(json.dumps({"event_port": port}))
    assert noop_worker(worker_factory).info()["port"] == port


# ------------------------------------------------------------------ the handshake


async def _status_of_handshake(port: int, headers: dict[str, str], **kwargs: Any) -> int:
    with pytest.raises(InvalidStatus) as refused:
        await raw_connect(port, headers, **kwargs)
    return refused.value.response.status_code


@run_async
async def test_missing_or_wrong_token_is_401(worker_factory: Callable[..., Any]) -> None:
    info = noop_worker(worker_factory).info()
    port = info["port"]
    assert await _status_of_handshake(port, {}) == 401
    assert await _status_of_handshake(port, {"Authorization": "Bearer " + info["token"][:-1] + "x"}) == 401
    assert await _status_of_handshake(port, {"Authorization": "Bearer"}) == 401
    assert await _status_of_handshake(port, {"Authorization": "Basic " + info["token"]}) == 401
    assert await _status_of_handshake(port, {"Authorization": "Bearer " + info["token"] + "extra"}) == 401
    # and the right one gets in
    conn = await raw_connect(port, bearer(info))
    await conn.close()


@run_async
async def test_browser_origin_is_403_even_with_the_token(worker_factory: Callable[..., Any]) -> None:
    info = noop_worker(worker_factory).info()
    for origin in ("https://evil.example", "http://127.0.0.1:8000", "null", "file://"):
        assert await _status_of_handshake(info["port"], {**bearer(info), "Origin": origin}) == 403
    assert await _status_of_handshake(info["port"], {"Origin": "https://evil.example"}) == 403


@run_async
async def test_allowed_origin_may_connect_with_the_token_as_subprotocol(
    worker_factory: Callable[..., Any], jobdeck_home: Path
) -> None:
    (jobdeck_home / "config.json").write_text(json.dumps({"allowed_origins": ["http://localhost:8080"]}))
    info = noop_worker(worker_factory).info()
    origin = {"Origin": "http://localhost:8080"}
    # allowed origin, but still no token: 401
    assert await _status_of_handshake(info["port"], origin) == 401
    wrong = ["jobdeck.v1", "jobdeck.token.wrong"]
    assert await _status_of_handshake(info["port"], origin, subprotocols=wrong) == 401
    # what a browser can send: the token as an offered subprotocol
    conn = await raw_connect(info["port"], origin, subprotocols=["jobdeck.v1", "jobdeck.token." + info["token"]])
    assert conn.subprotocol == "jobdeck.v1"
    await conn.send(json.dumps({"id": 1, "op": "count_failed"}))
    assert json.loads(await conn.recv()) == {"id": 1, "ok": True, "result": 0}
    await conn.close()
    # another origin is still refused
    assert await _status_of_handshake(info["port"], {**bearer(info), "Origin": "http://localhost:8081"}) == 403


# ------------------------------------------------------------------ malformed, unknown and oversized messages


async def _ask(conn: Any, message: str | bytes) -> dict[str, Any]:
    await conn.send(message)
    return json.loads(await asyncio.wait_for(conn.recv(), 30))


@run_async
async def test_malformed_and_unknown_messages_get_clear_errors(worker_factory: Callable[..., Any]) -> None:
    info = noop_worker(worker_factory).info()
    conn = await raw_connect(info["port"], bearer(info))
    cases: list[tuple[str | bytes, str | None, str]] = [
        ("not json {", None, "malformed message: not JSON"),
        (b"\xff\xfe binary garbage", None, "malformed message: not JSON"),
        ("[1, 2, 3]", None, "must be a JSON object"),
        ('"just a string"', None, "must be a JSON object"),
        ('{"id": 7, "type": "bogus"}', "type", "unknown message type 'bogus'"),
        ('{"id": 8, "op": "explode"}', "op", "unknown operation 'explode'; allowed: create, list"),
        ('{"id": 9}', "op", "unknown operation None"),
        ('{"id": 10, "op": "get", "args": [1]}', "args", "must be an object"),
        ('{"id": 11, "op": "get", "args": {"job_id": 1, "colour": "red"}}', "args", "bad arguments for get"),
        ('{"id": 12, "type": "subscribe", "since": -1}', "since", "non-negative integer"),
        ('{"id": 13, "type": "subscribe", "since": "yesterday"}', "since", "non-negative integer"),
    ]
    for message, field, text in cases:
        reply = await _ask(conn, message)
        assert reply["ok"] is False, message
        assert reply["error"]["field"] == field, message
        assert text in reply["error"]["message"], (message, reply)
        if message.startswith(b"{" if isinstance(message, bytes) else "{"):
            assert reply["id"] == json.loads(message)["id"]
    # the same connection still works
    assert (await _ask(conn, '{"id": 99, "op": "count_failed"}')) == {"id": 99, "ok": True, "result": 0}
    await conn.close()


@run_async
async def test_oversized_message_closes_that_connection_only(worker_factory: Callable[..., Any]) -> None:
    info = noop_worker(worker_factory).info()
    bystander = await raw_connect(info["port"], bearer(info))
    big = await raw_connect(info["port"], bearer(info), max_size=None)
    huge = json.dumps({"id": 1, "op": "create", "args": {"job_type": "noop", "parameters": {"x": "a" * (1 << 20)}}})
    await big.send(huge)
    with pytest.raises(ConnectionClosedError):
        await asyncio.wait_for(big.recv(), 30)
    assert big.close_code == 1009  # message too big
    assert "exceeds limit" in (big.close_reason or "")
    # the server keeps serving: the bystander and a new connection both work
    assert (await _ask(bystander, '{"id": 2, "op": "count_failed"}'))["ok"] is True
    fresh = await raw_connect(info["port"], bearer(info))
    assert (await _ask(fresh, '{"id": 3, "op": "stats"}'))["result"]["total"] == 0
    for conn in (bystander, fresh):
        await conn.close()


@run_async
async def test_idle_connections_are_closed_subscribers_are_not(worker_factory: Callable[..., Any]) -> None:
    # 300 s by default; shortened so the test is short.
    info = noop_worker(worker_factory, env={"JOBDECK_EVENT_IDLE_S": "1"}).info()
    idle = await raw_connect(info["port"], bearer(info))
    listening = await raw_connect(info["port"], bearer(info))
    await listening.send(json.dumps({"type": "subscribe", "since": 0}))
    assert json.loads(await listening.recv())["type"] == "replay.done"
    with pytest.raises(ConnectionClosedOK):
        await asyncio.wait_for(idle.recv(), 30)
    assert (idle.close_code, idle.close_reason) == (1000, "idle: nothing sent")
    # the subscriber outlived the idle one and still answers
    assert json.loads(await listening.recv())["type"] == "worker.status"
    assert (await _ask(listening, '{"id": 1, "op": "count_failed"}'))["ok"] is True
    await listening.close()


# ------------------------------------------------------------------ every operation, and its error path


@run_async
async def test_every_operation_and_its_error_path(
    worker_factory: Callable[..., Any], jobdeck_home: Path, tmp_path: Path
) -> None:
    noop_worker(worker_factory)
    events = Recorder()
    c = await client(jobdeck_home, events)
    await c.subscribe(0)

    async def refused(op: str, field: str | None, text: str, **args: Any) -> None:
        with pytest.raises(JobdeckError) as err:
            await c.request(op, **args)
        if field is None:
            assert not isinstance(err.value, ValidationError)
            assert text in str(err.value)
        else:
            assert isinstance(err.value, ValidationError)
            assert (err.value.field, text in err.value.message) == (field, True), err.value

    # create
    job = await c.request("create", job_type="noop", parameters={"sleep_s": 0}, priority=7, max_retries=0)
    assert (job["job_type"], job["priority"], job["max_retries"]) == ("noop", 7, 0)
    await refused("create", "job_type", "unknown job type 'nope'; known types:", job_type="nope")
    await refused("create", "priority", "an integer from 0 to 9", job_type="noop", priority=12)
    await refused("create", "sleep_s", "greater than or equal to 0", job_type="noop", parameters={"sleep_s": -1})
    await refused("create", "colour", "is not a parameter of noop", job_type="noop", parameters={"colour": 1})
    await refused("create", "scheduled_time", "is in the past", job_type="noop", scheduled_time="2001-01-01T00:00Z")
    await events.wait_for(finished(1))

    # get, list
    got = await c.request("get", job_id=job["id"])
    assert got["status"] == "succeeded"
    assert [h["type"] for h in got["history"]] == ["created", "started", "succeeded"]
    await refused("get", "id", f"no job with id {job['id'] + 100}", job_id=job["id"] + 100)
    await refused("get", "id", "a positive job id", job_id="abc")
    page = await c.request("list", status="succeeded", limit=10)
    assert (page["total"], [j["id"] for j in page["jobs"]]) == (1, [job["id"]])
    await refused("list", "status", "unknown status 'done'", status="done")
    await refused("list", "limit", "an integer from 1 to", limit=0)

    # a failing job, then retry / retry_all_failed / count_failed
    bad = await c.request("create", job_type="noop", parameters={"permanent": True}, max_retries=0)
    await events.wait_for(finished(1, "failed"))
    assert await c.request("count_failed") == 1
    assert (await c.request("get", job_id=bad["id"]))["error"] == "noop asked to fail permanently"
    await refused("retry", "status", f"job {job['id']} is succeeded; retry needs a job that is", job_id=job["id"])
    retried = await c.request("retry", job_id=bad["id"])
    assert retried["status"] == "pending"
    await events.wait_for(finished(2, "failed"))
    assert await c.request("retry_all_failed") == {"count": 1, "ids": [bad["id"]]}
    await events.wait_for(finished(3, "failed"))
    await refused("retry_all_failed", "args", "bad arguments", everything=True)

    # scheduled: cancel, run_now
    later = await c.request("create", job_type="noop", scheduled_time="2999-01-01T00:00:00+00:00")
    assert later["status"] == "scheduled"
    await refused("run_now", "status", "run now needs a job that is scheduled", job_id=job["id"])
    now = await c.request("run_now", job_id=later["id"])
    assert now["status"] == "pending"
    await events.wait_for(finished(2))
    again = await c.request("create", job_type="noop", scheduled_time="2999-01-01T00:00:00+00:00")
    assert (await c.request("cancel", job_id=again["id"]))["status"] == "canceled"
    await refused("cancel", "status", "cancel needs a job that is", job_id=again["id"])

    # delete
    assert (await c.request("delete", job_id=again["id"]))["id"] == again["id"]
    await refused("delete", "id", f"no job with id {again['id']}", job_id=again["id"])

    # stats, timeline, types
    stats = await c.request("stats")
    assert stats["by_status"]["succeeded"] == 2 and stats["by_status"]["failed"] == 1
    await refused("stats", "args", "bad arguments for stats", hours=1)
    timeline = await c.request("timeline", hours=1)
    # failures per minute count every failed attempt: the job failed three times
    assert (timeline["minutes"], sum(timeline["succeeded"]), sum(timeline["failed"])) == (60, 2, 3)
    await refused("timeline", "hours", "an integer from 1 to 72", hours=0)
    types = await c.request("types")
    assert {"noop", "send_email", "upload_file"} <= {t["name"] for t in types}
    assert "sleep_s" in next(t for t in types if t["name"] == "noop")["schema"]["properties"]
    await refused("types", "args", "bad arguments for types", verbose=True)

    # upload (validation only: the S3 side belongs to the upload tests)
    source = tmp_path / "report.txt"
    source.write_text("hello")
    uploads = await c.request("upload", paths=[str(source)], bucket="bkt", scheduled_time="2999-01-01T00:00Z")
    assert [(u["job_type"], u["parameters"]["key"], u["status"]) for u in uploads] == [
        ("upload_file", "report.txt", "scheduled")
    ]
    await refused("upload", "path", "give at least one file", paths=[])
    await refused("cleanup_uploads", "older_than_hours", "must be a number of hours", older_than_hours=-1)
    await refused("upload", "path", "missing.txt", paths=[str(tmp_path / "missing.txt")], bucket="b")
    await c.close()


@pytest.mark.parametrize(
    ("cli_args", "op", "args"),
    [
        (["submit", "nope"], "create", {"job_type": "nope"}),
        (["submit", "noop", "--priority", "12"], "create", {"job_type": "noop", "priority": "12"}),
        (["submit", "noop", "--param", "colour=red"], "create", {"job_type": "noop", "parameters": {"colour": "red"}}),
        (["show", "4242"], "get", {"job_id": "4242"}),
        (["list", "--status", "done"], "list", {"status": "done"}),
        (["cancel", "0"], "cancel", {"job_id": "0"}),
    ],
)
@run_async
async def test_errors_are_the_cli_errors(
    worker_factory: Callable[..., Any], jobdeck_home: Path, cli_args: list[str], op: str, args: dict[str, Any]
) -> None:
    noop_worker(worker_factory)
    cli = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *cli_args],
        env=env_for_cli(jobdeck_home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 2, cli.stderr
    c = await client(jobdeck_home)
    with pytest.raises(ValidationError) as err:
        await c.request(op, **args)
    await c.close()
    assert cli.stderr.strip() == f"jobdeck: error: {as_typed(err.value, cli_args[0])}"  # the flag's name, as typed


# ------------------------------------------------------------------ worker commands


@run_async
async def test_status_wake_and_their_errors(worker_factory: Callable[..., Any], jobdeck_home: Path) -> None:
    worker = noop_worker(worker_factory, concurrency=2)
    c = await client(jobdeck_home)
    status = await c.request("status")
    assert (status["pid"], status["concurrency"], status["paused"]) == (worker.pid, 2, False)
    assert status["state"] == "running"
    assert status["last_seq"] == 0
    for command in ("wake", "pause", "resume", "shutdown", "status"):
        with pytest.raises(ValidationError) as err:
            await c.request(command, force=True)
        assert (err.value.field, err.value.message) == ("args", f"{command} takes no arguments; got force")
    assert await c.request("wake") == {"done": "wake"}
    await c.close()


@run_async
async def test_work_submitted_by_another_process_is_streamed(
    worker_factory: Callable[..., Any], jobdeck_home: Path
) -> None:
    """The CLI commits in its own process and sends `wake`: the job runs and its events reach subscribers."""
    noop_worker(worker_factory)
    events = Recorder()
    c = await client(jobdeck_home, events)
    await c.subscribe(0)
    cli = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "submit", "noop", "--json"],
        env=env_for_cli(jobdeck_home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    job_id = json.loads(cli.stdout)["id"]
    await events.wait_for(finished(1))
    assert [(e["event"], e["job"]["id"]) for e in events.job_events()] == [
        ("created", job_id),
        ("started", job_id),
        ("succeeded", job_id),
    ]
    await c.close()


@run_async
async def test_work_done_while_nobody_listens_replays_exactly_then_streams_live(
    worker_factory: Callable[..., Any], jobdeck_home: Path
) -> None:
    """With no subscriber the worker publishes nothing and reads nothing back, even though another process's
    commits leave gaps between its own; a later subscriber still gets every event, once, in order, then live."""
    import jobtypes_noop  # noqa: F401 - the noop type in this (submitting) process too

    from engine.config import Paths
    from engine.credentials.store import MemoryStore
    from engine.events.client import try_wake
    from engine.operations import Operations
    from engine.storage.status import JobStatus

    noop_worker(worker_factory, concurrency=2)
    ops = Operations(Paths(jobdeck_home), store=MemoryStore())
    ops.after_enqueue = lambda: try_wake(ops.paths)
    submit = asyncio.to_thread  # the CLI's wake runs its own event loop
    try:
        for _ in range(40):
            await submit(ops.create, "noop", {})
        deadline = asyncio.get_running_loop().time() + 60
        while ops.ledger.count(JobStatus.SUCCEEDED) < 40:
            assert asyncio.get_running_loop().time() < deadline, "the worker did not finish 40 no-op jobs"
            await asyncio.sleep(0.02)
        stored = ledger_events(jobdeck_home)
        assert len(stored) == 120
        probe = await client(jobdeck_home)
        async with asyncio.timeout(10):  # the last commit may be a moment from the status
            while (await probe.request("status"))["last_seq"] != stored[-1]["seq"]:
                await asyncio.sleep(0.02)
        await probe.close()

        events = Recorder()
        c = await client(jobdeck_home, events)
        await c.subscribe(0)
        await events.wait_for(finished(40))
        assert events.job_events() == stored
        await submit(ops.create, "noop", {})
        await events.wait_for(finished(41))
        live = events.job_events()[len(stored) :]
        assert [e["event"] for e in live] == ["created", "started", "succeeded"]
        assert [e["seq"] for e in live] == sorted({e["seq"] for e in live})
        assert live[0]["seq"] > stored[-1]["seq"]
        await c.close()
    finally:
        ops.ledger.close()


@run_async
async def test_pause_lets_running_jobs_finish_and_takes_no_new_ones(
    worker_factory: Callable[..., Any], jobdeck_home: Path
) -> None:
    noop_worker(worker_factory, concurrency=4)
    events = Recorder()
    c = await client(jobdeck_home, events)
    await c.subscribe(0)
    first = await c.request("create", job_type="noop", parameters={"sleep_s": 1.0})
    await events.wait_for(lambda evs: any(e.get("event") == "started" for e in evs))
    assert await c.request("pause") == {"done": "pause"}
    await events.wait_for(lambda evs: any(e.get("type") == "worker.status" and e["worker"]["paused"] for e in evs))
    assert (await c.request("status"))["state"] == "paused"
    second = await c.request("create", job_type="noop")
    # A free thread would start the second job at once; paused, it is still pending when the first finishes.
    await events.wait_for(finished(1))
    assert (await c.request("get", job_id=first["id"]))["status"] == "succeeded"
    assert (await c.request("get", job_id=second["id"]))["status"] == "pending"
    assert await c.request("resume") == {"done": "resume"}
    await events.wait_for(finished(2))
    assert (await c.request("status"))["paused"] is False
    await c.close()


@run_async
async def test_shutdown_is_graceful_and_the_process_exits(
    worker_factory: Callable[..., Any], jobdeck_home: Path
) -> None:
    worker = noop_worker(worker_factory)
    events = Recorder()
    c = await client(jobdeck_home, events)
    await c.subscribe(0)
    job = await c.request("create", job_type="noop", parameters={"sleep_s": 1.0, "progress_steps": 2})
    # progress comes from inside run(): the job is truly running, not just claimed
    await events.wait_for(lambda evs: any(e.get("type") == "job.progress" for e in evs))
    assert await c.request("shutdown") == {"done": "shutdown"}
    await asyncio.wait_for(c.closed.wait(), 60)
    assert await asyncio.to_thread(worker.proc.wait, 60) == 0
    assert not worker.info_path.exists()
    assert [e["event"] for e in events.job_events()] == ["created", "started", "succeeded"]
    assert events.job_events()[-1]["job"]["id"] == job["id"]


@run_async
async def test_pipelined_requests_each_get_their_own_reply(
    worker_factory: Callable[..., Any], jobdeck_home: Path
) -> None:
    noop_worker(worker_factory)
    c = await client(jobdeck_home)
    ids = await create_many(c, 100)
    assert len(set(ids)) == 100
    assert (await c.request("list", limit=1))["total"] == 100
    await c.close()
