"""The theme: every colour pair it defines is readable (WCAG AA) in light and dark, it switches live, the focus
ring shows on every control, and status icons and icon buttons carry meaning without colour."""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPalette
from PySide6.QtWidgets import QAbstractButton, QApplication, QLabel, QVBoxLayout, QWidget
from test_gui_support import *  # noqa: F403  (fixtures)
from test_gui_support import QT_LOG_IGNORE, ops_request

from desktop.widgets import theme

pytestmark = QT_LOG_IGNORE
PALETTES = ("light", "dark")


@pytest.fixture
def restore_look(qapp: QApplication) -> Iterator[None]:
    """The app-wide palette and sheet go back as they were: other tests in this process paint with them."""
    sheet, palette, style = qapp.styleSheet(), QPalette(qapp.palette()), qapp.style().name()
    yield
    qapp.setStyleSheet(sheet)
    qapp.setPalette(palette)
    qapp.setStyle(style)


@pytest.mark.parametrize("name", PALETTES)
def test_every_colour_pair_the_theme_defines_meets_wcag_aa(name: str) -> None:
    pairs = theme.all_pairs(name)
    assert len(pairs) >= len(theme.CONTRAST_PAIRS) + len(theme.STATUS_COLORS)
    weak = [
        f"{fg} {fg_hex} on {bg} {bg_hex}: {ratio:.2f}:1 < {minimum}:1"
        for fg, bg, fg_hex, bg_hex, minimum in pairs
        if (ratio := theme.contrast_ratio(fg_hex, bg_hex)) < minimum
    ]
    assert not weak, "\n".join(weak)


def test_contrast_ratio_matches_wcag_reference_values() -> None:
    assert theme.contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert theme.contrast_ratio("#ffffff", "#ffffff") == pytest.approx(1.0)
    assert theme.contrast_ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # the classic near miss


def test_style_sheet_takes_every_colour_from_the_palette() -> None:
    raw = (theme.resource_dir() / "style.qss").read_text(encoding="utf-8")
    assert not re.findall(r"#[0-9a-fA-F]{3,8}\b|rgba?\(", raw), "a literal colour escapes the contrast test"
    used = set(re.findall(r"\$(\w+)", raw)) - {"icons"}
    for name in PALETTES:
        assert used <= set(theme.PALETTES[name]), used - set(theme.PALETTES[name])
        assert "$" not in theme.style_sheet(name)
        for arrow in ("arrow-up", "arrow-down"):  # the spin box arrows are pictures: their fill is the palette's
            svg = (theme.resource_dir() / "icons" / f"{arrow}.svg").read_text(encoding="utf-8")
            assert f'fill="{theme.PALETTES[name]["arrow"]}"' in svg


@pytest.mark.parametrize("name", PALETTES)
def test_labels_the_sheet_colours_are_readable_once_applied(
    qtbot: Any, qapp: QApplication, restore_look: None, name: str
) -> None:
    """The colours reach the screen: the polished labels' text against the window they sit on."""
    theme.apply_theme(name)
    host = QWidget()
    qtbot.addWidget(host)
    layout = QVBoxLayout(host)
    labels = {}
    for object_name in ("fieldError", "formError", "warning", "disabledReason", "emptyHint", ""):
        label = QLabel("Sample", host)
        label.setObjectName(object_name)
        layout.addWidget(label)
        labels[object_name] = label
    host.show()
    window = qapp.palette().color(QPalette.ColorRole.Window).name()
    assert window == theme.PALETTES[name]["window"]
    for object_name, label in labels.items():
        label.ensurePolished()
        text = label.palette().color(QPalette.ColorRole.WindowText).name()
        assert theme.contrast_ratio(text, window) >= theme.TEXT, (object_name, text, window)
    assert labels["fieldError"].palette().color(QPalette.ColorRole.WindowText).name() == theme.PALETTES[name]["error"]


def test_theme_menu_switches_live_and_remembers(
    qtbot: Any, qapp: QApplication, restore_look: None, tmp_path: Path
) -> None:
    theme.apply_theme("light")
    host = QWidget()
    qtbot.addWidget(host)
    error = QLabel("Not an email address", host)
    error.setObjectName("fieldError")
    host.show()
    assert error.palette().color(QPalette.ColorRole.WindowText).name() == theme.PALETTES["light"]["error"]
    state = tmp_path / "theme"
    menu = theme.theme_menu(host, state)
    actions = {a.text(): a for a in menu.actions()}
    assert list(actions) == ["System", "Light", "Dark"]
    actions["Dark"].trigger()
    assert qapp.palette().color(QPalette.ColorRole.Base).name() == theme.PALETTES["dark"]["base"]
    # the label that already existed follows at once: no restart, no reopening
    assert error.palette().color(QPalette.ColorRole.WindowText).name() == theme.PALETTES["dark"]["error"]
    assert state.read_text().strip() == "dark"
    theme.apply_theme("light")
    again = theme.theme_menu(host, state)  # the next start reads the choice back
    assert theme.current_palette() == "dark"
    assert [a.text() for a in again.actions() if a.isChecked()] == ["Dark"]
    actions["System"].trigger()
    assert theme.current_choice() == "system"
    assert theme.current_palette() == theme._theme().system_palette()


def _glyph_mask(name: str) -> bytes:
    """Where the icon is near-white: its glyph, which is what is left for someone who cannot tell the colours."""
    image = theme.icon(name).pixmap(32, 32).toImage().convertToFormat(QImage.Format.Format_RGBA8888)
    return bytes(
        int(min(c.red(), c.green(), c.blue()) > 200 and c.alpha() > 200)
        for y in range(image.height())
        for x in range(image.width())
        if (c := image.pixelColor(x, y))
    )


@pytest.mark.parametrize("family", ["status", "worker"])
def test_icons_differ_by_shape_not_only_by_colour(qapp: QApplication, family: str) -> None:
    names = sorted(p.stem for p in (theme.resource_dir() / "icons").glob(f"{family}-*.svg"))
    assert len(names) >= 4
    masks = {name: _glyph_mask(name) for name in names}
    for name, mask in masks.items():
        assert sum(mask) > 8, f"{name} has no glyph"
    for a, b in combinations(names, 2):
        differing = sum(x != y for x, y in zip(masks[a], masks[b], strict=True))
        assert differing > 16, f"{a} and {b} have the same shape"


def unnamed_icon_controls(root: QWidget) -> list[str]:
    """Buttons the keyboard reaches without text or accessible name, and picture-only labels without a name: both
    are silent to a screen reader. (Qt's own unfocusable helpers, such as a line edit's clear button, are named by
    the control they belong to.)"""
    found = []
    for button in root.findChildren(QAbstractButton):
        reachable = button.isVisibleTo(root) and button.focusPolicy().value & Qt.FocusPolicy.TabFocus.value
        if reachable and not button.text().strip() and not button.accessibleName().strip():
            found.append(f"{type(button).__name__} {button.objectName() or button.toolTip()}")
    for label in root.findChildren(QLabel):
        if not label.pixmap().isNull() and not label.accessibleName().strip():
            found.append(f"QLabel {label.objectName()}")
    return found


def test_every_icon_button_and_picture_has_an_accessible_name(
    qtbot: Any, aloop: Any, ops: Any, make_window: Any, tmp_path: Path
) -> None:
    from desktop.views.job_dialog import JobDialog
    from desktop.views.stats_view import StatsView

    window = make_window(begin=False)
    stats = StatsView(ops_request(ops), window)
    dialog = JobDialog(ops.types(), ops_request(ops), parent=window)
    for widget in (window, stats, dialog):
        assert unnamed_icon_controls(widget) == [], type(widget).__name__


def test_main_window_offers_view_theme(qtbot: Any, aloop: Any, make_window: Any, restore_look: None) -> None:
    window = make_window(begin=False)
    menus = {a.text().replace("&", ""): a.menu() for a in window.menuBar().actions()}
    themes = {a.text().replace("&", ""): a.menu() for a in menus["View"].actions() if a.menu()}
    choices = {a.text(): a for a in themes["Theme"].actions()}
    choices["Dark"].trigger()
    assert window.palette().color(QPalette.ColorRole.Window).name() == theme.PALETTES["dark"]["window"]
    assert (window.paths.root / "theme").read_text().strip() == "dark"
