"""Uploads from the window against a real worker uploading to moto's S3 server: the drop sheet's verdicts come from
the worker's settings as they are now, rows can be unticked, one bad file never refuses the others; the picker
takes folders; dragging over the window shows where the drop goes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from servers import S3Server
from test_gui_progress import *  # noqa: F403  (the s3_env fixture)
from test_gui_support import *  # noqa: F403  (fixtures)
from test_gui_support import QT_LOG_IGNORE, run, wait_status

from desktop.models.drop import DropCol
from engine.config import save_settings

pytestmark = QT_LOG_IGNORE


def row_of(sheet: Any, key: str) -> int:
    return next(row for row, item in enumerate(sheet.model.items) if item.key == key)


def state(sheet: Any, key: str) -> str:
    return str(sheet.model.index(row_of(sheet, key), DropCol.STATE).data())


def test_the_sheet_judges_with_the_workers_current_settings_and_creates_each_ticked_file_on_its_own(
    qtbot: Any, make_window: Any, s3_env: str, s3_server: S3Server, tmp_path: Path
) -> None:
    save_settings({"max_upload_bytes": 10_000})
    folder = tmp_path / "batch"
    folder.mkdir()
    for name, size in (("a.txt", 100), ("b.txt", 100), ("big.bin", 5000), ("skip.txt", 100)):
        (folder / name).write_bytes(b"x" * size)
    window = make_window()
    sheet = window.drop_sheet([str(folder)])
    sheet.show()
    run(qtbot, sheet.scan_task)
    assert {item.key: state(sheet, item.key) for item in sheet.model.items} == dict.fromkeys(
        ("batch/a.txt", "batch/b.txt", "batch/big.bin", "batch/skip.txt"), "Yes"
    )
    assert sheet.submit_button.text() == "Upload 4 files"
    save_settings({"max_upload_bytes": 1000})  # as `jobdeck config set` does, with the sheet open
    qtbot.waitUntil(lambda: "over the upload limit of 1,000 bytes" in state(sheet, "batch/big.bin"), timeout=15_000)
    assert sheet.submit_button.text() == "Upload 3 files"
    skip = sheet.model.index(row_of(sheet, "batch/skip.txt"), DropCol.KEY)
    assert sheet.model.flags(skip) & Qt.ItemFlag.ItemIsUserCheckable
    assert not sheet.model.flags(sheet.model.index(row_of(sheet, "batch/big.bin"), DropCol.KEY)) & (
        Qt.ItemFlag.ItemIsUserCheckable
    )
    sheet.model.setData(skip, Qt.CheckState.Unchecked, Qt.ItemDataRole.CheckStateRole)
    assert sheet.submit_button.text() == "Upload 2 files" and sheet.submit_button.isEnabled()
    (folder / "b.txt").unlink()  # goes bad after the sheet's verdict: the worker refuses it, and only it
    jobs = run(qtbot, sheet.submit())
    assert [j["parameters"]["key"] for j in jobs] == ["batch/a.txt"]
    assert sheet.isVisible() and [i.key for i in sheet.model.items] == ["batch/b.txt"]
    assert "does not exist" in state(sheet, "batch/b.txt")
    assert "Created 1 upload job; 1 file could not be" in sheet.form_error.text()
    wait_status(qtbot, window, jobs[0]["id"], "succeeded", timeout_ms=30_000)
    listed = s3_server.client().list_objects_v2(Bucket=s3_env).get("Contents", [])
    assert [o["Key"] for o in listed] == ["batch/a.txt"]
    assert len(run(qtbot, window.connection.request("list"))["jobs"]) == 1
    sheet.reject()


def test_dragging_over_the_window_shows_where_it_will_drop(qtbot: Any, make_window: Any, tmp_path: Path) -> None:
    from PySide6.QtCore import QMimeData, QPoint, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDragLeaveEvent, QDropEvent
    from PySide6.QtWidgets import QApplication

    from desktop.widgets.theme import color

    files = [tmp_path / "a.txt", tmp_path / "b.txt"]
    for file in files:
        file.write_text("x")
    window = make_window(begin=False)
    overlay = window.drop_overlay
    central = window.centralWidget()

    def enter(mime: QMimeData) -> QDragEnterEvent:
        event = QDragEnterEvent(central.geometry().center(), Qt.DropAction.CopyAction, mime,
                                Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)  # fmt: skip
        QApplication.sendEvent(window, event)
        return event

    text = QMimeData()
    text.setText("not a file")
    assert not enter(text).isAccepted() and not overlay.isVisible()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(f)) for f in files])
    assert enter(mime).isAccepted()
    assert overlay.isVisible() and overlay.geometry() == central.rect()
    assert overlay.text.startswith("Drop to upload 2 items")
    image = window.grab().toImage()  # a frame in the highlight colour along the overlay's edge
    top_left = overlay.mapTo(window, QPoint(0, 0))
    edge = [image.pixelColor(top_left.x() + x, top_left.y() + 12).name() for x in range(20, 200)]
    assert color("highlight").name() in edge
    QApplication.sendEvent(window, QDragLeaveEvent())
    assert not overlay.isVisible()
    enter(mime)
    assert overlay.isVisible()
    drop = QDropEvent(central.geometry().center().toPointF(), Qt.DropAction.CopyAction, mime,
                      Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)  # fmt: skip
    QApplication.sendEvent(window, drop)
    assert drop.isAccepted() and not overlay.isVisible()
    assert window.last_sheet.isVisible()
    window.last_sheet.reject()


def test_the_upload_picker_takes_files_and_folders_together_into_the_drop_sheet(
    qtbot: Any, make_window: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    from PySide6.QtCore import QItemSelectionModel
    from PySide6.QtWidgets import QDialogButtonBox, QListView

    from desktop.views.upload_picker import UploadPicker

    where = tmp_path / "pick"  # tmp_path also holds the test's data folder
    (where / "photos").mkdir(parents=True)
    (where / "photos" / "one.jpg").write_text("1")
    (where / "notes.txt").write_text("n")
    picker = UploadPicker(None, str(where))
    qtbot.addWidget(picker)
    picker.show()
    view = next(v for v in picker.findChildren(QListView) if v.objectName() == "listView")
    qtbot.waitUntil(lambda: view.model().rowCount(view.rootIndex()) == 2)
    root = view.rootIndex()
    for row in range(2):  # a folder and a file, selected together
        flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
        view.selectionModel().select(view.model().index(row, 0, root), flags)
    upload = picker.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Open)
    assert upload.isEnabled()
    upload.click()
    assert picker.result() == picker.DialogCode.Accepted
    assert sorted(picker.chosen) == [str(where / "notes.txt"), str(where / "photos")]
    window = make_window(begin=False)
    window.connection.request = lambda *a, **k: _never()
    monkeypatch.setattr(UploadPicker, "choose", lambda *a, **k: list(picker.chosen))
    sheets: list[Any] = []
    real = window.drop_sheet
    monkeypatch.setattr(window, "drop_sheet", lambda paths: sheets.append(real(paths)) or sheets[-1])
    window.upload_action.trigger()
    (sheet,) = sheets
    qtbot.waitUntil(lambda: bool(sheet.model.items))
    assert sorted(i.key for i in sheet.model.items) == ["notes.txt", "photos/one.jpg"]  # the folder, expanded
    sheet.reject()


async def _never() -> Any:
    """A worker that does not answer: the sheet's verdicts stay pending (this test is about what was chosen)."""
    import asyncio

    await asyncio.Event().wait()
