"""Cell painters for the jobs table: plain text, the coloured status badge and the progress bar of a running job.

The table repaints every visible cell whenever rows arrive at the top, so painting is the GUI thread's biggest
cost under a stream of events. These delegates paint straight from the model's cached display strings with
cached, pre-elided ``QStaticText`` (no text layout per repaint) and without the style's item-view machinery,
which would ask the model for a dozen roles per cell.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPalette, QStaticText
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from desktop.models import format as fmt
from desktop.models.jobs import Col, JobTableModel
from desktop.widgets.theme import status_color

Index = QModelIndex | QPersistentModelIndex

# Plain ints: in PySide6 every flag operation builds Python enum objects, a few microseconds each, per cell.
_SELECTED = int(QStyle.StateFlag.State_Selected.value)
_ALTERNATE = int(QStyleOptionViewItem.ViewItemFeature.Alternate.value)
_RIGHT_ALIGNED = frozenset((Col.ID, Col.PRIORITY, Col.ATTEMPTS, Col.DURATION))
_CACHE_LIMIT = 6000
_WHITE = QColor("white")


class TextCellDelegate(QStyledItemDelegate):
    """Plain text cells: background, then the cell's text elided to fit, drawn from a cache."""

    def __init__(self, model: JobTableModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self._texts: dict[tuple[str, int, bool], tuple[QStaticText, int]] = {}

    @staticmethod
    def source_row(index: Index) -> int:
        return index.row()

    def static_text(self, text: str, width: int, metrics: QFontMetrics, bold: bool = False) -> tuple[QStaticText, int]:
        """The text elided to ``width``, laid out once, and its width: measuring text is the costly part."""
        key = (text, width, bold)
        entry = self._texts.get(key)
        if entry is None:
            if len(self._texts) > _CACHE_LIMIT:
                self._texts.clear()
            elided = metrics.elidedText(text, Qt.TextElideMode.ElideRight, max(0, width))
            static = QStaticText(elided)
            static.setTextFormat(Qt.TextFormat.PlainText)
            entry = self._texts[key] = (static, metrics.horizontalAdvance(elided))
        return entry

    @staticmethod
    def paint_background(painter: QPainter, option: QStyleOptionViewItem) -> bool:
        """Selection or alternate-row background; True when the cell is selected."""
        if option.state.value & _SELECTED:
            painter.fillRect(option.rect, option.palette.highlight())
            return True
        if option.features.value & _ALTERNATE:
            painter.fillRect(option.rect, option.palette.alternateBase())
        return False

    def paint_text(
        self, painter: QPainter, option: QStyleOptionViewItem, text: str, col: int, selected: bool, muted: bool = False
    ) -> None:
        rect, metrics = option.rect, option.fontMetrics
        height = metrics.height()
        margin = max(3, height // 3)
        static, width = self.static_text(text, rect.width() - 2 * margin, metrics)
        x = rect.x() + margin
        if col in _RIGHT_ALIGNED:
            x = rect.right() - margin - width
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        if muted and not selected:  # the job no longer matches the view: dimmed until the view is read again
            role = QPalette.ColorRole.PlaceholderText
        painter.setPen(option.palette.color(role))
        painter.drawStaticText(x, rect.y() + (rect.height() - height) // 2, static)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        selected = self.paint_background(painter, option)
        col = index.column()
        row = index.row()
        self.paint_text(painter, option, self.model.cell(row, col), col, selected, self.model.is_stale(row))


class StatusBadgeDelegate(TextCellDelegate):
    """A rounded, coloured pill with the status name; the colour is never the only cue (the text is there)."""

    _bold_key: tuple[object, ...] = ()
    _bold_font: tuple[QFont, QFontMetrics]

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        self.paint_background(painter, option)
        row = self.source_row(index)
        text = self.model.cell(row, Col.STATUS)
        status = str(self.model.job_at(row).get("status", ""))
        font, metrics = self._bold(option)
        line = metrics.height()
        pad_x, pad_y = line // 2, max(1, line // 8)
        rect = option.rect
        static, text_width = self.static_text(text, rect.width() - 4 - 2 * pad_x, metrics, bold=True)
        width = min(rect.width() - 4, text_width + 2 * pad_x)
        height = min(rect.height() - 2, line + 2 * pad_y)
        pill = QRect(rect.x() + 2, rect.center().y() - height // 2 + 1, width, height)
        # The few state changes are undone by hand: QPainter.save() copies the whole state, clip region included.
        previous_font = painter.font()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(status_color(status))
        painter.drawRoundedRect(pill, height / 2, height / 2)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.setPen(_WHITE)
        painter.setFont(font)
        painter.drawStaticText(pill.x() + pad_x, pill.y() + (height - line) // 2, static)
        painter.setFont(previous_font)

    def _bold(self, option: QStyleOptionViewItem) -> tuple[QFont, QFontMetrics]:
        """The bold variant of the view's font and its metrics, made once per font rather than per cell."""
        font = option.font
        key = (font.family(), font.pointSizeF(), font.pixelSize(), font.weight())  # QFont.key() is far slower
        if self._bold_key != key:
            font = QFont(font)  # our own copy: the option's font dies with the option
            font.setBold(True)
            self._bold_key, self._bold_font = key, (font, QFontMetrics(font))
        return self._bold_font

    @staticmethod
    def width_for(font: QFont, labels: list[str] | None = None) -> int:
        """A column width that fits the widest status pill in this font (bold, padded) without eliding: of these
        labels (the engine's), or before they are known of ten digits."""
        bold = QFont(font)
        bold.setBold(True)
        metrics = QFontMetrics(bold)
        widest = max(metrics.horizontalAdvance(label) for label in labels or ["0" * 10])
        return widest + metrics.height() + 4 + metrics.horizontalAdvance("  ")

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        meta = self.model.meta
        labels = [meta.status_label(s) for s in meta.status_names]
        return QSize(self.width_for(option.font, labels), super().sizeHint(option, index).height())


def paint_progress_bar(
    painter: QPainter,
    rect: QRect,
    palette: QPalette,
    metrics: QFontMetrics,
    share: float | None,
    variants: list[str],
    status: str = "running",
) -> None:
    """A progress bar across ``rect`` with the longest of ``variants`` that fits written over it.

    The bar has its own background (the palette's base), so it reads the same on a selected row. The text is drawn
    twice, each time clipped to one side of the fill's edge: white over the fill, the text colour over the track,
    as native progress bars do. ``share`` None (total unknown): an empty track with the text alone. The fill has the
    colour of ``status`` (a finished transfer's full bar is the succeeded colour)."""
    height = rect.height()
    radius = min(height / 2, max(3.0, metrics.height() / 4))
    track = QRectF(rect)
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(palette.color(QPalette.ColorRole.Mid))
    painter.setBrush(palette.color(QPalette.ColorRole.Base))
    painter.drawRoundedRect(track.adjusted(0.5, 0.5, -0.5, -0.5), radius, radius)
    filled_width = 0
    if share:
        filled_width = max(int(2 * radius), round(rect.width() * share))
        fill = QRectF(track.x(), track.y(), filled_width, track.height())
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(status_color(status))
        painter.drawRoundedRect(fill.adjusted(0.5, 0.5, -0.5, -0.5), radius, radius)
    pad = max(3, metrics.height() // 3)
    room = rect.width() - 2 * pad
    text = next((v for v in variants if metrics.horizontalAdvance(v) <= room), variants[-1])
    text = metrics.elidedText(text, Qt.TextElideMode.ElideRight, max(0, room))
    text_rect = rect.adjusted(pad, 0, -pad, 0)
    align = Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignHCenter
    left, right = QRect(rect), QRect(rect)
    left.setWidth(filled_width)
    right.setLeft(rect.x() + filled_width)
    painter.setClipRect(right)
    painter.setPen(palette.color(QPalette.ColorRole.Text))
    painter.drawText(text_rect, int(align.value), text)
    if filled_width:
        painter.setClipRect(left)
        painter.setPen(_WHITE)
        painter.drawText(text_rect, int(align.value), text)
    painter.restore()


def bar_rect(cell: QRect, metrics: QFontMetrics) -> QRect:
    """Where a progress bar goes in a table cell: its width less a margin, a little taller than the text."""
    margin = max(2, metrics.height() // 6)
    height = min(cell.height() - 2 * margin, metrics.height() + 2 * margin)
    return QRect(cell.x() + margin, cell.center().y() - height // 2 + 1, cell.width() - 2 * margin, height)


class ProgressDelegate(TextCellDelegate):
    """For a running job with progress: a bar across the whole cell, with "42 % · 12.3 of 29.3 MiB · 4.1 MiB/s ·
    8 s left" (shorter forms in a narrower column; the tooltip has it all); otherwise the result or error text."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        selected = self.paint_background(painter, option)
        row = self.source_row(index)
        progress = self.model.progress_at(row)
        if not progress:
            self.paint_text(painter, option, self.model.cell(row, Col.OUTCOME), Col.OUTCOME, selected)
            return
        metrics = option.fontMetrics
        paint_progress_bar(painter, bar_rect(option.rect, metrics), option.palette, metrics,
                           fmt.progress_share(progress), fmt.progress_compact_variants(progress))  # fmt: skip
