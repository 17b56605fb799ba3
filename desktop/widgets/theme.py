"""Jobdeck's look in one place: the light and dark palettes, the pairs that must stay readable, the style sheet,
the focus ring, the View → Theme menu and the bundled icons."""

from __future__ import annotations

import contextlib
import sys
from functools import cache
from pathlib import Path
from string import Template

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QColor,
    QIcon,
    QMoveEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
    QResizeEvent,
)
from PySide6.QtWidgets import QApplication, QFocusFrame, QMenu, QWidget

THEME_CHOICES = (("system", "System"), ("light", "Light"), ("dark", "Dark"))

# Status pills and status icons: bold white text or glyphs on these fills, the same in both palettes.
PILL_TEXT = "#ffffff"
STATUS_COLORS = {
    "pending": "#5f6670",
    "scheduled": "#6741d9",
    "running": "#1565c0",
    "retrying": "#9a5b00",
    "succeeded": "#1e7b3f",
    "failed": "#c5221f",
    "canceled": "#4b5260",
}
_UNKNOWN_STATUS = "#5f6670"

# Every colour the window paints with, per palette. ``border`` outlines fields and pills, ``focus`` is the ring
# around the focused control, ``chart_*`` fill the statistics bars; the rest name QPalette roles or message kinds.
PALETTES: dict[str, dict[str, str]] = {
    "light": {
        "window": "#eff0f1",
        "window_text": "#1b1e20",
        "base": "#ffffff",
        "alternate_base": "#f4f5f6",
        "text": "#1b1e20",
        "button": "#f7f8f8",
        "button_text": "#1b1e20",
        "placeholder": "#596067",
        "highlight": "#2a6fd6",
        "highlighted_text": "#ffffff",
        "tooltip_base": "#232629",
        "tooltip_text": "#f4f5f6",
        "link": "#0b57d0",
        "disabled_text": "#8a9096",
        "border": "#767c83",
        "arrow": "#7b8289",
        "focus": "#1a5fd0",
        "error": "#b3261e",
        "warning": "#8a5300",
        "success": "#1e7b3f",
        "chart_succeeded": "#2e8b57",
        "chart_failed": "#c5221f",
    },
    "dark": {
        "window": "#202326",
        "window_text": "#e8eaed",
        "base": "#16181b",
        "alternate_base": "#1d2024",
        "text": "#e8eaed",
        "button": "#2b2f33",
        "button_text": "#e8eaed",
        "placeholder": "#a0a6ad",
        "highlight": "#2f6fcf",
        "highlighted_text": "#ffffff",
        "tooltip_base": "#f4f5f6",
        "tooltip_text": "#1b1e20",
        "link": "#8ab4f8",
        "disabled_text": "#6f757c",
        "border": "#858c94",
        "arrow": "#7b8289",
        "focus": "#8ab4f8",
        "error": "#ff8a80",
        "warning": "#f6b24a",
        "success": "#6dd58c",
        "chart_succeeded": "#4cbb74",
        "chart_failed": "#f2665a",
    },
}

# (foreground, background, minimum ratio): text needs 4.5:1 (WCAG AA), outlines, rings and chart bars 3:1
# (WCAG 1.4.11). Disabled controls are exempt in WCAG and are not listed.
TEXT, GRAPHIC = 4.5, 3.0
CONTRAST_PAIRS: tuple[tuple[str, str, float], ...] = (
    ("window_text", "window", TEXT),
    ("text", "base", TEXT),
    ("text", "alternate_base", TEXT),
    ("placeholder", "base", TEXT),
    ("placeholder", "alternate_base", TEXT),
    ("placeholder", "window", TEXT),
    ("button_text", "button", TEXT),
    ("highlighted_text", "highlight", TEXT),
    ("tooltip_text", "tooltip_base", TEXT),
    ("link", "base", TEXT),
    ("link", "window", TEXT),
    ("error", "window", TEXT),
    ("error", "base", TEXT),
    ("warning", "window", TEXT),
    ("warning", "base", TEXT),
    ("success", "window", TEXT),
    ("success", "base", TEXT),
    ("border", "window", GRAPHIC),
    ("border", "base", GRAPHIC),
    ("border", "button", GRAPHIC),
    ("focus", "window", GRAPHIC),
    ("focus", "base", GRAPHIC),
    ("focus", "button", GRAPHIC),
    ("highlight", "window", GRAPHIC),
    ("highlight", "base", GRAPHIC),
    ("arrow", "button", GRAPHIC),
    ("arrow", "base", GRAPHIC),
    ("chart_succeeded", "base", GRAPHIC),
    ("chart_failed", "base", GRAPHIC),
)

_ROLES = {
    "window": QPalette.ColorRole.Window,
    "window_text": QPalette.ColorRole.WindowText,
    "base": QPalette.ColorRole.Base,
    "alternate_base": QPalette.ColorRole.AlternateBase,
    "text": QPalette.ColorRole.Text,
    "button": QPalette.ColorRole.Button,
    "button_text": QPalette.ColorRole.ButtonText,
    "placeholder": QPalette.ColorRole.PlaceholderText,
    "highlight": QPalette.ColorRole.Highlight,
    "highlighted_text": QPalette.ColorRole.HighlightedText,
    "tooltip_base": QPalette.ColorRole.ToolTipBase,
    "tooltip_text": QPalette.ColorRole.ToolTipText,
    "link": QPalette.ColorRole.Link,
    "border": QPalette.ColorRole.Mid,
}


def relative_luminance(color: str) -> float:
    """WCAG 2.x relative luminance of an ``#rrggbb`` colour."""
    value = QColor(color)

    def linear(channel: float) -> float:
        return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4

    return 0.2126 * linear(value.redF()) + 0.7152 * linear(value.greenF()) + 0.0722 * linear(value.blueF())


def contrast_ratio(first: str, second: str) -> float:
    """WCAG contrast ratio, 1.0 (none) to 21.0 (black on white), whichever colour is lighter."""
    high, low = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def all_pairs(name: str) -> list[tuple[str, str, str, str, float]]:
    """Every (foreground name, background name, foreground, background, minimum) the palette ``name`` paints."""
    colors = PALETTES[name]
    pairs = [(fg, bg, colors[fg], colors[bg], minimum) for fg, bg, minimum in CONTRAST_PAIRS]
    pairs += [("pill_text", f"status {s}", PILL_TEXT, fill, TEXT) for s, fill in STATUS_COLORS.items()]
    return pairs


def resource_dir() -> Path:
    """``resources/`` next to the package, or inside a PyInstaller bundle (``sys._MEIPASS``)."""
    base = getattr(sys, "_MEIPASS", None)
    if base:
        return Path(base) / "resources"
    return Path(__file__).resolve().parent.parent.parent / "resources"


@cache
def icon(name: str) -> QIcon:
    """``jobdeck`` or an icon in resources/icons (``status-failed``, ``worker-connected``…)."""
    folder = resource_dir()
    path = folder / f"{name}.svg" if name == "jobdeck" else folder / "icons" / f"{name}.svg"
    return QIcon(str(path))


def status_color(status: str) -> QColor:
    return QColor(STATUS_COLORS.get(status, _UNKNOWN_STATUS))


def color(name: str) -> QColor:
    """A colour of the palette in use (``error``, ``chart_failed``…): painters ask here, never hard-code one."""
    return QColor(PALETTES[current_palette()][name])


def qpalette(name: str) -> QPalette:
    """The QPalette for ``light`` or ``dark``: Fusion draws every control from it."""
    colors = PALETTES[name]
    palette = QPalette()
    for key, role in _ROLES.items():
        palette.setColor(role, QColor(colors[key]))
    button = QColor(colors["button"])
    dark = name == "dark"
    palette.setColor(QPalette.ColorRole.Light, button.lighter(150 if dark else 110))
    palette.setColor(QPalette.ColorRole.Midlight, button.lighter(125 if dark else 105))
    palette.setColor(QPalette.ColorRole.Dark, QColor(colors["border"]).darker(130))
    palette.setColor(QPalette.ColorRole.Shadow, QColor("#000000"))
    palette.setColor(QPalette.ColorRole.BrightText, QColor(colors["error"]))
    palette.setColor(QPalette.ColorRole.LinkVisited, QColor(colors["link"]))
    disabled = QColor(colors["disabled_text"])
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Highlight, QColor(colors["border"]))
    return palette


def style_sheet(name: str) -> str:
    """resources/style.qss with ``$error``, ``$focus``… filled in from the palette ``name``, and ``$icons``."""
    with contextlib.suppress(OSError):
        sheet = Template((resource_dir() / "style.qss").read_text(encoding="utf-8"))
        return sheet.substitute(PALETTES[name], icons=(resource_dir() / "icons").as_posix())
    return ""


class FocusRing(QFocusFrame):
    """A 2 px ring in the palette's focus colour on the focused control's edge, whatever the control's own style
    draws (Fusion's hint is a faint tint that vanishes in dark). It is drawn just inside the control, over its
    frame: outside, a parent laid out with no margin would clip it."""

    INSET = 3  # QFocusFrame sits 2 px outside its widget; the 2 px stroke covers the widget's outer 2 px

    def follow(self, widget: QWidget | None) -> None:
        self.setWidget(None)  # type: ignore[arg-type]  # QFocusFrame takes None (its stubs say otherwise)
        self.setWidget(widget)  # type: ignore[arg-type]
        self.clearMask()
        self.raise_()  # above the control and the next row: only the outline is painted, the control shows through

    # QFocusFrame masks out its widget's area each time it places itself; the ring is drawn there.
    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.clearMask()

    def moveEvent(self, event: QMoveEvent) -> None:
        super().moveEvent(event)
        self.clearMask()

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.setPen(QPen(color("focus"), 2))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        inset = self.INSET
        painter.drawRect(self.rect().adjusted(inset, inset, -inset, -inset))
        painter.end()


class _Theme(QObject):
    """The app's theme state: the choice, the palette in use, the live switch and the focus ring's follower."""

    def __init__(self, app: QApplication) -> None:
        super().__init__(app)
        self.app = app
        self.choice = "system"
        self.palette_name = "light"
        app.focusChanged.connect(self._on_app_focus_changed)
        self._on_app_focus_changed(None, app.focusWidget())  # a control focused before the theme was applied
        with contextlib.suppress(AttributeError):
            app.styleHints().colorSchemeChanged.connect(self._on_color_scheme_changed)

    def system_palette(self) -> str:
        return "dark" if self.app.styleHints().colorScheme() == Qt.ColorScheme.Dark else "light"

    def apply(self, choice: str) -> None:
        self.choice = choice if choice in dict(THEME_CHOICES) else "system"
        self.palette_name = self.system_palette() if self.choice == "system" else self.choice
        if self.app.style().name().lower() != "fusion":
            self.app.setStyle("Fusion")
        self.app.setPalette(qpalette(self.palette_name))
        self.app.setStyleSheet(style_sheet(self.palette_name))
        for ring in [w for w in self.app.allWidgets() if isinstance(w, FocusRing)]:
            ring.follow(ring.widget())  # placed again, and repainted in the new colour

    def _on_color_scheme_changed(self, _scheme: Qt.ColorScheme) -> None:
        if self.choice == "system":
            self.apply("system")

    def _on_app_focus_changed(self, _old: QWidget | None, new: QWidget | None) -> None:
        if new is None or new.isWindow() or not new.focusPolicy().value & Qt.FocusPolicy.TabFocus.value:
            return
        window = new.window()
        ring = window.findChild(FocusRing)
        if ring is None:
            ring = FocusRing(window)
        elif ring.widget() is new and ring.isVisible():
            return
        ring.follow(new)


def _theme(app: QApplication | None = None) -> _Theme:
    app = app or QApplication.instance()  # type: ignore[assignment]
    assert isinstance(app, QApplication)
    theme = app.findChild(_Theme)
    return theme if theme is not None else _Theme(app)


def current_palette() -> str:
    """``light`` or ``dark``: the palette in use (light before a theme is applied)."""
    app = QApplication.instance()
    theme = app.findChild(_Theme) if isinstance(app, QApplication) else None
    return theme.palette_name if theme is not None else "light"


def current_choice() -> str:
    return _theme().choice


def apply_theme(choice: str, app: QApplication | None = None) -> None:
    """Switch to ``system``, ``light`` or ``dark`` live: palette, style sheet and focus ring together."""
    _theme(app).apply(choice)


def apply_style(app: QApplication) -> None:
    """Fusion with our palette for the platform's light or dark scheme, until the user picks one."""
    apply_theme("system", app)
    app.setWindowIcon(icon("jobdeck"))


def theme_menu(parent: QWidget, state_file: Path | None = None) -> QMenu:
    """View → Theme: System, Light, Dark; switched live and remembered in ``state_file`` (one word)."""
    saved = ""
    if state_file is not None:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            saved = state_file.read_text(encoding="utf-8").strip()
    if saved in dict(THEME_CHOICES) and saved != current_choice():
        apply_theme(saved)
    menu = QMenu("&Theme", parent)
    group = QActionGroup(menu)
    group.setExclusive(True)
    for value, label in THEME_CHOICES:
        action = QAction(label, menu)
        action.setCheckable(True)
        action.setChecked(value == current_choice())
        action.setData(value)
        group.addAction(action)
        menu.addAction(action)

    def _on_group_triggered(action: QAction) -> None:
        choice = str(action.data())
        apply_theme(choice)
        if state_file is not None:
            with contextlib.suppress(OSError):
                state_file.write_text(choice + "\n", encoding="utf-8")

    group.triggered.connect(_on_group_triggered)
    return menu
