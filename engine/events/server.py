"""The worker's websocket: status events out (replay from the ledger, then live) and control requests in.

Loopback only; the token from ``runtime/worker.json`` is checked at the handshake, and any request carrying a
browser ``Origin`` is refused unless allowed, so a web page the user visits cannot drive the worker.

Events are read back from ``job_events`` after each commit rather than pushed from the committing thread: the
ledger is the one ordered log, so replay and live delivery are the same code path, and commits made by other
processes (the CLI) reach clients too. Each client has a bounded queue; one that falls behind is dropped and
resubscribes from its last seq, so it never slows the worker or other clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Protocol

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from engine.config import Paths
from engine.errors import JobdeckError, ValidationError
from engine.events import schema
from engine.operations import Operations

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MAX_MESSAGE_BYTES = 1024 * 1024
CLIENT_QUEUE = 2000
REPLAY_CHUNK = 500
PROGRESS_INTERVAL_S = 0.1  # at most 10 progress events a second per job
FOREIGN_POLL_S = 1.0  # commits by other processes that did not send `wake`


class WorkerControl(Protocol):
    def wake(self) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def shutdown(self) -> None: ...
    def status(self) -> dict[str, Any]: ...


@dataclass(eq=False)
class Client:
    conn: ServerConnection
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(CLIENT_QUEUE))
    cursor: int = 0  # last seq sent (or queued) to this client
    live: bool = False


@dataclass
class _Progress:
    started: float
    first_done: int
    last_sent: float = 0.0
    latest: dict[str, Any] | None = None
    scheduled: bool = False


# Operations a client may call: wire name → method of Operations (keyword arguments from `args`).
OPERATIONS: dict[str, str] = {
    "create": "create",
    "list": "list",
    "get": "get",
    "delete": "delete",
    "retry": "retry",
    "retry_all_failed": "retry_all_failed",
    "cancel": "cancel",
    "run_now": "run_now",
    "stats": "stats",
    "timeline": "timeline",
    "types": "types",
    "upload": "upload",
    "count_failed": "count_failed",
}
WORKER_COMMANDS = ("wake", "pause", "resume", "shutdown", "status")


class EventServer:
    def __init__(self, ops: Operations, control: WorkerControl, paths: Paths, *, port: int = 0) -> None:
        self.ops = ops
        self.control = control
        self.paths = paths
        self.port = port
        self.token = secrets.token_urlsafe(32)
        self.allowed_origins = set(ops.settings.allowed_origins)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Server | None = None
        self._clients: set[Client] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self._dirty: asyncio.Event | None = None
        self._published = 0
        self._progress: dict[int, _Progress] = {}
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle (called from other threads)
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="jobdeck-events", daemon=True)
        self._thread.start()
        self._ready.wait(15)
        if self._start_error is not None:
            raise self._start_error
        self._write_info()

    def stop(self) -> None:
        self._remove_info()
        if self.loop is not None and self.loop.is_running():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(10)
        if self._thread is not None:
            self._thread.join(5)

    def notify(self, _events: object = None) -> None:
        """Thread-safe: something committed; publish what the ledger now holds past our cursor."""
        loop, dirty = self.loop, self._dirty
        if loop is not None and dirty is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(dirty.set)

    def publish_progress(self, job_id: int, data: dict[str, Any]) -> None:
        """Thread-safe; never blocks the job. Coalesced per job; not stored."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._on_progress, job_id, data, time.monotonic())

    def publish_status(self) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._broadcast_status)

    # ------------------------------------------------------------------ runtime file
    def _write_info(self) -> None:
        info = {
            "pid": os.getpid(),
            "port": self.port,
            "token": self.token,
            "started_at": datetime.now(UTC).isoformat(),
            "worker_id": self.control.status().get("worker_id"),
        }
        path = self.paths.worker_info
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(info, fh)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)

    def _remove_info(self) -> None:
        try:
            info = json.loads(self.paths.worker_info.read_text(encoding="utf-8"))
            if info.get("pid") == os.getpid():
                self.paths.worker_info.unlink()
        except (OSError, ValueError):
            pass

    # ------------------------------------------------------------------ event loop thread
    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:  # surfaced to start()
            self._start_error = exc
            self._ready.set()
        finally:
            self.loop.close()

    async def _main(self) -> None:
        self._dirty = asyncio.Event()
        self._published = await asyncio.to_thread(self.ops.ledger.last_seq)
        self._server = await serve(
            self._handle,
            HOST,
            self.port,
            process_request=self._check_request,
            max_size=MAX_MESSAGE_BYTES,
            ping_interval=20,
            ping_timeout=20,
            open_timeout=10,
            close_timeout=2,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        pump = asyncio.create_task(self._pump())
        try:
            await self._server.wait_closed()
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()

    # ------------------------------------------------------------------ handshake
    def _check_request(self, conn: ServerConnection, request: Request) -> Response | None:
        origin = request.headers.get("Origin")
        if origin is not None and origin not in self.allowed_origins:
            return conn.respond(HTTPStatus.FORBIDDEN, "Origin not allowed\n")
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.token.encode()):
            return conn.respond(HTTPStatus.UNAUTHORIZED, "Missing or wrong bearer token\n")
        return None

    # ------------------------------------------------------------------ connections
    async def _handle(self, conn: ServerConnection) -> None:
        client = Client(conn)
        sender = asyncio.create_task(self._send_loop(client))
        tasks: set[asyncio.Task[None]] = set()
        try:
            async for raw in conn:
                task = asyncio.create_task(self._on_message(client, raw))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(client)
            sender.cancel()
            for task in tasks:
                task.cancel()

    async def _send_loop(self, client: Client) -> None:
        try:
            while True:
                await client.conn.send(await client.queue.get())
        except ConnectionClosed:
            pass

    def _enqueue(self, client: Client, message: dict[str, Any]) -> bool:
        try:
            client.queue.put_nowait(json.dumps(message, separators=(",", ":")))
            return True
        except asyncio.QueueFull:
            # Too slow: drop it rather than buffer without bound or stall everyone else.
            self._clients.discard(client)
            task = asyncio.create_task(client.conn.close(1013, "client too slow; resubscribe from your last seq"))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
            return False

    async def _on_message(self, client: Client, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            self._enqueue(client, schema.error_reply(None, None, f"malformed JSON: {exc}"))
            return
        if not isinstance(message, dict):
            self._enqueue(client, schema.error_reply(None, None, "a message must be a JSON object"))
            return
        request_id = message.get("id")
        kind = message.get("type", "request")
        if kind == "subscribe":
            await self._subscribe(client, message.get("since", 0), request_id)
            return
        if kind != "request" and "op" not in message:
            self._enqueue(
                client,
                schema.error_reply(request_id, "type", f"unknown message type {kind!r}; use subscribe or request"),
            )
            return
        self._enqueue(client, await self._dispatch(request_id, message.get("op"), message.get("args") or {}))

    async def _dispatch(self, request_id: Any, op: Any, args: Any) -> dict[str, Any]:
        if not isinstance(args, dict):
            return schema.error_reply(request_id, "args", "must be an object of argument name → value")
        if op in WORKER_COMMANDS:
            result = await asyncio.to_thread(getattr(self.control, op))
            return schema.reply(request_id, result if op == "status" else {"done": op})
        name = OPERATIONS.get(op) if isinstance(op, str) else None
        if name is None:
            allowed = ", ".join([*OPERATIONS, *WORKER_COMMANDS])
            return schema.error_reply(request_id, "op", f"unknown operation {op!r}; allowed: {allowed}")
        try:
            result = await asyncio.to_thread(_call, getattr(self.ops, name), args)
        except ValidationError as exc:
            return schema.error_reply(request_id, exc.field, exc.message)
        except JobdeckError as exc:
            return schema.error_reply(request_id, None, str(exc))
        except Exception as exc:
            log.exception("operation %s failed", op)
            return schema.error_reply(request_id, None, f"internal error in {op}: {type(exc).__name__}")
        return schema.reply(request_id, result)

    # ------------------------------------------------------------------ subscribe: replay, then live
    async def _subscribe(self, client: Client, since: Any, request_id: Any) -> None:
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            self._enqueue(client, schema.error_reply(request_id, "since", "must be a non-negative integer seq"))
            return
        self._clients.discard(client)
        client.live = False
        client.cursor = since
        while True:
            batch = await asyncio.to_thread(self.ops.ledger.events_since, client.cursor, REPLAY_CHUNK)
            for stored in batch:
                if not self._enqueue(client, schema.job_event(stored)):
                    return
                client.cursor = stored["seq"]
            # Nothing awaits between this check and joining the live set, so the pump cannot slip past us.
            if len(batch) < REPLAY_CHUNK and client.cursor >= self._published:
                break
            if len(batch) == REPLAY_CHUNK:
                await asyncio.sleep(0)  # let the sender drain
        client.live = True
        self._clients.add(client)
        self._enqueue(client, {"v": schema.VERSION, "type": schema.REPLAY_DONE, "seq": client.cursor, "id": request_id})
        self._enqueue(client, schema.status_event(self.control.status()))

    async def _pump(self) -> None:
        assert self._dirty is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), FOREIGN_POLL_S)
            self._dirty.clear()
            try:
                while True:
                    batch = await asyncio.to_thread(self.ops.ledger.events_since, self._published, REPLAY_CHUNK)
                    if not batch:
                        break
                    self._publish(batch)
                    if len(batch) < REPLAY_CHUNK:
                        break
            except Exception:
                log.exception("reading new events failed; will retry")
                await asyncio.sleep(0.5)

    def _publish(self, batch: list[dict[str, Any]]) -> None:
        for stored in batch:
            wire = None
            for client in list(self._clients):
                if stored["seq"] > client.cursor:
                    wire = wire or schema.job_event(stored)
                    if self._enqueue(client, wire):
                        client.cursor = stored["seq"]
            self._published = stored["seq"]
            if stored["job"]["status"] != "running":
                self._progress.pop(stored["job_id"], None)

    def _broadcast(self, message: dict[str, Any]) -> None:
        for client in list(self._clients):
            self._enqueue(client, message)

    def _broadcast_status(self) -> None:
        self._broadcast(schema.status_event(self.control.status()))

    # ------------------------------------------------------------------ progress coalescing
    def _on_progress(self, job_id: int, data: dict[str, Any], now: float) -> None:
        state = self._progress.get(job_id)
        done = int(data.get("done") or 0)
        if state is None or done < state.first_done:
            state = self._progress[job_id] = _Progress(started=now, first_done=done)
        elapsed = now - state.started
        rate = (done - state.first_done) / elapsed if elapsed > 0.2 else None
        total = data.get("total")
        eta = (total - done) / rate if rate and total else None
        state.latest = {**data, "rate": rate, "eta_s": eta}
        if now - state.last_sent >= PROGRESS_INTERVAL_S:
            self._send_progress(job_id)
        elif not state.scheduled and self.loop is not None:
            state.scheduled = True
            self.loop.call_later(PROGRESS_INTERVAL_S - (now - state.last_sent), self._send_progress, job_id)

    def _send_progress(self, job_id: int) -> None:
        state = self._progress.get(job_id)
        if state is None or state.latest is None:
            return
        state.scheduled = False
        state.last_sent = time.monotonic()
        self._broadcast(schema.progress_event(job_id, state.latest))
        state.latest = None


def _call(method: Callable[..., Any], args: dict[str, Any]) -> Any:
    try:
        inspect.signature(method).bind(**args)
    except TypeError as exc:
        raise ValidationError("args", f"bad arguments for {method.__name__}: {exc}") from None
    return method(**args)
