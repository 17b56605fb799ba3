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


def check_file(path_text: str, limit: int) -> tuple[Path, os.stat_result]:
    """The submission-time checks, each naming the field and the rule."""
    path = Path(path_text).expanduser()
    if not path.exists():
        raise ValidationError("path", f"{path} does not exist")
    if path.is_dir():
        raise ValidationError("path", f"{path} is a directory; give a file (the GUI expands dropped folders)")
    if not path.is_file():
        raise ValidationError("path", f"{path} is not a regular file")
    if not os.access(path, os.R_OK):
        raise ValidationError("path", f"{path} is not readable by this user")
    stat = path.stat()
    if stat.st_size > limit:
        raise ValidationError(
            "path", f"{path} is {stat.st_size:,} bytes, over the upload limit of {limit:,} bytes (max_upload_bytes)"
        )
    return path.resolve(), stat


def stage(source: Path, spool: Path) -> Path:
    """Snapshot the file into the spool; a full disk leaves no partial copy behind.

    The copy is flushed to disk before the job is recorded: after a power loss the job must not point at a torn
    snapshot. It also keeps the kernel's write-back of a large snapshot out of the upload itself, which it slowed
    by 15-20 % (bench/upload.py, staged vs --in-place).
    """
    folder = spool / f"job-{uuid.uuid4().hex}"
    folder.mkdir(parents=True)
    target = folder / source.name
    try:
        with source.open("rb") as src, target.open("xb") as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
            dst.flush()
            os.fsync(dst.fileno())
        _fsync_folder(folder)
    except OSError as exc:
        remove_staged(target)
        shutil.rmtree(folder, ignore_errors=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise JobdeckError(
                f"not enough disk space to stage {source} in {spool}; free space or use in_place"
            ) from None
        raise JobdeckError(f"could not stage {source}: {exc.strerror or exc}") from None
    return target


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
        path, stat = check_file(params.path, settings.max_upload_bytes)
        bucket = params.bucket or settings.s3_bucket
        if not bucket:
            raise ValidationError("bucket", "no bucket given and no default set (jobdeck config set s3_bucket NAME)")
        key = params.key or (settings.s3_key_prefix + path.name)
        if not key or key.startswith("/"):
            raise ValidationError("key", f"{key!r} is not a valid object key (must be non-empty, no leading '/')")
        stored = params.model_copy(
            update={
                "path": str(path),
                "bucket": bucket,
                "key": key,
                "conflict": params.conflict or settings.upload_conflict,
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
            }
        ).model_dump(mode="json", exclude_none=True)
        staged = None if params.in_place else stage(path, spool)
        return Prepared(stored, staged)

    def restage(self, job: dict[str, Any], settings: Settings, spool: Path) -> Path | None:
        """A canceled upload released its snapshot; a retry snapshots the original again."""
        params = job["parameters"]
        if params.get("in_place"):
            return None
        path, _ = check_file(params["path"], settings.max_upload_bytes)
        return stage(path, spool)

    def run(self, ctx: JobContext, params: UploadParams) -> dict[str, Any]:  # type: ignore[override]
        source = self._source(ctx, params)
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
    def _source(ctx: JobContext, params: UploadParams) -> Path:
        if not params.in_place:
            if ctx.staged_path is None or not ctx.staged_path.exists():
                raise PermanentJobError("the staged copy of the file is missing from the spool")
            return ctx.staged_path
        path = Path(params.path)
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise PermanentJobError(f"{path} no longer exists (in-place upload)") from None
        if stat.st_size != params.size or stat.st_mtime_ns != params.mtime_ns:
            raise PermanentJobError(f"{path} changed since it was submitted (size or modification time differ)")
        return path

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
