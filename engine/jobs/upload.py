"""The ``upload_file`` job type: one local file to an S3-compatible bucket, staged at submission, resumable.

Idempotent per job: each object carries the job's tag, so an attempt after a crash finds the object an earlier attempt
completed (at the key it chose, which a rename records before sending) and finishes without sending it again, and a
conflict policy never mistakes the job's own object for someone else's.
"""

from __future__ import annotations

import errno
import logging
import mimetypes
import os
import shutil
import uuid
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError
from pydantic import Field

from engine.config import Paths, Settings
from engine.credentials.store import Credentials
from engine.errors import JobdeckError, JobError, PermanentJobError, ValidationError
from engine.jobs.base import CleanupEnv, JobContext, JobType, Params, Prepared, remove_staged
from engine.jobs.registry import register
from engine.s3 import make_client, object_url
from engine.upload_aborts import PendingAborts, abort_or_defer, forget
from engine.upload_paths import DataGuard, Refused, SourceFile, check_bucket, check_key, check_named
from engine.uploads import (
    CHECKSUM_ALGORITHM,
    Outcome,
    Transfer,
    finished_here,
    head_object,
    streaming_client,
    tagged,
)

log = logging.getLogger(__name__)

_PERMANENT_S3_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "NoSuchBucket",
    "InvalidBucketName",
    "AllAccessDisabled",
}


class UploadParams(Params):
    path: str = Field(description="The local file to upload", json_schema_extra={"format": "file-path"})
    bucket: str | None = Field(default=None, description="Bucket (default from the settings)")
    key: str | None = Field(default=None, description="Object key (default: key prefix + file name)")
    conflict: Literal["overwrite", "skip", "rename"] | None = Field(
        default=None, description="When the key exists: overwrite, skip or rename (default from the settings)"
    )
    in_place: bool = Field(default=False, description="Upload from the original file instead of a staged copy")
    size: int | None = Field(default=None, description="Filled at submission", json_schema_extra={"readOnly": True})
    mtime_ns: int | None = Field(default=None, description="Filled at submission", json_schema_extra={"readOnly": True})
    job_tag: str | None = Field(
        default=None,
        description="Filled at submission: marks the objects this job writes",
        json_schema_extra={"readOnly": True},
    )


def stage(source: Path, spool: Path, limit: int, guard: DataGuard) -> tuple[Path, SourceFile]:
    """Snapshot the file into the spool; a full disk, or a file that grows past ``limit`` while it is copied,
    leaves no partial copy behind. Returns the copy and the opened source (closed; its ``size`` is what was copied).

    The copy is flushed to disk before the job is recorded: after a power loss the job must not point at a torn
    snapshot. It also keeps the kernel's write-back of a large snapshot out of the upload itself, which it slows.
    """
    with _open_checked(source, guard) as src:
        folder = spool / f"job-{uuid.uuid4().hex}"
        folder.mkdir(parents=True)
        target = folder / source.name
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
            try:
                src.size = src.copy_to(fd, limit)
                os.fsync(fd)
            finally:
                os.close(fd)
            _fsync_folder(folder)
        except (OSError, Refused) as exc:
            remove_staged(target)
            shutil.rmtree(folder, ignore_errors=True)
            if isinstance(exc, Refused):
                raise ValidationError("path", f"{source} {exc}") from None
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise JobdeckError(
                    f"not enough disk space to stage {source} in {spool}; free space or use in_place"
                ) from None
            raise JobdeckError(f"could not stage {source}: {exc.strerror or exc}") from None
    return target, src


def _open_checked(path: Path, guard: DataGuard) -> SourceFile:
    """Open the checked file at submission (never blocking the caller, which may be a worker request thread)."""
    try:
        return SourceFile.open(path, guard)
    except Refused as exc:
        raise ValidationError("path", f"{path} is {exc}") from None
    except OSError as exc:
        raise ValidationError("path", f"{path} cannot be opened: {exc.strerror or exc}") from None


def _fsync_folder(folder: Path) -> None:
    """Make the new file's directory entry durable too (POSIX; Windows cannot open a folder for this)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@register
class UploadFile(JobType):
    name = "upload_file"
    label = "Upload file to S3"
    short_label = "Upload"
    description = "Upload a local file to an S3-compatible bucket; the result holds the object's URL."
    Params = UploadParams
    summary_fields = ("path",)
    link_field = "file_url"

    def probe(self, settings: Settings, credentials: Credentials) -> str:
        """``head_bucket`` on the default bucket with the job's own client (endpoint, addressing, keys)."""
        if not settings.s3_bucket:
            raise JobdeckError("Set a bucket first.")
        client = make_client(settings, credentials, retries={"max_attempts": 1}, connect_timeout=5, read_timeout=15)
        try:
            client.head_bucket(Bucket=settings.s3_bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise JobdeckError(f"S3 answered {code or 'an error'} for bucket {settings.s3_bucket!r}.") from None
        except BotoCoreError as exc:
            raise JobdeckError(f"Could not reach S3: {exc}") from None
        where = settings.s3_endpoint_url or f"AWS region {settings.s3_region}"
        return f"Bucket {settings.s3_bucket!r} is reachable at {where}."

    def missing(self, settings: Settings, configured: set[str], credentials: Credentials) -> list[str]:
        return [] if settings.s3_bucket else ["no default S3 bucket is set"]

    def prepare(self, params: UploadParams, settings: Settings, spool: Path) -> Prepared:  # type: ignore[override]
        guard = DataGuard.beside(spool)
        path, _ = check_named(params.path, settings.max_upload_bytes, guard)
        bucket = self._bucket(params, settings)
        key = check_key("key", params.key or (settings.s3_key_prefix + path.name))
        staged = None
        if params.in_place:
            with _open_checked(path, guard) as src:
                checked = src
        else:
            staged, checked = stage(path, spool, settings.max_upload_bytes, guard)
        stored = params.model_copy(
            update={
                "path": str(path),
                "bucket": bucket,
                "key": key,
                "conflict": params.conflict or settings.upload_conflict,
                "size": checked.size,
                "mtime_ns": checked.mtime_ns,
                "job_tag": uuid.uuid4().hex,
            }
        ).model_dump(mode="json", exclude_none=True)
        return Prepared(stored, staged)

    def check_template(self, params: UploadParams, settings: Settings, spool: Path) -> dict[str, Any]:  # type: ignore[override]
        """A scheduled upload reads its file at each run (``prepare`` at the planned time: a snapshot, or the checks
        of ``in_place``). Saving the schedule checks what it can now — the file as it is, the bucket, the key — so
        a typo fails at once; the path is kept as given (made absolute), so a link is followed at each run."""
        guard = DataGuard.beside(spool)
        check_named(params.path, settings.max_upload_bytes, guard)
        self._bucket(params, settings)
        if params.key is not None:
            check_key("key", params.key)
        given = str(Path(params.path).expanduser().absolute())
        # What a submission fills in belongs to each run, never to the template (a copied job carries them).
        update = {"path": given, "size": None, "mtime_ns": None, "job_tag": None}
        return params.model_copy(update=update).model_dump(mode="json", exclude_none=True)

    def _bucket(self, params: UploadParams, settings: Settings) -> str:
        bucket = params.bucket or settings.s3_bucket
        if not bucket:
            raise ValidationError("bucket", "no bucket given and no default set (jobdeck config set s3_bucket NAME)")
        try:
            check_bucket(bucket)
        except ValidationError as exc:
            origin = "" if params.bucket else " (from the s3_bucket setting)"
            raise ValidationError("bucket", exc.message + origin) from None
        return bucket

    def restage(self, job: dict[str, Any], settings: Settings, spool: Path) -> Path | None:
        """A canceled upload released its snapshot; a retry snapshots the original again."""
        params = job["parameters"]
        if params.get("in_place"):
            return None
        guard = DataGuard.beside(spool)
        path, _ = check_named(params["path"], settings.max_upload_bytes, guard)
        return stage(path, spool, settings.max_upload_bytes, guard)[0]

    def run(self, ctx: JobContext, params: UploadParams) -> dict[str, Any]:  # type: ignore[override]
        with self._source(ctx, params) as source:
            return self._upload(ctx, params, source)

    def _upload(self, ctx: JobContext, params: UploadParams, source: SourceFile) -> dict[str, Any]:
        assert params.bucket and params.key
        tag = job_tag(ctx.job_id, params)
        client = streaming_client(ctx.settings, ctx.credentials)
        checkpoint = ctx.checkpoint if ctx.checkpoint and ctx.checkpoint.get("bucket") == params.bucket else None
        try:
            PendingAborts().flush(client)
            key, found = self._target(client, params, checkpoint, tag)
            if key is None or finished_here(found, tag, source):
                forget(client, checkpoint)  # an upload an earlier attempt left open, if any
                if key is None:
                    return {"skipped": "already exists", **self._where(ctx.settings, params.bucket, params.key)}
                assert found is not None
                return self._result(ctx.settings, params.bucket, key, found, None)
            if not checkpoint or checkpoint.get("key") != key:
                forget(client, checkpoint)
                checkpoint = None
                if key != params.key:  # the name a rename chose, recorded before anything is sent
                    checkpoint = {"bucket": params.bucket, "key": key}
                    ctx.save_checkpoint(checkpoint)
            outcome = Transfer(
                client=client,
                source=source,
                bucket=params.bucket,
                key=key,
                settings=ctx.settings,
                progress=lambda done, total: ctx.progress(done, total, unit="bytes"),
                save_checkpoint=ctx.save_checkpoint,
                stop=ctx.stop_requested,
                tag=tag,
                checkpoint=checkpoint,
                content_type=mimetypes.guess_type(source.name)[0],
            ).run()
            head = client.head_object(Bucket=params.bucket, Key=key, ChecksumMode="ENABLED")
        except NoCredentialsError:
            raise PermanentJobError("no AWS credentials: set aws-access-key-id and aws-secret-access-key") from None
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            text = f"S3 refused: {code} {exc.response.get('Error', {}).get('Message', '')}".strip()
            if code in _PERMANENT_S3_CODES:
                raise PermanentJobError(text) from None
            raise JobError(text) from None
        except (EndpointConnectionError, BotoCoreError, OSError) as exc:
            raise JobError(f"upload failed: {exc.__class__.__name__}: {exc}") from None
        return self._result(ctx.settings, params.bucket, key, head, outcome)

    def completed_result(
        self,
        job: dict[str, Any],
        staged_path: Path | None,
        env: CleanupEnv,
        *,
        checkpoint: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """The result of an upload whose object is complete (tag, size, checksum) though no success was recorded."""
        try:
            params = UploadParams.model_validate(job["parameters"])
            if not params.bucket or not params.key:
                return None
            tag = job_tag(job["id"], params)
            keys = [params.key]
            if checkpoint and checkpoint.get("bucket") == params.bucket and checkpoint.get("key"):
                keys.insert(0, checkpoint["key"])
            # Asked during recovery, before the worker serves: an endpoint that is down must not hold it up long.
            client = make_client(
                env.settings, env.credentials, connect_timeout=2, read_timeout=10, retries={"max_attempts": 1}
            )
            with open_source(params, staged_path, DataGuard(Paths()), env.settings.max_upload_bytes) as source:
                for key in dict.fromkeys(keys):
                    found = head_object(client, params.bucket, key)
                    if finished_here(found, tag, source):
                        assert found is not None
                        return self._result(env.settings, params.bucket, key, found, None)
        except Exception as exc:  # not known: the job runs again, which finds out the same way
            log.info("could not tell whether upload job %s had finished: %s", job.get("id"), exc)
        return None

    @staticmethod
    def _where(settings: Settings, bucket: str, key: str) -> dict[str, Any]:
        return {"bucket": bucket, "key": key, "file_url": object_url(settings, bucket, key)}

    def _result(
        self, settings: Settings, bucket: str, key: str, head: dict[str, Any], outcome: Outcome | None
    ) -> dict[str, Any]:
        """What a finished upload reports; ``outcome`` is ``None`` when an earlier attempt had sent it all."""
        etag = head.get("ETag", "").strip('"')
        parts = int(etag.rpartition("-")[2]) if "-" in etag and etag.rpartition("-")[2].isdigit() else 1
        return {
            "file_url": object_url(settings, bucket, key),
            "bucket": bucket,
            "key": key,
            "size": head.get("ContentLength", outcome.bytes_sent if outcome else None),
            "etag": etag or (outcome.etag if outcome else ""),
            "version_id": head.get("VersionId") or (outcome.version_id if outcome else None),
            "checksum_algorithm": CHECKSUM_ALGORITHM,
            "checksum": head.get("ChecksumCRC32") or (outcome.checksum if outcome else None),
            "multipart": outcome.multipart if outcome else "-" in etag,
            "parts": outcome.parts if outcome else parts,
            "resumed_parts": outcome.resumed_parts if outcome else parts,
            "bytes_sent_this_attempt": outcome.bytes_sent if outcome else 0,
            "found_complete": outcome is None,
        }

    def cleanup(
        self,
        job: dict[str, Any],
        staged_path: Path | None,
        env: CleanupEnv,
        reason: str,
        *,
        checkpoint: dict[str, Any] | None = None,
    ) -> None:
        """Also abort an unfinished multipart upload: S3 bills its parts until someone does."""
        super().cleanup(job, staged_path, env, reason, checkpoint=checkpoint)
        if reason != "succeeded" and checkpoint and (checkpoint.get("upload_id") or checkpoint.get("creating")):
            abort_or_defer(env.settings, env.credentials, checkpoint)

    @staticmethod
    def _source(ctx: JobContext, params: UploadParams) -> SourceFile:
        return open_source(params, ctx.staged_path, DataGuard.beside(ctx.temp_root), ctx.settings.max_upload_bytes)

    def _target(
        self, client: Any, params: UploadParams, checkpoint: dict[str, Any] | None, tag: str
    ) -> tuple[str | None, dict[str, Any] | None]:
        """The key this attempt writes and what is there now (``head_object``); no key when the policy skips.

        The job's own object (its tag) is never someone else's: an earlier attempt's name is kept unless another
        writer took it since, and a rename stops at the first name that is free or already the job's.
        """
        assert params.bucket and params.key
        earlier = checkpoint.get("key") if checkpoint else None
        if earlier and earlier != params.key:
            found = head_object(client, params.bucket, earlier)
            if found is None or tagged(found, tag):
                return earlier, found
        found = head_object(client, params.bucket, params.key)
        if found is None or tagged(found, tag) or params.conflict == "overwrite":
            return params.key, found
        if params.conflict == "skip":
            return None, found
        path = PurePosixPath(params.key)
        for n in range(1, 10_000):
            candidate = str(path.with_name(f"{path.stem} ({n}){path.suffix}"))
            found = head_object(client, params.bucket, candidate)
            if found is None or tagged(found, tag):
                return candidate, found
        raise JobError(f"no free name for {params.key}")


def job_tag(job_id: int, params: UploadParams) -> str:
    """The tag in the metadata of the objects the job writes (jobs submitted before tags: one from its id)."""
    return params.job_tag or f"job-{job_id}"


def open_source(params: UploadParams, staged_path: Path | None, guard: DataGuard, limit: int) -> SourceFile:
    """Open exactly the file that was checked at submission, judged again by its descriptor: the staged copy,
    or (in place) the resolved path that was stored, which must not have become a link, a special file or one
    of Jobdeck's own files since."""
    if not params.in_place:
        if staged_path is None or not staged_path.exists():
            raise PermanentJobError("the staged copy of the file is missing from the spool")
        path, own, size = staged_path, True, None
    else:
        path, own, size = Path(params.path), False, params.size
    try:
        source = SourceFile.open(path, guard, own=own, size=size)
    except FileNotFoundError:
        raise PermanentJobError(f"{path} no longer exists (in-place upload)") from None
    except Refused as exc:
        raise PermanentJobError(f"{path} is {exc}") from None
    except OSError as exc:
        raise PermanentJobError(f"{path} cannot be opened: {exc.strerror or exc}") from None
    if params.in_place:
        try:
            source.check_size()
            if source.mtime_ns != params.mtime_ns:
                raise Refused("modified since it was submitted")
        except Refused:
            source.close()
            raise PermanentJobError(
                f"{path} changed since it was submitted (size or modification time differ)"
            ) from None
    elif source.size > limit:
        source.close()
        raise PermanentJobError(f"{path} is over the upload limit of {limit:,} bytes")
    return source
