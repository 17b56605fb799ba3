"""Uploads under kill -9 through the real worker and moto's server: one object per job, no upload left open.

Some kills land at random moments; others are fired from inside moto, right after the server has completed an
operation (created a multipart upload, stored an object, completed one) and before the worker hears the answer:
the moments where a crash used to leave an untracked upload or make the retry send the file again, to a new name.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from moto.s3.models import S3Backend
from moto.s3.responses import S3Response
from servers import S3Server
from test_upload import MiB, open_uploads, write_file
from test_upload_worker import AWS_ENV, configure, wait_until

from engine.config import Paths
from engine.credentials.store import MemoryStore
from engine.jobs import registry
from engine.jobs.base import CleanupEnv
from engine.operations import Operations
from engine.upload_aborts import PendingAborts, abort_quietly
from engine.uploads import JOB_TAG

KiB = 1024
TERMINAL = ("succeeded", "failed", "canceled")


class ServerSpy:
    """Counts what moto did (per operation) and kills the worker with SIGKILL right after an armed operation."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.stored_parts: list[float] = []  # when each part was stored (time.time())
        self.armed: str | None = None
        self.pid: int | None = None
        self.fired = 0

    def arm(self, operation: str, pid: int | None = None) -> None:
        with self.lock:
            self.armed = operation
            if pid is not None:
                self.pid = pid

    def seen(self, operation: str) -> None:
        with self.lock:
            self.calls[operation] += 1
            if operation == "part":
                self.stored_parts.append(time.time())
            if self.armed == operation and self.pid is not None:
                self.armed = None
                self.fired += 1
                os.kill(self.pid, signal.SIGKILL)  # before moto answers: the worker never hears of it


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> ServerSpy:
    watcher = ServerSpy()

    def after(cls: type, name: str, operation: str) -> None:
        real = getattr(cls, name)

        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            answer = real(self, *args, **kwargs)
            watcher.seen(operation)
            return answer

        monkeypatch.setattr(cls, name, wrapper)

    after(S3Response, "put_object", "put")  # a plain PUT of an object (not a part, not a copy)
    after(S3Backend, "create_multipart_upload", "create")
    after(S3Backend, "upload_part", "part")
    after(S3Backend, "complete_multipart_upload", "complete")
    return watcher


def objects(server: S3Server, bucket: str) -> dict[str, int]:
    client = server.client()
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            found[item["Key"]] = item["Size"]
    return found


def finished(ops: Any, job_id: int) -> dict[str, Any] | None:
    job = ops.get(job_id)
    return job if job["status"] in TERMINAL else None


def armed(
    worker_factory: Callable[..., Any], spy: ServerSpy, operation: str, env: dict[str, str], concurrency: int = 0
) -> Any:
    """A started worker that is killed right after the server's next ``operation`` ("" for none)."""
    worker = worker_factory(env=env, concurrency=concurrency or None, start=False)
    worker.start()
    spy.arm(operation, worker.pid)
    return worker


def dies(worker: Any, timeout: float = 30.0) -> bool:
    assert worker.proc is not None
    try:
        worker.proc.wait(timeout)
    except Exception:
        return False
    return True


# ------------------------------------------------------------------ one kill at the worst moment
@pytest.mark.parametrize("conflict", ["overwrite", "rename", "skip"])
@pytest.mark.parametrize("size", [300 * KiB, 11 * MiB], ids=["single-put", "multipart"])
def test_a_retry_finishes_on_the_object_its_killed_attempt_completed(
    conflict: str,
    size: int,
    ops: Any,
    spy: ServerSpy,
    s3_server: S3Server,
    s3_bucket: str,
    tmp_path: Path,
    worker_factory: Callable[..., Any],
) -> None:
    """Killed after S3 stored the object, before the ledger heard: the retry recognises it and sends nothing."""
    configure(ops, s3_server, s3_bucket, upload_conflict=conflict)
    if conflict == "rename":
        s3_server.client().put_object(Bucket=s3_bucket, Key="report.bin", Body=b"someone else's")
        spy.calls.clear()
    data = write_file(tmp_path / "report.bin", size, seed=5)
    operation = "put" if size < 5 * MiB else "complete"
    first = armed(worker_factory, spy, operation, AWS_ENV)
    (job,) = ops.upload([str(tmp_path / "report.bin")])
    assert dies(first), "the worker should have been killed when the object was complete"
    assert ops.get(job["id"])["status"] == "running" and spy.calls[operation] == 1
    sent_before = spy.calls["part"]

    # What lease-expiry recovery asks the job type: the object is complete, here is the job's result.
    ops.credentials.store.set("aws-access-key-id", S3Server.ACCESS_KEY)
    ops.credentials.store.set("aws-secret-access-key", S3Server.SECRET_KEY)
    row = ops.ledger.get_row(job["id"])
    known = registry.get("upload_file").completed_result(
        ops.get(job["id"]),
        Path(row.staged_path),
        CleanupEnv(ops.settings, ops.credentials),
        checkpoint=row.checkpoint,
    )
    key = "report (1).bin" if conflict == "rename" else "report.bin"
    assert known is not None and known["key"] == key and known["size"] == size

    worker_factory(env=AWS_ENV)
    done = wait_until("the job to finish", lambda: finished(ops, job["id"]))
    assert done["status"] == "succeeded", done
    assert spy.calls[operation] == 1 and spy.calls["part"] == sent_before  # nothing sent again
    assert done["result"]["key"] == key and done["result"].get("found_complete") is True
    assert done["result"]["bytes_sent_this_attempt"] == 0
    expected = {key: size} | ({"report.bin": len(b"someone else's")} if conflict == "rename" else {})
    assert objects(s3_server, s3_bucket) == expected
    head = s3_server.client().head_object(Bucket=s3_bucket, Key=key)
    assert head["Metadata"][JOB_TAG] == done["parameters"]["job_tag"]
    assert s3_server.client().get_object(Bucket=s3_bucket, Key=key)["Body"].read() == data
    assert open_uploads(s3_server, s3_bucket) == []


@pytest.mark.parametrize("retries", [3, 0], ids=["retried", "no-attempt-left"])
def test_a_kill_between_creating_a_multipart_upload_and_saving_its_id_leaves_none_open(
    retries: int,
    ops: Any,
    spy: ServerSpy,
    s3_server: S3Server,
    s3_bucket: str,
    tmp_path: Path,
    worker_factory: Callable[..., Any],
) -> None:
    """The next attempt, or the cleanup of a job that failed as worker lost, finds the upload by its key."""
    configure(ops, s3_server, s3_bucket)
    write_file(tmp_path / "disk.img", 11 * MiB, seed=6)
    first = armed(worker_factory, spy, "create", AWS_ENV)
    (job,) = ops.upload([str(tmp_path / "disk.img")], max_retries=retries)
    assert dies(first)
    assert len(open_uploads(s3_server, s3_bucket)) == 1  # created, and the worker died before saving its id

    worker_factory(env=AWS_ENV)
    done = wait_until("the job to finish", lambda: finished(ops, job["id"]))
    assert done["status"] == ("succeeded" if retries else "failed"), done
    assert open_uploads(s3_server, s3_bucket) == []
    assert objects(s3_server, s3_bucket) == ({"disk.img": 11 * MiB} if retries else {})


# ------------------------------------------------------------------ storms
def storm(
    ops: Any,
    env: dict[str, str],
    spy: ServerSpy,
    server: S3Server,
    bucket: str,
    folder: Path,
    worker_factory: Callable[..., Any],
    *,
    jobs: int,
    kills: int,
    multipart_every: int,
    seed: int,
) -> dict[str, int]:
    """Upload ``jobs`` files with ``--conflict rename`` (each key already holds someone else's object) while the
    worker is killed ``kills`` times: alternately at a random moment and right after a create, a PUT or a complete.
    Returns the figures for docs/reliability.md."""
    rng = random.Random(seed)
    configure(
        ops,
        server,
        bucket,
        upload_conflict="rename",
        multipart_concurrency=2,
        retry_base_s=0.05,
        retry_cap_s=0.5,
    )
    client = server.client()
    paths, sizes = [], {}
    for i in range(jobs):
        name = f"f{i:03d}.bin"
        size = 6 * MiB if i % multipart_every == 0 else rng.randint(1, 256 * KiB)
        write_file(folder / name, size, seed=i)
        client.put_object(Bucket=bucket, Key=name, Body=b"someone else's")
        paths.append(str(folder / name))
        sizes[name] = size
    worker = armed(worker_factory, spy, "create", env, 4)  # the first job is a multipart one: this kill comes at once
    submitted = ops.upload(paths, max_retries=kills + 3)
    targeted = ["put", "complete", "create"]
    for k in range(kills):
        if k % 2 == 0:
            if not dies(worker, 60.0):
                spy.arm("")  # that moment never came (every such job had passed it): kill now
                worker.kill()
        else:
            time.sleep(rng.uniform(0.1, 1.0))
            worker.kill()
        following = targeted[(k // 2) % len(targeted)] if k % 2 == 1 and k + 1 < kills else ""
        worker = armed(worker_factory, spy, following, env, 4)
    spy.arm("")
    results = [wait_until(f"job {j['id']} to finish", lambda j=j: finished(ops, j["id"]), 600.0) for j in submitted]
    on_server = objects(server, bucket)
    lost = [job for job in results if job["status"] != "succeeded"]
    extra = 0
    for job in results:
        name = Path(job["parameters"]["path"]).name
        stem = name.removesuffix(".bin")
        mine = [key for key in on_server if key == name or key.startswith(stem + " (")]
        extra += len(mine) - 2  # someone else's and the job's own
        if job["status"] == "succeeded":
            assert on_server[job["result"]["key"]] == sizes[name]
    figures = {
        "kills": kills,
        "jobs": jobs,
        "lost": len(lost),
        "extra_objects": extra,
        "open_multipart": len(open_uploads(server, bucket)),
        "found_complete": sum(1 for job in results if (job["result"] or {}).get("found_complete")),
        "attempts": sum(job["attempts"] for job in results),
    }
    print(f"\nupload storm: {figures}")
    assert lost == [], lost[:3]
    assert extra == 0
    assert figures["open_multipart"] == 0
    return figures


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(
    request: pytest.FixtureRequest, jobdeck_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Operations, dict[str, str]]]:
    """Operations on this test's home and the worker's environment, on a SQLite ledger or a PostgreSQL one of its
    own (ask for it before ``worker_factory``: the workers stop before the database is dropped)."""
    if request.param == "sqlite":
        ops = Operations(Paths(jobdeck_home), store=MemoryStore())
        yield ops, dict(AWS_ENV)
        ops.ledger.close()
        return
    request.getfixturevalue("postgres_url")  # skips (or fails in CI) without a server
    from servers import PostgresDatabase

    with PostgresDatabase() as database:
        monkeypatch.setenv("JOBDECK_DATABASE_URL", database.url)
        ops = Operations(Paths(jobdeck_home), store=MemoryStore())
        yield ops, {**AWS_ENV, "JOBDECK_DATABASE_URL": database.url}
        ops.ledger.close()


@pytest.mark.parametrize(
    ("jobs", "kills", "multipart_every"),
    [(24, 6, 6), pytest.param(300, 20, 10, marks=[pytest.mark.long, pytest.mark.timeout(1800)])],
    ids=["short", "long"],
)
def test_kill_storm_over_uploads_with_rename_keeps_one_object_per_job(
    jobs: int,
    kills: int,
    multipart_every: int,
    ledger: tuple[Operations, dict[str, str]],
    spy: ServerSpy,
    s3_server: S3Server,
    s3_bucket: str,
    tmp_path: Path,
    worker_factory: Callable[..., Any],
) -> None:
    ops, env = ledger
    storm(ops, env, spy, s3_server, s3_bucket, tmp_path, worker_factory, jobs=jobs, kills=kills,
          multipart_every=multipart_every, seed=jobs)  # fmt: skip


# ------------------------------------------------------------------ shutdown, spool, abort journal
def test_sigterm_past_the_grace_period_sends_nothing_after_the_release(
    ops: Any, spy: ServerSpy, s3_server: S3Server, s3_bucket: str, tmp_path: Path, worker_factory: Callable[..., Any]
) -> None:
    """Two parts in flight at 0.5 MiB/s each (10 s a part) when the 1 s grace period ends: they stop there."""
    grace = 1.0
    configure(
        ops, s3_server, s3_bucket, multipart_concurrency=2, bandwidth_limit_bytes_s=1 * MiB, shutdown_grace_s=grace
    )
    write_file(tmp_path / "movie.mkv", 30 * MiB, seed=8)
    worker = worker_factory(env=AWS_ENV)
    (job,) = ops.upload([str(tmp_path / "movie.mkv")])
    wait_until("two parts in flight", lambda: ops.get(job["id"])["status"] == "running" and spy.calls["create"])
    time.sleep(1.0)
    assert worker.proc is not None
    worker.proc.send_signal(signal.SIGTERM)
    assert dies(worker, grace + 5.0), "the worker should exit within its grace period plus 5 s"
    history = ops.get(job["id"])["history"]
    released = [step for step in history if step["type"] == "released"]
    assert released, [step["type"] for step in history]
    released_at = datetime.fromisoformat(released[-1]["at"]).timestamp()
    time.sleep(1.0)  # anything still on its way would have arrived
    late = [at for at in spy.stored_parts if at > released_at]
    assert late == [], f"{len(late)} part(s) stored after the job was released"
    assert ops.get(job["id"])["status"] == "pending"


def test_sigterm_past_the_grace_period_cancels_an_upload_asked_to_stop_and_leaves_nothing_open(
    ops: Any, spy: ServerSpy, s3_server: S3Server, s3_bucket: str, tmp_path: Path, worker_factory: Callable[..., Any]
) -> None:
    """An operator's cancel that the worker has not acted on yet (written by another process, between two
    heartbeats) when a shutdown runs out of time: the job is canceled, not put back to run again, and its multipart
    upload is aborted."""
    configure(ops, s3_server, s3_bucket, multipart_concurrency=2, bandwidth_limit_bytes_s=1 * MiB,
              shutdown_grace_s=1.0)  # fmt: skip
    write_file(tmp_path / "movie.mkv", 30 * MiB, seed=8)
    worker = worker_factory(env=AWS_ENV)
    (job,) = ops.upload([str(tmp_path / "movie.mkv")])
    wait_until("two parts in flight", lambda: ops.get(job["id"])["status"] == "running" and spy.calls["create"])
    assert ops.cancel(job["id"])["status"] == "running"
    assert worker.proc is not None
    worker.proc.send_signal(signal.SIGTERM)
    assert dies(worker, 6.0), "the worker should exit within its grace period plus 5 s"
    done = ops.get(job["id"])
    assert done["status"] == "canceled", [step["type"] for step in done["history"]]
    assert open_uploads(s3_server, s3_bucket) == []
    assert list(ops.paths.spool.glob("job-*")) == []


def test_the_sweep_removes_a_staged_copy_whose_job_ended_without_its_cleanup(
    ops: Any, s3_server: S3Server, s3_bucket: str, tmp_path: Path, worker_factory: Callable[..., Any]
) -> None:
    """The state a kill right after the success commit leaves: the job succeeded, its staged copy is still there."""
    configure(ops, s3_server, s3_bucket)
    write_file(tmp_path / "a.bin", 100 * KiB, seed=1)
    write_file(tmp_path / "b.bin", 100 * KiB, seed=2)
    (done,) = ops.upload([str(tmp_path / "a.bin")])
    copy = Path(ops.ledger.get_row(done["id"]).staged_path).parent
    shutil.copytree(copy, tmp_path / "kept")
    worker = worker_factory(env=AWS_ENV)
    wait_until("the upload", lambda: ops.get(done["id"])["status"] == "succeeded")
    worker.stop()
    assert not copy.exists()  # its cleanup ran; put the copy back as if the worker had died before it
    shutil.copytree(tmp_path / "kept", copy)
    (waiting,) = ops.upload([str(tmp_path / "b.bin")], scheduled_time="2999-01-01T00:00:00Z")
    waiting_copy = Path(ops.ledger.get_row(waiting["id"]).staged_path).parent
    fresh = ops.paths.spool / "job-being-submitted"  # staged by a submission that has not committed yet
    fresh.mkdir()
    an_hour_ago = time.time() - 3600
    for folder in (copy, waiting_copy):
        os.utime(folder, (an_hour_ago, an_hour_ago))

    worker_factory(env=AWS_ENV)
    wait_until("the orphaned copy to be swept", lambda: not copy.exists(), 20.0)
    assert waiting_copy.exists() and fresh.exists()


def test_the_abort_journal_treats_a_deleted_bucket_as_done(ops: Any, s3_server: S3Server, s3_bucket: str) -> None:
    client = s3_server.client()
    gone = s3_bucket + "-gone"
    client.create_bucket(Bucket=gone)
    upload = client.create_multipart_upload(Bucket=gone, Key="x.bin")["UploadId"]
    client.abort_multipart_upload(Bucket=gone, Key="x.bin", UploadId=upload)
    client.delete_bucket(Bucket=gone)
    assert abort_quietly(client, gone, "x.bin", upload)
    journal = PendingAborts(Paths(ops.paths.root))
    journal.add(gone, "x.bin", upload)
    assert journal.flush(client) == 1 and journal.load() == []
