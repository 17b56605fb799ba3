"""The client side of the worker's websocket, shared by the CLI (`watch`) and the GUI; and `try_wake`.

``WorkerClient`` is one connection: request/response by id, and events delivered to a callback.
``EventStream`` keeps a subscription alive across worker restarts, resuming from the last seq it saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus

from engine.errors import JobdeckError, ValidationError, WorkerNotRunning
from engine.events.discovery import pid_alive as pid_alive
from engine.events.discovery import read_worker_info as read_worker_info
from engine.events.wake import send_wake
from engine.paths import Paths

EventCallback = Callable[[dict[str, Any]], None]

log = logging.getLogger(__name__)

CONNECT_RETRY_S = 0.01  # first pause before connecting again after a reset; doubles up to CONNECT_RETRY_MAX_S
CONNECT_RETRY_MAX_S = 0.1


def raise_error(error: dict[str, Any]) -> None:
    field, message = error.get("field"), str(error.get("message", "unknown error"))
    if field is not None:
        raise ValidationError(field, message)
    raise JobdeckError(message)


class WorkerClient:
    """One authenticated connection to the worker."""

    def __init__(self, conn: ClientConnection, on_event: EventCallback | None = None) -> None:
        """Wrap an open connection; call from the event loop that will use it (use ``connect`` to open one)."""
        self.conn = conn
        self.on_event = on_event
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())
        self.closed = asyncio.Event()
        self.refusal: dict[str, Any] | None = None  # the server's error reply to a subscription, if it refused one

    @classmethod
    async def connect(
        cls, paths: Paths | None = None, on_event: EventCallback | None = None, timeout: float = 5.0
    ) -> WorkerClient:
        """Connect within ``timeout`` seconds.

        A connection reset before the worker answered is tried again until then: under a flood of half-open
        handshakes the worker turns away connections whose request has not arrived yet (see
        ``engine.events.admission``), and ours may be accepted in the instant between connecting and sending."""
        info = read_worker_info(paths)
        if info is None:
            raise WorkerNotRunning("no worker is running for this data folder (start one with: jobdeck worker)")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pause = CONNECT_RETRY_S
        while True:
            try:
                conn = await connect(
                    f"ws://127.0.0.1:{info['port']}/",
                    additional_headers={"Authorization": f"Bearer {info['token']}"},
                    proxy=None,  # loopback: never through a proxy from the environment
                    open_timeout=max(0.001, deadline - loop.time()),
                    max_size=None,
                    ping_interval=20,
                    compression=None,  # loopback: deflate only costs CPU
                )
            except (ConnectionResetError, InvalidMessage) as exc:
                if loop.time() + pause < deadline:
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, CONNECT_RETRY_MAX_S)
                    continue
                raise WorkerNotRunning(f"could not connect to the worker on port {info['port']}: {exc}") from None
            except (OSError, InvalidStatus, TimeoutError) as exc:
                raise WorkerNotRunning(f"could not connect to the worker on port {info['port']}: {exc}") from None
            return cls(conn, on_event)

    async def _read(self) -> None:
        try:
            async for raw in self.conn:
                message = json.loads(raw)
                if not isinstance(message, dict):
                    continue  # not ours to understand: clients ignore what they do not know
                request_id: Any = message.get("id")  # the peer's: an id we never sent finds nothing pending
                future = self._pending.pop(request_id, None) if "ok" in message else None
                if future is not None:
                    if not future.done():
                        future.set_result(message)
                elif message.get("ok") is False:  # a subscription refused (it has no request to answer)
                    self.refusal = message.get("error") or {}
                    break
                elif self.on_event is not None and "type" in message:
                    self.on_event(message)
        except ConnectionClosed:
            pass
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(WorkerNotRunning("the worker closed the connection"))
            self._pending.clear()
            self.closed.set()

    async def request(self, op: str, timeout: float | None = 60.0, **args: Any) -> Any:
        """Run one engine operation in the worker; raises the same errors the engine would."""
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self.conn.send(json.dumps({"id": request_id, "op": op, "args": args}))
        except ConnectionClosed:
            self._pending.pop(request_id, None)
            raise WorkerNotRunning("the worker closed the connection") from None
        try:
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(request_id, None)
        if not reply.get("ok"):
            raise_error(reply.get("error") or {})
        return reply.get("result")

    async def subscribe(self, since: int) -> None:
        """Replay every event after ``since``, then stream live; a ``replay.done`` event marks the switch."""
        await self.conn.send(json.dumps({"type": "subscribe", "since": since}))

    async def close(self) -> None:
        await self.conn.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


async def call(op: str, paths: Paths | None = None, timeout: float = 60.0, **args: Any) -> Any:
    """Connect, run one operation, disconnect."""
    client = await WorkerClient.connect(paths, timeout=min(timeout, 5.0))
    try:
        return await client.request(op, timeout=timeout, **args)
    finally:
        await client.close()


def call_sync(op: str, paths: Paths | None = None, timeout: float = 60.0, **args: Any) -> Any:
    return asyncio.run(call(op, paths, timeout, **args))


def try_wake(paths: Paths | None = None) -> bool:
    """Tell a running worker that work was submitted by another process; False if none runs or it cannot be told.

    One datagram (``engine.events.wake``), unanswered: a full websocket call cost milliseconds per submission.
    A worker that advertises no wake port (an older one) is woken over the control channel instead."""
    info = read_worker_info(paths)
    if info is None:
        return False
    try:
        if send_wake(info):
            return True
        call_sync("wake", paths, timeout=2.0)
    except (JobdeckError, OSError, TimeoutError):
        return False
    return True


class EventStream:
    """A subscription that survives worker restarts: reconnects with backoff and resumes from its last seq.

    ``run(on_batch)`` is the mechanism: events reach ``on_batch`` in lists, one per event-loop turn, as the
    connection decodes them. A GUI under qasync pays one Qt timer per asyncio hop, so a burst of a thousand events
    costs one call instead of a thousand awaited iterations. ``events()`` is the same stream one event at a time.
    """

    def __init__(
        self,
        paths: Paths | None = None,
        since: int = 0,
        on_state: Callable[[str], None] | None = None,
        max_backoff_s: float = 5.0,
    ) -> None:
        self.paths = paths
        self.last_seq = since
        self.on_state = on_state
        self.max_backoff_s = max_backoff_s
        self.client: WorkerClient | None = None

    def _state(self, state: str) -> None:
        if self.on_state is not None:
            self.on_state(state)

    async def run(self, on_batch: Callable[[list[dict[str, Any]]], None]) -> None:
        """Deliver events to ``on_batch`` until cancelled, across disconnects and worker restarts."""
        attempt = 0
        while True:
            batcher = _Batcher(self._track, on_batch)
            try:
                client = await WorkerClient.connect(self.paths, on_event=batcher.add)
            except WorkerNotRunning:
                self._state("reconnecting" if attempt else "stopped")
                attempt += 1
                await asyncio.sleep(min(self.max_backoff_s, 0.1 * 2**attempt) * random.uniform(0.5, 1.0))
                continue
            attempt = 0
            self.client = client  # kept on cancellation, so close() can still close it
            try:
                await client.subscribe(self.last_seq)
                self._state("connected")
                await client.closed.wait()
                if client.refusal is not None:  # asking again would be refused again: the caller's input is wrong
                    raise_error(client.refusal)
            except JobdeckError:
                raise
            except Exception:  # torn mid-subscribe: resume from the last seq seen
                log.warning("event stream interrupted; resuming from seq %d", self.last_seq, exc_info=True)
            finally:
                batcher.flush()
            self.client = None
            self._state("reconnecting")
            await asyncio.sleep(0.05)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        def enqueue(batch: list[dict[str, Any]]) -> None:
            for event in batch:
                queue.put_nowait(event)

        runner = asyncio.ensure_future(self.run(enqueue))
        try:
            while True:
                if queue.empty():
                    getter = asyncio.ensure_future(queue.get())
                    await asyncio.wait((getter, runner), return_when=asyncio.FIRST_COMPLETED)
                    if not getter.done():  # the stream ended: a refusal, which ``result()`` raises here
                        getter.cancel()
                        runner.result()
                    yield getter.result()
                else:
                    yield queue.get_nowait()
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
            await self.close()

    def _track(self, event: dict[str, Any]) -> None:
        seq = event.get("seq")
        if isinstance(seq, int) and str(event.get("type", "")).startswith("job."):
            self.last_seq = max(self.last_seq, seq)

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.close()


class _Batcher:
    """Collects events decoded by one connection and hands them on once per loop turn."""

    def __init__(self, track: EventCallback, on_batch: Callable[[list[dict[str, Any]]], None]) -> None:
        self._track = track
        self._on_batch = on_batch
        self._pending: list[dict[str, Any]] = []
        self._scheduled = False

    def add(self, event: dict[str, Any]) -> None:
        self._track(event)
        self._pending.append(event)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        if batch:
            self._on_batch(batch)
