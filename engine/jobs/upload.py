"""The ``upload_file`` job type: one local file to an S3-compatible bucket, staged at submission, resumable."""

from __future__ import annotations

import errno
import mimetypes
import os
import shutil
import uuid
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError
from pydantic import Field

from engine.config import Settings
from engine.errors import JobdeckError, JobError, PermanentJobError, ValidationError
from engine.jobs.base import CleanupEnv, JobContext, JobType, Params, Prepared, remove_staged
from engine.jobs.registry import register
from engine.s3 import object_url
from engine.upload_aborts import PendingAborts, abort_or_defer
from engine.upload_paths import DataGuard, Refused, SourceFile, check_bucket, check_key, check_named
from engine.uploads import CHECKSUM_ALGORITHM, Transfer, streaming_client

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


def stage(source: Path, spool: Path, limit: int, guard: DataGuard) -> tuple[Path, SourceFile]:
    """Snapshot the file into the spool; a full disk, or a file that grows past ``limit`` while it is copied,
    leaves no partial copy behind. Returns the copy and the opened source (closed; its ``size`` is what was copied).

    The copy is flushed to disk before the job is recorded: after a power loss the job must not point at a torn
    snapshot. It also keeps the kernel's write-back of a large snapshot out of the upload itself, which it slowed
    by 15-20 % (bench/upload.py, staged vs --in-place).
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
    description = "Upload a local file to an S3-compatible bucket; the result holds the object's URL."
    Params = UploadParams

    def summary(self, parameters: dict[str, Any]) -> str:
        return PurePosixPath(str(parameters.get("path", "")).replace("\\", "/")).name

    def prepare(self, params: UploadParams, settings: Settings, spool: Path) -> Prepared:  # type: ignore[override]
        guard = DataGuard.beside(spool)
        path, _ = check_named(params.path, settings.max_upload_bytes, guard)
        bucket = params.bucket or settings.s3_bucket
        if not bucket:
            raise ValidationError("bucket", "no bucket given and no default set (jobdeck config set s3_bucket NAME)")
        try:
            check_bucket(bucket)
        except ValidationError as exc:
            origin = "" if params.bucket else " (from the s3_bucket setting)"
            raise ValidationError("bucket", exc.message + origin) from None
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
            }
        ).model_dump(mode="json", exclude_none=True)
        return Prepared(stored, staged)

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
        client = streaming_client(ctx.settings, ctx.credentials)
        checkpoint = ctx.checkpoint if ctx.checkpoint and ctx.checkpoint.get("bucket") == params.bucket else None
        try:
            PendingAborts().flush(client)
            if checkpoint and checkpoint.get("key"):
                key = checkpoint["key"]  # chosen by an earlier attempt (rename may have picked a new name)
            else:
                key = params.key
                if params.conflict != "overwrite" and self._exists(client, params.bucket, key):
                    if params.conflict == "skip":
                        return {
                            "skipped": "already exists",
                            "bucket": params.bucket,
                            "key": key,
                            "file_url": object_url(ctx.settings, params.bucket, key),
                        }
                    key = self._free_name(client, params.bucket, key)
            outcome = Transfer(
                client=client,
                source=source,
                bucket=params.bucket,
                key=key,
                settings=ctx.settings,
                progress=lambda done, total: ctx.progress(done, total),
                save_checkpoint=ctx.save_checkpoint,
                stop=ctx.stop_requested,
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
        return {
            "file_url": object_url(ctx.settings, params.bucket, key),
            "bucket": params.bucket,
            "key": key,
            "size": head.get("ContentLength", outcome.bytes_sent),
            "etag": head.get("ETag", "").strip('"') or outcome.etag,
            "version_id": head.get("VersionId") or outcome.version_id,
            "checksum_algorithm": CHECKSUM_ALGORITHM,
            "checksum": head.get("ChecksumCRC32") or outcome.checksum,
            "multipart": outcome.multipart,
            "parts": outcome.parts,
            "resumed_parts": outcome.resumed_parts,
            "bytes_sent_this_attempt": outcome.bytes_sent,
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
        if reason != "succeeded" and checkpoint and checkpoint.get("upload_id"):
            abort_or_defer(env.settings, env.credentials, checkpoint)

    @staticmethod
    def _source(ctx: JobContext, params: UploadParams) -> SourceFile:
        """Open exactly the file that was checked at submission, judged again by its descriptor: the staged copy,
        or (in place) the resolved path that was stored, which must not have become a link, a special file or one
        of Jobdeck's own files since."""
        guard = DataGuard.beside(ctx.temp_root)
        if not params.in_place:
            if ctx.staged_path is None or not ctx.staged_path.exists():
                raise PermanentJobError("the staged copy of the file is missing from the spool")
            path, own, size = ctx.staged_path, True, None
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
        elif source.size > ctx.settings.max_upload_bytes:
            source.close()
            raise PermanentJobError(f"{path} is over the upload limit of {ctx.settings.max_upload_bytes:,} bytes")
        return source

    @staticmethod
    def _exists(client: Any, bucket: str, key: str) -> bool:
        try:
            client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def _free_name(self, client: Any, bucket: str, key: str) -> str:
        """``name (1).ext``, ``name (2).ext``… the first that is free."""
        path = PurePosixPath(key)
        stem, suffix = path.stem, path.suffix
        for n in range(1, 10_000):
            candidate = str(path.with_name(f"{stem} ({n}){suffix}"))
            if not self._exists(client, bucket, candidate):
                return candidate
        raise JobError(f"no free name for {key}")
