"""The stats view: counts by status and type, success rate, durations and the jobs that succeeded and failed over
the last hour, day, week or month. It follows the worker's events (no Refresh button): a change is read again at
most once every LIVE_MS for the window shown, and the time axis moves on by itself."""

from __future__ import annotations

import asyncio
import html
from collections.abc import Awaitable, Callable
from typing import Any

from PySide6.QtCore import Qt, QTimer, SignalInstance
from PySide6.QtWidgets import QComboBox, QDialog, QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from desktop.models.format import duration
from desktop.models.meta import EngineMeta
from desktop.widgets.chart import TimelineChart
from desktop.widgets.theme import icon
from engine.errors import JobdeckError

Request = Callable[..., Awaitable[Any]]
# The engine's windows (the `timeline` request's ``window``) and how the chooser names them.
WINDOWS = (("1h", "Last hour"), ("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days"))
# Events arriving in a burst cause one read, at most this often: a month of a busy ledger costs the worker most of a
# second to count (bench/stats.py), and its bars are six hours wide.
LIVE_MS = {"1h": 1000, "24h": 2000, "7d": 5000, "30d": 15_000}
TICK_MS = 30_000  # with nothing happening, read again this often so the time axis moves on


class StatsView(QDialog):
    def __init__(
        self,
        request: Request,
        parent: QWidget | None = None,
        *,
        meta: EngineMeta | None = None,
        events: SignalInstance | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Job statistics")
        self.request = request
        self.meta = meta or EngineMeta(self)
        self.refresh_task: asyncio.Future[None] | None = None
        self._again = False  # a change arrived while a read was under way: read once more after it
        layout = QVBoxLayout(self)
        self.headline = QLabel("Loading…", self)
        self.headline.setObjectName("sectionTitle")
        self.headline.setWordWrap(True)
        layout.addWidget(self.headline)
        self.grid = QGridLayout()
        layout.addLayout(self.grid)
        self.status_labels: dict[str, QLabel] = {}
        self.by_type = QLabel(self)
        self.by_type.setWordWrap(True)
        self.by_type.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.by_type)
        controls = QHBoxLayout()
        self.chart_title = QLabel("Succeeded and failed", self)
        self.chart_title.setObjectName("sectionTitle")
        controls.addWidget(self.chart_title)
        controls.addStretch(1)
        self.window_combo = QComboBox(self)
        self.window_combo.setAccessibleName("Time window")
        for value, label in WINDOWS:
            self.window_combo.addItem(label, value)
        self.window_combo.currentIndexChanged.connect(self._on_window_combo_current_index_changed)
        controls.addWidget(self.window_combo)
        layout.addLayout(controls)
        self.chart = TimelineChart(self)
        layout.addWidget(self.chart, 1)
        self._live = QTimer(self)
        self._live.setSingleShot(True)
        self._live.timeout.connect(self.start_refresh)
        self._tick = QTimer(self)
        self._tick.setInterval(TICK_MS)
        self._tick.timeout.connect(self.start_refresh)
        self._tick.start()
        if events is not None:
            events.connect(self._on_job_events)
        self.meta.changed.connect(self._build_statuses)
        self._build_statuses()
        line = self.fontMetrics().height()
        self.resize(line * 48, line * 30)

    @property
    def time_window(self) -> str:
        return str(self.window_combo.currentData())

    def _build_statuses(self) -> None:
        """One column per status the engine names, in its order."""
        if list(self.status_labels) == list(self.meta.status_names):
            return
        while self.grid.count():
            item = self.grid.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        self.status_labels = {}
        size = self.fontMetrics().height()
        for col, status in enumerate(self.meta.status_names):
            label = self.meta.status_label(status)
            name = QLabel(label, self)
            name.setAlignment(Qt.AlignmentFlag.AlignCenter)
            glyph = QLabel(self)
            glyph.setPixmap(icon(f"status-{status}").pixmap(size, size))
            glyph.setAlignment(Qt.AlignmentFlag.AlignCenter)
            glyph.setAccessibleName(label)
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

    # ------------------------------------------------------------------ reading
    def _on_window_combo_current_index_changed(self, _index: int) -> None:
        self.start_refresh()

    def _on_job_events(self, _events: list[dict[str, Any]]) -> None:
        if not self._live.isActive():
            self._live.start(LIVE_MS.get(self.time_window, 1000))

    def start_refresh(self) -> None:
        if self.refresh_task is None or self.refresh_task.done():
            self.refresh_task = asyncio.ensure_future(self.refresh())
        else:
            self._again = True

    async def refresh(self) -> None:
        window = self.time_window
        try:
            if not self.meta.loaded:
                self.meta.update(await self.request("meta"))
            stats = await self.request("stats")
            timeline = await self.request("timeline", window=window)
        except (JobdeckError, OSError, TimeoutError) as exc:
            self.headline.setText(f"Could not load statistics: {exc}")
            return
        if window == self.time_window:
            self.show_stats(stats, timeline)
        if window != self.time_window:  # the chooser moved on while this read ran: read the new window now
            self._again = False
            self._live.start(0)
        elif self._again:
            self._again = False
            self._live.start(LIVE_MS.get(window, 1000))

    def show_stats(self, stats: dict[str, Any], timeline: dict[str, Any] | None) -> None:
        rate = stats.get("success_rate")
        p95 = stats.get("p95_duration_s")
        mean = stats.get("mean_duration_s")
        label = dict(WINDOWS).get(str((timeline or {}).get("window")), "").lower()
        ok, bad = sum((timeline or {}).get("succeeded") or []), sum((timeline or {}).get("failed") or [])
        self.headline.setText(
            f"{stats.get('total', 0):,} jobs · success rate {f'{rate:.1%}' if rate is not None else '–'} · "
            f"p95 duration {duration(p95) or '–'} · mean {duration(mean) or '–'}"
            + (f" · {label}: {ok:,} succeeded, {bad:,} failed" if label else "")
        )
        for status, value in self.status_labels.items():
            value.setText(f"{(stats.get('by_status') or {}).get(status, 0):,}")
        rows = []
        for job_type, counts in sorted((stats.get("by_type") or {}).items()):
            cells = ", ".join(f"{self.meta.status_label(s).lower()} {n:,}" for s, n in sorted(counts.items()))
            name = html.escape(self.meta.type_label(job_type))
            rows.append(f"<b>{name}</b>: {sum(counts.values()):,} ({cells})")
        self.by_type.setText("<br>".join(rows) or "No jobs yet: create one, or drop files on the main window.")
        self.chart.set_timeline(timeline)
