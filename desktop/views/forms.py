"""Pieces shared by Jobdeck's forms: inline error lines, the scrolling body and footer, the schedule chooser."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import cast

from PySide6.QtCore import QDateTime, QEvent, QObject, QSize, Qt, Signal
from PySide6.QtGui import QPainter, QPaintEvent, QResizeEvent
from PySide6.QtWidgets import (
    QBoxLayout,
    QButtonGroup,
    QDateTimeEdit,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSizePolicy,
    QStyle,
    QVBoxLayout,
    QWidget,
)


class ErrorLabel(QLabel):
    """A red line under a field. With ``reserve`` its line stays reserved while hidden, so a message that appears
    as the user leaves a field never moves the fields below it out from under the pointer; forms whose errors only
    come back from Save (Settings) pass False and stay compact."""

    def __init__(self, parent: QWidget | None = None, *, reserve: bool = True) -> None:
        super().__init__(parent)
        self.setObjectName("fieldError")
        self.setTextFormat(Qt.TextFormat.PlainText)  # messages quote what was typed or dropped
        self.reserve = reserve
        self.setWordWrap(not reserve)
        if reserve:
            policy = self.sizePolicy()
            policy.setRetainSizeWhenHidden(True)
            policy.setHorizontalPolicy(QSizePolicy.Policy.Ignored)
            self.setSizePolicy(policy)
        self.hide()

    def show_error(self, message: str | None) -> None:
        self.setText(message or "")
        self.setVisible(bool(message))
        self._tip()

    def _tip(self) -> None:
        """A reserved line shows what fits; the whole message is its tooltip (and its accessible text)."""
        if self.reserve:
            fits = self.fontMetrics().horizontalAdvance(self.text()) <= self.contentsRect().width()
            self.setToolTip("" if fits else self.text())

    def sizeHint(self) -> QSize:
        if not self.reserve:
            return super().sizeHint()
        return QSize(self.fontMetrics().averageCharWidth() * 12, self.fontMetrics().height())

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint() if self.reserve else super().minimumSizeHint()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._tip()

    def paintEvent(self, event: QPaintEvent) -> None:
        if not self.reserve:
            super().paintEvent(event)
            return
        rect = self.contentsRect()
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        elided = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, rect.width())
        painter.drawText(rect, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), elided)
        painter.end()


class _FocusLeft(QObject):
    """Calls back when its widget loses keyboard focus (not when a popup or another window takes it)."""

    def __init__(self, widget: QWidget, slot: Callable[[], None]) -> None:
        super().__init__(widget)
        self.slot = slot
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.FocusOut and event.reason() not in (  # type: ignore[attr-defined]
            Qt.FocusReason.PopupFocusReason,
            Qt.FocusReason.ActiveWindowFocusReason,
        ):
            self.slot()
        return False


def on_focus_left(widget: QWidget, slot: Callable[[], None]) -> None:
    """Run ``slot`` when the user leaves ``widget``: the moment to judge what they typed, not at every key."""
    _FocusLeft(widget, slot)


def with_error(parent: QWidget, widget: QWidget, error: ErrorLabel) -> QWidget:
    """A field with its inline error line right under it, as one form row."""
    box = QWidget(parent)
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(2)
    layout.addWidget(widget)
    layout.addWidget(error)
    return box


def scroll_body(dialog: QDialog) -> tuple[QVBoxLayout, QVBoxLayout, QScrollArea]:
    """The dialog's outer layout and, inside a frameless scroll area, the layout its fields go in: a form taller
    than the screen (large fonts, 2× scale, a long warning) scrolls, while the footer added to the outer layout
    (error line, Create/Save) stays in view."""
    outer = QVBoxLayout(dialog)
    area = QScrollArea(dialog)
    area.setObjectName("formScroll")
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    area.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Tab goes to the fields; the area scrolls to the focused one
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
    body = QWidget(area)
    body.setObjectName("formBody")
    inner = QVBoxLayout(body)
    inner.setContentsMargins(4, 4, 4, 4)  # room for the focus ring, which the viewport would clip
    area.setWidget(body)
    outer.addWidget(area, 1)
    return outer, inner, area


def fit_to_screen(dialog: QWidget, area: QScrollArea | None, width: int, height: int | None = None) -> QSize:
    """Open at ``width`` × the content's natural height (or ``height``), but never larger than 90 % of the
    screen's available area: the scroll area takes up the difference."""
    natural = dialog.sizeHint()
    body = area.widget() if area is not None else None
    if area is not None and body is not None:
        scrollbar = dialog.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        body_height = body.heightForWidth(width) if body.hasHeightForWidth() else -1
        natural.setHeight(natural.height() - area.sizeHint().height() + max(body_height, body.sizeHint().height()))
        # Room for the scroll bar from the start: when it appears (a long reply, a warning) the fields keep their
        # width instead of being cut off on the right.
        area.setMinimumWidth(body.minimumSizeHint().width() + scrollbar + 2)
        width = max(width, body.sizeHint().width() + scrollbar + 2)
    want = QSize(max(width, dialog.minimumSizeHint().width()), height or natural.height())
    screen = (dialog.parentWidget() or dialog).screen()
    if screen is not None:
        room = screen.availableGeometry().size() * 0.9
        want = want.boundedTo(room)
    dialog.resize(want)
    return want


def add_footer(
    dialog: QDialog, layout: QBoxLayout, submit: str | None, on_accept: Callable[[], None]
) -> tuple[QLabel, QDialogButtonBox, QPushButton]:
    """The end of every Jobdeck form: a form-level error line, then Submit and Cancel.

    ``submit`` names the accept button ("Create job", "Upload"); None gives the standard Save.
    """
    error = QLabel(dialog)
    error.setObjectName("formError")
    error.setTextFormat(Qt.TextFormat.PlainText)
    error.setWordWrap(True)
    error.hide()
    layout.addWidget(error)
    buttons = QDialogButtonBox(dialog)
    if submit is None:
        button = buttons.addButton(QDialogButtonBox.StandardButton.Save)
    else:
        button = buttons.addButton(submit, QDialogButtonBox.ButtonRole.AcceptRole)
    buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
    buttons.accepted.connect(on_accept)
    buttons.rejected.connect(dialog.reject)
    reason = QLabel(dialog)
    reason.setObjectName("disabledReason")
    reason.setTextFormat(Qt.TextFormat.PlainText)
    reason.setWordWrap(True)
    reason.hide()
    row = QHBoxLayout()
    row.addWidget(reason, 1)
    row.addWidget(buttons)
    layout.addLayout(row)
    return error, buttons, button


def disabled_reason(dialog: QDialog) -> QLabel:
    """The footer's line beside the buttons that says why Submit is disabled: a tooltip alone is invisible to
    keyboard and touch users."""
    label = dialog.findChild(QLabel, "disabledReason")
    assert isinstance(label, QLabel)
    return label


class ScheduleChooser(QWidget):
    """Immediately, or At a local date and time that must be in the future."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.now_radio = QRadioButton("Immediately", self)
        self.at_radio = QRadioButton("At", self)
        group = QButtonGroup(self)
        group.addButton(self.now_radio)
        group.addButton(self.at_radio)
        self.now_radio.setChecked(True)
        self.when = QDateTimeEdit(self)
        self.when.setCalendarPopup(True)
        self.when.setDisplayFormat("yyyy-MM-dd HH:mm")
        start = QDateTime.currentDateTime().addSecs(3600)
        start.setTime(start.time().addSecs(-start.time().second()))
        self.when.setDateTime(start)
        self.when.setEnabled(False)
        self.when.setAccessibleName("Scheduled time (local)")
        layout.addWidget(self.now_radio)
        layout.addWidget(self.at_radio)
        layout.addWidget(self.when, 1)
        self.at_radio.toggled.connect(self._on_at_radio_toggled)
        self.when.dateTimeChanged.connect(self._on_when_date_time_changed)

    def _on_at_radio_toggled(self, checked: bool) -> None:
        self.when.setEnabled(checked)
        self.changed.emit()

    def _on_when_date_time_changed(self, _value: QDateTime) -> None:
        self.changed.emit()

    @property
    def scheduled(self) -> bool:
        return self.at_radio.isChecked()

    def local_error(self) -> str | None:
        if self.scheduled and self.when.dateTime() <= QDateTime.currentDateTime():
            return "Pick a time in the future."
        return None

    def iso(self) -> str | None:
        """The chosen time as ISO 8601 with the local offset, or None for immediately."""
        if not self.scheduled:
            return None
        naive = cast(datetime, self.when.dateTime().toPython())
        return naive.astimezone().isoformat(timespec="seconds")
