"""A small per-minute bar chart of finished and failed jobs, painted with QPainter (no QtCharts: bundle size)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from desktop.models.format import parse_iso
from desktop.widgets.theme import color


class TimelineChart(QWidget):
    """Stacked bars (succeeded below, failed on top) per minute, with a time axis in local time."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.timeline: dict[str, Any] | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAccessibleName("Jobs finished and failed per minute")

    def set_timeline(self, timeline: dict[str, Any] | None) -> None:
        self.timeline = timeline
        self.update()

    def sizeHint(self) -> QSize:
        line = self.fontMetrics().height()
        return QSize(line * 36, line * 12)

    def minimumSizeHint(self) -> QSize:
        line = self.fontMetrics().height()
        return QSize(line * 16, line * 7)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        palette = self.palette()
        text_color = palette.color(palette.ColorRole.WindowText)
        grid_color = palette.color(palette.ColorRole.Mid)
        metrics = self.fontMetrics()
        line = metrics.height()
        succeeded = list((self.timeline or {}).get("succeeded") or [])
        failed = list((self.timeline or {}).get("failed") or [])
        minutes = max(len(succeeded), len(failed))
        peak = max((s + f for s, f in zip(succeeded, failed, strict=False)), default=0)
        label_w = metrics.horizontalAdvance(str(max(peak, 10))) + line // 2
        plot = QRectF(label_w + 4, line * 1.6, self.width() - label_w - line, self.height() - line * 3.2)
        painter.setPen(text_color)
        self._legend(painter, line)
        if minutes == 0 or plot.width() <= 0 or plot.height() <= 0:
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No data yet")
            return
        top = max(peak, 1)
        # grid and y labels
        painter.setPen(QPen(grid_color, 1, Qt.PenStyle.DotLine))
        for frac in (0.0, 0.5, 1.0):
            y = plot.bottom() - frac * plot.height()
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
        painter.setPen(text_color)
        for frac in (0.0, 0.5, 1.0):
            y = plot.bottom() - frac * plot.height()
            value = round(top * frac)
            painter.drawText(QRectF(0, y - line / 2, label_w, line), Qt.AlignmentFlag.AlignRight, str(value))
        # bars
        bar_w = plot.width() / minutes
        ok_color, bad_color = color("chart_succeeded"), color("chart_failed")
        painter.setPen(Qt.PenStyle.NoPen)
        for i in range(minutes):
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
        # time axis
        painter.setPen(text_color)
        start = parse_iso((self.timeline or {}).get("start"))
        if start is not None:
            ticks = 6 if minutes >= 60 else 3
            for t in range(ticks + 1):
                minute = round(t * minutes / ticks)
                x = plot.left() + minute * bar_w
                label = (start + timedelta(minutes=minute)).astimezone().strftime("%H:%M")
                w = metrics.horizontalAdvance(label)
                x0 = min(max(x - w / 2, 0), self.width() - w)
                painter.drawText(QPointF(x0, plot.bottom() + line * 1.1), label)
        painter.end()

    def _legend(self, painter: QPainter, line: int) -> None:
        x = 4.0
        for name, label in (("chart_succeeded", "Succeeded"), ("chart_failed", "Failed")):
            painter.fillRect(QRectF(x, line * 0.3, line * 0.8, line * 0.8), color(name))
            x += line * 1.1
            painter.drawText(QPointF(x, line * 1.0), label)
            x += painter.fontMetrics().horizontalAdvance(label) + line
