"""The upload job against moto's S3 server: multipart, integrity, resume, conflicts, staging and in-place checks."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from servers import S3Server

from engine.config import Paths, Settings, save_settings
from engine.credentials.store import Credentials
from engine.errors import JobdeckError, JobError, PermanentJobError
from engine.jobs import registry
from engine.jobs.base import CleanupEnv, JobContext
from engine.upload_aborts import PendingAborts, cleanup_stale
from engine.uploads import MAX_PARTS, MIN_PART, TokenBucket, part_size_for

MiB = 1024**2


def write_file(path: Path, size: int, seed: int = 1) -> bytes:
    """Incompressible-looking, reproducible content (the same bytes for the same seed)."""
    import random

    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data


def s3_settings(ops: Any, server: S3Server, bucket: str, **extra: Any) -> Settings:
    return save_settings(
        {
            "s3_endpoint_url": server.endpoint_url,
            "s3_path_style": True,
            "s3_bucket": bucket,
            "multipart_threshold_bytes": 5 * MiB,
            "multipart_part_bytes": 5 * MiB,
            **extra,
        },
        Paths(ops.paths.root),
    )


@pytest.fixture
def aws(ops: Any) -> Credentials:
    ops.credentials.store.set("aws-access-key-id", S3Server.ACCESS_KEY)
    ops.credentials.store.set("aws-secret-access-key", S3Server.SECRET_KEY)
    return ops.credentials


def context(ops: Any, job_id: int, stop: threading.Event | None = None) -> JobContext:
    """What the worker's executor builds for one attempt, from the job's ledger row."""
    row = ops.ledger.get_row(job_id)
    ctx = JobContext(
        job_id=job_id,
        attempt=row.attempts + 1,
        settings=ops.settings,
        credentials=ops.credentials,
        temp_root=ops.paths.temp,
        staged_path=Path(row.staged_path) if row.staged_path else None,
        checkpoint=row.checkpoint,
        _save_checkpoint=ops.ledger.save_checkpoint,
    )
    if stop is not None:
        ctx.stop_requested = stop
    return ctx


def run_attempt(ops: Any, job_id: int, **kwargs: Any) -> dict[str, Any]:
    kind = registry.get("upload_file")
    job = ops.ledger.get(job_id)
    return kind.run(context(ops, job_id, **kwargs), kind.Params.model_validate(job["parameters"]))  # type: ignore[return-value]


def fetch(server: S3Server, bucket: str, key: str) -> bytes:
    return server.client().get_object(Bucket=bucket, Key=key)["Body"].read()


def open_uploads(server: S3Server, bucket: str) -> list[dict[str, Any]]:
    return server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])


# ------------------------------------------------------------------ pure parts
def test_part_size_grows_to_stay_under_ten_thousand_parts() -> None:
    assert part_size_for(100 * MiB, 16 * MiB) == 16 * MiB
    assert part_size_for(100 * MiB, 1) == MIN_PART
    huge = 5 * 1024**4  # 5 TiB
    size = part_size_for(huge, 16 * MiB)
    assert size > 16 * MiB and -(-huge // size) <= MAX_PARTS and size % MiB == 0


def test_token_bucket_never_exceeds_its_burst_without_waiting() -> None:
    bucket = TokenBucket(rate=10 * MiB)
    bucket.take(bucket.capacity)
    before = bucket._tokens
    assert before <= 1  # drained: the next take has to wait for refill
    bucket.take(64 * 1024)
    assert bucket._tokens < bucket.capacity


# ------------------------------------------------------------------ transfers
@pytest.mark.parametrize("parts_in", ["memory", "file"])
def test_multipart_upload_is_byte_for_byte_with_checksums(
    ops: Any,
    aws: Credentials,
    s3_server: S3Server,
    s3_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    parts_in: str,
) -> None:
    """Parts held in reused buffers (the usual case), and streamed from the file when the buffers would be too big."""
    if parts_in == "file":
        monkeypatch.setattr("engine.uploads.PART_MEMORY", 3 * 5 * MiB - 1)
    s3_settings(ops, s3_server, s3_bucket, multipart_concurrency=3)
    name = "Große Datei mit Leerzeichen.bin"
    data = write_file(tmp_path / name, 17 * MiB + 123)
    (job,) = ops.upload([str(tmp_path / name)], key_prefix="dir/sub dir/")
    result = run_attempt(ops, job["id"])
    assert result["key"] == f"dir/sub dir/{name}"
    assert result["multipart"] is True and result["parts"] == 4 and result["resumed_parts"] == 0
    assert result["bytes_sent_this_attempt"] == len(data) == result["size"]
    assert result["etag"].endswith("-4") and result["checksum_algorithm"] == "CRC32" and result["checksum"]
    assert "version_id" in result and "%C3%9F" in result["file_url"] and "%20" in result["file_url"]
    assert fetch(s3_server, s3_bucket, result["key"]) == data
    assert open_uploads(s3_server, s3_bucket) == []
    checkpoint = ops.ledger.get_row(job["id"]).checkpoint
    assert [p["PartNumber"] for p in sorted(checkpoint["parts"], key=lambda p: p["PartNumber"])] == [1, 2, 3, 4]
    assert all(p["checksum"] and p["ETag"] for p in checkpoint["parts"])


def test_small_file_is_one_put_with_progress(
    ops: Any, aws: Credentials, s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    s3_settings(ops, s3_server, s3_bucket)
    data = write_file(tmp_path / "small.txt", 300_000)
    (job,) = ops.upload([str(tmp_path / "small.txt")])
    seen: list[tuple[int, int]] = []
    ctx = context(ops, job["id"])
    ctx._report = lambda _id, p: seen.append((p["done"], p["total"]))
    kind = registry.get("upload_file")
    result = kind.run(ctx, kind.Params.model_validate(job["parameters"]))
    assert result["multipart"] is False and fetch(s3_server, s3_bucket, "small.txt") == data
    assert seen[-1] == (len(data), len(data))
    head = s3_server.client().head_object(Bucket=s3_bucket, Key="small.txt")
    assert head["ContentType"] == "text/plain"


def test_resume_sends_only_the_missing_parts(
    ops: Any, aws: Credentials, s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    """A stop request between parts (graceful shutdown), then a new attempt: ListParts decides what is left."""
    s3_settings(ops, s3_server, s3_bucket, multipart_concurrency=1)
    data = write_file(tmp_path / "big.bin", 16 * MiB)
    (job,) = ops.upload([str(tmp_path / "big.bin")])
    stop = threading.Event()
    original = ops.ledger.save_checkpoint

    def save_then_stop(job_id: int, checkpoint: dict[str, Any] | None) -> None:
        original(job_id, checkpoint)
        if checkpoint and len(checkpoint["parts"]) == 2:
            stop.set()

    ops.ledger.save_checkpoint = save_then_stop
    with pytest.raises(JobError, match="next attempt resumes"):
        run_attempt(ops, job["id"], stop=stop)
    ops.ledger.save_checkpoint = original
    (pending,) = open_uploads(s3_server, s3_bucket)
    assert pending["UploadId"] == ops.ledger.get_row(job["id"]).checkpoint["upload_id"]

    result = run_attempt(ops, job["id"])
    assert result["resumed_parts"] == 2 and result["parts"] == 4
    assert result["bytes_sent_this_attempt"] == len(data) - 2 * 5 * MiB
    assert fetch(s3_server, s3_bucket, "big.bin") == data
    assert open_uploads(s3_server, s3_bucket) == []


def test_resume_resends_parts_the_server_lost(
    ops: Any, aws: Credentials, s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    """The checkpoint is only a claim: an upload aborted elsewhere (e.g. by cleanup) restarts from zero."""
    s3_settings(ops, s3_server, s3_bucket)
    data = write_file(tmp_path / "big.bin", 11 * MiB)
    (job,) = ops.upload([str(tmp_path / "big.bin")])
    client = s3_server.client()
    upload_id = client.create_multipart_upload(Bucket=s3_bucket, Key="big.bin")["UploadId"]
    client.abort_multipart_upload(Bucket=s3_bucket, Key="big.bin", UploadId=upload_id)
    stale = {"upload_id": upload_id, "bucket": s3_bucket, "key": "big.bin", "size": len(data),
             "part_size": 5 * MiB, "parts": [{"PartNumber": 1, "ETag": '"gone"', "checksum": "AAAAAA=="}]}  # fmt: skip
    ops.ledger.save_checkpoint(job["id"], stale)
    result = run_attempt(ops, job["id"])
    assert result["resumed_parts"] == 0 and result["bytes_sent_this_attempt"] == len(data)
    assert fetch(s3_server, s3_bucket, "big.bin") == data


# ------------------------------------------------------------------ conflicts
@pytest.mark.parametrize("policy", ["overwrite", "skip", "rename"])
def test_conflict_policies(
    policy: str, ops: Any, aws: Credentials, s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    s3_settings(ops, s3_server, s3_bucket, upload_conflict=policy)
    client = s3_server.client()
    client.put_object(Bucket=s3_bucket, Key="report (final).pdf", Body=b"old")
    if policy == "rename":
        client.put_object(Bucket=s3_bucket, Key="report (final) (1).pdf", Body=b"older")
    new = write_file(tmp_path / "report (final).pdf", 1000)
    (job,) = ops.upload([str(tmp_path / "report (final).pdf")])
    assert job["parameters"]["conflict"] == policy  # the default comes from the settings
    result = run_attempt(ops, job["id"])
    if policy == "overwrite":
        assert result["key"] == "report (final).pdf" and fetch(s3_server, s3_bucket, result["key"]) == new
    elif policy == "skip":
        assert result["skipped"] == "already exists" and result["key"] == "report (final).pdf"
        assert fetch(s3_server, s3_bucket, "report (final).pdf") == b"old"
    else:
        assert result["key"] == "report (final) (2).pdf" and fetch(s3_server, s3_bucket, result["key"]) == new
        assert fetch(s3_server, s3_bucket, "report (final).pdf") == b"old"


# ------------------------------------------------------------------ staging and in-place
def test_staged_snapshot_survives_edits_and_is_removed_on_success(
    ops: Any, aws: Credentials, s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    s3_settings(ops, s3_server, s3_bucket)
    original = write_file(tmp_path / "notes.bin", 6 * MiB)
    (job,) = ops.upload([str(tmp_path / "notes.bin")])
    staged = Path(ops.ledger.get_row(job["id"]).staged_path)
    (tmp_path / "notes.bin").write_bytes(b"edited after submission")
    run_attempt(ops, job["id"])
    assert fetch(s3_server, s3_bucket, "notes.bin") == original
    registry.get("upload_file").cleanup(
        job, staged, CleanupEnv(ops.settings, ops.credentials), "succeeded", checkpoint=None
    )
    assert not staged.exists() and not staged.parent.exists()


def test_in_place_upload_checks_the_original_is_unchanged(
    ops: Any, aws: Credentials, s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    s3_settings(ops, s3_server, s3_bucket)
    data = write_file(tmp_path / "video.bin", 200_000)
    jobs = ops.upload([str(tmp_path / "video.bin")], in_place=True)
    assert ops.ledger.get_row(jobs[0]["id"]).staged_path is None
    assert list(ops.paths.spool.glob("job-*")) == []
    result = run_attempt(ops, jobs[0]["id"])
    assert fetch(s3_server, s3_bucket, result["key"]) == data

    (changed,) = ops.upload([str(tmp_path / "video.bin")], in_place=True, conflict="overwrite")
    with (tmp_path / "video.bin").open("ab") as fh:
        fh.write(b"appended")
    with pytest.raises(PermanentJobError, match="changed since it was submitted"):
        run_attempt(ops, changed["id"])

    (touched,) = ops.upload([str(tmp_path / "video.bin")], in_place=True, conflict="overwrite")
    stat = (tmp_path / "video.bin").stat()
    os.utime(tmp_path / "video.bin", ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    with pytest.raises(PermanentJobError, match="changed since it was submitted"):
        run_attempt(ops, touched["id"])


def test_full_disk_while_staging_leaves_no_job_and_no_copy(
    ops: Any, s3_server: S3Server, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_settings(ops, s3_server, s3_bucket)
    write_file(tmp_path / "a.bin", 3 * MiB)
    from engine.upload_paths import SourceFile

    real_copy = SourceFile.copy_to

    def copy_until_full(src: Any, fh: int, limit: int) -> int:
        os.write(fh, src.read(0, MiB))  # a partial copy exists when the disk fills up
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(SourceFile, "copy_to", copy_until_full)
    with pytest.raises(JobdeckError, match="not enough disk space"):
        ops.upload([str(tmp_path / "a.bin")])
    monkeypatch.setattr(SourceFile, "copy_to", real_copy)
    assert ops.list()["total"] == 0
    assert list(ops.paths.spool.iterdir()) == []


# ------------------------------------------------------------------ abort: cancel, delete, stale
def _interrupted_upload(ops: Any, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> dict[str, Any]:
    write_file(tmp_path / "half.bin", 11 * MiB)
    (job,) = ops.upload([str(tmp_path / "half.bin")])
    stop = threading.Event()
    save = ops.ledger.save_checkpoint

    def save_then_stop(job_id: int, checkpoint: dict[str, Any] | None) -> None:
        save(job_id, checkpoint)
        if checkpoint and checkpoint.get("upload_id"):
            stop.set()  # stops before the first part: the multipart upload exists, with no parts

    ops.ledger.save_checkpoint = save_then_stop
    try:
        with pytest.raises(JobError):
            run_attempt(ops, job["id"], stop=stop)
    finally:
        del ops.ledger.save_checkpoint
    assert len(open_uploads(s3_server, s3_bucket)) == 1
    return job


@pytest.mark.parametrize("action", ["cancel", "delete"])
def test_cancel_and_delete_abort_the_multipart_upload(
    action: str, ops: Any, aws: Credentials, s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    s3_settings(ops, s3_server, s3_bucket)
    job = _interrupted_upload(ops, s3_server, s3_bucket, tmp_path)
    # The attempt ended by a stop request; the ledger still says pending, which both actions accept.
    getattr(ops, action)(job["id"])
    assert open_uploads(s3_server, s3_bucket) == []
    assert list(ops.paths.spool.glob("job-*")) == []


def test_cleanup_of_stale_uploads_spares_live_jobs(
    ops: Any, aws: Credentials, s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    s3_settings(ops, s3_server, s3_bucket)
    job = _interrupted_upload(ops, s3_server, s3_bucket, tmp_path)
    live = ops.ledger.get_row(job["id"]).checkpoint["upload_id"]
    orphan = s3_server.client().create_multipart_upload(Bucket=s3_bucket, Key="orphan.bin")["UploadId"]
    report = ops.cleanup_uploads(older_than_hours=0)
    assert [a["upload_id"] for a in report["aborted"]] == [orphan] and report["kept"] == 1
    assert [u["UploadId"] for u in open_uploads(s3_server, s3_bucket)] == [live]
    fresh = cleanup_stale(ops.settings, ops.credentials, bucket=s3_bucket, older_than_hours=10**6)
    assert fresh["aborted"] == []  # moto dates uploads in 2010, so only a huge age keeps them


def test_an_abort_that_finds_the_endpoint_down_is_kept_and_finished_later(
    ops: Any, aws: Credentials, s3_bucket: str, tmp_path: Path
) -> None:
    with S3Server() as private:
        private.create_bucket(s3_bucket + "-p")
        s3_settings(ops, private, s3_bucket + "-p")
        job = _interrupted_upload(ops, private, s3_bucket + "-p", tmp_path)
        private.stop()
        ops.cancel(job["id"])  # the abort cannot reach the endpoint
        assert [p["upload_id"] for p in PendingAborts(ops.paths).load()] == [
            ops.ledger.get_row(job["id"]).checkpoint["upload_id"]
        ]
        private.start()
        ops.cleanup_uploads(older_than_hours=10**6)  # nothing is stale; the pending abort is retried now
        assert PendingAborts(ops.paths).load() == []
        assert open_uploads(private, s3_bucket + "-p") == []


def test_cli_uploads_cleanup(ops: Any, s3_server: S3Server, s3_bucket: str) -> None:
    import json
    import subprocess
    import sys

    from workerproc import ROOT

    s3_settings(ops, s3_server, s3_bucket)
    orphan = s3_server.client().create_multipart_upload(Bucket=s3_bucket, Key="left over.bin")["UploadId"]
    env = {
        **os.environ,
        "JOBDECK_HOME": str(ops.paths.root),
        "JOBDECK_KEYRING": "memory",
        "AWS_ACCESS_KEY_ID": S3Server.ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": S3Server.SECRET_KEY,
    }
    run = [sys.executable, str(ROOT / "main.py"), "uploads", "cleanup"]
    bad = subprocess.run([*run, "--older-than", "-1"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "older_than_hours" in bad.stderr
    done = subprocess.run([*run, "--older-than", "0", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["bucket"] == s3_bucket and [a["upload_id"] for a in report["aborted"]] == [orphan]
    assert open_uploads(s3_server, s3_bucket) == []


def test_empty_file_and_a_changed_part_size_setting_between_attempts(
    ops: Any, aws: Credentials, s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    s3_settings(ops, s3_server, s3_bucket, multipart_concurrency=1)
    (tmp_path / "empty.txt").write_bytes(b"")
    (empty,) = ops.upload([str(tmp_path / "empty.txt")])
    assert run_attempt(ops, empty["id"])["size"] == 0 and fetch(s3_server, s3_bucket, "empty.txt") == b""

    data = write_file(tmp_path / "big.bin", 12 * MiB)
    (job,) = ops.upload([str(tmp_path / "big.bin")])
    stop = threading.Event()
    original = ops.ledger.save_checkpoint

    def save_then_stop(job_id: int, checkpoint: dict[str, Any] | None) -> None:
        original(job_id, checkpoint)
        if checkpoint and checkpoint["parts"]:
            stop.set()

    ops.ledger.save_checkpoint = save_then_stop
    with pytest.raises(JobError):
        run_attempt(ops, job["id"], stop=stop)
    ops.ledger.save_checkpoint = original
    s3_settings(ops, s3_server, s3_bucket, multipart_part_bytes=6 * MiB)  # the resumed upload keeps 5 MiB parts
    result = run_attempt(ops, job["id"])
    assert result["resumed_parts"] == 1 and result["parts"] == 3
    assert fetch(s3_server, s3_bucket, "big.bin") == data
