"""Dialogs fit small and 2× screens, judge fields when they are left, keep fields still, say why Create is
disabled, and show a focus ring on every control in light and dark."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QLabel, QWidget
from test_gui_support import *  # noqa: F403  (fixtures)
from test_gui_support import QT_LOG_IGNORE, ops_request, run

from desktop.views.job_dialog import JobDialog
from desktop.widgets import theme

pytestmark = QT_LOG_IGNORE
PROBE = Path(__file__).resolve().parent / "dialog_fit_probe.py"
TITLE_BAR = 40  # logical pixels a window manager's title bar and borders take around a dialog


@pytest.mark.parametrize(("width", "height", "scale"), [(1366, 768, 1), (2560, 1600, 2)])
def test_every_dialog_fits_the_screen(tmp_path: Path, width: int, height: int, scale: int) -> None:
    """Each dialog opens within the screen with Create/Save visible, and can be made as small as the screen."""
    screens = tmp_path / "screens.json"
    screens.write_text(json.dumps({"screens": [{"name": "probe", "x": 0, "y": 0, "width": width, "height": height,
                                                "logicalDpi": 96, "dpr": 1}]}))  # fmt: skip
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={screens}", "QT_SCALE_FACTOR": str(scale)}
    env.pop("JOBDECK_HOME", None)
    (tmp_path / "data").mkdir()
    done = subprocess.run(
        [sys.executable, str(PROBE), str(tmp_path / "data")], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert set(results) == {"new job (email)", "new job (upload)", "schedule editor", "settings (no keyring)",
                            "drop sheet", "statistics"}  # fmt: skip
    for name, r in results.items():
        room_w, room_h = r["screen"]
        assert (room_w * r["ratio"], room_h * r["ratio"]) == (width, height)
        min_w, min_h = r["minimum"]
        assert min_w <= room_w and min_h + TITLE_BAR <= room_h, f"{name}: minimum {r['minimum']} on {r['screen']}"
        size_w, size_h = r["size"]
        assert size_w <= room_w and size_h + TITLE_BAR <= room_h, f"{name}: opens at {r['size']} on {r['screen']}"
        x, y = r["submit_bottom_right"]
        assert 0 < x <= size_w and 0 < y <= size_h, f"{name}: its submit button is outside the dialog"
    assert results["drop sheet"]["sideways"] == 0  # a long refusal elides in its column, not past the sheet


@pytest.fixture
def dialog(qtbot: Any, aloop: Any, ops: Any) -> JobDialog:
    types = [t for t in ops.types() if t["name"] in ("send_email", "upload_file")]
    dialog = JobDialog(types, ops_request(ops))
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.activateWindow()
    qtbot.waitUntil(dialog.isActiveWindow)
    return dialog


def test_a_field_is_judged_when_left_not_at_every_key(qtbot: Any, dialog: JobDialog) -> None:
    recipient, subject = dialog.fields["recipient"], dialog.fields["subject"]
    recipient.widget.setFocus()
    qtbot.keyClicks(recipient.widget, "o")
    assert not recipient.error.isVisible()  # "Not an email address: o" after one key was the complaint
    qtbot.keyClicks(recipient.widget, "ps")
    assert not recipient.error.isVisible()
    qtbot.keyClick(recipient.widget, Qt.Key.Key_Tab)
    assert QApplication.focusWidget() is subject.widget
    # judged by the engine (the `check` request), not by a copy of its rule
    qtbot.waitUntil(recipient.error.isVisible)
    assert recipient.error.text().startswith("Not a valid email address: ops")
    recipient.widget.setFocus()
    qtbot.keyClicks(recipient.widget, "@example.com")
    qtbot.waitUntil(lambda: not recipient.error.isVisible())  # once flagged, the fix is acknowledged as it is typed
    qtbot.keyClick(subject.widget, Qt.Key.Key_Tab)  # passing through an untouched field says nothing
    assert not subject.error.isVisible()


def test_an_error_line_does_not_move_the_fields_below(qtbot: Any, dialog: JobDialog) -> None:
    recipient, subject = dialog.fields["recipient"], dialog.fields["subject"]
    body = dialog.fields["body"].widget
    before = subject.widget.mapTo(dialog, QPoint(0, 0)), body.mapTo(dialog, QPoint(0, 0))
    recipient.widget.setFocus()
    qtbot.keyClicks(recipient.widget, "nope")
    qtbot.keyClick(recipient.widget, Qt.Key.Key_Tab)
    qtbot.waitUntil(recipient.error.isVisible)
    qtbot.wait(1)
    after = subject.widget.mapTo(dialog, QPoint(0, 0)), body.mapTo(dialog, QPoint(0, 0))
    assert after == before


def test_why_create_is_disabled_is_shown_in_the_dialog(qtbot: Any, dialog: JobDialog, ops: Any) -> None:
    assert not dialog.submit_button.isEnabled()
    assert dialog.reason.isVisible()
    assert dialog.reason.text() == "Fill in Recipient, Subject and Body to create the job."
    qtbot.keyClicks(dialog.fields["subject"].widget, "Report")
    qtbot.keyClicks(dialog.fields["body"].widget, "Numbers")
    assert dialog.reason.text() == "Fill in Recipient to create the job."
    qtbot.keyClicks(dialog.fields["recipient"].widget, "not-an-address")
    assert dialog.submit_button.isEnabled() and not dialog.reason.isVisible()
    # Create judges what was not yet left: nothing is created, the field says why and takes the focus
    qtbot.mouseClick(dialog.submit_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.submit_task is not None and dialog.submit_task.done())
    assert dialog.submit_task.result() is None
    assert dialog.fields["recipient"].error.isVisible()
    assert QApplication.focusWidget() is dialog.fields["recipient"].widget
    assert ops.stats()["total"] == 0
    dialog.schedule.at_radio.setChecked(True)
    dialog.schedule.when.setDateTime(dialog.schedule.when.dateTime().addDays(-2))
    assert dialog.reason.text() == "Pick a time in the future to create the job."


def _ring_pixels(window: QWidget, ring: QWidget, focus: QColor) -> int:
    """Pixels in the focus colour along the ring's own rectangle, in a grab of the whole window."""
    image = window.grab().toImage()
    ratio = image.devicePixelRatio()
    top_left = ring.mapTo(window, QPoint(0, 0))
    count = 0
    inset = theme.FocusRing.INSET
    for x in range(ring.width()):
        for y in (inset, ring.height() - 1 - inset):
            c = image.pixelColor(int((top_left.x() + x) * ratio), int((top_left.y() + y) * ratio))
            count += abs(c.red() - focus.red()) + abs(c.green() - focus.green()) + abs(c.blue() - focus.blue()) < 40
    return count


@pytest.mark.parametrize("name", ["light", "dark"])
def test_every_focusable_control_shows_a_focus_ring(qtbot: Any, dialog: JobDialog, qapp: Any, name: str) -> None:
    sheet, palette = qapp.styleSheet(), QPalette(qapp.palette())
    try:
        theme.apply_theme(name)
        focus = QColor(theme.PALETTES[name]["focus"])
        controls = []
        widget = dialog.nextInFocusChain()
        while widget is not dialog and len(controls) < 60:
            proxied = widget.focusProxy() is not None
            focusable = widget.focusPolicy() & Qt.FocusPolicy.TabFocus and widget.isEnabled()
            if widget.isVisibleTo(dialog) and focusable and not proxied:  # a spin box's line edit is the box
                controls.append(widget)
            widget = widget.nextInFocusChain()
        assert len(controls) >= 8
        for control in controls:
            control.setFocus(Qt.FocusReason.TabFocusReason)
            qtbot.waitUntil(lambda c=control: QApplication.focusWidget() is c)
            ring = dialog.findChild(theme.FocusRing)
            assert ring is not None and ring.widget() is control and ring.isVisible()
            name_of = control.accessibleName() or type(control).__name__
            assert _ring_pixels(dialog, ring, focus) > 1.6 * ring.width(), f"no visible ring around {name_of}"
    finally:
        qapp.setStyleSheet(sheet)
        qapp.setPalette(palette)


def test_before_the_worker_names_its_job_types_create_says_so(qtbot: Any, aloop: Any, ops: Any) -> None:
    dialog = JobDialog([], ops_request(ops))
    qtbot.addWidget(dialog)
    dialog.show()
    assert not dialog.submit_button.isEnabled()
    assert dialog.reason.isVisible() and "worker" in dialog.reason.text()


def test_the_drop_sheet_says_why_upload_is_disabled(qtbot: Any, aloop: Any, ops: Any, tmp_path: Path) -> None:
    from desktop.views.drop_sheet import DropSheet
    from engine.config import Paths, Settings

    files = tmp_path / "outside"
    files.mkdir()
    (files / "a.csv").write_text("a\n")
    sheet = DropSheet([str(files)], Settings(s3_bucket=""), ops_request(ops), data_folder=Paths(tmp_path / "data"))
    qtbot.addWidget(sheet)
    sheet.show()
    run(qtbot, sheet.scan_task)
    reason = sheet.findChild(QLabel, "disabledReason")
    assert not sheet.submit_button.isEnabled()
    assert reason.isVisible() and "bucket" in reason.text()
    qtbot.keyClicks(sheet.bucket, "reports")
    assert sheet.submit_button.isEnabled() and not reason.isVisible()
