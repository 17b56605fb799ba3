"""The Schedules window on the real worker: lists schedules in plain language; pause, resume and run now."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_gui_support import *  # noqa: F403  (fixtures)
from test_gui_support import QT_LOG_IGNORE

from engine.config import Paths
from engine.credentials import MemoryStore
from engine.operations import Operations

pytestmark = QT_LOG_IGNORE


def test_the_schedules_window_lists_and_pauses_resumes_and_runs_now(
    qtbot: Any, make_window: Any, gui_env: Path
) -> None:
    ops = Operations(Paths(gui_env), store=MemoryStore())
    try:
        schedule = ops.schedules.add(
            "send_email", {"recipient": "ops@example.com", "subject": "Report", "body": "…"},
            cron="0 9 * * 1-5", name="weekday report", tz="Europe/Berlin",
        )  # fmt: skip
        window = make_window()
        view = window.open_schedules()
        qtbot.waitUntil(lambda: view.table.rowCount() == 1, timeout=30_000)
        cells = [view.table.item(0, col).text() for col in range(view.table.columnCount())]
        assert cells[1] == "weekday report" and cells[3] == "At 09:00, Monday through Friday (Europe/Berlin)"
        assert cells[5] == "Active" and cells[4]
        view.table.selectRow(0)
        view.buttons["Pause"].click()
        qtbot.waitUntil(lambda: view.table.item(0, 5).text().startswith("Paused"), timeout=30_000)
        assert ops.schedules.get(schedule["id"])["paused"]
        view.buttons["Run now"].click()
        qtbot.waitUntil(lambda: len(ops.ledger.schedule_runs(schedule["id"])) == 1, timeout=30_000)
        view.table.selectRow(0)
        view.buttons["Resume"].click()
        qtbot.waitUntil(lambda: view.table.item(0, 5).text() == "Active", timeout=30_000)
        assert not ops.schedules.get(schedule["id"])["paused"]
    finally:
        ops.ledger.close()


def test_a_failed_run_of_a_schedule_is_notified_naming_the_schedule(qtbot: Any) -> None:
    from desktop.views.tray import TrayController

    tray = TrayController()
    job = {"id": 12, "job_type": "noop", "status": "failed", "parameters": {}, "error": "boom", "schedule_id": 3}
    assert tray.notify(job).startswith("Job 12 failed (schedule 3): ")
    assert tray.notify({**job, "schedule_id": None}).startswith("Job 12 failed: ")
    tray.dispose()
