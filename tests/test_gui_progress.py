"""Progress and state in the window, against a real worker uploading to moto's S3 server: the table's progress bar,
the detail panel in words (progress, sizes, the attempts, "Retry in … · Retry now", the error's Copy button)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QItemSelectionModel, QRect, Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QApplication, QStyleOptionViewItem
from servers import S3Server
from test_gui_support import *  # noqa: F403  (fixtures)
from test_gui_support import QT_LOG_IGNORE, run, wait_status

from desktop.models.jobs import Col
from desktop.views.detail_panel import WORKER_DOWN
from desktop.widgets.theme import status_color
from engine.config import save_settings

pytestmark = QT_LOG_IGNORE
__all__ = ["failing_upload", "s3_env"]  # the fixtures other window tests share
MiB = 1024**2


@pytest.fixture
def s3_env(gui_env: Path, s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The worker the window starts uploads to moto, at 2 MiB/s so that an 8 MiB file runs for a few seconds."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3Server.ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3Server.SECRET_KEY)
    save_settings({"s3_endpoint_url": s3_server.endpoint_url, "s3_path_style": True, "s3_bucket": s3_bucket,
                   "multipart_threshold_bytes": 5 * MiB, "multipart_part_bytes": 5 * MiB,
                   "bandwidth_limit_bytes_s": 2 * MiB})  # fmt: skip
    return s3_bucket


def select(window: Any, job_id: int) -> None:
    index = window.model.index(window.model.row_of(job_id), 0)
    flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
    window.table.selectionModel().select(index, flags)


def a_file(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "report.bin"
    path.write_bytes(random.Random(3).randbytes(size))
    return path


def running_color_width(window: Any, row: int) -> int:
    """How wide the progress cell's bar is filled, in pixels of the running colour along the cell's middle line."""
    table = window.table
    rect = QRect(0, 0, table.columnWidth(Col.OUTCOME), table.rowHeight(row))
    image = QImage(rect.size(), QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    option = QStyleOptionViewItem()
    option.initFrom(table)
    option.rect = rect
    painter = QPainter(image)
    table.itemDelegateForColumn(Col.OUTCOME).paint(painter, option, window.model.index(row, Col.OUTCOME))
    painter.end()
    running = status_color("running").rgb()
    y = rect.height() // 2
    return sum(1 for x in range(rect.width()) if image.pixel(x, y) == running)


def test_a_running_upload_shows_bytes_rate_and_time_left_in_the_table_and_the_detail_panel(
    qtbot: Any, make_window: Any, s3_env: str, tmp_path: Path
) -> None:
    window = make_window()
    path = a_file(tmp_path, 8 * MiB)
    job = run(qtbot, window.connection.request("create", job_type="upload_file", parameters={"path": str(path)}))
    wait_status(qtbot, window, job["id"], "running")
    select(window, job["id"])
    row = window.model.row_of(job["id"])

    def measured() -> bool:
        progress = window.model.progress_at(row) or {}
        return bool(progress.get("rate")) and progress.get("eta_s") is not None and progress["done"] > MiB

    qtbot.waitUntil(measured, timeout=20_000)
    progress = window.model.progress_at(row)
    assert progress["total"] == 8 * MiB and progress["unit"] == "bytes"
    tooltip = window.model.index(row, Col.OUTCOME).data(3)
    assert "of 8.0 MiB" in tooltip and "MiB/s" in tooltip and "left" in tooltip
    # a real bar across the cell, not a sliver beside the text: past 1 MiB of 8, more than an eighth of it is filled
    window.table.setColumnWidth(Col.OUTCOME, 400)
    assert running_color_width(window, row) > 400 // 8
    # the detail panel follows the same events: a bar and the figures in words
    panel = window.detail
    qtbot.waitUntil(lambda: panel.job is not None and panel.job["id"] == job["id"] and panel.progress_bar.isVisible())
    qtbot.waitUntil(lambda: "MiB/s" in panel.progress_label.text())
    text = panel.progress_label.text()
    assert "of 8.0 MiB" in text and "left" in text, text
    assert panel.state_label.text().startswith("Running for")
    done = wait_status(qtbot, window, job["id"], "succeeded", timeout_ms=30_000)
    assert done["result"]["size"] == 8 * MiB
    qtbot.waitUntil(lambda: (panel.job or {}).get("status") == "succeeded")
    assert not panel.progress_bar.isVisible()
    shown = panel.browser.toPlainText()
    assert "8.0 MiB" in shown and f"s3://{s3_env}/report.bin" in shown and "in 2 parts" in shown
    for raw in ("mtime_ns", "in_place", "job_tag", "etag", "bytes_sent_this_attempt", "{"):
        assert raw not in shown, raw
    assert "Attempt 1 succeeded after" in shown
    assert panel.state_label.text().startswith("Succeeded")
    assert panel.copy_link_button.isVisible() and not panel.copy_error_button.isVisible()


@pytest.fixture
def failing_upload(
    qtbot: Any, make_window: Any, gui_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, dict[str, Any]]:
    """A window and an upload whose attempts all fail at once (nothing listens on port 9), each next one up to a
    day away (full jitter): a job that stays retrying."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3Server.ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3Server.SECRET_KEY)
    save_settings({"s3_endpoint_url": "http://127.0.0.1:9", "s3_path_style": True, "s3_bucket": "nowhere",
                   "retry_base_s": 86_400, "retry_cap_s": 86_400})  # fmt: skip
    window = make_window()
    path = a_file(tmp_path, 1000)
    job = run(qtbot, window.connection.request("create", job_type="upload_file", parameters={"path": str(path)},
                                               max_retries=5))  # fmt: skip
    return window, job


def test_a_retrying_job_counts_down_and_retry_now_runs_its_next_attempt(
    qtbot: Any, failing_upload: tuple[Any, dict[str, Any]]
) -> None:
    window, job = failing_upload
    wait_status(qtbot, window, job["id"], "retrying", timeout_ms=60_000)
    select(window, job["id"])
    panel = window.detail
    qtbot.waitUntil(lambda: (panel.job or {}).get("status") == "retrying" and panel.run_now_button.isVisible())
    assert panel.state_label.text().startswith("Retry in "), panel.state_label.text()
    assert panel.run_now_button.text() == "Retry now"
    # from the table, Tab reaches Retry now first
    window.activateWindow()
    window.table.setFocus()
    qtbot.waitUntil(window.table.hasFocus)
    qtbot.keyClick(window.table, Qt.Key.Key_Tab)
    assert QApplication.focusWidget() is panel.run_now_button
    shown = panel.browser.toPlainText()
    assert "Attempt 1 failed after" in shown and "retry planned" in shown and "Attempt 2 planned" in shown
    # the error, whole, on the clipboard
    assert panel.copy_error_button.isVisible()
    panel.copy_error_button.click()
    assert QApplication.clipboard().text() == panel.job["error"] and "upload failed" in panel.job["error"]
    # Retry now: the second attempt runs at once (and fails the same way), the first one still counted
    panel.run_now_button.click()
    qtbot.waitUntil(lambda: (panel.job or {}).get("attempts") == 2 and panel.job["status"] == "retrying",
                    timeout=60_000)  # fmt: skip
    assert any("will run now" in m for m in window.messages)
    shown = panel.browser.toPlainText()
    assert "Run now" in shown and "Attempt 2 failed after" in shown


def test_with_the_worker_down_a_running_upload_says_so_instead_of_freezing(
    qtbot: Any, make_window: Any, gui_env: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert

    from engine.config import Paths
    from engine.storage.repository import JOBS, Ledger

    now = datetime.now(UTC)
    with Ledger(Paths(gui_env).database_url()).engine.begin() as conn:  # an upload some worker is running (lease held)
        conn.execute(insert(JOBS), [{"job_type": "upload_file", "status": "running", "priority": 0, "max_retries": 3,
                                     "attempts": 1, "schedule_type": "immediate", "created_at": now,
                                     "parameters": {"path": "/data/big.iso", "bucket": "b", "key": "big.iso",
                                                    "size": 100 * MiB},
                                     "started_at": now, "heartbeat_at": now + timedelta(hours=1),
                                     "worker_id": "elsewhere"}])  # fmt: skip
    window = make_window()
    select(window, 1)
    transfers = window.open_transfers()
    qtbot.waitUntil(lambda: transfers.loaded and transfers.model.rowCount() == 1)
    panel = window.detail
    qtbot.waitUntil(lambda: (panel.job or {}).get("id") == 1)
    progress = {"done": 69 * MiB, "total": 100 * MiB, "unit": "bytes", "rate": 2.0 * MiB, "eta_s": 15.5}
    window.connection.progress.emit({"type": "job.progress", "job_id": 1, "progress": progress})
    qtbot.waitUntil(lambda: panel.progress_bar.isVisible() and transfers.model.progress(transfers.model.job_at(0)))
    assert transfers.model.index(0, 3).data() == "Uploading"
    run(qtbot, window.supervisor.stop(window.worker_control.shutdown_request), timeout_ms=40_000)
    qtbot.waitUntil(lambda: panel.state_label.text() == WORKER_DOWN, timeout=15_000)
    assert not panel.progress_bar.isVisible()
    assert transfers.model.index(0, 3).data() == "Worker not running"
    assert transfers.model.progress(transfers.model.job_at(0)) is None
    window.supervisor.start()
    qtbot.waitUntil(lambda: window.badge.state == "connected", timeout=30_000)
    qtbot.waitUntil(lambda: panel.state_label.text().startswith("Running for"))
    assert transfers.model.index(0, 3).data() == "Uploading"


def test_cancel_on_a_running_upload_says_it_is_canceling_until_its_worker_cancels_it(
    qtbot: Any, make_window: Any, s3_env: str, tmp_path: Path
) -> None:
    """Cancel applies to a running job (the engine's rules say so); the row and the detail panel say "Canceling"
    while the worker stops the upload, and the job then ends canceled, its timeline showing the request."""
    window = make_window()
    path = a_file(tmp_path, 16 * MiB)
    job = run(qtbot, window.connection.request("create", job_type="upload_file", parameters={"path": str(path)}))
    wait_status(qtbot, window, job["id"], "running")
    select(window, job["id"])
    qtbot.waitUntil(lambda: window.cancel_action.isEnabled())
    run(qtbot, window.cancel_selected())
    assert window.meta.stop_note in window.messages[-1]
    row = window.model.row_of(job["id"])
    qtbot.waitUntil(
        lambda: (
            window.model.cell(row, Col.STATUS) in ("Canceling", "Canceled")
            and window.detail.state_label.text().startswith(("Canceling: running for", "Canceled"))
        )
    )
    done = wait_status(qtbot, window, job["id"], "canceled")
    assert done["attempts"] == 1 and window.model.cell(window.model.row_of(job["id"]), Col.STATUS) == "Canceled"
    qtbot.waitUntil(lambda: "Cancel requested" in window.detail.browser.toPlainText())
