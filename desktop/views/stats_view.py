"""The stats view: counts by status and type, success rate, p95 duration and the per-minute timeline chart."""

from __future__ import annotations

import asyncio
import html
from collections.abc import Awaitable, Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QDialog, QGridLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from desktop.models.format import STATUS_LABELS, STATUS_ORDER, duration
from desktop.models.jobs import TYPE_LABELS
from desktop.widgets.chart import TimelineChart
from desktop.widgets.theme import icon
from engine.errors import JobdeckError

Request = Callable[..., Awaitable[Any]]
HOURS = (1, 3, 6, 12, 24)


class StatsView(QDialog):
    def __init__(self, request: Request, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Job statistics")
        self.request = request
        self.refresh_task: asyncio.Future[None] | None = None
        layout = QVBoxLayout(self)
        self.headline = QLabel("Loading…", self)
        self.headline.setObjectName("sectionTitle")
        self.headline.setWordWrap(True)
        layout.addWidget(self.headline)
        self.grid = QGridLayout()
        layout.addLayout(self.grid)
        self.status_labels: dict[str, QLabel] = {}
        for col, status in enumerate(STATUS_ORDER):
            name = QLabel(STATUS_LABELS[status], self)
            name.setAlignment(Qt.AlignmentFlag.AlignCenter)
            glyph = QLabel(self)
            glyph.setPixmap(icon(f"status-{status}").pixmap(self.fontMetrics().height(), self.fontMetrics().height()))
            glyph.setAlignment(Qt.AlignmentFlag.AlignCenter)
            glyph.setAccessibleName(STATUS_LABELS[status])
            value = QLabel("–", self)
            value.setAlignment(Qt.AlignmentFlag.AlignCenter)
            font = value.font()
            font.setPointSizeF(font.pointSizeF() * 1.5)
            font.setBold(True)
            value.setFont(font)
            self.grid.addWidget(glyph, 0, col)
            self.grid.addWidget(value, 1, col)
            self.grid.addWidget(name, 2, col)
            self.status_labels[status] = value
        self.by_type = QLabel(self)
        self.by_type.setWordWrap(True)
        self.by_type.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.by_type)
        controls = QHBoxLayout()
        title = QLabel("Finished and failed per minute", self)
        title.setObjectName("sectionTitle")
        controls.addWidget(title)
        controls.addStretch(1)
        self.hours = QComboBox(self)
        for h in HOURS:
            self.hours.addItem(f"last {h} hour{'s' if h > 1 else ''}", h)
        self.hours.setCurrentIndex(0)
        self.hours.currentIndexChanged.connect(self._on_hours_current_index_changed)
        controls.addWidget(self.hours)
        self.refresh_button = QPushButton("Refresh", self)
        self.refresh_button.clicked.connect(self._on_refresh_button_clicked)
        controls.addWidget(self.refresh_button)
        layout.addLayout(controls)
        self.chart = TimelineChart(self)
        layout.addWidget(self.chart, 1)
        line = self.fontMetrics().height()
        self.resize(line * 48, line * 30)

    def _on_hours_current_index_changed(self, _index: int) -> None:
        self.start_refresh()

    def _on_refresh_button_clicked(self) -> None:
        self.start_refresh()

    def start_refresh(self) -> None:
        if self.refresh_task is None or self.refresh_task.done():
            self.refresh_task = asyncio.ensure_future(self.refresh())

    async def refresh(self) -> None:
        try:
            stats = await self.request("stats")
            timeline = await self.request("timeline", hours=int(self.hours.currentData()))
        except (JobdeckError, OSError, TimeoutError) as exc:
            self.headline.setText(f"Could not load statistics: {exc}")
            return
        self.show_stats(stats, timeline)

    def show_stats(self, stats: dict[str, Any], timeline: dict[str, Any] | None) -> None:
        rate = stats.get("success_rate")
        p95 = stats.get("p95_duration_s")
        mean = stats.get("mean_duration_s")
        self.headline.setText(
            f"{stats.get('total', 0):,} jobs · success rate {f'{rate:.1%}' if rate is not None else '–'} · "
            f"p95 duration {duration(p95) or '–'} · mean {duration(mean) or '–'} · "
            f"last hour: {stats.get('finished_last_hour', 0):,} succeeded, {stats.get('failed_last_hour', 0):,} failed"
        )
        for status, label in self.status_labels.items():
            label.setText(f"{(stats.get('by_status') or {}).get(status, 0):,}")
        rows = []
        for job_type, counts in sorted((stats.get("by_type") or {}).items()):
            cells = ", ".join(f"{STATUS_LABELS.get(s, s).lower()} {n:,}" for s, n in sorted(counts.items()))
            name = html.escape(TYPE_LABELS.get(job_type, job_type))
            rows.append(f"<b>{name}</b>: {sum(counts.values()):,} ({cells})")
        self.by_type.setText("<br>".join(rows) or "No jobs yet: create one, or drop files on the main window.")
        self.chart.set_timeline(timeline)
