"""A bar chart of jobs that succeeded and failed per time bucket, painted with QPainter (no QtCharts: bundle size);
hovering a bar shows its time span and counts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from PySide6.QtCore import QEvent, QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from desktop.models.format import parse_iso
from desktop.widgets.theme import color


class TimelineChart(QWidget):
    """Stacked bars (succeeded below, failed on top) per bucket, with a time axis in local time."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.timeline: dict[str, Any] | None = None
        self.hover_index: int | None = None
        self.hover_text = ""
        self._plot = QRectF()
        self._bar_w = 0.0
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(True)
        self.setAccessibleName("Jobs that succeeded and failed over time")

    def set_timeline(self, timeline: dict[str, Any] | None) -> None:
        self.timeline = timeline
        if self.hover_index is not None:
            self.hover_text = self.bar_text(self.hover_index)
        self.update()

    def sizeHint(self) -> QSize:
        line = self.fontMetrics().height()
        return QSize(line * 36, line * 12)

    def minimumSizeHint(self) -> QSize:
        line = self.fontMetrics().height()
        return QSize(line * 16, line * 7)

    # ------------------------------------------------------------------ data
    def _series(self) -> tuple[list[int], list[int]]:
        timeline = self.timeline or {}
        return list(timeline.get("succeeded") or []), list(timeline.get("failed") or [])

    def _bucket_s(self) -> int:
        return int((self.timeline or {}).get("bucket_s") or 60)

    def bar_span(self, index: int) -> tuple[datetime, datetime] | None:
        start = parse_iso((self.timeline or {}).get("start"))
        if start is None:
            return None
        step = timedelta(seconds=self._bucket_s())
        return (start + index * step).astimezone(), (start + (index + 1) * step).astimezone()

    def bar_text(self, index: int) -> str:
        """What a bar stands for: "Tue 14:05–14:06 · 3 succeeded, 1 failed"."""
        succeeded, failed = self._series()
        if not 0 <= index < max(len(succeeded), len(failed)):
            return ""
        s = succeeded[index] if index < len(succeeded) else 0
        f = failed[index] if index < len(failed) else 0
        span = self.bar_span(index)
        when = ""
        if span is not None:
            first, last = span
            same_day = first.date() == (last - timedelta(seconds=1)).date()
            end = f"{last:%H:%M}" if same_day else f"{last:%a %d %b %H:%M}"
            when = f"{first:%a %d %b %H:%M}–{end} · "
        return f"{when}{s:,} succeeded, {f:,} failed"

    def index_at(self, x: float) -> int | None:
        succeeded, failed = self._series()
        count = max(len(succeeded), len(failed))
        if not count or self._bar_w <= 0 or not self._plot.left() <= x < self._plot.right():
            return None
        return min(count - 1, int((x - self._plot.left()) / self._bar_w))

    # ------------------------------------------------------------------ hover
    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        self.show_bar_at(event.position().x(), event.globalPosition().toPoint())
        super().mouseMoveEvent(event)

    def show_bar_at(self, x: float, global_pos: Any = None) -> str:
        """Highlight the bar under ``x`` and show its tooltip; returns its text (empty off the bars)."""
        index = self.index_at(x)
        if index != self.hover_index:
            self.hover_index = index
            self.update()
        self.hover_text = self.bar_text(index) if index is not None else ""
        if global_pos is not None:
            if self.hover_text:
                QToolTip.showText(global_pos, self.hover_text, self)
            else:
                QToolTip.hideText()
        return self.hover_text

    def leaveEvent(self, event: QEvent) -> None:
        self.hover_index, self.hover_text = None, ""
        self.update()
        super().leaveEvent(event)

    # ------------------------------------------------------------------ painting
    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        palette = self.palette()
        text_color = palette.color(palette.ColorRole.WindowText)
        grid_color = palette.color(palette.ColorRole.Mid)
        metrics = self.fontMetrics()
        line = metrics.height()
        succeeded, failed = self._series()
        count = max(len(succeeded), len(failed))
        peak = max((s + f for s, f in zip(succeeded, failed, strict=False)), default=0)
        label_w = metrics.horizontalAdvance(str(max(peak, 10))) + line // 2
        plot = QRectF(label_w + 4, line * 1.6, self.width() - label_w - line, self.height() - line * 3.2)
        self._plot, self._bar_w = plot, (plot.width() / count if count else 0.0)
        painter.setPen(text_color)
        self._legend(painter, line)
        if count == 0 or plot.width() <= 0 or plot.height() <= 0:
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No data yet")
            return
        top = max(peak, 1)
        painter.setPen(QPen(grid_color, 1, Qt.PenStyle.DotLine))
        for frac in (0.0, 0.5, 1.0):
            y = plot.bottom() - frac * plot.height()
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
        painter.setPen(text_color)
        for frac in (0.0, 0.5, 1.0):
            y = plot.bottom() - frac * plot.height()
            label = str(round(top * frac))
            painter.drawText(QRectF(0, y - line / 2, label_w, line), Qt.AlignmentFlag.AlignRight, label)
        bar_w = self._bar_w
        if self.hover_index is not None:
            painter.fillRect(QRectF(plot.left() + self.hover_index * bar_w, plot.top(), bar_w, plot.height()),
                             palette.color(palette.ColorRole.Highlight).lighter(170))  # fmt: skip
        ok_color, bad_color = color("chart_succeeded"), color("chart_failed")
        painter.setPen(Qt.PenStyle.NoPen)
        for i in range(count):
            s = succeeded[i] if i < len(succeeded) else 0
            f = failed[i] if i < len(failed) else 0
            if not s and not f:
                continue
            x = plot.left() + i * bar_w
            width = max(1.0, bar_w - (1 if bar_w > 3 else 0))
            hs = plot.height() * s / top
            hf = plot.height() * f / top
            painter.fillRect(QRectF(x, plot.bottom() - hs, width, hs), ok_color)
            painter.fillRect(QRectF(x, plot.bottom() - hs - hf, width, hf), bad_color)
        self._axis(painter, plot, count, text_color)
        painter.end()

    def _axis(self, painter: QPainter, plot: QRectF, count: int, text_color: Any) -> None:
        """Six ticks in local time: hours and minutes within a day, the day beyond."""
        span = self.bar_span(0)
        if span is None:
            return
        painter.setPen(text_color)
        metrics = self.fontMetrics()
        daily = self._bucket_s() * count > 86_400
        for t in range(7):
            index = round(t * count / 6)
            start = span[0] + timedelta(seconds=index * self._bucket_s())
            label = start.strftime("%a %d" if daily else "%H:%M")
            x = plot.left() + index * self._bar_w
            w = metrics.horizontalAdvance(label)
            x0 = min(max(x - w / 2, 0), self.width() - w)
            painter.drawText(QPointF(x0, plot.bottom() + metrics.height() * 1.1), label)

    def _legend(self, painter: QPainter, line: int) -> None:
        x = 4.0
        for name, label in (("chart_succeeded", "Succeeded"), ("chart_failed", "Failed")):
            painter.fillRect(QRectF(x, line * 0.3, line * 0.8, line * 0.8), color(name))
            x += line * 1.1
            painter.drawText(QPointF(x, line * 1.0), label)
            x += painter.fontMetrics().horizontalAdvance(label) + line
