"""The desktop app's entry: QApplication with its asyncio loop, the crash handler, and the main window."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType, TracebackType

from PySide6.QtCore import QEvent, QObject, QSocketNotifier, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from engine.config import Paths, make_private
from engine.failures import report

log = logging.getLogger("desktop")


def _parse(args: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="jobdeck gui", description="Jobdeck desktop control panel")
    parser.add_argument("--minimized", action="store_true", help="start hidden in the tray (when there is one)")
    parser.add_argument("--no-worker", action="store_true", help="do not start a worker; wait for one to appear")
    parser.add_argument(
        "--smoke-test",
        action="store_true",
        help="open the window without a worker, report the time to its first paint and exit (for packaging checks)",
    )
    return parser.parse_args(args)


class _FirstPaint(QObject):
    """Quits the smoke test once the window has painted, reporting how long that took."""

    def __init__(self, started: float, done: asyncio.Event) -> None:
        super().__init__()
        self._started = started
        self._done = done

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint and not self._done.is_set():
            print(f"jobdeck: window painted {time.perf_counter() - self._started:.3f} s after start", flush=True)
            QTimer.singleShot(0, self._done.set)
        return False


class _StopSignals(QObject):
    """Ctrl+C, SIGTERM (a service manager, ``kill``) and SIGHUP (the terminal closed) quit as the Quit command does,
    stopping the worker only if this window started it, instead of a KeyboardInterrupt traceback or a death that
    leaves an owned worker running.

    Python runs a signal handler only when it next runs Python code, and the Qt loop may sit in C for as long as
    nothing happens: so the signal's number is also written to a socket (``signal.set_wakeup_fd``) that Qt watches.
    """

    NAMES = ("SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK")

    def __init__(self, on_signal: Callable[[signal.Signals], None]) -> None:
        super().__init__()
        self._on_signal = on_signal
        self._read, self._write = socket.socketpair()
        for sock in (self._read, self._write):
            sock.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._write.fileno(), warn_on_full_buffer=False)
        self._signals = [getattr(signal, name) for name in self.NAMES if hasattr(signal, name)]
        self._previous = {sig: signal.signal(sig, _ignore) for sig in self._signals}
        self._notifier = QSocketNotifier(self._read.fileno(), QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self._on_activated)

    def _on_activated(self) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            for number in self._read.recv(64):
                self._on_signal(signal.Signals(number))

    def close(self) -> None:
        self._notifier.setEnabled(False)
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        signal.set_wakeup_fd(self._previous_fd)
        self._read.close()
        self._write.close()


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    """The Python-level handler: the work is done when Qt sees the wake-up socket (see ``_StopSignals``)."""


def _install_crash_handler() -> None:
    """Log an unexpected exception and tell the operator instead of aborting silently (the traceback goes to the
    log file; the console gets one line)."""

    def _hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        log.error("unhandled exception", exc_info=(kind, value, tb))
        app = QApplication.instance()
        if app is not None and not isinstance(value, KeyboardInterrupt):
            QMessageBox.critical(
                None, "Jobdeck: unexpected error", f"{kind.__name__}: {value}\n\nDetails are in the log."
            )

    sys.excepthook = _hook


def _no_display() -> str | None:
    """Qt aborts the whole process, with a page of plugin messages, when a Linux session has no display: say it
    in one line before Qt is asked."""
    if not sys.platform.startswith("linux") or any(
        os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    ):
        return None
    return (
        "no display to open the window on (DISPLAY and WAYLAND_DISPLAY are unset): start it from a desktop "
        "session, or use the commands (jobdeck --help) and the headless worker (jobdeck worker)"
    )


def main(args: list[str] | None = None) -> int:
    """Open the window; a failure of the environment before it opens (a data folder this user cannot write, say)
    ends in one line on stderr, exit status 1."""
    options = _parse(list(args or []))
    if missing := _no_display():
        print(f"jobdeck: {missing}", file=sys.stderr)
        return 1
    paths: Paths | None = None
    try:
        paths = Paths()
        return _run(options, paths)
    except KeyboardInterrupt:  # Ctrl+C before the window took over the signal (see ``_StopSignals``)
        return 130
    except Exception as exc:
        return report(exc, paths)


def _run(options: argparse.Namespace, paths: Paths) -> int:
    started = time.perf_counter()
    from desktop.event_loop import GuiEventLoop
    from desktop.views.main_window import MainWindow
    from desktop.widgets.theme import apply_style
    from engine.logs import configure_logging

    make_private(paths)
    configure_logging(paths, "gui")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("Jobdeck")
    app.setApplicationDisplayName("Jobdeck")
    app.setDesktopFileName("jobdeck")
    app.setQuitOnLastWindowClosed(False)  # closing to the tray must not quit; quitting is explicit
    apply_style(app)
    _install_crash_handler()
    loop = GuiEventLoop(app)
    asyncio.set_event_loop(loop)
    closing: list[signal.Signals] = []

    def _on_signal(sig: signal.Signals) -> None:
        if closing:
            log.info("received %s: already closing", sig.name)
            return
        closing.append(sig)
        owned = window.supervisor.owned
        log.info("received %s: closing%s", sig.name, " and stopping the worker this window started" if owned else "")
        window.spawn(window.shutdown(stop_worker=owned))

    # Before the window: a signal that comes while it is built is acted on once the loop runs.
    stop_signals = _StopSignals(_on_signal)
    window = MainWindow(paths, autostart=not (options.no_worker or options.smoke_test))
    done = asyncio.Event()
    window.quit_finished.connect(done.set)
    app.aboutToQuit.connect(done.set)
    if options.smoke_test:
        painted = _FirstPaint(started, done)
        window.installEventFilter(painted)
    if options.smoke_test or not (options.minimized and window.tray.available):
        window.show()
    window.begin()
    try:
        with loop:
            loop.run_until_complete(done.wait())
            _finish(loop)
    finally:
        stop_signals.close()
    return 0


def _finish(loop: asyncio.AbstractEventLoop) -> None:
    """What ``asyncio.run`` does at its end: cancel what still runs (a connection's reader, a keep-alive ping) and
    let it unwind, then close async generators, while the loop can still run them. Left to the garbage collector
    after the loop has closed, each printed "Task was destroyed but it is pending" or an ignored exception's
    traceback on the console."""
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
