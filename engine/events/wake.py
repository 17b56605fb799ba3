"""A wake as one loopback datagram: the CLI sends one per submission, so a wake must cost microseconds."""

from __future__ import annotations

import hmac
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

HOST = "127.0.0.1"  # loopback only, like the websocket
PREFIX = b"wake "
# Read at most this much of a datagram: a valid one is ~50 bytes, so anything longer compares unequal (Linux
# truncates it; Windows refuses it with an OSError, which is ignored like any other bad datagram).
MAX_DATAGRAM = 512
STOP_JOIN_S = 2.0
ERROR_PAUSE_S = 0.1  # a socket that keeps failing must not spin the CPU


def wake_message(token: str) -> bytes:
    """The datagram's whole content: the token proves the sender may read ``worker.json``."""
    return PREFIX + token.encode()


def send_wake(info: Mapping[str, Any]) -> bool:
    """Send one wake datagram to the worker described by ``info`` (``worker.json``); fire and forget, as a lost
    datagram only delays the job to the worker's idle poll. False when ``info`` has no wake port (a worker from
    before the datagram existed): the caller falls back to the control channel. Raises OSError."""
    port = info.get("wake_port")
    token = info.get("token")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536 or not isinstance(token, str):
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(wake_message(token), (HOST, port))
    return True


class WakeListener:
    """The worker's end: a daemon thread of its own, so a wake never waits behind the event loop's work, and
    ``on_wake`` is the very method the control channel's ``wake`` command calls (one behaviour, two transports).

    The thread blocks in ``recvfrom`` and so costs nothing while idle. ``stop`` releases it with an empty datagram
    of its own, because closing a socket does not interrupt a receive blocked in another thread everywhere.
    """

    def __init__(self, token: str, on_wake: Callable[[], None]) -> None:
        self._expected = wake_message(token)
        self._on_wake = on_wake
        self._sock: socket.socket | None = None
        self._stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.port = 0

    def start(self) -> int:
        """Bind 127.0.0.1 on a port the OS chooses and start receiving; returns the port (for ``worker.json``)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((HOST, 0))
            sock.settimeout(None)  # blocking whatever socket.setdefaulttimeout says: stop() releases it
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.port = sock.getsockname()[1]
        self.thread = threading.Thread(target=self._run, args=(sock,), name="jobdeck-wake", daemon=True)
        self.thread.start()
        return self.port

    def stop(self) -> None:
        """End the thread and free the port; safe to call twice, or without ``start``."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        self._stopping.set()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as poke:
                poke.sendto(b"", (HOST, self.port))
        except OSError:
            log.warning("could not release the wake listener; it ends with the process", exc_info=True)
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(STOP_JOIN_S)
        sock.close()

    def _run(self, sock: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                data, _addr = sock.recvfrom(MAX_DATAGRAM)
            except OSError as exc:
                if self._stopping.is_set():
                    break
                # Also an oversized datagram on Windows, or a port-unreachable report some stacks deliver here.
                log.debug("wake listener: receive failed: %s", exc)
                self._stopping.wait(ERROR_PAUSE_S)
                continue
            if self._stopping.is_set():
                break
            # Constant time: how long the comparison takes reveals nothing about how much of the token matched.
            if not hmac.compare_digest(data, self._expected):
                continue  # not ours, or a wrong token: nothing to answer, nothing worth logging per datagram
            try:
                self._on_wake()
            except Exception:
                log.exception("wake failed; the worker's idle poll will pick the work up")
