"""Uploads through the real worker process: kill -9 mid-upload and resume; the endpoint down until the job fails."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from servers import S3Server
from test_upload import MiB, fetch, open_uploads, write_file

from engine.config import Paths, save_settings
from engine.events.client import call_sync, try_wake
from engine.upload_aborts import PendingAborts

AWS_ENV = {"AWS_ACCESS_KEY_ID": S3Server.ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": S3Server.SECRET_KEY}


def configure(ops: Any, server: S3Server, bucket: str, **extra: Any) -> None:
    save_settings(
        {
            "s3_endpoint_url": server.endpoint_url,
            "s3_path_style": True,
            "s3_bucket": bucket,
            "multipart_threshold_bytes": 5 * MiB,
            "multipart_part_bytes": 5 * MiB,
            "multipart_concurrency": 1,
            **extra,
        },
        Paths(ops.paths.root),
    )
    ops.after_enqueue = lambda: try_wake(ops.paths)


def wait_until(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def parts_saved(ops: Any, job_id: int) -> int:
    checkpoint = ops.ledger.get_row(job_id).checkpoint
    return len(checkpoint["parts"]) if checkpoint else 0


def test_kill_9_mid_upload_then_restart_resumes_from_the_server_parts(
    ops: Any, s3_server: S3Server, s3_bucket: str, tmp_path: Path, worker_factory: Callable[..., Any]
) -> None:
    # Slowed to ~4 MiB/s so the kill lands mid-way through the 4 parts.
    configure(ops, s3_server, s3_bucket, bandwidth_limit_bytes_s=4 * MiB)
    data = write_file(tmp_path / "film.mkv", 20 * MiB, seed=7)
    first = worker_factory(env=AWS_ENV)
    (job,) = ops.upload([str(tmp_path / "film.mkv")])
    wait_until("two parts on the server", lambda: parts_saved(ops, job["id"]) >= 2)
    first.kill()
    assert ops.get(job["id"])["status"] == "running"  # nothing ran its cleanup: the worker just died
    upload_id = ops.ledger.get_row(job["id"]).checkpoint["upload_id"]
    assert [u["UploadId"] for u in open_uploads(s3_server, s3_bucket)] == [upload_id]

    save_settings({"bandwidth_limit_bytes_s": 0}, Paths(ops.paths.root))
    worker_factory(env=AWS_ENV)
    done = wait_until("the job to finish", lambda: (j := ops.get(job["id"]))["status"] in ("succeeded", "failed") and j)
    assert done["status"] == "succeeded", done
    result = done["result"]
    assert result["resumed_parts"] >= 2
    assert 0 < result["bytes_sent_this_attempt"] <= len(data) - result["resumed_parts"] * 5 * MiB
    assert fetch(s3_server, s3_bucket, "film.mkv") == data
    assert open_uploads(s3_server, s3_bucket) == []
    assert list(ops.paths.spool.glob("job-*")) == []  # the staged copy went with success


def test_endpoint_down_retries_then_fails_with_no_upload_left_open(
    ops: Any, s3_bucket: str, tmp_path: Path, worker_factory: Callable[..., Any]
) -> None:
    with S3Server() as private:
        bucket = private.create_bucket(s3_bucket + "-down")
        configure(ops, private, bucket, bandwidth_limit_bytes_s=4 * MiB)
        write_file(tmp_path / "backup.tar", 16 * MiB, seed=3)
        worker_factory(env=AWS_ENV)
        job = ops.create(
            "upload_file", {"path": str(tmp_path / "backup.tar")}, max_retries=2, retry_base_s=0.2, retry_cap_s=0.5
        )
        wait_until("a part on the server", lambda: parts_saved(ops, job["id"]) >= 1)
        private.stop()

        failed = wait_until("the job to fail", lambda: (j := ops.get(job["id"]))["status"] == "failed" and j)
        kinds = [step["type"] for step in failed["history"]]
        assert kinds.count("retry_scheduled") == 2 and failed["attempts"] == 3
        assert "Could not connect" in failed["error"] and "gave up after 3 attempts" in failed["error"]
        # The abort (run just after the failure is recorded) cannot reach the endpoint either: it waits in the
        # journal, and the worker keeps trying.
        wait_until("the abort to be deferred", lambda: PendingAborts(Paths(ops.paths.root)).load())

        private.start()
        wait_until("the multipart upload to be aborted", lambda: open_uploads(private, bucket) == [])
        wait_until("the journal to empty", lambda: PendingAborts(Paths(ops.paths.root)).load() == [])
        with pytest.raises(ClientError, match=r"NoSuchKey|Not Found|404"):
            fetch(private, bucket, "backup.tar")
        client = private.client()
        client.delete_bucket(Bucket=bucket)


def test_worker_lost_with_no_attempts_left_aborts_the_upload(
    ops: Any, s3_server: S3Server, s3_bucket: str, tmp_path: Path, worker_factory: Callable[..., Any]
) -> None:
    """The crash-recovery path fails the job the way the normal path does: no multipart upload left open."""
    configure(ops, s3_server, s3_bucket, bandwidth_limit_bytes_s=4 * MiB)
    write_file(tmp_path / "big.iso", 20 * MiB, seed=3)
    first = worker_factory(env=AWS_ENV)
    (job,) = ops.upload([str(tmp_path / "big.iso")], max_retries=0)
    wait_until("a part on the server", lambda: parts_saved(ops, job["id"]) >= 1)
    first.kill()
    assert open_uploads(s3_server, s3_bucket), "the kill should leave the multipart upload open"
    worker_factory(env=AWS_ENV)
    failed = wait_until("the job to fail", lambda: (j := ops.get(job["id"]))["status"] == "failed" and j)
    assert "worker lost" in failed["error"]
    assert open_uploads(s3_server, s3_bucket) == []


def _stopped_for_cancel(ops: Any, s3_server: S3Server, s3_bucket: str, job_id: int) -> dict[str, Any]:
    """The job once canceled, after checking that it left nothing: no object, no open multipart upload, no staged
    copy; and that it ended by the cancel request, not by a retry or a failure."""
    done = wait_until("the job to end", lambda: (j := ops.get(job_id))["status"] not in ("running", "pending") and j)
    assert done["status"] == "canceled", done
    kinds = [step["type"] for step in done["history"]]
    assert "cancel_requested" in kinds and kinds[-1] in ("canceled", "lease_expired"), kinds
    assert done["attempts"] == 1 and done["result"] is None
    wait_until("the multipart upload to be aborted", lambda: open_uploads(s3_server, s3_bucket) == [], 20.0)
    with pytest.raises(ClientError, match=r"NoSuchKey|Not Found|404"):
        fetch(s3_server, s3_bucket, done["parameters"]["key"])
    assert list(ops.paths.spool.glob("job-*")) == [] and ops.ledger.get_row(job_id).staged_path is None
    return done


def test_cancel_stops_a_running_upload_at_once_through_the_worker(
    ops: Any, s3_server: S3Server, s3_bucket: str, tmp_path: Path, worker_factory: Callable[..., Any]
) -> None:
    """Cancel as the window and the CLI send it, over the worker's control channel: the upload stops mid-part
    (its reads are cut) rather than at the end of a 5 MiB part at 1 MiB/s, and the job ends canceled."""
    configure(ops, s3_server, s3_bucket, bandwidth_limit_bytes_s=1 * MiB)
    write_file(tmp_path / "film.mkv", 20 * MiB, seed=9)
    worker_factory(env=AWS_ENV)
    (job,) = ops.upload([str(tmp_path / "film.mkv")])
    wait_until("the multipart upload to start", lambda: open_uploads(s3_server, s3_bucket))
    asked = call_sync("cancel", Paths(ops.paths.root), job_id=job["id"])
    assert asked["status"] == "running" and asked["cancel_requested_at"]  # its worker ends it
    assert _stopped_for_cancel(ops, s3_server, s3_bucket, job["id"])["history"][-1]["type"] == "canceled"
    again = ops.retry(job["id"])  # a retry clears the request and snapshots the file again
    assert again["cancel_requested_at"] is None
    save_settings({"bandwidth_limit_bytes_s": 0}, Paths(ops.paths.root))
    wait_until("the retry to succeed", lambda: ops.get(job["id"])["status"] == "succeeded")


def test_a_cancel_asked_of_a_lost_worker_is_honoured_by_the_next_one_not_retried(
    ops: Any, s3_server: S3Server, s3_bucket: str, tmp_path: Path, worker_factory: Callable[..., Any]
) -> None:
    """The request is in the ledger, not only in the worker: asked while the worker was dying (here: just after
    kill -9), the next worker's recovery cancels the job and aborts its upload instead of running it again."""
    configure(ops, s3_server, s3_bucket, bandwidth_limit_bytes_s=4 * MiB)
    write_file(tmp_path / "big.iso", 20 * MiB, seed=4)
    first = worker_factory(env=AWS_ENV)
    (job,) = ops.upload([str(tmp_path / "big.iso")], max_retries=3)
    wait_until("a part on the server", lambda: parts_saved(ops, job["id"]) >= 1)
    first.kill()
    assert ops.cancel(job["id"])["status"] == "running"  # the ledger alone, as a command with no worker does
    worker_factory(env=AWS_ENV)
    _stopped_for_cancel(ops, s3_server, s3_bucket, job["id"])


def test_a_cancel_written_by_another_process_reaches_the_running_upload(
    ops: Any, s3_server: S3Server, s3_bucket: str, tmp_path: Path, worker_factory: Callable[..., Any]
) -> None:
    """A request the worker's own control channel did not carry (another process wrote it to the ledger) is found
    by the worker's heartbeat."""
    configure(ops, s3_server, s3_bucket, bandwidth_limit_bytes_s=1 * MiB)
    write_file(tmp_path / "disk.img", 20 * MiB, seed=5)
    worker_factory(env=AWS_ENV)
    (job,) = ops.upload([str(tmp_path / "disk.img")])
    wait_until("the multipart upload to start", lambda: open_uploads(s3_server, s3_bucket))
    assert ops.cancel(job["id"])["status"] == "running"
    done = _stopped_for_cancel(ops, s3_server, s3_bucket, job["id"])
    assert done["history"][-1]["type"] == "canceled"
