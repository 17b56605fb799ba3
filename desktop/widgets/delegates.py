"""Cell painters for the jobs table: plain text, the coloured status badge and the upload progress bar.

The table repaints every visible cell whenever rows arrive at the top, so painting is the GUI thread's biggest
cost under a stream of events. These delegates paint straight from the model's cached display strings with
cached, pre-elided ``QStaticText`` (no text layout per repaint) and without the style's item-view machinery,
which would ask the model (through the proxy) for a dozen roles per cell.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPalette, QStaticText
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from desktop.models import format as fmt
from desktop.models.jobs import Col, JobTableModel
from desktop.models.proxy import JobSortProxy
from desktop.widgets.theme import status_color

Index = QModelIndex | QPersistentModelIndex

_SELECTED = QStyle.StateFlag.State_Selected
_ALTERNATE = QStyleOptionViewItem.ViewItemFeature.Alternate
_RIGHT_ALIGNED = frozenset((Col.ID, Col.PRIORITY, Col.ATTEMPTS, Col.DURATION))
_CACHE_LIMIT = 6000


class TextCellDelegate(QStyledItemDelegate):
    """Plain text cells: background, then the cell's text elided to fit, drawn from a cache."""

    def __init__(self, model: JobTableModel, proxy: JobSortProxy, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.proxy = proxy
        self._texts: dict[tuple[str, int, bool], QStaticText] = {}

    def source_row(self, index: Index) -> int:
        return self.proxy.source_row(index.row()) if index.model() is self.proxy else index.row()

    def static_text(self, text: str, width: int, metrics: QFontMetrics, bold: bool = False) -> QStaticText:
        key = (text, width, bold)
        static = self._texts.get(key)
        if static is None:
            if len(self._texts) > _CACHE_LIMIT:
                self._texts.clear()
            static = QStaticText(metrics.elidedText(text, Qt.TextElideMode.ElideRight, max(0, width)))
            static.setTextFormat(Qt.TextFormat.PlainText)
            self._texts[key] = static
        return static

    @staticmethod
    def paint_background(painter: QPainter, option: QStyleOptionViewItem) -> bool:
        """Selection or alternate-row background; True when the cell is selected."""
        if option.state & _SELECTED:
            painter.fillRect(option.rect, option.palette.highlight())
            return True
        if option.features & _ALTERNATE:
            painter.fillRect(option.rect, option.palette.alternateBase())
        return False

    def paint_text(self, painter: QPainter, option: QStyleOptionViewItem, text: str, col: int, selected: bool) -> None:
        rect, metrics = option.rect, option.fontMetrics
        margin = metrics.horizontalAdvance(" ")
        static = self.static_text(text, rect.width() - 2 * margin, metrics)
        x = rect.x() + margin
        if col in _RIGHT_ALIGNED:
            x = rect.right() - margin - int(static.size().width())
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        painter.setPen(option.palette.color(role))
        painter.drawStaticText(x, rect.y() + (rect.height() - metrics.height()) // 2, static)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        selected = self.paint_background(painter, option)
        col = index.column()
        self.paint_text(painter, option, self.model.cell(self.source_row(index), col), col, selected)


class StatusBadgeDelegate(TextCellDelegate):
    """A rounded, coloured pill with the status name; the colour is never the only cue (the text is there)."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        self.paint_background(painter, option)
        row = self.source_row(index)
        text = self.model.cell(row, Col.STATUS)
        status = str(self.model.job_at(row).get("status", ""))
        font = option.font
        font.setBold(True)
        metrics = QFontMetrics(font)
        pad_x, pad_y = metrics.height() // 2, max(1, metrics.height() // 8)
        rect = option.rect
        static = self.static_text(text, rect.width() - 4 - 2 * pad_x, metrics, bold=True)
        width = min(rect.width() - 4, int(static.size().width()) + 2 * pad_x)
        height = min(rect.height() - 2, metrics.height() + 2 * pad_y)
        pill = QRect(rect.x() + 2, rect.center().y() - height // 2 + 1, width, height)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(status_color(status))
        painter.drawRoundedRect(pill, height / 2, height / 2)
        painter.setPen(QColor("white"))
        painter.setFont(font)
        painter.drawStaticText(pill.x() + pad_x, pill.y() + (height - metrics.height()) // 2, static)
        painter.restore()

    @staticmethod
    def width_for(font: QFont) -> int:
        """A column width that fits the widest status pill in this font (bold, padded) without eliding."""
        bold = QFont(font)
        bold.setBold(True)
        metrics = QFontMetrics(bold)
        widest = max(metrics.horizontalAdvance(label) for label in fmt.STATUS_LABELS.values())
        return widest + metrics.height() + 4 + metrics.horizontalAdvance("  ")

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        return QSize(self.width_for(option.font), super().sizeHint(option, index).height())


class ProgressDelegate(TextCellDelegate):
    """For a running upload with progress: a compact bar with "42 % · 12.3 MB/s · 8 s left" (full detail in the
    tooltip); otherwise the plain result or error text."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        selected = self.paint_background(painter, option)
        row = self.source_row(index)
        progress = self.model.progress_at(row)
        if not progress:
            self.paint_text(painter, option, self.model.cell(row, Col.OUTCOME), Col.OUTCOME, selected)
            return
        rect, metrics, palette = option.rect, option.fontMetrics, option.palette
        margin = metrics.horizontalAdvance(" ")
        done, total = progress.get("done") or 0, progress.get("total") or 0
        height = max(4, metrics.height() // 3)
        bar_width = min(metrics.horizontalAdvance("M") * 4, max(0, rect.width() // 4))
        track = QRectF(rect.x() + margin, rect.center().y() - height / 2 + 1, bar_width, height)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(palette.color(QPalette.ColorRole.Mid))
        painter.drawRoundedRect(track, height / 2, height / 2)
        if total:
            filled = QRectF(track)
            filled.setWidth(max(float(height), track.width() * min(1.0, done / total)))
            painter.setBrush(status_color("running"))
            painter.drawRoundedRect(filled, height / 2, height / 2)
        painter.restore()
        text_option = QStyleOptionViewItem(option)
        text_option.rect = rect.adjusted(bar_width + margin, 0, 0, 0)
        room = text_option.rect.width() - 2 * margin
        variants = fmt.progress_compact_variants(progress)  # the longest that fits; the tooltip has it all
        text = next((v for v in variants if metrics.horizontalAdvance(v) <= room), variants[-1])
        self.paint_text(painter, text_option, text, Col.OUTCOME, selected)
