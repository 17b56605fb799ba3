"""The filter row above the table: status buttons with live counts, a type chooser and a search box."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QButtonGroup, QComboBox, QHBoxLayout, QLineEdit, QToolButton, QWidget

from desktop.models.format import STATUS_LABELS, STATUS_ORDER
from desktop.models.jobs import Filter
from desktop.widgets.theme import icon

SEARCH_DEBOUNCE_MS = 300


class FilterBar(QWidget):
    filter_changed = Signal(object)  # Filter

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        self.group = QButtonGroup(self)
        self.group.setExclusive(True)
        self.buttons: dict[str, QToolButton] = {}
        for status in ("", *STATUS_ORDER):
            button = QToolButton(self)
            button.setObjectName("statusFilter")
            button.setCheckable(True)
            button.setIcon(icon(f"status-{status or 'all'}"))
            button.setToolButtonStyle(button.toolButtonStyle().ToolButtonTextBesideIcon)
            button.setProperty("status", status)
            self.group.addButton(button)
            self.buttons[status] = button
            layout.addWidget(button)
        self.buttons[""].setChecked(True)
        self.group.buttonClicked.connect(self._on_group_button_clicked)
        layout.addStretch(1)
        self.type_combo = QComboBox(self)
        self.type_combo.addItem("All types", "")
        self.type_combo.setAccessibleName("Job type filter")
        self.type_combo.currentIndexChanged.connect(self._on_type_combo_current_index_changed)
        layout.addWidget(self.type_combo)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search parameters, results, errors…")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(self.fontMetrics().horizontalAdvance("M") * 18)
        self.search.textChanged.connect(self._on_search_text_changed)
        layout.addWidget(self.search)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(SEARCH_DEBOUNCE_MS)
        self._debounce.timeout.connect(self._on_debounce_timeout)
        self.set_counts(None)

    def current(self) -> Filter:
        checked = self.group.checkedButton()
        status = checked.property("status") if checked is not None else ""
        return Filter(
            statuses=(status,) if status else (),
            job_type=self.type_combo.currentData() or "",
            search=self.search.text().strip(),
        )

    def set_types(self, types: list[dict[str, Any]]) -> None:
        current = self.type_combo.currentData()
        self.type_combo.blockSignals(True)
        self.type_combo.clear()
        self.type_combo.addItem("All types", "")
        for kind in types:
            self.type_combo.addItem(kind.get("label") or kind["name"], kind["name"])
        index = self.type_combo.findData(current)
        self.type_combo.setCurrentIndex(max(index, 0))
        self.type_combo.blockSignals(False)

    def set_counts(self, stats: dict[str, Any] | None) -> None:
        by_status = (stats or {}).get("by_status") or {}
        for status, button in self.buttons.items():
            label = STATUS_LABELS.get(status, "All")
            count = (stats or {}).get("total") if not status else by_status.get(status)
            button.setText(f"{label} {count:,}" if isinstance(count, int) else label)

    def select_status(self, status: str) -> None:
        self.buttons[status].setChecked(True)
        self.filter_changed.emit(self.current())

    def _on_group_button_clicked(self, _button: QToolButton) -> None:
        self.filter_changed.emit(self.current())

    def _on_type_combo_current_index_changed(self, _index: int) -> None:
        self.filter_changed.emit(self.current())

    def _on_search_text_changed(self, _text: str) -> None:
        self._debounce.start()

    def _on_debounce_timeout(self) -> None:
        self.filter_changed.emit(self.current())
