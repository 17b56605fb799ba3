"""The drop target shown over the window while files are dragged over it: a dashed frame and what the drop does."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QRectF, Qt
from PySide6.QtGui import QFont, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QWidget

from desktop.widgets.theme import color


class DropOverlay(QWidget):
    """Covers its parent (the window's central area) while a drag is over it; it takes no input, so the drag
    events keep reaching the window, which shows and hides it (``show_for`` / ``hide``)."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.area = parent
        self.setObjectName("dropOverlay")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAccessibleName("Drop target")
        self.text = ""
        self.hide()
        parent.installEventFilter(self)

    def show_for(self, count: int) -> None:
        """Show it for a drag of ``count`` local files or folders."""
        what = f"{count:,} item{'s' if count != 1 else ''}"
        self.text = f"Drop to upload {what}\nYou choose the bucket and the files in the next step"
        self.setAccessibleDescription(self.text)
        self.setGeometry(self.area.rect())
        self.raise_()
        self.show()
        self.update()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.area and event.type() == QEvent.Type.Resize:
            self.setGeometry(self.area.rect())
        return False

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        fill = color("base")
        fill.setAlpha(235)
        margin = 12.0
        frame = QRectF(self.rect()).adjusted(margin, margin, -margin, -margin)
        painter.setBrush(fill)
        pen = QPen(color("highlight"), 3, Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.drawRoundedRect(frame, 12, 12)
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 1.3)
        painter.setFont(font)
        painter.setPen(color("text"))
        painter.drawText(frame, int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap), self.text)
        painter.end()
