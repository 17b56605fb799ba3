"""View → Transfers against a real worker uploading to moto's S3 server: active and recent uploads, one row a file
with its own bar, rate and time left, fed by the worker's events; and the model behind it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from test_gui_progress import *  # noqa: F403  (the s3_env and failing_upload fixtures)
from test_gui_progress import a_file
from test_gui_support import *  # noqa: F403  (fixtures)
from test_gui_support import QT_LOG_IGNORE, run, wait_status

pytestmark = QT_LOG_IGNORE
MiB = 1024**2


def test_the_transfers_window_lists_uploads_with_their_own_progress(
    qtbot: Any, make_window: Any, s3_env: str, tmp_path: Path
) -> None:
    window = make_window()
    request = window.connection.request
    small = tmp_path / "notes.txt"
    small.write_text("a few words")
    first = run(qtbot, request("create", job_type="upload_file", parameters={"path": str(small)}))
    wait_status(qtbot, window, first["id"], "succeeded")
    # View → Transfers, from the keyboard: it reads the uploads there are (a snapshot) and takes the focus
    assert window.transfers_action in window.menus["View"].actions()
    assert window.transfers_action.shortcut().toString() == "Ctrl+T"
    window.transfers_action.trigger()
    view = window.transfers
    assert view is not None and view.isVisible()
    assert not view.loaded and view.headline.text() == "Loading…" and not view.empty_label.isVisible()
    qtbot.waitUntil(lambda: view.loaded and view.model.rowCount() == 1, timeout=30_000)
    assert view.model.index(0, 0).data() == "notes.txt" and view.model.index(0, 3).data() == "Succeeded"
    assert view.model.index(0, 1).data() == "11 B"
    # a new upload arrives through the events, on top, with its own bar, rate and time left
    big = run(qtbot, request("create", job_type="upload_file", parameters={"path": str(a_file(tmp_path, 8 * MiB))}))
    qtbot.waitUntil(lambda: view.model.rowCount() == 2 and view.model.job_at(0).get("id") == big["id"], timeout=30_000)

    def measured() -> bool:
        progress = view.model.progress(view.model.job_at(0)) or {}
        return bool(progress.get("rate")) and progress.get("eta_s") is not None

    qtbot.waitUntil(measured, timeout=20_000)
    cell = view.model.index(0, 2).data()
    assert "of 8.0 MiB" in cell and "MiB/s" in cell and "left" in cell, cell
    assert 0 < view.model.index(0, 2).data(view_role("SHARE")) < 1
    assert view.model.index(0, 3).data() == "Uploading"
    assert view.headline.text().startswith("1 uploading · 1 finished"), view.headline.text()
    qtbot.waitUntil(lambda: view.model.job_at(0).get("status") == "succeeded", timeout=30_000)
    assert view.model.index(0, 2).data() == "Done" and view.model.index(0, 2).data(view_role("SHARE")) == 1.0
    # Enter on a row shows that upload in the jobs table
    view.table.setFocus()
    view.table.selectRow(1)
    qtbot.keyClick(view.table, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.selected_ids() == [first["id"]], timeout=30_000)
    # it fits a small screen
    hint = view.minimumSizeHint()
    assert hint.width() <= 800 and hint.height() <= 600 and view.width() <= 800 and view.height() <= 600


def view_role(name: str) -> int:
    from desktop.models.transfers import TRole

    return int(TRole[name])


def test_the_transfers_model_keeps_active_uploads_and_the_latest_finished(qtmodeltester: Any) -> None:
    from desktop.models.transfers import MAX_FINISHED, TransfersModel

    def upload(job_id: int, status: str) -> dict[str, Any]:
        return {"id": job_id, "job_type": "upload_file", "status": status, "parameters": {"path": f"/d/{job_id}.bin",
                "size": 2048}, "attempts": 1, "max_retries": 3}  # fmt: skip

    model = TransfersModel()
    model.reset([upload(1, "running")] + [upload(i, "succeeded") for i in range(2, 2 + MAX_FINISHED)], seq=10)
    qtmodeltester.check(model)
    assert model.rowCount() == 1 + MAX_FINISHED
    email = {"id": 999, "job_type": "send_email", "status": "pending", "parameters": {}}
    model.apply_events([{"type": "job.created", "seq": 11, "job": upload(500, "succeeded")},
                        {"type": "job.created", "seq": 12, "job": email},
                        {"type": "job.created", "seq": 5, "job": upload(600, "pending")}])  # fmt: skip
    assert model.rowCount() == 1 + MAX_FINISHED  # the oldest finished one left; emails and old events ignored
    assert model.job_at(0)["id"] == 500 and model.row_of(1) == MAX_FINISHED and model.row_of(2) is None
    model.apply_progress({1: {"done": 1024, "total": 2048, "unit": "bytes", "rate": 512.0, "eta_s": 2.0}})
    assert model.index(model.row_of(1), 2).data() == "50 % · 1.0 of 2.0 KiB · 512 B/s · 2 s left"
    model.apply_events([{"type": "job.deleted", "seq": 13, "job": upload(500, "succeeded")}])
    assert model.row_of(500) is None
    assert model.clear_finished() == MAX_FINISHED - 1 and model.rowCount() == 1
    qtmodeltester.check(model)


def test_the_transfers_window_retries_now_and_cancels_an_upload_that_keeps_failing(
    qtbot: Any, failing_upload: tuple[Any, dict[str, Any]]
) -> None:
    window, job = failing_upload
    view = window.open_transfers()
    qtbot.waitUntil(lambda: view.loaded and view.model.job_at(0).get("status") == "retrying", timeout=60_000)
    assert view.model.index(0, 3).data().startswith("Retry in ")
    qtbot.waitUntil(lambda: view.table.selectionModel().hasSelection())  # the first row, ready for the buttons
    assert view.retry_button.isEnabled() and view.cancel_button.isEnabled() and not view.open_button.isEnabled()
    view.retry_button.click()
    qtbot.waitUntil(lambda: view.model.job_at(0).get("attempts") == 2 and view.model.job_at(0)["status"] == "retrying",
                    timeout=60_000)  # fmt: skip
    assert "Started again: 1 upload" in view.message.text()
    view.cancel_button.click()
    qtbot.waitUntil(lambda: view.model.job_at(0).get("status") == "canceled")
    assert view.model.index(0, 3).data() == "Canceled" and not view.cancel_button.isEnabled()
    assert wait_status(qtbot, window, job["id"], "canceled")


def test_the_transfers_window_cancels_a_running_upload(
    qtbot: Any, make_window: Any, s3_env: str, tmp_path: Path
) -> None:
    window = make_window()
    job = run(qtbot, window.connection.request("create", job_type="upload_file",
                                               parameters={"path": str(a_file(tmp_path, 16 * MiB))}))  # fmt: skip
    view = window.open_transfers()
    qtbot.waitUntil(lambda: view.loaded and view.model.job_at(0).get("status") == "running", timeout=30_000)
    qtbot.waitUntil(lambda: view.table.selectionModel().hasSelection())
    assert view.cancel_button.isEnabled()  # a running upload can be canceled: the engine's rules say so
    view.cancel_button.click()
    qtbot.waitUntil(lambda: view.model.job_at(0).get("status") == "canceled", timeout=30_000)
    assert view.model.index(0, 3).data() == "Canceled" and not view.cancel_button.isEnabled()
    assert "Canceled: 1 upload; 1 running: asked to stop" in view.message.text()
    assert wait_status(qtbot, window, job["id"], "canceled")["attempts"] == 1
    asked = {**view.model.job_at(0), "status": "running"}  # as the row reads between the request and the stop
    assert view.model.status_text(asked) == "Canceling"
