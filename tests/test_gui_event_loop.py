"""The GUI's asyncio loop: work handed back from other threads reaches the GUI thread without Qt on those threads."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from test_gui_support import *  # noqa: F403  (fixtures)
from test_gui_support import run

from desktop.event_loop import GuiEventLoop


class _NoSignal:
    """Stands in for qasync's cross-thread signal: any use of it fails the test."""

    def emit(self, *args: Any) -> None:
        raise AssertionError("a thread emitted a Qt signal to reach the loop")

    def disconnect(self) -> None:
        pass


def test_blocking_calls_run_on_plain_threads_and_resume_on_the_gui_thread(qtbot: Any, aloop: Any) -> None:
    assert isinstance(aloop, GuiEventLoop)
    aloop._QEventLoop__call_soon_signal = _NoSignal()  # type: ignore[attr-defined]
    gui = threading.get_ident()

    async def one(n: int) -> tuple[int, str, bool]:
        name = await asyncio.to_thread(lambda: threading.current_thread().name)
        return n, name, threading.get_ident() == gui

    async def many() -> list[tuple[int, str, bool]]:
        return await asyncio.gather(*(one(n) for n in range(500)))

    results = run(qtbot, many(), timeout_ms=10_000)
    assert [n for n, _, _ in results] == list(range(500))
    assert {name.split("_")[0] for _, name, _ in results} == {"jobdeck-gui-io"}
    assert all(on_gui for _, _, on_gui in results)


def test_a_thread_queues_callbacks_in_order_and_a_cancelled_one_never_runs(qtbot: Any, aloop: Any) -> None:
    ran: list[tuple[str, bool]] = []
    gui = threading.get_ident()

    def record(tag: str) -> None:
        ran.append((tag, threading.get_ident() == gui))

    def from_thread() -> None:
        aloop.call_soon_threadsafe(record, "first")
        aloop.call_soon_threadsafe(record, "cancelled").cancel()
        aloop.call_soon_threadsafe(record, "last")

    thread = threading.Thread(target=from_thread)
    thread.start()
    thread.join()
    qtbot.waitUntil(lambda: len(ran) >= 2, timeout=5_000)
    qtbot.wait(50)
    assert ran == [("first", True), ("last", True)]


def test_close_stops_the_threads_and_the_wake_up_sockets(qtbot: Any, qapp: Any) -> None:
    loop = GuiEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    try:
        assert run(qtbot, asyncio.to_thread(lambda: 42)) == 42
        threads = list(loop._QEventLoop__default_executor._threads)  # type: ignore[attr-defined]
        assert threads and all(t.is_alive() for t in threads)
    finally:
        asyncio.events._set_running_loop(None)
        loop._QEventLoop__is_running = False  # type: ignore[attr-defined]
        loop.close()
        asyncio.set_event_loop(None)
    assert not any(t.is_alive() for t in threads)
    assert loop._wake_in.fileno() == -1 and loop._wake_out.fileno() == -1
    loop.call_soon_threadsafe(lambda: None)  # a late hand-over from a thread is dropped, not an error
