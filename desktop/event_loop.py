"""The GUI's asyncio loop: qasync's, closed so that nothing of it can fire after it is gone.

qasync runs each scheduled callback (a sleep, a time-out, a websocket keep-alive) on a Qt timer of one QObject
per loop, and its ``close`` leaves the timers still pending registered, to be dropped as they fire. That QObject
is freed whenever the garbage collector gets to the closed loop, on whatever thread runs that collection, and a
QObject destroyed off its own thread cannot unregister its timers ("QObject::~QObject: Timers cannot be stopped
from another thread"): the next one to fire is delivered to freed memory, a segmentation fault in
``QTimerInfoList::activateTimers``. That killed the test suite in CI (a loop per test), and locally three runs in
four of the Qt tests repeated six times; ``tests/test_gui_event_loop.py`` reproduces it in one step.

So ``close`` kills those timers itself, on the GUI thread it is called on. The app closes its one loop as it
quits; the GUI tests close one per test.
"""

from __future__ import annotations

import qasync


class GuiEventLoop(qasync.QEventLoop):
    def close(self) -> None:
        super().close()
        timer = self._timer
        pending = timer._SimpleTimer__callbacks  # qasync's {Qt timer id: handle} of callbacks not yet run
        for timer_id in list(pending):
            timer.killTimer(timer_id)
        pending.clear()
