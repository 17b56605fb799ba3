"""Schedules in the window, on a real worker: the editor (rule previewed and judged by the engine, the New job form
as its template, create and edit), "Repeat…" and "Make recurring…", and the Schedules view (recent runs, pause
until a time, resume, run now, duplicate, delete with confirmation)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QDateTime, QItemSelectionModel, Qt
from test_gui_support import *  # noqa: F403  (fixtures)
from test_gui_support import QT_LOG_IGNORE, email, run

from desktop.models import format as fmt
from desktop.views.schedules_view import COLUMN
from engine.config import Paths
from engine.credentials import MemoryStore
from engine.errors import ValidationError
from engine.operations import Operations
from engine.schedule_rules import parse_rule

pytestmark = QT_LOG_IGNORE


@pytest.fixture
def ops(gui_env: Path) -> Any:
    """The test's own view of the ledger the window's worker serves (to set up and to check what was stored)."""
    operations = Operations(Paths(gui_env), store=MemoryStore())
    yield operations
    operations.ledger.close()


def engine_message(text: str) -> str:
    with pytest.raises(ValidationError) as caught:
        parse_rule(text)
    return caught.value.message


def ready(qtbot: Any, make_window: Any) -> Any:
    """The window, once its worker has said which job types it runs (the forms are built from them)."""
    window = make_window()
    qtbot.waitUntil(lambda: bool(window.types), timeout=30_000)
    return window


def type_into(qtbot: Any, widget: Any, text: str) -> None:
    widget.setFocus()
    widget.selectAll()
    qtbot.keyClick(widget, Qt.Key.Key_Delete)
    qtbot.keyClicks(widget, text)


def fill_email(editor: Any, **values: str) -> None:
    for name, value in {**email(), **values}.items():
        editor.fields[name].set_value(value)


def test_the_editor_previews_the_rule_judges_it_when_left_and_creates_and_edits_a_schedule(
    qtbot: Any, make_window: Any, ops: Any
) -> None:
    window = ready(qtbot, make_window)
    editor = window.open_schedule_editor()
    editor.activateWindow()
    qtbot.waitUntil(lambda: editor.options_task is not None and editor.options_task.done(), timeout=30_000)
    assert editor.catch_up.currentData() == "once" and editor.overlap.currentData() == "skip"
    assert not editor.submit_button.isEnabled()
    assert editor.reason.text() == "Fill in Recipient, Subject and Body to save the schedule."
    fill_email(editor)
    assert editor.reason.text() == "Type a rule to save the schedule: 0 9 * * 1-5, @daily or every 15 min."

    # As the user types, the engine's preview: the rule in words and its next 5 runs in this computer's time.
    type_into(qtbot, editor.rule, "every 5 min")
    qtbot.waitUntil(lambda: editor.preview is not None and editor.preview["rule"] == "every 5m", timeout=30_000)
    assert editor.description_label.text().startswith("Every 5 minutes (")
    lines = editor.next_runs.text().splitlines()
    assert len(lines) == 5
    assert [line.split(" (")[0] for line in lines] == [
        fmt.local_time(when, seconds=False) for when in editor.preview["next_runs"]
    ]

    # A bad rule: nothing while typing; the engine's own message once the field is left.
    type_into(qtbot, editor.rule, "every 5x")
    qtbot.waitUntil(lambda: editor.preview_task is not None and editor.preview_task.done(), timeout=30_000)
    qtbot.wait(400)  # the pause in typing after which the editor asks the engine
    qtbot.waitUntil(editor.preview_task.done, timeout=30_000)
    assert not editor.rule_error.isVisible() and editor.next_runs.text() == ""
    editor.tz.setFocus()
    qtbot.waitUntil(editor.rule_error.isVisible, timeout=30_000)
    assert editor.rule_error.text() == engine_message("every 5x")
    # Once shown, the line follows what is typed at once: fixed, it goes.
    type_into(qtbot, editor.rule, "0 9 * * 1-5")
    qtbot.waitUntil(lambda: not editor.rule_error.isVisible(), timeout=30_000)
    assert editor.description_label.text().startswith("At 09:00, Monday through Friday")

    # An unknown zone is the engine's message too, under the zone.
    type_into(qtbot, editor.tz, "Mars/Olympus")
    editor.name.setFocus()
    qtbot.waitUntil(editor.tz_error.isVisible, timeout=30_000)
    assert "unknown time zone 'Mars/Olympus'" in editor.tz_error.text()
    type_into(qtbot, editor.tz, "Europe/Berlin")
    qtbot.waitUntil(lambda: not editor.tz_error.isVisible(), timeout=30_000)
    qtbot.waitUntil(lambda: "(Europe/Berlin)" in editor.description_label.text(), timeout=30_000)

    # The template is the New job form, built from the type's schema: an upload asks for its file.
    editor.type_combo.setCurrentIndex(editor.type_combo.findData("upload_file"))
    assert "path" in editor.fields and editor.reason.text() == "Fill in Path to save the schedule."
    # A type the engine says cannot be scheduled shows the engine's line first, and Save stays off.
    said = "snapshot cannot be scheduled: it prepares its input when a job is submitted and cannot check a template"
    editor.types["upload_file"] = {**editor.types["upload_file"], "schedule_refusal": said}
    editor.fields["path"].set_value("/etc/hostname")
    assert editor.reason.text() == said and not editor.submit_button.isEnabled()
    editor.type_combo.setCurrentIndex(editor.type_combo.findData("send_email"))
    assert set(editor.fields) == {"recipient", "subject", "body", "html_body"}
    fill_email(editor, subject="Weekday report")  # a new type is a new form
    editor.name.setText("weekday report")
    editor.catch_up.setCurrentIndex(editor.catch_up.findData("all"))
    assert editor.submit_button.isEnabled(), editor.reason.text()
    closed: list[int] = []
    editor.finished.connect(closed.append)
    saved = run(qtbot, editor.submit())
    (stored,) = ops.schedules.list()
    assert saved["id"] == stored["id"] and closed == [1]  # accepted and closed
    assert (stored["name"], stored["rule"], stored["tz"], stored["catch_up"], stored["overlap"]) == (
        "weekday report", "0 9 * * 1-5", "Europe/Berlin", "all", "skip",
    )  # fmt: skip
    assert stored["parameters"] == {**email(), "subject": "Weekday report"}
    assert any("Saved schedule “weekday report”" in m for m in window.messages)

    # Edit from the Schedules view: the editor opens with the schedule; a new rule and subject are saved.
    view = window.open_schedules()
    qtbot.waitUntil(lambda: view.table.rowCount() == 1, timeout=30_000)
    view.table.selectRow(0)
    view.buttons["Edit…"].click()
    edit = view_editor(qtbot, window, title="Edit schedule “weekday report”")
    assert edit.windowTitle() == "Edit schedule “weekday report”"
    assert edit.rule.text() == "0 9 * * 1-5" and edit.tz.text() == "Europe/Berlin"
    assert edit.fields["subject"].value() == "Weekday report"
    qtbot.waitUntil(lambda: edit.options_task is not None and edit.options_task.done(), timeout=30_000)
    assert edit.catch_up.currentData() == "all"
    type_into(qtbot, edit.rule, "every 2 hours")
    edit.fields["subject"].set_value("Two-hourly report")
    run(qtbot, edit.submit())
    changed = ops.schedules.get(stored["id"])
    assert (changed["rule"], changed["parameters"]["subject"], changed["tz"]) == (
        "every 2h", "Two-hourly report", "Europe/Berlin",
    )  # fmt: skip
    qtbot.waitUntil(lambda: view.table.item(0, 3).text() == "Every 2 hours (Europe/Berlin)", timeout=30_000)

    # Save with a bad rule (never left the field): the engine's message lands under the rule, nothing changes.
    view.table.selectRow(0)
    view.buttons["Edit…"].click()
    again = view_editor(qtbot, window, title="Edit schedule “weekday report”")
    again.rule.setText("61 * * * *")
    assert run(qtbot, again.submit()) is None
    assert again.rule_error.isVisible() and again.rule_error.text() == engine_message("61 * * * *")
    assert ops.schedules.get(stored["id"])["rule"] == "every 2h"
    again.reject()


def view_editor(qtbot: Any, window: Any, title: str | None = None) -> Any:
    """The schedule editor the window opened last (from a view or an action)."""
    from desktop.views.schedule_editor import ScheduleEditor

    def found() -> Any:
        editors = [w for w in window.findChildren(ScheduleEditor) if w.isVisible()]
        editors = [w for w in editors if title is None or w.windowTitle() == title]
        return editors[-1] if editors else None

    qtbot.waitUntil(lambda: found() is not None, timeout=30_000)
    return found()


def test_repeat_turns_a_new_job_into_a_schedule_and_make_recurring_copies_a_job(
    qtbot: Any, make_window: Any, ops: Any
) -> None:
    window = ready(qtbot, make_window)
    dialog = window.open_new_job()
    for name, value in email(subject="From the new job form").items():
        dialog.fields[name].set_value(value)
    dialog.priority.setValue(7)
    dialog.repeat_button.click()
    editor = dialog.repeat_editor
    assert editor is not None and editor.isVisible() and not dialog.isVisible()
    assert editor.job_type == "send_email" and editor.fields["subject"].value() == "From the new job form"
    assert editor.priority.value() == 7
    editor.reject()  # cancel: the new job form comes back as it was
    assert dialog.isVisible() and dialog.fields["subject"].value() == "From the new job form"
    dialog.repeat_button.click()
    editor = dialog.repeat_editor
    closed: list[int] = []
    dialog.finished.connect(closed.append)
    type_into(qtbot, editor.rule, "@daily")
    repeated = run(qtbot, editor.submit())
    assert repeated["rule"] == "@daily" and repeated["priority"] == 7
    assert closed == [0]  # the new job form is done with: it made a schedule, not a job
    assert ops.list()["total"] == 0  # a schedule instead of a job, not both
    assert ops.schedules.get(repeated["id"])["parameters"]["subject"] == "From the new job form"

    # Make recurring… on a job in the table (here the only one): its type and parameters, as a schedule.
    job = ops.create("send_email", email(subject="Made recurring"), scheduled_time=later(), max_retries=1)
    qtbot.waitUntil(lambda: window.model.job(job["id"]) is not None, timeout=30_000)
    selection = window.table.selectionModel()
    selection.clearSelection()
    index = window.model.index(window.model.row_of(job["id"]), 0)
    selection.select(index, QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows)
    qtbot.waitUntil(window.job_actions.make_recurring.isEnabled, timeout=10_000)
    window.job_actions.make_recurring.trigger()
    recurring = view_editor(qtbot, window, title="New schedule")
    assert recurring.fields["subject"].value() == "Made recurring" and recurring.max_retries.value() == 1
    type_into(qtbot, recurring.rule, "every hour")
    made = run(qtbot, recurring.submit())
    assert (made["rule"], made["parameters"], made["max_retries"]) == ("every 1h", job["parameters"], 1)


def later() -> str:
    return (datetime.now(UTC) + timedelta(hours=2)).isoformat()


def test_the_view_shows_recent_runs_pauses_until_a_time_resumes_runs_now_and_deletes_on_confirmation(
    qtbot: Any, make_window: Any, ops: Any
) -> None:
    schedule = ops.schedules.add(
        "send_email", email(), cron="0 9 * * 1-5", name="weekday report", tz="Europe/Berlin", max_retries=0
    )
    window = make_window()
    view = window.open_schedules()
    qtbot.waitUntil(lambda: view.table.rowCount() == 1, timeout=30_000)

    def cell(name: str) -> str:
        return str(view.table.item(0, COLUMN[name]).text())

    assert cell("Name") == "weekday report" and cell("Rule") == "At 09:00, Monday through Friday (Europe/Berlin)"
    assert cell("State") == "Active" and cell("Last run") == "never" and cell("Recent runs") == ""
    assert cell("Type") == window.meta.type_label("send_email") != "send_email"  # the engine's label, not its name
    rule_width = view.table.fontMetrics().horizontalAdvance(cell("Rule"))
    assert view.table.columnWidth(COLUMN["Rule"]) >= rule_width  # the spare width goes to the longest text
    next_run = ops.schedules.get(schedule["id"])["next_run_at"]
    assert cell("Next run").startswith(fmt.local_time(next_run, seconds=False) + " (")

    # Two runs now: each fails for good on the closed SMTP port; the row follows the events.
    view.table.selectRow(0)
    view.buttons["Run now"].click()
    qtbot.waitUntil(lambda: cell("Recent runs") == "✗", timeout=30_000)
    view.table.selectRow(0)
    view.buttons["Run now"].click()
    qtbot.waitUntil(lambda: cell("Recent runs") == "✗✗", timeout=30_000)
    assert cell("Last run").endswith(" failed")
    tip = view.table.item(0, COLUMN["Recent runs"]).toolTip().splitlines()
    runs = ops.schedules.get(schedule["id"])["runs"]
    assert [line.split("  job ")[1] for line in tip] == [f"{r['id']}  failed" for r in runs]

    # The schedule's detail lists its runs; Enter on one shows that job in the main window.
    def both_failed() -> bool:  # the pane follows the runs' events: the latest may still read Running for a moment
        table = view.runs.table
        return table.rowCount() == 2 and all("Failed" in table.item(row, 2).text() for row in range(2))

    qtbot.waitUntil(both_failed, timeout=30_000)
    shown = [view.runs.table.item(row, 0).text() for row in range(2)]
    assert shown == [str(r["id"]) for r in runs] and "weekday report" in view.runs.title.text()
    view.runs.table.setCurrentCell(1, 0)
    view.runs.table.activated.emit(view.runs.table.currentIndex())
    qtbot.waitUntil(lambda: window.detail.job is not None and window.detail.job["id"] == runs[1]["id"], timeout=30_000)

    # Pause…: a time in the past is the engine's refusal under the field; a future one pauses until then.
    view.table.selectRow(0)
    assert not view.buttons["Resume"].isEnabled()
    dialog = view.pause()
    assert dialog is not None
    dialog.note.setText("holiday")
    dialog.until_box.setChecked(True)
    dialog.until.setDateTime(QDateTime.currentDateTime().addSecs(-3600))
    assert run(qtbot, dialog.submit()) is None
    assert dialog.until_error.isVisible() and "future" in dialog.until_error.text()
    assert not ops.schedules.get(schedule["id"])["paused"]
    until = QDateTime.currentDateTime().addDays(3)
    dialog.until.setDateTime(until)
    run(qtbot, dialog.submit())
    paused = ops.schedules.get(schedule["id"])
    assert paused["paused"] and paused["pause_note"] == "holiday" and paused["paused_until"]
    qtbot.waitUntil(lambda: cell("State").startswith("Paused until "), timeout=30_000)
    assert cell("State").endswith(" — holiday")
    assert datetime.fromisoformat(paused["next_run_at"]) > datetime.fromisoformat(paused["paused_until"])

    view.table.selectRow(0)
    qtbot.waitUntil(view.buttons["Resume"].isEnabled, timeout=10_000)
    view.buttons["Resume"].click()
    qtbot.waitUntil(lambda: cell("State") == "Active", timeout=30_000)

    # Duplicate…: a new schedule filled from this one, under a new name.
    view.table.selectRow(0)
    view.buttons["Duplicate…"].click()
    copy = view_editor(qtbot, window, title="New schedule")
    assert (copy.name.text(), copy.rule.text(), copy.tz.text()) == ("weekday report (copy)", "0 9 * * 1-5",
                                                                    "Europe/Berlin")  # fmt: skip
    assert copy.fields["recipient"].value() == email()["recipient"] and copy.max_retries.value() == 0
    duplicate = run(qtbot, copy.submit())
    assert duplicate["id"] != schedule["id"] and duplicate["parameters"] == schedule["parameters"]
    qtbot.waitUntil(lambda: view.table.rowCount() == 2, timeout=30_000)
    ops.schedules.delete(duplicate["id"])
    qtbot.waitUntil(lambda: view.table.rowCount() == 1, timeout=30_000)

    # Delete… asks first; No keeps it, Yes removes it (its jobs stay).
    asked: list[str] = []
    view.confirm = lambda _title, text: asked.append(text) or False
    view.table.selectRow(0)
    view.buttons["Delete…"].click()
    assert asked == ["Delete the schedule “weekday report”? It makes no more runs. The jobs it made stay in the list."]
    assert len(ops.schedules.list()) == 1
    view.confirm = lambda _title, _text: True
    view.buttons["Delete…"].click()
    qtbot.waitUntil(lambda: view.table.rowCount() == 0, timeout=30_000)
    assert ops.schedules.list() == [] and len(ops.ledger.schedule_runs(schedule["id"])) == 2


def test_a_failed_run_of_a_schedule_is_notified_naming_the_schedule(qtbot: Any) -> None:
    from desktop.views.tray import TrayController

    tray = TrayController()
    job = {"id": 12, "job_type": "noop", "status": "failed", "parameters": {}, "error": "boom", "schedule_id": 3}
    assert tray.notify(job).startswith("Job 12 failed (schedule 3): ")
    assert tray.notify({**job, "schedule_id": None}).startswith("Job 12 failed: ")
    tray.dispose()
