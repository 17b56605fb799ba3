"""The one-line bar over the table on a first run: a job type lacks its settings (no SMTP server, no bucket), so
its jobs would fail; it offers to open Settings and goes away once the engine says nothing is missing."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QWidget

from desktop.models import plain_text
from desktop.models.meta import EngineMeta


class SetupBar(QWidget):
    open_settings = Signal()

    def __init__(self, meta: EngineMeta, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.meta = meta
        self.setObjectName("setupBar")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        self.label = QLabel(self)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        # One line that never widens the window: the full text is in the tooltip.
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.button = QPushButton("Open Settings…", self)
        self.button.setAccessibleName("Open Settings to set up email and storage")
        self.button.clicked.connect(self.open_settings)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.button)
        self.text = ""
        meta.changed.connect(self._on_meta_changed)
        self._on_meta_changed()

    def _on_meta_changed(self) -> None:
        gaps = self.meta.unconfigured()
        names = list(gaps)
        if not names:
            self.text = ""
        else:
            which = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
            self.text = f"Not set up yet: {which} jobs would fail — " + "; ".join(
                f"{'; '.join(g)}" for g in gaps.values()
            )
        self.label.setText(self.text)
        self.label.setToolTip(plain_text.tooltip(self.text) or "")
        self.setVisible(bool(self.text))
