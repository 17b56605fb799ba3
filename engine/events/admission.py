"""Connections that have not yet authenticated (strangers): capped in all and per peer; and quiet accept errors.

Any local user can open TCP connections to the worker's port and never finish the handshake. Each one holds a file
descriptor until the handshake timeout, so without a cap a flood exhausts the worker's descriptors and jobs fail
with "Too many open files"; and each costs the event loop a transport and a protocol, so a flood that reconnects
as fast as it is cut starves everyone else. Three rules keep the owner's client getting in:

- At the door (``Listener.accept``), while strangers are at their cap, a connection whose request head has not
  fully arrived is closed on the spot, before asyncio or websockets build anything for it. The owner's client
  sends its whole request the moment it connects, so by the time the worker accepts it the head is there.
- Past the caps (in all, and per peer address) the oldest stranger of the peer holding the most is cut, preferring
  one whose request has not arrived (one that has is answered in the loop's next turn anyway).
- A stranger stops counting as soon as its token checks out, and the handshake times out after a couple of seconds.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection

log = logging.getLogger(__name__)

MAX_STRANGERS = 256  # connections without a verified token, from everyone together
MAX_STRANGERS_PER_PEER = 128  # ... and from one address
DESCRIPTOR_SHARE = 4  # strangers hold at most this fraction of the open-file limit
MIN_STRANGERS = 16
PEEK_BYTES = 16 * 1024
# The kernel holds a silent connection back this long (Linux), so the owner's client, which sends its whole request
# in one write, is accepted with that request already waiting (elsewhere it may be turned away in the instant
# between connecting and sending, and tries again).
DEFER_ACCEPT_S = 1
DOOR_BATCH = 1000  # connections turned away in one call to accept before the loop gets a turn
ACCEPT_PAUSE_S = 0.5  # after accept failed for want of descriptors, the rest of asyncio's round is skipped
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
LOG_EVERY_S = 1.0  # a repeated loop error (e.g. accept failing for want of descriptors) is logged this often at most


def stranger_cap() -> int:
    """The cap for this process: MAX_STRANGERS, or less when the open-file limit is small (never on Windows)."""
    try:
        import resource
    except ImportError:  # Windows: sockets are not bounded by a C runtime descriptor table
        return MAX_STRANGERS
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_STRANGERS
    return max(MIN_STRANGERS, min(MAX_STRANGERS, soft // DESCRIPTOR_SHARE))


class Admission:
    """Counts strangers by peer address and cuts the oldest past the caps. Event-loop thread only."""

    def __init__(self, cap: int | None = None, per_peer: int = MAX_STRANGERS_PER_PEER) -> None:
        self.cap = stranger_cap() if cap is None else cap
        self.per_peer = min(per_peer, self.cap)
        self._by_peer: dict[str, dict[ServerConnection, None]] = {}  # insertion order is age order
        self._peer_of: dict[ServerConnection, str] = {}
        self.cut = 0  # strangers cut so far
        self.turned_away = 0  # and turned away at the door

    def __len__(self) -> int:
        return len(self._peer_of)

    def admit(self, conn: ServerConnection) -> None:
        peer = _peer(conn)
        self._peer_of[conn] = peer
        strangers = self._by_peer.setdefault(peer, {})
        strangers[conn] = None
        if len(strangers) > self.per_peer:
            self._cut_oldest(peer)
        while len(self._peer_of) > self.cap:
            self._cut_oldest(max(self._by_peer, key=lambda p: len(self._by_peer[p])))

    def turn_away(self, sock: socket.socket, address: Any) -> bool:
        """At the door: while strangers (in all, or from this address) are at their cap, one whose request has not
        arrived yet is not let in."""
        peer = str(address[0]) if isinstance(address, tuple) and address else "?"
        crowded = len(self._peer_of) >= self.cap or len(self._by_peer.get(peer, ())) >= self.per_peer
        if crowded and not head_waiting(sock):
            self.turned_away += 1
            return True
        return False

    def forget(self, conn: ServerConnection) -> None:
        """It authenticated, or it is gone."""
        peer = self._peer_of.pop(conn, None)
        if peer is None:
            return
        strangers = self._by_peer[peer]
        del strangers[conn]
        if not strangers:
            del self._by_peer[peer]

    def shed(self) -> None:
        """Descriptors ran out (accept failed): cut the older half of the strangers now, not at their timeout."""
        for peer in list(self._by_peer):
            for _ in range((len(self._by_peer[peer]) + 1) // 2):
                self._cut_oldest(peer)

    def cut_all(self) -> None:
        """Stopping: nobody still shaking hands will be served."""
        for peer in list(self._by_peer):
            while peer in self._by_peer:
                self._cut_oldest(peer)

    def _cut_oldest(self, peer: str) -> None:
        strangers = self._by_peer[peer]
        # A request that already arrived is answered next turn; cut the oldest of those still waiting for theirs.
        victim = next((c for c in strangers if not _request_waiting(c)), None) or next(iter(strangers))
        self.forget(victim)
        self.cut += 1
        victim.transport.abort()  # the descriptor is closed now; websockets' handler ends at connection_lost


class Listener(socket.socket):
    """The listening socket: turns strangers away at the door while crowded, and fails once when out of descriptors.

    asyncio's accept loop (up to 3.12) keeps calling ``accept`` after a failure for want of descriptors, up to the
    backlog, and schedules a retry (and reports the error) for each call; under a flood those retries multiplied
    into thousands of log lines a second. After one failure this socket reports "nothing to accept" for the rest
    of that round, so the loop pauses once and retries a second later."""

    admission: Admission | None = None
    queue_length = 0  # the kernel's queue of connections not yet accepted (asyncio asks for less)
    _failed_at: float | None = None

    def listen(self, backlog: int = 0) -> None:
        """asyncio listens again with its ``backlog``, which also bounds how many it accepts in one turn of the loop:
        keep that small (each accepted connection costs the loop a transport) but the kernel's queue long, so a
        burst waits there instead of the owner's SYN being dropped (and retried only a second later)."""
        super().listen(max(backlog, self.queue_length))

    def accept(self) -> tuple[socket.socket, Any]:
        if self._failed_at is not None and time.monotonic() - self._failed_at < ACCEPT_PAUSE_S:
            raise BlockingIOError(errno.EAGAIN, "accepting paused: out of descriptors")
        for _ in range(DOOR_BATCH):
            try:
                conn, address = super().accept()
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    self._failed_at = time.monotonic()
                raise
            self._failed_at = None
            if self.admission is None or not self.admission.turn_away(conn, address):
                return conn, address
            conn.close()  # with its request unread, the peer gets a reset
        raise BlockingIOError(errno.EAGAIN, "turned strangers away; the rest next turn")


def listen(host: str, port: int, queue_length: int, admission: Admission) -> Listener:
    sock = Listener(socket.AF_INET, socket.SOCK_STREAM)
    sock.admission = admission
    sock.queue_length = queue_length
    try:
        if os.name == "posix":  # as asyncio does: a restarted worker can take its port back at once
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "TCP_DEFER_ACCEPT"):  # Linux: a connection is accepted once its first data arrived
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, DEFER_ACCEPT_S)
        try:
            sock.bind((host, port))
        except OSError as exc:  # worded as asyncio's own bind: the message names the address that is taken
            text = f"error while attempting to bind on address {(host, port)!r}: {(exc.strerror or '').lower()}"
            raise OSError(exc.errno, text) from None
        sock.listen()
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def connection_class(admission: Admission) -> type[ServerConnection]:
    """A ServerConnection that registers with ``admission`` from the moment the socket is accepted."""

    class AdmittedConnection(ServerConnection):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            admission.admit(self)

        def connection_lost(self, exc: Exception | None) -> None:
            admission.forget(self)
            super().connection_lost(exc)

    return AdmittedConnection


def _peer(conn: ServerConnection) -> str:
    peername = conn.transport.get_extra_info("peername") if conn.transport is not None else None
    return str(peername[0]) if isinstance(peername, tuple) and peername else "?"


def _request_waiting(conn: ServerConnection) -> bool:
    if conn.request is not None:
        return True
    transport_socket = conn.transport.get_extra_info("socket") if conn.transport is not None else None
    if transport_socket is None:
        return False
    sock = socket.socket(fileno=transport_socket.fileno())  # a view of asyncio's descriptor, released below
    try:
        return head_waiting(sock)
    finally:
        sock.detach()


def head_waiting(sock: socket.socket) -> bool:
    """Whether a complete HTTP request head sits unread in the socket (the owner's client sends it at once)."""
    try:
        sock.setblocking(False)
        head = sock.recv(PEEK_BYTES, socket.MSG_PEEK)  # EAGAIN if nothing has arrived
    except OSError:
        return False
    return b"\r\n\r\n" in head


class LoopErrors:
    """The event loop's exception handler: one line per kind of error per second, without the traceback flood.

    When accepting fails for want of descriptors, asyncio pauses accepting for a second and tells us; we log it
    (rate-limited) and ``on_accept_error`` frees descriptors held by strangers."""

    def __init__(self, on_accept_error: Callable[[], None] | None = None) -> None:
        self.on_accept_error = on_accept_error
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message") or "event loop error")
        exc = context.get("exception")
        accept_error = "accept" in message.lower()
        if accept_error and self.on_accept_error is not None:
            self.on_accept_error()
        now = time.monotonic()
        if now - self._last.get(message, -LOG_EVERY_S) < LOG_EVERY_S:
            self._suppressed[message] = self._suppressed.get(message, 0) + 1
            return
        self._last[message] = now
        suppressed = self._suppressed.pop(message, 0)
        more = f" ({suppressed} more like it not logged)" if suppressed else ""
        if accept_error:
            log.error("%s: %s%s; strangers' connections are being cut", message, exc, more)
        else:
            log.error("%s%s", message, more, exc_info=exc if isinstance(exc, BaseException) else None)
