"""Text from outside (server replies, file names, job parameters) made safe for the Qt places that guess at HTML."""

from __future__ import annotations

from PySide6.QtGui import Qt


def tooltip(text: str | None) -> str | None:
    """A tooltip that always reads as the text it is.

    Qt renders a tooltip as rich text whenever it looks like HTML (``Qt.mightBeRichText``), so an S3 key or an
    SMTP reply such as ``<img src=…>`` would be drawn, not shown; tooltips have no text-format switch, so such
    text is escaped into rich text that displays it verbatim (and wraps). Other text is left as it is.
    """
    if not text or not Qt.mightBeRichText(text):
        return text
    return Qt.convertFromPlainText(text, Qt.WhiteSpaceMode.WhiteSpaceNormal)
