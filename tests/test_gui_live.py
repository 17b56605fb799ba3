"""The window against a real worker it starts itself: live rows, actions on selections, the worker badge, the tray."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QItemSelectionModel
from test_gui_support import *  # noqa: F403  (fixtures)
from test_gui_support import QT_LOG_IGNORE, email, run, wait_status

from engine.config import save_settings

pytestmark = QT_LOG_IGNORE


def select(window: Any, *job_ids: int) -> None:
    selection = window.table.selectionModel()
    selection.clearSelection()
    for job_id in job_ids:
        index = window.model.index(window.model.row_of(job_id), 0)
        selection.select(index, QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows)


def later() -> str:
    return (datetime.now(UTC) + timedelta(hours=2)).isoformat()


def test_rows_follow_a_real_worker_without_reloading(qtbot: Any, make_window: Any, smtp_server: Any) -> None:
    save_settings({"smtp_host": "127.0.0.1", "smtp_port": smtp_server.port})
    window = make_window()
    assert window.supervisor.owned and window.badge.state == "connected"
    assert window.empty_label.isVisible() and "Drop files here" in window.empty_label.text()
    resets: list[int] = []
    window.model.modelReset.connect(lambda: resets.append(1))
    seen: dict[int, list[str]] = {}
    window.live.events_applied.connect(
        lambda events: [seen.setdefault(e["job"]["id"], []).append(e["job"]["status"]) for e in events]
    )
    create = window.connection.request
    ids = [
        run(qtbot, create("create", job_type="send_email", parameters=email(f"u{i}@example.com")))["id"]
        for i in range(3)
    ]
    for job_id in ids:
        job = wait_status(qtbot, window, job_id, "succeeded")
        assert job["result"]["recipients"]
    assert all(seen[i][0] == "pending" and seen[i][-2:] == ["running", "succeeded"] for i in ids), seen
    assert not resets  # no reload: every change came as an event
    assert not window.empty_label.isVisible()
    assert len(smtp_server.wait_for(3)) == 3
    qtbot.waitUntil(lambda: "Succeeded 3" in window.filter_bar.buttons["succeeded"].text())
    # the detail panel shows the history of the selected job
    select(window, ids[0])
    qtbot.waitUntil(lambda: window.detail.job is not None and bool(window.detail.job.get("history")))
    assert [h["type"] for h in window.detail.job["history"]] == ["created", "started", "succeeded"]


def test_cancel_retry_run_now_delete_and_clone(qtbot: Any, make_window: Any) -> None:
    window = make_window()
    request = window.connection.request
    first = run(qtbot, request("create", job_type="send_email", parameters=email(), scheduled_time=later()))
    second = run(qtbot, request("create", job_type="send_email", parameters=email("b@example.com"),
                                scheduled_time=later(), max_retries=0))  # fmt: skip
    wait_status(qtbot, window, second["id"], "scheduled")
    # cancel both
    select(window, first["id"], second["id"])
    assert window.cancel_action.isEnabled()
    run(qtbot, window.cancel_selected())
    wait_status(qtbot, window, first["id"], "canceled")
    wait_status(qtbot, window, second["id"], "canceled")
    # retry one: it runs against a closed SMTP port and fails for good (max_retries 0)
    select(window, second["id"])
    qtbot.waitUntil(window.retry_action.isEnabled)
    run(qtbot, window.retry_selected())
    failed = wait_status(qtbot, window, second["id"], "failed")
    assert "127.0.0.1:9" in failed["error"]
    assert any("failed" in m for m in window.messages)  # the operator is told (no tray offscreen)
    # retry all failed asks with the count first
    asked: list[str] = []
    window.confirm = lambda _title, text: asked.append(text) or False
    assert run(qtbot, window.retry_all_failed()) == 0
    assert asked == ["Retry 1 failed jobs?"]
    # clone and edit: the form opens prefilled
    select(window, first["id"])
    dialog = window.clone_selected()
    assert dialog.fields["recipient"].value() == "ops@example.com"
    assert dialog.fields["subject"].value() == "Report"
    dialog.fields["subject"].set_value("Report (again)")
    dialog.schedule.at_radio.setChecked(True)
    clone = run(qtbot, dialog.submit())
    assert clone["id"] not in (first["id"], second["id"]) and clone["status"] == "scheduled"
    wait_status(qtbot, window, clone["id"], "scheduled")
    # run now: the scheduled clone leaves "scheduled" at once
    select(window, clone["id"])
    run(qtbot, window.run_now_selected())
    qtbot.waitUntil(lambda: window.model.job(clone["id"])["status"] != "scheduled", timeout=10_000)
    # delete (confirmed) removes the rows
    window.confirm = lambda _title, _text: True
    select(window, first["id"])
    run(qtbot, window.delete_selected())
    qtbot.waitUntil(lambda: window.model.job(first["id"]) is None)
    assert window.model.row_of(first["id"]) is None


def test_filters_and_search_go_to_the_server(qtbot: Any, make_window: Any) -> None:
    window = make_window()
    request = window.connection.request
    a = run(qtbot, request("create", job_type="send_email", parameters=email("alice@example.com"),
                           scheduled_time=later()))  # fmt: skip
    run(qtbot, request("create", job_type="send_email", parameters=email("bob@example.com"), scheduled_time=later()))
    qtbot.waitUntil(lambda: window.model.rowCount() == 2)
    window.filter_bar.search.setText("alice")
    qtbot.waitUntil(lambda: window.model.rowCount() == 1 and window.model.filter.search == "alice")
    assert window.model.job(a["id"]) is not None
    # a new matching job appears live; a non-matching one does not
    c = run(qtbot, request("create", job_type="send_email", parameters=email("alice2@example.com"),
                           scheduled_time=later()))  # fmt: skip
    run(qtbot, request("create", job_type="send_email", parameters=email("carol@example.com"), scheduled_time=later()))
    qtbot.waitUntil(lambda: window.model.job(c["id"]) is not None)
    assert window.model.rowCount() == 2
    window.filter_bar.search.clear()
    window.filter_bar.select_status("canceled")
    qtbot.waitUntil(lambda: window.model.filter.statuses == ("canceled",) and not window.live.loading)
    assert window.model.rowCount() == 0 and window.empty_label.text() == "No jobs match these filters."


def test_the_running_again_message_names_the_new_worker_not_the_last_report_of_the_dead_one(
    qtbot: Any, make_window: Any
) -> None:
    """The connection can serve again before the new worker has reported itself: the pid the dead worker last
    reported is dropped when the connection is lost, and the message waits for the new pid."""
    window = make_window()
    qtbot.waitUntil(lambda: window.supervisor.pid is not None)
    control = window.worker_control
    control.worker = {**control.worker, "pid": 1}  # the dead worker's last report
    control._on_supervisor_crashed("the worker stopped unexpectedly; restarting it in 1 s")
    control._on_connection_state_changed("reconnecting")
    control._on_connection_state_changed("connected")
    assert window.messages[-1] == f"The worker is running again (pid {window.supervisor.pid})."


def test_badge_follows_a_worker_that_is_killed_and_restarted(qtbot: Any, make_window: Any) -> None:
    window = make_window()
    qtbot.waitUntil(lambda: window.supervisor.pid is not None)  # the event stream may connect before its poll
    first_pid = window.supervisor.pid
    assert first_pid and window.badge.state == "connected"
    states: list[str] = []
    window.connection.state_changed.connect(lambda _s: states.append(window.badge.state))
    os.kill(first_pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: "reconnecting" in states, timeout=10_000)
    qtbot.waitUntil(lambda: any("stopped unexpectedly" in m for m in window.messages), timeout=10_000)
    qtbot.waitUntil(lambda: window.badge.state == "connected" and window.supervisor.pid not in (None, first_pid),
                    timeout=30_000)  # fmt: skip
    assert window.supervisor.restarts == 1
    # the status bar no longer says the worker is being restarted once it serves again
    qtbot.waitUntil(lambda: window.statusBar().currentMessage().startswith("The worker is running again (pid"))
    assert str(window.supervisor.pid) in window.statusBar().currentMessage()
    # the stream resumed: a job created now still shows up live
    job = run(qtbot, window.connection.request("create", job_type="send_email", parameters=email(),
                                               scheduled_time=later()))  # fmt: skip
    wait_status(qtbot, window, job["id"], "scheduled")
    # stop from the badge menu: the badge says stopped and nothing restarts it
    window.badge.stop_action.trigger()
    qtbot.waitUntil(lambda: window.badge.state == "stopped" and window.supervisor.state == "stopped", timeout=30_000)
    qtbot.wait(1500)  # several supervisor checks: none restarts a worker the operator stopped
    assert window.badge.state == "stopped" and window.supervisor.state == "stopped"
    window.badge.start_action.trigger()
    qtbot.waitUntil(lambda: window.badge.state == "connected", timeout=30_000)


def test_tray_menu_pause_resume_show_upload_and_quit(
    qtbot: Any, make_window: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    window = make_window()
    tray = window.tray
    assert [a.text() for a in tray.menu.actions() if a.text()] == [
        "Show Jobdeck",
        "New upload…",
        "Pause worker",
        "Quit",
    ]
    tray.pause_action.trigger()
    qtbot.waitUntil(lambda: window.badge.state == "paused")
    assert tray.pause_action.text() == "Resume worker"
    tray.pause_action.trigger()
    qtbot.waitUntil(lambda: window.badge.state == "connected")
    window.hide()
    tray.show_action.trigger()
    assert window.isVisible()
    file = tmp_path / "photo.jpg"
    file.write_bytes(b"jpeg")
    from desktop.views.upload_picker import UploadPicker

    monkeypatch.setattr(UploadPicker, "choose", lambda *a, **k: [str(file)])
    opened: list[Any] = []
    monkeypatch.setattr(window, "drop_sheet", lambda paths: opened.append(paths) or _Sheet())
    tray.upload_action.trigger()
    assert opened == [[str(file)]]
    # a notification click opens the job
    job = run(qtbot, window.connection.request("create", job_type="send_email", parameters=email(),
                                               scheduled_time=later()))  # fmt: skip
    wait_status(qtbot, window, job["id"], "scheduled")
    tray.last_job_id = job["id"]
    tray._on_icon_message_clicked()
    assert window.selected_ids() == [job["id"]]
    # quit with the remembered choice "stop": the worker stops gracefully
    save_settings({"on_quit": "stop"})  # as `jobdeck config set` does: the worker tells the window
    qtbot.waitUntil(lambda: window.settings.on_quit == "stop", timeout=10_000)
    qtbot.waitUntil(lambda: window.supervisor.pid is not None)  # learnt from worker.json on its next check
    pid = window.supervisor.pid
    finished: list[bool] = []
    window.quit_finished.connect(lambda: finished.append(True))
    tray.quit_action.trigger()
    qtbot.waitUntil(lambda: bool(finished), timeout=40_000)
    assert window.supervisor.state == "stopped"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


class _Sheet:
    def open(self) -> None:
        pass


def test_a_job_asked_for_by_id_is_selected_even_when_the_filter_hides_it(qtbot: Any, make_window: Any) -> None:
    """The tray, the Transfers window and a schedule's runs ask for a job by id: the window clears a filter that
    hides it, and selects it once the view holding it is read (not only when its row happens to be loaded)."""
    window = make_window()
    request = window.connection.request
    hidden = run(qtbot, request("create", job_type="send_email", parameters=email("alice@example.com"),
                                scheduled_time=later()))  # fmt: skip
    run(qtbot, request("create", job_type="send_email", parameters=email("bob@example.com"), scheduled_time=later()))
    window.filter_bar.search.setText("bob")
    qtbot.waitUntil(lambda: window.model.filter.search == "bob" and not window.live.loading)
    assert window.model.rowCount() == 1 and window.model.row_of(hidden["id"]) is None
    window.show_job(hidden["id"])
    qtbot.waitUntil(lambda: window.selected_ids() == [hidden["id"]], timeout=20_000)
    assert window.model.filter.search == "" and window.filter_bar.search.text() == ""
    assert window.model.rowCount() == 2
    qtbot.waitUntil(lambda: (window.detail.job or {}).get("id") == hidden["id"])


def test_a_storm_of_finished_jobs_is_a_few_notifications_not_one_per_job(qtbot: Any) -> None:
    from desktop.views.tray import TrayController

    tray = TrayController()
    tray._quiet.setInterval(300)
    job = {"job_type": "noop", "status": "failed", "parameters": {}, "error": "connection refused"}
    tray.notify({**job, "id": 1})
    assert tray.shown == [("Job 1 failed", "connection refused")]  # the first one at once
    for job_id in range(2, 7):
        tray.notify({**job, "id": job_id, "status": "succeeded" if job_id == 4 else "failed"})
    assert len(tray.shown) == 1 and tray.last_job_id == 6  # the others wait for the quiet time to end
    qtbot.waitUntil(lambda: len(tray.shown) == 2, timeout=5_000)
    title, text = tray.shown[1]
    assert title == "4 jobs failed, 1 job succeeded"
    assert text.splitlines() == ["Job 4 succeeded", "Job 5 failed: connection refused",
                                 "Job 6 failed: connection refused", "and 2 more"]  # fmt: skip
    qtbot.wait(700)  # a quiet time with nothing new shows nothing
    assert len(tray.shown) == 2
    tray.notify({**job, "id": 7})  # after it, the next one shows at once again
    assert tray.shown[-1] == ("Job 7 failed", "connection refused")
    tray.dispose()
