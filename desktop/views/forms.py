"""Pieces shared by the job and upload forms: inline error labels, the schedule chooser, mapping engine errors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from PySide6.QtCore import QDateTime, Qt, Signal
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
    QVBoxLayout,
    QWidget,
)


class ErrorLabel(QLabel):
    """A red line under a field; hidden while empty so valid forms stay compact."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("fieldError")
        self.setTextFormat(Qt.TextFormat.PlainText)  # messages quote what was typed or dropped
        self.setWordWrap(True)
        self.hide()

    def show_error(self, message: str | None) -> None:
        self.setText(message or "")
        self.setVisible(bool(message))


def with_error(parent: QWidget, widget: QWidget, error: ErrorLabel) -> QWidget:
    """A field with its inline error line right under it, as one form row."""
    box = QWidget(parent)
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(2)
    layout.addWidget(widget)
    layout.addWidget(error)
    return box


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
    layout.addWidget(buttons)
    return error, buttons, button


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
        naive: datetime = self.when.dateTime().toPython()
        return naive.astimezone().isoformat(timespec="seconds")
