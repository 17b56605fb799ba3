"""Aborting multipart uploads, which S3 bills until someone does: now, later when the endpoint is back, or when stale.

A failed abort (endpoint down) is kept in a small journal under the spool, retried in the background while the
process lives, and by the next upload run or ``jobdeck uploads cleanup`` after that. An upload whose id a crash kept
from the checkpoint (only its intent was saved) is found again by its key (``abort_untracked``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from engine.config import Paths, Settings
from engine.credentials.store import Credentials
from engine.errors import JobdeckError, ValidationError
from engine.s3 import make_client

log = logging.getLogger(__name__)


def list_all(client: Any, method: str, item_key: str, **kwargs: Any) -> Iterable[dict[str, Any]]:
    for page in client.get_paginator(method).paginate(**kwargs):
        yield from page.get(item_key, [])


# ------------------------------------------------------------------ abort: now, later, or when stale
def abort_quietly(client: Any, bucket: str | None, key: str | None, upload_id: str) -> bool:
    """Abort one multipart upload; True when it is gone (including already gone)."""
    if not bucket or not key:
        return False
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except ClientError as exc:
        # Gone with its bucket counts as gone: the journal must not keep retrying it for ever.
        return exc.response.get("Error", {}).get("Code") in ("NoSuchUpload", "NoSuchBucket", "404", "NotFound")
    except Exception as exc:  # endpoint down: the caller defers
        log.info("could not abort multipart upload %s of s3://%s/%s: %s", upload_id, bucket, key, exc)
        return False
    return True


def forget(client: Any, checkpoint: dict[str, Any] | None) -> None:
    """Abort the multipart upload a checkpoint names, or one it was about to create (see ``Transfer``)."""
    if not checkpoint:
        return
    if checkpoint.get("upload_id"):
        abort_quietly(client, checkpoint.get("bucket"), checkpoint.get("key"), checkpoint["upload_id"])
    elif checkpoint.get("creating"):
        abort_untracked(client, checkpoint)


def abort_untracked(client: Any, checkpoint: dict[str, Any]) -> None:
    """Abort the uploads at the checkpoint's key that have no part: one of them is the one a crash left between
    CreateMultipartUpload and saving its id.

    S3 does not list an open upload's metadata, so the job's tag cannot tell which; any other upload at this key
    with no part yet is a concurrent upload of the same key, which then fails its first part with NoSuchUpload and
    starts over on its next attempt.
    """
    bucket, key = checkpoint.get("bucket"), checkpoint.get("key")
    if not bucket or not key:
        return
    for upload in list_all(client, "list_multipart_uploads", "Uploads", Bucket=bucket, Prefix=key):
        if upload.get("Key") != key:
            continue
        try:
            parts = client.list_parts(Bucket=bucket, Key=key, UploadId=upload["UploadId"], MaxParts=1)
        except ClientError:
            continue  # gone meanwhile
        if not parts.get("Parts"):
            abort_quietly(client, bucket, key, upload["UploadId"])


class PendingAborts:
    """Aborts that failed (endpoint down), kept on disk so a later run, cleanup or worker finishes them."""

    _lock = threading.Lock()

    def __init__(self, paths: Paths | None = None) -> None:
        self.path = (paths or Paths()).spool / "pending-aborts.json"

    def load(self) -> list[dict[str, str]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []

    def _write(self, items: list[dict[str, str]]) -> None:
        if not items:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(items), encoding="utf-8")
        os.replace(tmp, self.path)

    def add(self, bucket: str, key: str, upload_id: str) -> None:
        with self._lock:
            items = [i for i in self.load() if i.get("upload_id") != upload_id]
            self._write([*items, {"bucket": bucket, "key": key, "upload_id": upload_id}])

    def flush(self, client: Any) -> int:
        """Try every pending abort once; returns how many are done."""
        with self._lock:
            items = self.load()
            left = [i for i in items if not abort_quietly(client, i.get("bucket"), i.get("key"), i["upload_id"])]
            self._write(left)
        return len(items) - len(left)


_retrier: threading.Thread | None = None


def abort_or_defer(settings: Settings, credentials: Credentials, checkpoint: dict[str, Any]) -> bool:
    """Abort the checkpoint's multipart upload; if the endpoint is unreachable, keep retrying in the background."""
    bucket, key, upload_id = checkpoint.get("bucket"), checkpoint.get("key"), checkpoint.get("upload_id")
    if not (bucket and key and upload_id):
        if checkpoint.get("creating"):
            try:
                abort_untracked(make_client(settings, credentials), checkpoint)
            except Exception as exc:  # endpoint down: the stale-upload cleanup finds it later
                log.info("could not look for an untracked upload of s3://%s/%s: %s", bucket, key, exc)
        return True
    client = make_client(settings, credentials)
    if abort_quietly(client, bucket, key, upload_id):
        return True
    pending = PendingAborts()
    pending.add(bucket, key, upload_id)
    _start_retrier(settings, credentials, pending)
    return False


def _start_retrier(settings: Settings, credentials: Credentials, pending: PendingAborts, span_s: float = 900) -> None:
    global _retrier
    if _retrier is not None and _retrier.is_alive():
        return

    def _loop() -> None:
        delay = 0.5
        deadline = time.monotonic() + span_s
        client = make_client(settings, credentials, connect_timeout=2, retries={"max_attempts": 1})
        while time.monotonic() < deadline and pending.load():
            time.sleep(delay)
            pending.flush(client)
            delay = min(delay * 2, 30.0)

    _retrier = threading.Thread(target=_loop, name="jobdeck-abort-retry", daemon=True)
    _retrier.start()


def cleanup_stale(
    settings: Settings,
    credentials: Credentials,
    *,
    bucket: str | None = None,
    older_than_hours: float = 24.0,
    keep: set[str] | frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Abort multipart uploads in the bucket started more than ``older_than_hours`` ago (S3 bills their parts).

    ``keep`` holds upload ids that live jobs will still resume.
    """
    name = bucket or settings.s3_bucket
    if not name:
        raise ValidationError("bucket", "no bucket given and no default set (jobdeck config set s3_bucket NAME)")
    client = make_client(settings, credentials)
    retried = PendingAborts().flush(client)
    cutoff = datetime.now(UTC) - timedelta(hours=older_than_hours)
    aborted: list[dict[str, Any]] = []
    kept = 0
    try:
        uploads = list(list_all(client, "list_multipart_uploads", "Uploads", Bucket=name))
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise JobdeckError(
            f"S3 refused to list uploads in {name}: {error.get('Code')} {error.get('Message', '')}"
        ) from None
    except BotoCoreError as exc:
        raise JobdeckError(f"could not list uploads in {name}: {exc}") from None
    for upload in uploads:
        initiated = upload.get("Initiated")
        if upload["UploadId"] in keep or (initiated is not None and initiated > cutoff):
            kept += 1
            continue
        if abort_quietly(client, name, upload["Key"], upload["UploadId"]):
            aborted.append(
                {
                    "key": upload["Key"],
                    "upload_id": upload["UploadId"],
                    "initiated": initiated.astimezone(UTC).isoformat() if initiated else None,
                }
            )
    return {"bucket": name, "aborted": aborted, "kept": kept, "pending_retried": retried}
