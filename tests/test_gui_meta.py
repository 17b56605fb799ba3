"""The window asks the engine instead of copying its rules: statuses, actions, labels and summaries come from the
worker's `meta`, and for every status no action is enabled that the engine refuses (and none it allows is off)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QItemSelectionModel
from test_gui_support import *  # noqa: F403  (fixtures)
from test_gui_support import QT_LOG_IGNORE, run, wait_status

from engine.config import save_settings
from engine.errors import JobdeckError

pytestmark = QT_LOG_IGNORE

ACTIONS = ("retry", "cancel", "run_now", "delete")


def select(window: Any, job_id: int) -> None:
    selection = window.table.selectionModel()
    selection.clearSelection()
    index = window.model.index(window.model.row_of(job_id), 0)
    selection.select(index, QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows)


def later() -> str:
    return (datetime.now(UTC) + timedelta(hours=2)).isoformat()


@pytest.fixture
def noop_window(make_window: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A window whose worker also runs the ``noop`` type (it sleeps or fails on request)."""
    monkeypatch.setenv("JOBDECK_JOB_MODULES", "bench.noop_jobs")
    save_settings({"shutdown_grace_s": 1})  # the running job must not hold the teardown
    return make_window()


def test_no_action_is_enabled_that_the_engine_refuses_for_any_status(qtbot: Any, noop_window: Any) -> None:
    window = noop_window
    request = window.connection.request
    meta = window.meta
    engine_meta = run(qtbot, request("meta"))
    assert meta.status_names == tuple(s["name"] for s in engine_meta["statuses"])
    assert list(window.filter_bar.buttons) == ["", *meta.status_names]  # the pills are the engine's, in its order

    def create(**params: Any) -> int:
        extra = {k: params.pop(k) for k in ("scheduled_time", "max_retries", "retry_base_s") if k in params}
        return int(run(qtbot, request("create", job_type="noop", parameters=params, **extra))["id"])

    jobs = {
        "running": create(sleep_s=60),
        "retrying": create(fail=True, max_retries=5, retry_base_s=3600),
        "failed": create(permanent=True),
        "succeeded": create(),
        "scheduled": create(scheduled_time=later()),
        "canceled": create(scheduled_time=later()),
    }
    run(qtbot, request("cancel", job_id=jobs["canceled"]))
    for status, job_id in jobs.items():
        wait_status(qtbot, window, job_id, status)
    run(qtbot, request("pause"))
    qtbot.waitUntil(lambda: window.badge_state == "paused", timeout=10_000)
    jobs["pending"] = create()
    wait_status(qtbot, window, jobs["pending"], "pending")
    assert set(jobs) == set(meta.status_names)  # every status the engine knows is covered
    # the paused banner counts what the engine says a paused worker holds back
    waiting = sum(1 for s in meta.waiting if s in jobs)
    qtbot.waitUntil(lambda: f"{waiting} job" in window.paused_banner.label.text(), timeout=10_000)
    named = {"retry": window.retry_action, "cancel": window.cancel_action, "run_now": window.run_now_action,
             "delete": window.delete_action}  # fmt: skip
    for status, job_id in jobs.items():
        select(window, job_id)
        assert window.model.job(job_id)["status"] == status
        row = window.model.row_of(job_id)
        assert window.model.cell(row, 3) == meta.status_label(status)  # the engine's label
        for action in ACTIONS:
            enabled = named[action].isEnabled()
            counted = run(qtbot, request("bulk", action=action, dry_run=True, ids=[job_id]))
            assert enabled == bool(counted["applicable"]), (status, action, enabled, counted)
            if not enabled and action != "delete":  # the engine itself refuses what the window does not offer
                with pytest.raises(JobdeckError):
                    run(qtbot, request(action, job_id=job_id))
        # the detail panel offers "Run now" / "Retry now" exactly where the engine allows run_now
        qtbot.waitUntil(lambda j=job_id: (window.detail.job or {}).get("id") == j, timeout=10_000)
        assert window.detail.run_now_button.isVisible() == window.run_now_action.isEnabled(), status
    assert window.model.job(jobs["running"])["status"] == "running"


def test_labels_summaries_and_first_run_setup_come_from_the_engine(
    qtbot: Any, make_window: Any, gui_env: Path, jobdeck: Any
) -> None:
    window = make_window()
    meta = window.meta
    # S3 is not set up in this data folder: the bar says so and offers Settings; email is (gui_env)
    assert window.setup_bar.isVisible() and "no default S3 bucket is set" in window.setup_bar.text
    assert "Upload file to S3" in window.setup_bar.text and "SMTP" not in window.setup_bar.text
    opened: list[Any] = []
    window.open_settings = lambda: opened.append(True)  # type: ignore[method-assign]
    window.setup_bar.open_settings.disconnect()
    window.setup_bar.open_settings.connect(window.open_settings)
    window.setup_bar.button.click()
    assert opened == [True]
    # the New job dialog says so before anything is created
    dialog = window.open_new_job()
    dialog.type_combo.setCurrentIndex(dialog.type_combo.findData("upload_file"))
    assert dialog.setup_warning.isVisible() and "no default S3 bucket" in dialog.setup_warning.text()
    dialog.type_combo.setCurrentIndex(dialog.type_combo.findData("send_email"))
    assert not dialog.setup_warning.isVisible()
    dialog.close()
    # a setting made with the CLI clears the bar at once (the worker's settings.changed, then `meta`)
    assert jobdeck("config", "set", "s3_bucket", "reports").returncode == 0
    qtbot.waitUntil(lambda: not window.setup_bar.isVisible(), timeout=10_000)
    qtbot.waitUntil(lambda: window.settings.s3_bucket == "reports", timeout=10_000)
    # rows are labelled and summarised from the type's own summary fields
    job = run(qtbot, window.connection.request("create", job_type="send_email", scheduled_time=later(),
                                               parameters={"recipient": "ops@example.com", "subject": "Report",
                                                           "body": "Hi"}))  # fmt: skip
    wait_status(qtbot, window, job["id"], "scheduled")
    row = window.model.row_of(job["id"])
    assert window.model.cell(row, 1) == meta.type_label("send_email") == "Email"
    assert window.model.cell(row, 2) == "ops@example.com — Report"
    assert meta.summary(job) == "ops@example.com — Report"
