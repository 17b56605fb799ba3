"""The status bar's messages on one line, elided to the room its permanent widgets leave."""

from __future__ import annotations

import time
from collections.abc import Sequence

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QStatusBar, QWidget

SHOW_MS = 10_000


class StatusMessages(QObject):
    """QStatusBar cuts a message that meets its permanent widgets mid-word. Here a message is elided ("…") with the
    whole text in the bar's tooltip, and elided again whenever the room changes (the window resized, a count grown,
    the Undo button shown) for as long as it is on show."""

    def __init__(self, bar: QStatusBar, permanent: Sequence[QWidget]) -> None:
        super().__init__(bar)
        self.bar = bar
        self.permanent = tuple(permanent)
        self._message: tuple[str, float] | None = None  # the whole text, and until when it is shown
        for widget in self.permanent:
            bar.addPermanentWidget(widget)
            widget.installEventFilter(self)
        bar.installEventFilter(self)
        bar.messageChanged.connect(self._on_bar_message_changed)

    def show(self, message: str) -> None:
        self._message = (message, time.monotonic() + SHOW_MS / 1000)
        self._fit(again=True)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if self._message is not None and event.type() in (QEvent.Type.Resize, QEvent.Type.Show, QEvent.Type.Hide):
            self._fit()
        return False

    def _fit(self, again: bool = False) -> None:
        """Show the message elided to the room there is now; ``again`` restarts its time even if its text is the
        one on show (the same message told twice)."""
        assert self._message is not None
        message, until = self._message
        left_ms = int((until - time.monotonic()) * 1000)
        if left_ms <= 0:
            return
        metrics = self.bar.fontMetrics()
        em = metrics.horizontalAdvance("M")
        taken = sum(w.sizeHint().width() + em for w in self.permanent if w.isVisible())
        line = " ".join(message.split())
        shown = metrics.elidedText(line, Qt.TextElideMode.ElideRight, max(em * 12, self.bar.width() - taken - 2 * em))
        self.bar.setToolTip(message if shown != line else "")
        if again or shown != self.bar.currentMessage():
            self.bar.showMessage(shown, left_ms)

    def _on_bar_message_changed(self, text: str) -> None:
        if not text:  # timed out, or cleared
            self._message = None
            self.bar.setToolTip("")
