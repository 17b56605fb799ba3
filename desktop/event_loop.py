"""The GUI's asyncio loop: qasync's, except that other threads never touch Qt to reach it.

qasync hands a callback from another thread to the GUI thread (``call_soon_threadsafe``) by emitting a Qt
signal, with the callback and its arguments as Python objects, from that thread, to a lambda; and its default
executor runs blocking calls (``asyncio.to_thread``: settings, keyring, connection tests) on QThreads. Both put
PySide's wrappers to work on threads other than the GUI's, and PySide 6.8 and later have crashed doing exactly
that: signals emitted from a foreign thread to a callable that is not a slot of a QObject (PYSIDE-3124). The test
suite died once with a segmentation fault while the settings dialog's calls were finishing on such threads.

So, as asyncio's own loops do, a thread wakes the GUI thread through a socket pair (a byte written; a
``QSocketNotifier`` reads it on the GUI thread), and the handles it queued wait in a deque, which is safe to
append to from any thread. The executor is a plain ``ThreadPoolExecutor``: its threads run Python only.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import Context
from typing import Any

import qasync

IO_THREADS = 4  # the GUI's blocking calls are short (files, keyring, one connection test); more would only idle


class GuiEventLoop(qasync.QEventLoop):  # type: ignore[misc]
    def __init__(self, app: Any = None, already_running: bool = False) -> None:
        super().__init__(app, already_running=already_running)
        self._from_threads: collections.deque[asyncio.Handle] = collections.deque()
        self._wake_in, self._wake_out = socket.socketpair()
        for end in (self._wake_in, self._wake_out):
            end.setblocking(False)
        self._add_reader(self._wake_in.fileno(), self._run_from_threads)
        self.set_default_executor(ThreadPoolExecutor(IO_THREADS, thread_name_prefix="jobdeck-gui-io"))

    def call_soon_threadsafe(
        self, callback: Callable[..., Any], *args: Any, context: Context | None = None
    ) -> asyncio.Handle:
        handle = asyncio.Handle(callback, args, self, context=context)
        self._from_threads.append(handle)
        with contextlib.suppress(BlockingIOError, InterruptedError, OSError):
            # A full buffer means a wake-up is already pending; a closed socket, that the loop is gone.
            self._wake_out.send(b"\0")
        return handle

    def _run_from_threads(self) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while self._wake_in.recv(4096):
                pass
        while self._from_threads:
            handle = self._from_threads.popleft()
            if not handle.cancelled():
                self._add_callback(handle)

    def close(self) -> None:
        super().close()  # waits for the executor's threads; what they hand over now is dropped with the deque
        self._from_threads.clear()
        self._wake_in.close()
        self._wake_out.close()
