"""Cell painters for the jobs table: the coloured status badge and the upload progress bar."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionProgressBar, QStyleOptionViewItem

from desktop.models import format as fmt
from desktop.models.jobs import Role
from desktop.widgets.theme import status_color

Index = QModelIndex | QPersistentModelIndex


class StatusBadgeDelegate(QStyledItemDelegate):
    """A rounded, coloured pill with the status name; the colour is never the only cue (the text is there)."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        # Painting the cell background ourselves is much cheaper than a full CE_ItemViewItem per repaint.
        if option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(option.rect, option.palette.highlight())
        elif option.features & QStyleOptionViewItem.ViewItemFeature.Alternate:
            painter.fillRect(option.rect, option.palette.alternateBase())
        text = index.data()
        status = index.data(Role.STATUS) or ""
        metrics = option.fontMetrics
        pad_x, pad_y = metrics.height() // 2, max(1, metrics.height() // 8)
        width = min(option.rect.width() - 4, metrics.horizontalAdvance(text) + 2 * pad_x)
        height = min(option.rect.height() - 2, metrics.height() + 2 * pad_y)
        rect = QRect(option.rect.x() + 2, option.rect.center().y() - height // 2 + 1, width, height)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(status_color(status))
        painter.drawRoundedRect(rect, height / 2, height / 2)
        painter.setPen(QColor("white"))
        font = option.font
        font.setBold(True)
        painter.setFont(font)
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        hint = super().sizeHint(option, index)
        return QSize(hint.width() + option.fontMetrics.height() * 2, hint.height())


class ProgressDelegate(QStyledItemDelegate):
    """For a running upload with progress: a bar with bytes, rate and ETA; otherwise the plain result text."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        progress = index.data(Role.PROGRESS)
        if not progress:
            super().paint(painter, option, index)
            return
        style = option.widget.style() if option.widget else QApplication.style()
        background = QStyleOptionViewItem(option)
        self.initStyleOption(background, index)
        background.text = ""
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, background, painter, option.widget)
        done, total = progress.get("done") or 0, progress.get("total") or 0
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 2, -2, -2)
        bar.minimum, bar.maximum = 0, 1000
        bar.progress = int(1000 * done / total) if total else 0
        if not total:
            bar.minimum = bar.maximum = 0  # busy indicator when the size is unknown
        bar.text = fmt.progress_text(progress)
        bar.textVisible = True
        bar.textAlignment = Qt.AlignmentFlag.AlignCenter
        bar.state = option.state | QStyle.StateFlag.State_Horizontal
        bar.palette = option.palette
        bar.fontMetrics = option.fontMetrics
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, option.widget)
