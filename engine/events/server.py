"""The worker's websocket: status events out (replay from the ledger, then live) and control requests in.

Loopback only; see ``engine.events.auth`` for who may connect. Every job event a client sees comes from the
ledger's ``job_events`` in seq order: a subscription first replays rows after the client's ``since`` and then
joins the live feed exactly where its replay ended, so nothing is lost, repeated or reordered.

The live feed is fed two ways. Commits made in this process arrive through ``notify(events)`` (a thread-safe
hand-off from whichever thread committed) and are published at once when they continue the sequence; anything
else — a gap, or a commit made by another process (the CLI, which then sends a wake datagram, see
``engine.events.wake``, or without that a once-a-second poll) — makes the feed read the ledger from its cursor.
Each client has a send queue bounded in messages and in bytes; a client that falls behind is disconnected (it
resubscribes from its last seq), so it never slows the worker or other clients, nor grows it without bound. Before
a connection has shown the token it is a stranger, capped and timed out by ``engine.events.admission``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from engine.config import Paths
from engine.events import auth, schema
from engine.events.admission import Admission, LoopErrors, connection_class, listen
from engine.events.control import Dispatcher, WorkerControl
from engine.events.progress import ProgressCoalescer
from engine.events.wake import WakeListener
from engine.operations import Operations

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MAX_MESSAGE_BYTES = schema.MAX_MESSAGE_BYTES
MAX_CLIENTS = 64
CLIENT_QUEUE = 2000  # live events waiting for one client; past this it catches up from the ledger instead
HARD_QUEUE = CLIENT_QUEUE + 256  # anything at all waiting for one client; past this it is disconnected
# The same in bytes: events are as big as a job's parameters and a `list` reply can hold ten thousand jobs. Past
# QUEUE_BYTES the live feed turns to catching up from the ledger, a replay waits, and no further request is read;
# past HARD_QUEUE_BYTES (replies of requests already running) the client is disconnected. A reply is always taken
# while no more than QUEUE_BYTES wait, however big it is: what waits stays under HARD_QUEUE_BYTES, or QUEUE_BYTES
# and one reply.
QUEUE_BYTES = 16 * 1024**2
HARD_QUEUE_BYTES = 32 * 1024**2
SEND_BATCH_BYTES = 1024**2  # a batch joined into one write stops growing past this
SEND_BUFFER_BYTES = 256 * 1024  # the kernel's share of a slow client's backlog stays small and bounded
REPLAY_CHUNK = 500
SEND_BATCH = 64  # messages joined into one socket write when a client has several waiting
MAX_IN_FLIGHT = 32  # requests one client may have running; further ones wait (we stop reading its socket)
# A connection that neither subscribed nor sent anything for this long is closed. Both limits can be shortened
# through the environment, for tests that prove them.
IDLE_TIMEOUT_S = float(os.environ.get("JOBDECK_EVENT_IDLE_S") or 300.0)
# A client with messages waiting that took none for this long is disconnected as stuck.
STALL_TIMEOUT_S = float(os.environ.get("JOBDECK_EVENT_STALL_S") or 30.0)
REAP_EVERY_S = min(5.0, STALL_TIMEOUT_S / 2, IDLE_TIMEOUT_S / 2)
HANDSHAKE_TIMEOUT_S = 2.0  # the owner's client needs milliseconds; a half-open handshake holds a descriptor this long
LISTEN_QUEUE = 4096  # a burst of connections waits in the kernel instead of the owner's SYN being dropped
ACCEPT_PER_TURN = 100  # connections let in during one turn of the loop (asyncio's default)
PING_INTERVAL_S = 20.0  # a peer that does not answer a ping within PING_TIMEOUT_S is dropped
PING_TIMEOUT_S = 20.0
CLOSE_TIMEOUT_S = 2.0
SWITCH_INTERVAL_S = 0.002
IDLE_DRAIN_S = 0.05  # with no subscriber, commits are taken from worker threads in bursts this far apart
FOREIGN_POLL_S = 1.0  # commits by other processes that did not send `wake`
SLOW_CLIENT = "client too slow; reconnect and subscribe from your last seq"


@dataclass(eq=False)
class Client:
    conn: ServerConnection
    queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)  # bounds enforced by the server
    queued_bytes: int = 0  # the size of what ``queue`` holds (messages are ASCII JSON: characters are bytes)
    cursor: int = 0  # last seq queued for this client
    subscribed: bool = False
    last_activity: float = field(default_factory=time.monotonic)  # last message received
    sending_since: float | None = None  # when the send in progress began (None: not sending)
    subscription: asyncio.Task[None] | None = None
    room: asyncio.Event = field(default_factory=asyncio.Event)  # set by the sender when the queue has room again
    gone: bool = False  # its sender ended: nothing queued will leave any more

    async def wait_for_room(self, max_bytes: int, max_messages: int | None = None) -> bool:
        """Wait until the queue holds at most this much; False if the connection went away meanwhile."""
        while not self.gone and (
            self.queued_bytes > max_bytes or (max_messages is not None and self.queue.qsize() > max_messages)
        ):
            self.room.clear()
            await self.room.wait()
        return not self.gone


class EventServer:
    def __init__(self, ops: Operations, control: WorkerControl, paths: Paths, *, port: int = 0) -> None:
        self.ops = ops
        self.control = control
        self.paths = paths
        self.port = port
        self.token = auth.new_token()
        self.guard = auth.HandshakeGuard(self.token, ops.settings.allowed_origins)
        self.admission = Admission()
        self.guard.on_authenticated = self.admission.forget
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Server | None = None
        self._clients: set[Client] = set()  # subscribed and live
        self._connections: set[Client] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._dirty: asyncio.Event | None = None
        self._published = 0  # every event up to this seq has been offered to the live clients
        self._pending: dict[int, dict[str, Any]] = {}  # in-process commits waiting for an earlier seq
        self._inbox: list[dict[str, Any]] = []  # commits handed over by worker threads, drained on the loop
        self._inbox_lock = threading.Lock()
        self._inbox_scheduled = False
        self._inbox_reread = False
        self._progress: ProgressCoalescer | None = None
        self._settings: dict[str, Any] | None = None  # the settings last seen, to tell clients when they change
        # Ledger reads for the feed get their own thread, so a burst of requests never delays events.
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="jobdeck-events-read")
        self._requests = ThreadPoolExecutor(4, thread_name_prefix="jobdeck-requests")
        self._dispatch = Dispatcher(ops, control, self._requests, self._status)
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        # Other processes' wakes, as datagrams: the same ``control.wake`` the ``wake`` request calls.
        self._wake = WakeListener(self.token, control.wake)

    # ------------------------------------------------------------------ lifecycle (called from other threads)
    def start(self) -> None:
        # The loop thread, woken by a commit, must wait for the GIL while job and request threads hold it, up to
        # the switch interval each: a shorter one keeps the commit-to-client latency low without costing
        # throughput (bench/events.py). The server lives only in the worker process.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        self._thread = threading.Thread(target=self._run, name="jobdeck-events", daemon=True)
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError("the event server did not start within 15 s")
        if self._start_error is not None:
            raise self._start_error
        try:
            wake_port: int | None = self._wake.start()
        except OSError:  # clients then wake us over the websocket, as before the datagram existed
            log.warning("no wake datagram port; other processes will wake the worker over the websocket", exc_info=True)
            wake_port = None
        auth.write_worker_info(
            self.paths.worker_info,
            port=self.port,
            token=self.token,
            worker_id=self.control.status().get("worker_id"),
            wake_port=wake_port,
        )

    def stop(self) -> None:
        auth.remove_worker_info(self.paths.worker_info)
        self._wake.stop()
        loop = self.loop
        if loop is not None and loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
        if self._thread is not None:
            self._thread.join(5)
        self._reader.shutdown(wait=False, cancel_futures=True)
        self._requests.shutdown(wait=False, cancel_futures=True)

    def notify(self, events: list[dict[str, Any]] | None = None) -> None:
        """Thread-safe, never blocks: these events committed (or, with none, something may have: re-read)."""
        # Coalesced: one loop wake-up per burst. Waking the loop for every commit (call_soon_threadsafe writes
        # to its self-pipe) cost the worker threads a quarter of their time in the queue benchmark.
        with self._inbox_lock:
            if events:
                self._inbox.extend(events)
            else:
                self._inbox_reread = True
            if self._inbox_scheduled:
                return
            self._inbox_scheduled = True
        # With nobody live the events are only bookkeeping, so take them in bursts: waking the loop for every
        # commit costs the worker CPU for nothing. (Read from this thread, ``_clients`` may
        # be a moment stale; that only delays one drain by IDLE_DRAIN_S.)
        self._call_soon(self._drain_inbox if self._clients else self._drain_later)

    def _drain_later(self) -> None:
        assert self.loop is not None
        self.loop.call_later(IDLE_DRAIN_S, self._drain_inbox)

    def _drain_inbox(self) -> None:
        with self._inbox_lock:
            events, self._inbox = self._inbox, []
            reread, self._inbox_reread = self._inbox_reread, False
            self._inbox_scheduled = False
        if events:
            self._on_committed(events)
        if reread:
            self._on_committed([])

    def publish_progress(self, job_id: int, data: dict[str, Any]) -> None:
        """Thread-safe; never blocks the job. Coalesced per job; not stored."""
        self._call_soon(self._on_progress, job_id, dict(data), time.monotonic())

    def publish_status(self) -> None:
        self._call_soon(self._broadcast_status)

    def _call_soon(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
                loop.call_soon_threadsafe(callback, *args)

    # ------------------------------------------------------------------ event loop thread
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main(loop))
        except BaseException as exc:  # surfaced to start()
            self._start_error = exc
            self._ready.set()
        finally:
            loop.close()

    async def _main(self, loop: asyncio.AbstractEventLoop) -> None:
        self._dirty = asyncio.Event()
        self._progress = ProgressCoalescer(loop, self._emit_progress)
        loop.set_exception_handler(LoopErrors(self.admission.shed))
        self.loop = loop  # from here on, other threads may hand us work (commits before the read below are re-read)
        last_seq = await loop.run_in_executor(self._reader, self.ops.ledger.last_seq)
        self._published = max(self._published, last_seq)  # a commit may have been published while we read
        self._server = await serve(
            self._handle,
            sock=listen(HOST, self.port, LISTEN_QUEUE, self.admission),
            process_request=self.guard,
            select_subprotocol=auth.select_subprotocol,
            max_size=MAX_MESSAGE_BYTES,
            max_queue=16,
            ping_interval=PING_INTERVAL_S,
            ping_timeout=PING_TIMEOUT_S,
            open_timeout=HANDSHAKE_TIMEOUT_S,
            close_timeout=CLOSE_TIMEOUT_S,
            compression=None,  # loopback: deflate would only spend CPU in the worker and in every client
            create_connection=connection_class(self.admission),
            backlog=ACCEPT_PER_TURN,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self.guard.port = self.port
        self._ready.set()
        tasks = [asyncio.create_task(self._feed()), asyncio.create_task(self._reap_idle()),
                 asyncio.create_task(self._watch_settings())]  # fmt: skip
        try:
            await self._server.wait_closed()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _shutdown(self) -> None:
        self.admission.cut_all()  # else the server waits for their handshakes to time out
        if self._server is not None:
            self._server.close()

    async def _read_ledger(self, since: int) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, self.ops.ledger.events_since, since, REPLAY_CHUNK)

    # ------------------------------------------------------------------ connections
    async def _handle(self, conn: ServerConnection) -> None:
        if len(self._connections) >= MAX_CLIENTS:
            await conn.close(CloseCode.TRY_AGAIN_LATER, f"too many connections (at most {MAX_CLIENTS})")
            return
        client = Client(conn)
        self._connections.add(client)
        sock = conn.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        sender = asyncio.create_task(self._send_loop(client))
        slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        tasks: set[asyncio.Task[None]] = set()

        def finished(done: asyncio.Task[None]) -> None:
            tasks.discard(done)
            slots.release()

        try:
            async for raw in conn:
                client.last_activity = time.monotonic()
                if not await client.wait_for_room(QUEUE_BYTES):  # replies it has not read: read no more requests
                    break
                await slots.acquire()
                task = asyncio.create_task(self._on_message(client, raw))
                tasks.add(task)
                task.add_done_callback(finished)
        except ConnectionClosed:
            pass
        finally:
            self._drop(client)
            sender.cancel()
            for pending in (*tasks, client.subscription):
                if pending is not None:
                    pending.cancel()

    def _drop(self, client: Client) -> None:
        self._clients.discard(client)
        self._connections.discard(client)
        client.subscribed = False

    async def _send_loop(self, client: Client) -> None:
        try:
            while True:
                batch = [await client.queue.get()]
                size = len(batch[0])
                while len(batch) < SEND_BATCH and size < SEND_BATCH_BYTES and not client.queue.empty():
                    batch.append(client.queue.get_nowait())
                    size += len(batch[-1])
                client.queued_bytes -= size
                client.sending_since = time.monotonic()
                await _send_all(client.conn, batch)  # returns once the kernel took it; blocks while the peer reads not
                client.sending_since = None
                client.room.set()
        except ConnectionClosed:
            pass
        finally:
            client.gone = True
            client.room.set()

    def _enqueue(self, client: Client, message: dict[str, Any] | str) -> bool:
        """Queue without waiting (replies, replayed events); past the hard bounds the client is disconnected."""
        text = message if isinstance(message, str) else _dumps(message)
        if client.queue.qsize() >= HARD_QUEUE or (
            client.queued_bytes > QUEUE_BYTES and client.queued_bytes + len(text) > HARD_QUEUE_BYTES
        ):
            self._drop(client)
            self._spawn(self._disconnect(client.conn, CloseCode.TRY_AGAIN_LATER, SLOW_CLIENT))
            return False
        _put(client, text)
        return True

    def _offer_live(self, client: Client, text: str, seq: int) -> None:
        """A live event; a client this far behind leaves the live feed and catches up from the ledger.

        Its replay runs at its own pace in its own task, so a burst (say, retrying a thousand jobs in one
        transaction) costs a healthy client nothing, and a client that stopped reading holds at most
        CLIENT_QUEUE messages until the reaper disconnects it.
        """
        if client.queue.qsize() >= CLIENT_QUEUE or client.queued_bytes >= QUEUE_BYTES:
            self._clients.discard(client)
            client.subscription = asyncio.create_task(self._replay(client, client.cursor, None, catch_up=True))
            return
        _put(client, text)
        client.cursor = seq

    def _offer_transient(self, client: Client, text: str) -> None:
        """Progress and worker status: superseded by the next one, so a backlogged client may skip them."""
        if client.queue.qsize() < CLIENT_QUEUE and client.queued_bytes < QUEUE_BYTES:
            _put(client, text)

    async def _disconnect(self, conn: ServerConnection, code: int, reason: str) -> None:
        """Close politely, but a peer that stopped reading may never take the close frame: then cut it."""
        try:
            await asyncio.wait_for(conn.close(code, reason), CLOSE_TIMEOUT_S + 1)
        except (TimeoutError, ConnectionClosed):
            pass
        finally:
            conn.transport.abort()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _reap_idle(self) -> None:
        """Close idle connections, and those whose peer stopped reading (a blocked socket never times out)."""
        while True:
            await asyncio.sleep(REAP_EVERY_S)
            now = time.monotonic()
            for client in list(self._connections):
                if not client.subscribed and now - client.last_activity > IDLE_TIMEOUT_S:
                    self._drop(client)
                    self._spawn(self._disconnect(client.conn, CloseCode.NORMAL_CLOSURE, "idle: nothing sent"))
                elif client.sending_since is not None and now - client.sending_since > STALL_TIMEOUT_S:
                    self._drop(client)
                    self._spawn(self._disconnect(client.conn, CloseCode.TRY_AGAIN_LATER, SLOW_CLIENT))

    # ------------------------------------------------------------------ messages
    async def _on_message(self, client: Client, raw: str | bytes) -> None:
        try:
            message = schema.parse_message(raw)
        except schema.MalformedMessage as exc:
            self._enqueue(client, schema.error_reply(None, None, str(exc)))
            return
        request_id = message.get("id")
        kind = message.get("type", "request")
        if kind == "subscribe":
            self._start_subscription(client, message.get("since", 0), request_id)
        elif kind == "request":
            op = message.get("op")
            answer = await self._dispatch(request_id, op, message.get("args"))
            self._enqueue(client, answer)
            if op == "settings_set" and answer.get("ok"):
                self._check_settings()
        else:
            text = f"unknown message type {kind!r}; use subscribe or request (a message with an op)"
            self._enqueue(client, schema.error_reply(request_id, "type", text))

    def _status(self) -> dict[str, Any]:
        return {**self.control.status(), "last_seq": self._published}

    # ------------------------------------------------------------------ subscribe: replay, then live
    def _start_subscription(self, client: Client, since: Any, request_id: Any) -> None:
        if isinstance(since, bool) or not isinstance(since, int) or not 0 <= since <= schema.MAX_SEQ:
            text = f"must be a non-negative integer seq, at most 2^63-1 ({schema.MAX_SEQ}); got {str(since)[:40]}"
            self._enqueue(client, schema.error_reply(request_id, "since", text))
            return
        if client.subscription is not None:  # a new subscribe replaces the old one
            client.subscription.cancel()
        self._clients.discard(client)
        client.subscribed = True
        client.subscription = asyncio.create_task(self._replay(client, since, request_id))

    async def _replay(self, client: Client, since: int, request_id: Any, *, catch_up: bool = False) -> None:
        client.cursor = since
        while True:
            batch = await self._read_ledger(client.cursor)
            # Leave room for replies and for the live feed: a replay waits for the client instead of
            # dropping it, and only ever fills half the queue (in messages and in bytes).
            for stored in batch:
                if not await client.wait_for_room(QUEUE_BYTES // 2, CLIENT_QUEUE // 2):
                    return
                if not self._enqueue(client, schema.job_event(stored)):
                    return
                client.cursor = stored["seq"]
            # Nothing awaits between this check and joining the live set, so the feed cannot slip past us.
            if len(batch) < REPLAY_CHUNK and client.cursor >= self._published:
                break
        self._clients.add(client)
        if not catch_up:
            done = {"v": schema.VERSION, "type": schema.REPLAY_DONE, "seq": client.cursor, "id": request_id}
            if self._enqueue(client, done):
                self._enqueue(client, schema.status_event(self._status()))

    # ------------------------------------------------------------------ settings
    async def _watch_settings(self) -> None:
        """Tell live clients when the settings change, whoever changed them: the config file is looked at once a
        second (a stat while it is unchanged; see ``load_settings``), and at once after a ``settings_set``."""
        while True:
            self._check_settings()
            await asyncio.sleep(FOREIGN_POLL_S)

    def _check_settings(self) -> None:
        try:
            current = self.ops.settings.model_dump(mode="json")
        except Exception:  # a config file being rewritten, or made invalid: the jobs' own reads report it
            return
        if self._settings is not None and current != self._settings:
            self._broadcast(schema.settings_event(current))
        self._settings = current

    # ------------------------------------------------------------------ the live feed
    def _on_committed(self, events: list[dict[str, Any]]) -> None:
        assert self._dirty is not None
        if not self._clients:
            self._skip_ahead(events)
            return
        for stored in events:
            if stored["seq"] > self._published:
                self._pending[stored["seq"]] = stored
        while self._published + 1 in self._pending:
            self._publish(self._pending.pop(self._published + 1))
        if self._pending or not events:
            self._dirty.set()  # a gap (another process, a rolled-back seq) or a bare wake: read the ledger

    async def _feed(self) -> None:
        assert self._dirty is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), FOREIGN_POLL_S)
            self._dirty.clear()
            try:
                if not self._clients:
                    last_seq = await asyncio.get_running_loop().run_in_executor(self._reader, self.ops.ledger.last_seq)
                    if not self._clients:  # still nobody live (a replay may have finished while we read)
                        self._published = max(self._published, last_seq)
                        continue
                while True:
                    batch = await self._read_ledger(self._published)
                    for stored in batch:
                        if stored["seq"] > self._published:
                            self._publish(stored)
                    if len(batch) < REPLAY_CHUNK:
                        break
            except Exception:
                log.exception("reading new events failed; will retry")
                await asyncio.sleep(0.5)
            for seq in [s for s in self._pending if s <= self._published]:
                del self._pending[seq]

    def _skip_ahead(self, events: list[dict[str, Any]]) -> None:
        """Nobody is live, so nothing is sent and a gap needs no ledger read: every seq below a committed one has
        committed too (writers serialise event inserts; see the ledger), and a subscriber's replay reads the ledger
        up to ``_published`` before it joins. With the CLI submitting, every worker commit follows a gap, and
        reading the ledger for nobody would cost the worker much of its CPU."""
        for stored in events:
            self._published = max(self._published, stored["seq"])
            self._job_moved_on(stored)
        self._pending.clear()
        if not events:
            assert self._dirty is not None
            self._dirty.set()  # a bare wake: only ``_published`` (the status' last_seq) to bring forward

    def _publish(self, stored: dict[str, Any]) -> None:
        seq = stored["seq"]
        wire: str | None = None
        for client in list(self._clients):
            if seq > client.cursor:
                wire = wire or _dumps(schema.job_event(stored))
                self._offer_live(client, wire, seq)
        self._published = seq
        self._job_moved_on(stored)

    def _job_moved_on(self, stored: dict[str, Any]) -> None:
        job = stored.get("job")  # none for a schedule's change
        if job is not None and job["status"] != "running" and self._progress is not None:
            self._progress.finished(stored["job_id"])

    def _broadcast(self, message: dict[str, Any]) -> None:
        text = _dumps(message)
        for client in list(self._clients):
            self._offer_transient(client, text)

    def _broadcast_status(self) -> None:
        self._broadcast(schema.status_event(self._status()))

    def _on_progress(self, job_id: int, data: dict[str, Any], now: float) -> None:
        if self._progress is not None:
            self._progress.report(job_id, data, now)

    def _emit_progress(self, job_id: int, progress: dict[str, Any]) -> None:
        self._broadcast(schema.progress_event(job_id, progress))


async def _send_all(conn: ServerConnection, messages: list[str]) -> None:
    """Several text messages in one socket write.

    ``Connection.send`` writes each frame on its own, and at a thousand events a second those writes were a third
    of the event thread's time. This is websockets' own pattern for writing from user code (frames added to the
    protocol inside ``send_context()``, whose exit applies flow control), except that the frames go to the
    transport joined.
    """
    if len(messages) == 1:
        await conn.send(messages[0])
        return
    async with conn.send_context():
        for message in messages:
            conn.protocol.send_text(message.encode())
        conn.transport.write(b"".join(conn.protocol.data_to_send()))


def _put(client: Client, text: str) -> None:
    client.queue.put_nowait(text)
    client.queued_bytes += len(text)


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))
