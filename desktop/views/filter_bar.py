"""The filter row above the table: status buttons with live counts (those that do not fit move into a "More" menu),
a type chooser and a search box."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSize, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QResizeEvent
from PySide6.QtWidgets import QButtonGroup, QComboBox, QHBoxLayout, QLineEdit, QMenu, QSizePolicy, QToolButton, QWidget

from desktop.models.jobs import Filter
from desktop.widgets.theme import icon

SEARCH_DEBOUNCE_MS = 200  # longer than most pauses between keys (a search begun mid-word is a wasted scan)


class PillStrip(QWidget):
    """The status pills in a row that never forces the window's width: the pills that do not fit are hidden and
    offered, with their counts, in the "More" menu at the end (the checked pill and "All" always stay in view)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSizeConstraint(QHBoxLayout.SizeConstraint.SetNoConstraint)  # our own minimum, not the pills'
        self.pills: list[QToolButton] = []
        self.more = QToolButton(self)
        self.more.setObjectName("statusMore")
        self.more.setText("More ▾")
        self.more.setAccessibleName("More status filters")
        self.more.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.more.setMenu(QMenu(self.more))
        self.more.menu().aboutToShow.connect(self._on_more_menu_about_to_show)
        self._layout.addWidget(self.more)
        self._layout.addStretch(1)

    def add(self, pill: QToolButton) -> None:
        self._layout.insertWidget(len(self.pills), pill)
        self.pills.append(pill)

    def remove(self, pill: QToolButton) -> None:
        self._layout.removeWidget(pill)
        self.pills.remove(pill)
        pill.deleteLater()

    def minimumSizeHint(self) -> QSize:
        first = self.pills[0].sizeHint() if self.pills else QSize(0, 0)
        more = self.more.sizeHint()
        return QSize(first.width() + more.width() + self._layout.spacing(), max(first.height(), more.height()))

    def sizeHint(self) -> QSize:
        spacing = self._layout.spacing()
        width = sum(p.sizeHint().width() + spacing for p in self.pills)
        return QSize(width, self.minimumSizeHint().height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.relayout()

    def hidden(self) -> list[QToolButton]:
        """The pills that did not fit, in order (their statuses are in the "More" menu)."""
        return [p for p in self.pills if p.isHidden()]

    def relayout(self) -> None:
        """Show as many pills as fit: "All" and the checked pill, then those with jobs, then the empty ones; the
        shown ones keep their order in the row."""
        spacing = self._layout.spacing()
        widths = [p.sizeHint().width() + spacing for p in self.pills]
        room = self.width()
        if sum(widths) > room:
            room -= self.more.sizeHint().width() + spacing
        keep = [0] + [i for i, p in enumerate(self.pills) if p.isChecked() and i]
        with_jobs = [i for i, p in enumerate(self.pills) if i not in keep and p.property("count") != 0]
        empty = [i for i in range(len(self.pills)) if i not in keep and i not in with_jobs]
        shown: set[int] = set()
        for i in keep + with_jobs + empty:
            if i in keep or widths[i] <= room:
                shown.add(i)
                room -= widths[i]
        for i, pill in enumerate(self.pills):
            pill.setVisible(i in shown)
        self.more.setVisible(len(shown) < len(self.pills))

    def _on_more_menu_about_to_show(self) -> None:
        menu = self.more.menu()
        menu.clear()
        group = QActionGroup(menu)
        for pill in self.hidden():
            action = QAction(pill.icon(), pill.text(), menu)
            action.setCheckable(True)
            action.setChecked(pill.isChecked())
            action.triggered.connect(pill.click)
            group.addAction(action)
            menu.addAction(action)


class FilterBar(QWidget):
    """Status pills (built from the statuses the engine names, in its order), a type chooser and a search box."""

    filter_changed = Signal(object)  # Filter

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        self.group = QButtonGroup(self)
        self.group.setExclusive(True)
        self.buttons: dict[str, QToolButton] = {}
        self.labels: dict[str, str] = {"": "All"}
        self._stats: dict[str, Any] | None = None
        self.pills = PillStrip(self)
        self._add_pill("")
        self.buttons[""].setChecked(True)
        self.group.buttonClicked.connect(self._on_group_button_clicked)
        layout.addWidget(self.pills, 1)
        self.type_combo = QComboBox(self)
        self.type_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.type_combo.setMinimumContentsLength(9)
        self.type_combo.addItem("All types", "")
        self.type_combo.setAccessibleName("Job type filter")
        self.type_combo.currentIndexChanged.connect(self._on_type_combo_current_index_changed)
        layout.addWidget(self.type_combo)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search parameters, results, errors…")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(self.fontMetrics().horizontalAdvance("M") * 12)
        self.search.textChanged.connect(self._on_search_text_changed)
        layout.addWidget(self.search)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(SEARCH_DEBOUNCE_MS)
        self._debounce.timeout.connect(self._on_debounce_timeout)
        self.set_counts(None)

    def _add_pill(self, status: str) -> None:
        button = QToolButton(self.pills)
        button.setObjectName("statusFilter")
        button.setCheckable(True)
        button.setIcon(icon(f"status-{status or 'all'}"))
        button.setToolButtonStyle(button.toolButtonStyle().ToolButtonTextBesideIcon)
        button.setProperty("status", status)
        self.group.addButton(button)
        self.buttons[status] = button
        self.pills.add(button)

    def set_statuses(self, statuses: list[tuple[str, str]]) -> None:
        """One pill per status (name, label), in the engine's order, after "All"; the checked one stays checked if
        the engine still names it."""
        names = [name for name, _ in statuses]
        if names != [s for s in self.buttons if s]:
            checked = self.current().statuses
            for status in [s for s in self.buttons if s]:
                button = self.buttons.pop(status)
                self.group.removeButton(button)
                self.pills.remove(button)
            for name in names:
                self._add_pill(name)
            self.buttons[checked[0] if checked and checked[0] in self.buttons else ""].setChecked(True)
        self.labels = {"": "All", **dict(statuses)}
        self.set_counts(self._stats)

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
        self._stats = stats
        by_status = (stats or {}).get("by_status") or {}
        for status, button in self.buttons.items():
            label = self.labels.get(status, status)
            count = (stats or {}).get("total") if not status else by_status.get(status)
            button.setText(f"{label} {count:,}" if isinstance(count, int) else label)
            button.setProperty("count", count if isinstance(count, int) else None)
        self.pills.relayout()

    def clear(self) -> None:
        """Every status, every type, no search: for a job asked for by id that the filter hides."""
        self._debounce.stop()
        for widget in (self.type_combo, self.search):
            widget.blockSignals(True)
        self.type_combo.setCurrentIndex(0)
        self.search.clear()
        for widget in (self.type_combo, self.search):
            widget.blockSignals(False)
        self.select_status("")

    def select_status(self, status: str) -> None:
        self.buttons[status].setChecked(True)
        self.pills.relayout()
        self.filter_changed.emit(self.current())

    def _on_group_button_clicked(self, _button: QToolButton) -> None:
        self.pills.relayout()
        self.filter_changed.emit(self.current())

    def _on_type_combo_current_index_changed(self, _index: int) -> None:
        self.filter_changed.emit(self.current())

    def _on_search_text_changed(self, _text: str) -> None:
        self._debounce.start()

    def _on_debounce_timeout(self) -> None:
        self.filter_changed.emit(self.current())
