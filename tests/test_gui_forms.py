"""The new-job dialog and the drop sheet, against the real engine operations (validation included)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QCheckBox
from test_gui_support import *  # noqa: F403  (fixtures)
from test_gui_support import QT_LOG_IGNORE, ops_request, run

from desktop.views.job_dialog import JobDialog

pytestmark = QT_LOG_IGNORE


def builtin_types(ops: Any) -> list[dict[str, Any]]:
    """The shipped types only: other tests in this process register extra ones (e.g. ``noop``) in the registry."""
    return [t for t in ops.types() if t["name"] in ("send_email", "upload_file")]


def test_job_dialog_creates_a_job_and_shows_errors_inline(qtbot: Any, aloop: Any, ops: Any, tmp_path: Path) -> None:
    dialog = JobDialog(builtin_types(ops), ops_request(ops))
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.job_type == "send_email"
    assert set(dialog.fields) == {"recipient", "subject", "body", "html_body"}
    assert not dialog.submit_button.isEnabled()  # required fields empty
    recipient = dialog.fields["recipient"]
    dialog.activateWindow()
    qtbot.waitUntil(dialog.isActiveWindow)
    recipient.widget.setFocus()
    qtbot.keyClicks(recipient.widget, "not-an-address")
    assert not recipient.error.isVisible()  # judged when the field is left, not while typing
    qtbot.keyClick(recipient.widget, Qt.Key.Key_Tab)
    qtbot.waitUntil(recipient.error.isVisible)  # the engine judged it (`check`)
    assert "not-an-address" in recipient.error.text()
    assert not dialog.submit_button.isEnabled()
    recipient.widget.clear()
    qtbot.keyClicks(recipient.widget, "ops@example.com, cfo@example.com")
    qtbot.keyClicks(dialog.fields["subject"].widget, "Monthly report")
    body = dialog.fields["body"].widget
    qtbot.keyClicks(body, "Line one")
    qtbot.keyClick(body, Qt.Key.Key_Return)
    qtbot.keyClicks(body, "Line two")
    qtbot.waitUntil(lambda: not recipient.error.isVisible())
    assert dialog.submit_button.isEnabled()
    dialog.priority.setValue(8)
    dialog.max_retries.setValue(1)
    qtbot.mouseClick(dialog.submit_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.submit_task is not None and dialog.submit_task.done())
    job = dialog.submit_task.result()
    assert job is not None and dialog.result() == dialog.DialogCode.Accepted
    stored = ops.get(job["id"])
    assert stored["parameters"]["body"] == "Line one\nLine two"
    assert stored["parameters"]["recipient"] == "ops@example.com, cfo@example.com"
    assert (stored["priority"], stored["max_retries"], stored["status"]) == (8, 1, "pending")


def test_engine_validation_error_appears_at_its_field(qtbot: Any, aloop: Any, ops: Any, tmp_path: Path) -> None:
    dialog = JobDialog(builtin_types(ops), ops_request(ops))
    qtbot.addWidget(dialog)
    dialog.type_combo.setCurrentIndex(dialog.type_combo.findData("upload_file"))
    assert "size" not in dialog.fields and "mtime_ns" not in dialog.fields  # readOnly fields are not asked for
    assert isinstance(dialog.fields["in_place"].widget, QCheckBox)
    missing = tmp_path / "nope.bin"
    qtbot.keyClicks(dialog.fields["path"].widget, str(missing))
    dialog.fields["bucket"].set_value("my-bucket")
    assert dialog.submit_button.isEnabled()  # locally plausible; only the engine knows the file is missing
    assert run(qtbot, dialog.submit()) is None
    error = dialog.fields["path"].error
    assert not error.isHidden() and "does not exist" in error.text()
    assert ops.list()["total"] == 0  # nothing written on error
    # a time in the past is refused locally, next to the schedule
    dialog.schedule.at_radio.setChecked(True)
    dialog.schedule.when.setDateTime(dialog.schedule.when.dateTime().addDays(-2))
    assert not dialog.schedule_error.isHidden() and not dialog.submit_button.isEnabled()


def test_scheduled_job_is_created_for_the_chosen_local_time(qtbot: Any, aloop: Any, ops: Any) -> None:
    dialog = JobDialog(builtin_types(ops), ops_request(ops))
    qtbot.addWidget(dialog)
    for name, value in {"recipient": "a@example.com", "subject": "Later", "body": "x"}.items():
        dialog.fields[name].set_value(value)
    dialog.schedule.at_radio.setChecked(True)
    chosen = dialog.schedule.when.dateTime().toPython().astimezone()
    job = run(qtbot, dialog.submit())
    assert job["status"] == "scheduled"
    from datetime import datetime

    assert abs((datetime.fromisoformat(job["scheduled_time"]) - chosen).total_seconds()) < 1


def _drop(target: Any, paths: list[Path]) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = target.rect().center()
    actions = Qt.DropAction.CopyAction
    buttons, mods = Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(pos, actions, mime, buttons, mods)
    QApplication.sendEvent(target, enter)
    assert enter.isAccepted()
    move = QDragMoveEvent(pos + QPoint(1, 1), actions, mime, buttons, mods)
    QApplication.sendEvent(target, move)
    assert move.isAccepted()
    drop = QDropEvent(pos.toPointF(), actions, mime, buttons, mods)
    QApplication.sendEvent(target, drop)
    assert drop.isAccepted()


def test_dropping_files_and_folders_creates_one_upload_job_per_file(
    qtbot: Any, make_window: Any, ops: Any, tmp_path: Path
) -> None:
    from engine.config import save_settings

    save_settings({"s3_bucket": "drop-bucket", "s3_key_prefix": "in/", "max_upload_bytes": 1000})
    folder = tmp_path / "reports"
    (folder / "2026" / "q1").mkdir(parents=True)
    (folder / "2026" / "q1" / "jan.csv").write_text("a,b\n1,2\n")
    (folder / "summary.txt").write_text("ok")
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 2000)
    window = make_window(begin=False)
    window.connection.request = ops_request(ops)  # no worker needed to create jobs
    run(qtbot, window.info.load())
    _drop(window, [folder, empty, big])
    sheet = window.last_sheet
    run(qtbot, sheet.scan_task)
    keys = {i.key: row for row, i in enumerate(sheet.model.items)}
    assert set(keys) == {"reports/2026/q1/jan.csv", "reports/summary.txt", "empty.bin", "big.bin"}
    big_problem = sheet.model.problem(keys["big.bin"])  # the worker's verdict: flagged, not skipped silently
    assert big_problem and big_problem.startswith("is 2,000 bytes, over the upload limit")
    assert sheet.warning.isVisible() and "1 file will not be uploaded" in sheet.warning.text()
    assert "3 files to upload" in sheet.summary.text()
    assert sheet.bucket.text() == "drop-bucket" and sheet.prefix.text() == "in/"
    sheet.conflict.setCurrentIndex(sheet.conflict.findData("rename"))
    sheet.priority.setValue(7)
    assert sheet.submit_button.isEnabled() and sheet.submit_button.text() == "Upload 3 files"
    jobs = run(qtbot, sheet.submit())
    assert len(jobs) == 3
    stored = {j["parameters"]["key"]: j for j in ops.list()["jobs"]}
    assert set(stored) == {"in/reports/2026/q1/jan.csv", "in/reports/summary.txt", "in/empty.bin"}
    assert all(j["parameters"]["conflict"] == "rename" and j["priority"] == 7 for j in stored.values())
    assert stored["in/empty.bin"]["parameters"]["size"] == 0


def test_unreadable_file_is_flagged(qtbot: Any, aloop: Any, tmp_path: Path) -> None:
    from desktop.models.drop import expand
    from engine.config import Paths
    from engine.upload_paths import DataGuard

    locked = tmp_path / "locked.txt"
    locked.write_text("secret")
    locked.chmod(0)
    try:
        items = expand([str(locked), str(tmp_path / "gone.txt")], 10_000, DataGuard(Paths(tmp_path / "data")))
    finally:
        locked.chmod(0o600)
    problems = {Path(i.path).name: i.problem for i in items}
    assert problems["gone.txt"] and "does not exist" in problems["gone.txt"]
    if os.geteuid() != 0:  # root reads anything
        assert problems["locked.txt"] and "unreadable" in problems["locked.txt"]


def test_drop_sheet_shows_the_engine_error_at_the_bucket(
    qtbot: Any, make_window: Any, ops: Any, tmp_path: Path
) -> None:
    file = tmp_path / "a.txt"
    file.write_text("a")
    window = make_window(begin=False)
    window.connection.request = ops_request(ops)
    sheet = window.drop_sheet([str(file)])
    run(qtbot, sheet.scan_task)
    sheet.bucket.setText("   ")
    assert not sheet.submit_button.isEnabled()
    sheet.bucket.setText("ok-bucket")
    sheet.prefix.setText("/abs/")
    assert not sheet.submit_button.isEnabled() and not sheet.prefix_error.isHidden()


def test_form_labels_keep_acronyms_and_hand_written_titles() -> None:
    from desktop.models.format import field_label

    assert field_label("html_body", "Html Body") == "HTML body"
    assert field_label("in_place", "In Place") == "In place"
    assert field_label("recipient", "Recipient") == "Recipient"
    assert field_label("key", "Object key (S3)") == "Object key (S3)"
    assert field_label("s3_endpoint_url") == "S3 endpoint URL"
