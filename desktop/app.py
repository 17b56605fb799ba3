"""The desktop app's entry: QApplication with its asyncio loop, the crash handler, and the main window."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import traceback
from types import TracebackType

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from engine.config import Paths

log = logging.getLogger("desktop")


def _parse(args: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="jobdeck", description="Jobdeck desktop control panel")
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


def _install_crash_handler() -> None:
    """Log an unexpected exception and tell the operator instead of aborting silently."""

    def _hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        text = "".join(traceback.format_exception(kind, value, tb))
        log.error("unhandled exception:\n%s", text)
        app = QApplication.instance()
        if app is not None and not isinstance(value, KeyboardInterrupt):
            QMessageBox.critical(
                None, "Jobdeck: unexpected error", f"{kind.__name__}: {value}\n\nDetails are in the log."
            )

    sys.excepthook = _hook


def main(args: list[str] | None = None) -> int:
    started = time.perf_counter()
    from desktop.event_loop import GuiEventLoop
    from desktop.views.main_window import MainWindow
    from desktop.widgets.theme import apply_style
    from engine.logs import configure_logging

    options = _parse(list(args or []))
    paths = Paths()
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
    with loop:
        loop.run_until_complete(done.wait())
    return 0
