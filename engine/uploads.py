"""Streaming, resumable S3 uploads: part planning, checksums, throttled part bodies, parallel parts and resume.

Every object carries the job's tag in its metadata (``JOB_TAG``), so that a retry after a crash recognises the
object its own earlier attempt completed (``finished_here``: tag, size and checksum) instead of sending it again. A
multipart upload's intent is recorded before it is created, so that a crash before its id is saved leaves nothing
behind.
Part threads are daemons and stop at once when the job is asked to (a shutdown past its grace period): nothing is
sent after the worker has handed the job back.

Memory stays bounded whatever the file size: each part thread reads its part with positional reads from the one
descriptor the job opened (``engine.upload_paths.SourceFile``: the file is never reopened by name) into a buffer
it reuses for every part, so at most part size x parallel parts is held (never more than PART_MEMORY: beyond that,
for very large parts, the body reads the file in blocks while it is sent). One read per part (not one for our
CRC32, another for botocore's SigV4 payload hash and a third while sending, each in small blocks) keeps the pause
before a part's first byte goes out short. Resume state is a plain dict the job stores as its checkpoint; aborting
unfinished uploads lives in ``engine.upload_aborts``.
"""

from __future__ import annotations

import base64
import math
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from functools import partial
from queue import SimpleQueue
from typing import Any

from botocore.exceptions import ClientError

from engine.config import Settings
from engine.credentials.store import Credentials
from engine.errors import JobError, PermanentJobError
from engine.s3 import make_client
from engine.upload_aborts import forget, list_all
from engine.upload_paths import Refused, SourceFile

MIN_PART = 5 * 1024**2
MAX_PART = 5 * 1024**3
MAX_PARTS = 10_000
READ_BLOCK = 256 * 1024
FILE_BLOCK = 1024**2
# Part buffers (part size x parallel parts) above this stream from the file instead: the defaults (16 MiB x 4) fit,
# and the worker stays within about 100 MB over idle however large the file (bench/upload.py measures it).
PART_MEMORY = 64 * 1024**2
CHECKSUM_ALGORITHM = "CRC32"
PROGRESS_EVERY_S = 0.1
STOP_POLL_S = 0.1  # how often a stopped upload looks whether its parts in flight have given up
JOB_TAG = "jobdeck-job"  # object metadata (x-amz-meta-jobdeck-job): which job wrote the object
PART_SIZE_TAG = "jobdeck-part-size"  # object metadata of a multipart upload: its part size, to check its checksum


class TransferStopped(JobError):
    """The job was asked to stop (a shutdown past its grace period): nothing more goes out for it."""

    def __init__(self) -> None:
        super().__init__("stopped on request; the next attempt resumes from what the server has")


# ------------------------------------------------------------------ planning and checksums
def part_size_for(size: int, wanted: int) -> int:
    """The configured part size, grown (to whole MiB) when the file would otherwise need more than 10,000 parts."""
    part = max(wanted, MIN_PART)
    if size > part * MAX_PARTS:
        part = math.ceil(size / MAX_PARTS / 1024**2) * 1024**2
    if part > MAX_PART:
        raise JobError(f"a file of {size:,} bytes is too large for S3 multipart upload")
    return part


def part_ranges(size: int, part_size: int) -> list[tuple[int, int, int]]:
    """(part number, offset, length) for every part; S3 numbers parts from 1."""
    count = max(1, math.ceil(size / part_size))
    return [(n + 1, n * part_size, min(part_size, size - n * part_size)) for n in range(count)]


class MemoryRange:
    """A byte range read with positional reads into a buffer the part thread reuses for every part."""

    def __init__(self, source: SourceFile, offset: int, length: int, buffer: bytearray) -> None:
        self.length = length
        self.view = memoryview(buffer)[:length]
        done = 0
        while done < length:
            got = source.read_into(self.view[done:], offset + done)
            if not got:
                raise JobError("the file got shorter while it was being uploaded")
            done += got
        _still_as_checked(source)

    def read_at(self, pos: int, n: int) -> bytes:
        return bytes(self.view[pos : pos + n])

    def crc32(self) -> str:
        return _b64_crc(zlib.crc32(self.view))

    def close(self) -> None:
        self.view.release()  # the buffer may be reused (or resized) by the next part


class FileRange:
    """A byte range read from the file on demand, when part size x parallel parts would not fit PART_MEMORY."""

    def __init__(self, source: SourceFile, offset: int, length: int) -> None:
        self.length = length
        self.offset = offset
        self.source = source

    def read_at(self, pos: int, n: int) -> bytes:
        data = self.source.read(self.offset + pos, n)
        if len(data) < n:
            raise JobError("the file got shorter while it was being uploaded")
        if pos + n >= self.length:
            _still_as_checked(self.source)
        return data

    def crc32(self) -> str:
        crc = 0
        for pos in range(0, self.length, FILE_BLOCK):
            crc = zlib.crc32(self.read_at(pos, min(FILE_BLOCK, self.length - pos)), crc)
        return _b64_crc(crc)

    def close(self) -> None:
        pass  # the descriptor belongs to the SourceFile, shared by every part


def _still_as_checked(source: SourceFile) -> None:
    """A file that grew past (or shrank below) the size checked at submission stops the upload for good."""
    try:
        source.check_size()
    except Refused as exc:
        raise PermanentJobError(f"{source.path} {exc}") from None


def _b64_crc(crc: int) -> str:
    """S3's header form of a CRC32."""
    return base64.b64encode(crc.to_bytes(4, "big")).decode("ascii")


def file_checksum(source: SourceFile, part_size: int | None = None) -> str:
    """The CRC32 S3 reports for this file uploaded in one PUT, or in parts of ``part_size`` (the CRC32 of the
    parts' CRC32s, without S3's ``-N`` suffix)."""
    digests = []
    for _, offset, length in part_ranges(source.size, part_size or max(source.size, 1)):
        crc = 0
        for pos in range(offset, offset + length, FILE_BLOCK):
            block = source.read(pos, min(FILE_BLOCK, offset + length - pos))
            if not block:
                raise JobError("the file got shorter while its upload was being checked")
            crc = zlib.crc32(block, crc)
        digests.append(crc.to_bytes(4, "big"))
    if part_size is None:
        return _b64_crc(int.from_bytes(digests[0], "big"))
    return _b64_crc(zlib.crc32(b"".join(digests)))


# ------------------------------------------------------------------ the job's own object
def head_object(client: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """The object's metadata and checksum; ``None`` when there is no object at the key."""
    try:
        return client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def tagged(head: dict[str, Any] | None, tag: str) -> bool:
    """Whether this job wrote the object (``head_object``'s answer)."""
    return head is not None and (head.get("Metadata") or {}).get(JOB_TAG) == tag


def finished_here(head: dict[str, Any] | None, tag: str, source: SourceFile) -> bool:
    """Whether the object is this job's complete upload of ``source``: its tag, its size and its checksum.

    An object exists only once its upload completed, so a match means an earlier attempt did all the work and
    died before the ledger heard of it.
    """
    if head is None or not tagged(head, tag) or head.get("ContentLength") != source.size:
        return False
    server = str(head.get("ChecksumCRC32") or "").partition("-")[0]  # a multipart object's ends in -<parts>
    part_size = str((head.get("Metadata") or {}).get(PART_SIZE_TAG, ""))
    if not server:
        return False
    return server == file_checksum(source, int(part_size) if part_size.isdigit() else None)


# ------------------------------------------------------------------ bandwidth limit
class TokenBucket:
    """A byte-rate limit shared by every part in flight (and every upload in this process)."""

    def __init__(self, rate: int, burst_s: float = 0.25) -> None:
        self.rate = rate
        self.capacity = max(READ_BLOCK, int(rate * burst_s))
        self._tokens = float(self.capacity)
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self, n: int) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= min(n, self.capacity):
                    self._tokens -= n  # may go negative for a large n: later callers wait it off
                    return
                wait_s = (min(n, self.capacity) - self._tokens) / self.rate
            time.sleep(min(wait_s, 0.2))


_buckets: dict[int, TokenBucket] = {}
_buckets_lock = threading.Lock()


def shared_limit(rate: int) -> TokenBucket | None:
    """The process-wide bucket for this rate: the setting caps Jobdeck's total upload bandwidth, not each job's."""
    if rate <= 0:
        return None
    with _buckets_lock:
        return _buckets.setdefault(rate, TokenBucket(rate))


# ------------------------------------------------------------------ progress
class Meter:
    """Bytes sent, from many part threads, reported to the job at most every PROGRESS_EVERY_S."""

    def __init__(self, total: int, already: int, report: Callable[[int, int], None]) -> None:
        self.total = total
        self.already = already
        self.sent = 0
        self._report = report
        self._last = 0.0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.sent += n
            now = time.monotonic()
            if now - self._last < PROGRESS_EVERY_S:
                return
            self._last = now
            done = self.already + self.sent
        self._report(min(done, self.total), self.total)

    def finish(self) -> None:
        self._report(self.total, self.total)


class PartBody:
    """A seekable, sized view of one part, already in memory, for botocore.

    botocore reads the body once to sign it (plain-HTTP endpoints) before sending; only reads after the
    ``before-send`` hook arms the body count as sent and pass through the bandwidth limit. A botocore retry seeks
    back to 0, which takes back what was counted. Once the job is asked to stop, the next read raises, which cuts
    the request short: S3 keeps no part of a request it did not receive whole.
    """

    def __init__(
        self, data: MemoryRange | FileRange, meter: Meter, limit: TokenBucket | None, stop: threading.Event
    ) -> None:
        self.data = data
        self.length = data.length
        self.meter = meter
        self.limit = limit
        self.stop = stop
        self.pos = 0
        self.armed = False
        self.counted = 0

    def __len__(self) -> int:
        return self.length

    def read(self, amt: int | None = -1) -> bytes:
        remaining = self.length - self.pos
        want = remaining if amt is None or amt < 0 else min(amt, remaining)
        if want <= 0:
            return b""
        if self.armed:
            want = min(want, READ_BLOCK)  # the limiter's and the meter's granularity
            if self.limit is not None:
                self.limit.take(want)
            if self.stop.is_set():
                raise TransferStopped
        data = self.data.read_at(self.pos, want)
        self.pos += want
        if self.armed:
            self.counted += want
            self.meter.add(want)
        return data

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.length}[whence]
        self.pos = max(0, min(self.length, base + pos))
        if self.armed and self.pos == 0 and self.counted:
            self.meter.add(-self.counted)
            self.counted = 0
        return self.pos

    def tell(self) -> int:
        return self.pos

    def seekable(self) -> bool:
        return True


def _arm_body(request: Any, **_: Any) -> None:
    """botocore's ``before-send``: from here on the body's reads are sent; none is once the job must stop (a
    retry of a request cut short by ``PartBody.read`` comes here too, and botocore does not retry this error)."""
    if isinstance(request.body, PartBody):
        if request.body.stop.is_set():
            raise TransferStopped
        request.body.armed = True


_clients: dict[tuple[Any, ...], Any] = {}
_clients_lock = threading.Lock()


def streaming_client(settings: Settings, credentials: Credentials) -> Any:
    """An S3 client whose connection pool fits the parallel parts, with the sent-bytes hook installed.

    Kept for the next upload with the same endpoint, keys and pool size: building one parses botocore's S3 model
    (0.1-0.2 s of CPU per job), and reusing it keeps its warm connections. botocore clients are thread-safe; the
    pool is sized for every upload the worker may run at once, since they now share it.
    """
    key = (
        settings.s3_endpoint_url,
        settings.s3_region,
        settings.s3_path_style,
        settings.multipart_concurrency,
        settings.concurrency,
        credentials.get("aws-access-key-id"),
        credentials.get("aws-secret-access-key"),
    )
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            pool = (settings.multipart_concurrency + 2) * settings.concurrency
            client = make_client(settings, credentials, max_pool_connections=pool)
            for op in ("PutObject", "UploadPart"):
                client.meta.events.register(f"before-send.s3.{op}", _arm_body)
            _clients.clear()  # one endpoint and key pair at a time: settings changes should not pile clients up
            _clients[key] = client
    return client


# ------------------------------------------------------------------ one upload
@dataclass
class Outcome:
    """What an upload did: the server's answer and how much this attempt had to send."""

    etag: str
    version_id: str | None
    checksum: str | None
    parts: int
    resumed_parts: int
    bytes_sent: int
    multipart: bool


class PartThreads:
    """The part threads of one upload: daemons, because a shutdown past its grace period must not wait for a part
    still in flight (a ThreadPoolExecutor's threads are joined at interpreter exit); each keeps its part buffer."""

    def __init__(self, count: int) -> None:
        self._work: SimpleQueue[tuple[Future[None], Callable[[], None]] | None] = SimpleQueue()
        self._count = count
        for n in range(count):
            threading.Thread(target=self._loop, name=f"upload-part-{n + 1}", daemon=True).start()

    def submit(self, call: Callable[[], None]) -> Future[None]:
        future: Future[None] = Future()
        self._work.put((future, call))
        return future

    def close(self) -> None:
        """Let the threads end once their part is done; does not wait for them."""
        for _ in range(self._count):
            self._work.put(None)

    def _loop(self) -> None:
        while (item := self._work.get()) is not None:
            future, call = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                call()
            except BaseException as exc:  # handed to the upload's thread, which raises it
                future.set_exception(exc)
            else:
                future.set_result(None)


@dataclass
class Transfer:
    """One file to one key, with the job's hooks: progress, checkpoint and the stop flag.

    ``tag`` goes into the object's metadata (``JOB_TAG``): it is how a later attempt of the same job knows the
    object as its own.
    """

    client: Any
    source: SourceFile  # opened and checked by the job; every part reads this one descriptor
    bucket: str
    key: str
    settings: Settings
    progress: Callable[[int, int], None]
    save_checkpoint: Callable[[dict[str, Any] | None], None]
    stop: threading.Event
    tag: str
    checkpoint: dict[str, Any] | None = None
    content_type: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _buffers: threading.local = field(default_factory=threading.local)  # one part buffer per part thread

    def run(self) -> Outcome:
        size = self.source.size
        limit = shared_limit(self.settings.bandwidth_limit_bytes_s)
        if size < self.settings.multipart_threshold_bytes:
            forget(self.client, self.checkpoint)  # a multipart upload of an earlier attempt, before a settings change
            return self._single(size, limit)
        return self._multipart(size, limit)

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise TransferStopped

    def _range(self, offset: int, length: int, held: int) -> MemoryRange | FileRange:
        """The part in this thread's reused buffer, unless all the buffers together (``held``) exceed PART_MEMORY."""
        if held > PART_MEMORY:
            return FileRange(self.source, offset, length)
        buffer: bytearray | None = getattr(self._buffers, "part", None)
        if buffer is None or len(buffer) < length:
            buffer = self._buffers.part = bytearray(length)
        return MemoryRange(self.source, offset, length, buffer)

    def _extra(self, part_size: int | None = None) -> dict[str, Any]:
        metadata = {JOB_TAG: self.tag}
        if part_size is not None:
            metadata[PART_SIZE_TAG] = str(part_size)
        extra: dict[str, Any] = {"Metadata": metadata}
        if self.content_type:
            extra["ContentType"] = self.content_type
        return extra

    def _single(self, size: int, limit: TokenBucket | None) -> Outcome:
        meter = Meter(size, 0, self.progress)
        data = self._range(0, size, size)
        try:
            crc = data.crc32()
            body = PartBody(data, meter, limit, self.stop)
            self._check_stop()
            answer = self.client.put_object(
                Bucket=self.bucket,
                Key=self.key,
                Body=body,
                ChecksumAlgorithm=CHECKSUM_ALGORITHM,  # so that S3 keeps the checksum and a HEAD returns it
                ChecksumCRC32=crc,
                **self._extra(),
            )
        finally:
            data.close()
        meter.finish()
        return Outcome(
            etag=answer.get("ETag", "").strip('"'),
            version_id=answer.get("VersionId"),
            checksum=answer.get("ChecksumCRC32") or crc,
            parts=1,
            resumed_parts=0,
            bytes_sent=size,
            multipart=False,
        )

    # -------------------------------------------------------------- multipart
    def _multipart(self, size: int, limit: TokenBucket | None) -> Outcome:
        part_size = part_size_for(size, self.settings.multipart_part_bytes)
        earlier = self.checkpoint or {}
        if earlier.get("size") == size and isinstance(earlier.get("part_size"), int):
            # A resumed upload keeps its part size even if the setting changed meanwhile.
            part_size = part_size_for(size, earlier["part_size"])
        ranges = part_ranges(size, part_size)
        state = self._resume(size, part_size)
        if state is None:
            state = {"bucket": self.bucket, "key": self.key, "size": size, "part_size": part_size, "parts": []}
            # The intent is saved before the upload exists: a crash before its id is saved leaves a record that
            # the next attempt (or the job's cleanup) clears up with ``abort_untracked``.
            self.save_checkpoint({**state, "creating": True})
            self._check_stop()
            created = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ChecksumAlgorithm=CHECKSUM_ALGORITHM, **self._extra(part_size)
            )
            # Saved before any part is sent: a crash from here on leaves a record to resume from or abort.
            state["upload_id"] = created["UploadId"]
            self.save_checkpoint(state)
        done = {p["PartNumber"] for p in state["parts"]}
        resumed = len(done)
        already = sum(length for n, _, length in ranges if n in done)
        meter = Meter(size, already, self.progress)
        meter.add(0)
        todo = [r for r in ranges if r[0] not in done]
        self._send_parts(state, todo, meter, limit)
        self._check_stop()
        parts = sorted(state["parts"], key=lambda p: p["PartNumber"])
        answer = self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=state["upload_id"],
            MultipartUpload={
                "Parts": [
                    {"PartNumber": p["PartNumber"], "ETag": p["ETag"], "ChecksumCRC32": p["checksum"]} for p in parts
                ]
            },
        )
        meter.finish()
        return Outcome(
            etag=answer.get("ETag", "").strip('"'),
            version_id=answer.get("VersionId"),
            checksum=answer.get("ChecksumCRC32"),
            parts=len(parts),
            resumed_parts=resumed,
            bytes_sent=meter.sent,
            multipart=True,
        )

    def _resume(self, size: int, part_size: int) -> dict[str, Any] | None:
        """The checkpoint's upload if it still exists and fits this file; its parts as confirmed by ListParts."""
        cp = self.checkpoint
        if not cp or not cp.get("upload_id"):
            forget(self.client, cp)  # an upload a crash left before its id was saved
            return None
        if (cp.get("bucket"), cp.get("key"), cp.get("size"), cp.get("part_size")) != (
            self.bucket,
            self.key,
            size,
            part_size,
        ):
            forget(self.client, cp)
            return None
        try:
            on_server = {
                p["PartNumber"]: p
                for p in list_all(self.client, "list_parts", "Parts", Bucket=self.bucket, Key=self.key,
                                  UploadId=cp["upload_id"])
            }  # fmt: skip
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchUpload", "404", "NotFound"):
                return None  # aborted or expired meanwhile: start over
            raise
        expected = {n: length for n, _, length in part_ranges(size, part_size)}
        kept = []
        for part in cp.get("parts", []):
            server = on_server.get(part["PartNumber"])
            if (
                server is not None
                and server.get("ETag") == part["ETag"]
                and server.get("Size") == expected.get(part["PartNumber"])
            ):
                kept.append(part)
        state = {**cp, "parts": kept}
        self.save_checkpoint(state)
        return state

    def _send_parts(
        self, state: dict[str, Any], todo: list[tuple[int, int, int]], meter: Meter, limit: TokenBucket | None
    ) -> None:
        """At most ``multipart_concurrency`` parts in flight; none started after a failure, and on a stop request
        this returns at once (the parts in flight give up at their next read; see ``PartBody``)."""
        pending = iter(todo)
        in_flight: set[Future[None]] = set()
        error: BaseException | None = None
        threads = PartThreads(self.settings.multipart_concurrency)
        try:
            while True:
                while error is None and not self.stop.is_set() and len(in_flight) < self.settings.multipart_concurrency:
                    item = next(pending, None)
                    if item is None:
                        break
                    in_flight.add(threads.submit(partial(self._send_part, state, item, meter, limit)))
                if not in_flight or self.stop.is_set():
                    break
                finished, in_flight = wait(in_flight, timeout=STOP_POLL_S, return_when=FIRST_COMPLETED)
                for fut in finished:
                    exc = fut.exception()
                    if exc is not None and error is None:
                        error = exc
        finally:
            threads.close()
        self._check_stop()
        if error is not None:
            raise error

    def _send_part(
        self, state: dict[str, Any], item: tuple[int, int, int], meter: Meter, limit: TokenBucket | None
    ) -> None:
        number, offset, length = item
        data = self._range(offset, length, state["part_size"] * self.settings.multipart_concurrency)
        try:
            crc = data.crc32()
            answer = self.client.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=state["upload_id"],
                PartNumber=number,
                Body=PartBody(data, meter, limit, self.stop),
                ChecksumCRC32=crc,
            )
        finally:
            data.close()
        with self._lock:
            state["parts"] = [p for p in state["parts"] if p["PartNumber"] != number]
            state["parts"].append({"PartNumber": number, "ETag": answer["ETag"], "checksum": crc})
            self.save_checkpoint({**state, "parts": list(state["parts"])})
