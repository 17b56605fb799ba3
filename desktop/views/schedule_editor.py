"""The schedule editor: a rule with its next runs previewed by the engine, plus the New job form as the template.

The rule is one text field (``0 9 * * 1-5``, ``@daily``, ``every 15 min``); the window never parses it. As the user
types, the worker's ``schedule_preview`` checks it and answers with the rule in plain language and its next 5
planned times, shown in this computer's time. A bad rule's message is the engine's, shown under the field once the
user leaves it (or presses Save), never at every key. The template below it is ``JobDialog``'s own generated form,
so a schedule's parameters are judged exactly as a job's are.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QLineEdit, QWidget

from desktop.views.forms import ErrorLabel, fit_to_screen, on_focus_left, with_error
from desktop.views.job_dialog import JobDialog, Request
from desktop.views.schedules_view import run_time_text
from engine.errors import JobdeckError, ValidationError

PREVIEW_DELAY_MS = 250  # a pause in typing before the rule is checked: one request per pause, not per key
RULE_FIELDS = ("rule", "cron", "every")  # the engine's names for the rule, whichever way it was given
CATCH_UP_TEXT = {
    "skip": "Skip them",
    "once": "Run once for all of them",
    "all": "Run each of them (the latest {limit})",
}
OVERLAP_TEXT = {"skip": "Skip a run while the last one waits or runs", "allow": "Start it anyway"}


class ScheduleEditor(JobDialog):
    """New schedule, or Edit of one (``schedule``): ``schedule_add`` / ``schedule_edit`` on Save."""

    submit_label = "Save schedule"
    busy_label = "Saving…"
    goal = "save the schedule"

    def __init__(
        self,
        types: list[dict[str, Any]],
        request: Request,
        *,
        default_max_retries: int = 3,
        schedule: dict[str, Any] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        self.editing = schedule
        self.policies: dict[str, Any] = dict(schedule or {})  # catch_up and overlap to choose once they are offered
        self.rule_problem: str | None = None  # the engine's message for the rule, once shown
        self.rule_left = False  # the user left the rule field since typing in it
        self.preview: dict[str, Any] | None = None  # the engine's last answer for the current rule
        self.preview_task: asyncio.Future[Any] | None = None
        self.options_task: asyncio.Future[Any] | None = None
        self._closed = False
        self._asked = 0  # numbers preview requests, so a late answer for an older text is dropped
        super().__init__(types, request, default_max_retries=default_max_retries, parent=parent)
        self.body.insertLayout(0, self.top_form)  # the rule rows go above the job type
        self.setWindowTitle("New schedule" if schedule is None else f"Edit schedule “{schedule['name']}”")
        if schedule is not None:
            self.fill_from(schedule, schedule["name"])
        self.rule.setFocus()
        fit_to_screen(self, self.scroll_area, self.fontMetrics().horizontalAdvance("M") * 44)

    def fill_from(self, schedule: dict[str, Any], name: str) -> None:
        """Everything a schedule holds: its template, rule, zone and policies (Edit, and Duplicate as a new one)."""
        self.prefill(schedule)
        self.policies = dict(schedule)
        self.name.setText(name)
        self.rule.setText(schedule["rule"])
        self.tz.setText(schedule["tz"])

    # ------------------------------------------------------------------ building
    def _build_when(self, form: QFormLayout) -> None:
        """The rule, its preview and policies go on top, above the job type: they are what this dialog is for."""
        top = QFormLayout()
        self.name = QLineEdit(self)
        self.name.setPlaceholderText("e.g. weekday report (default: the type and the rule)")
        self.name_error = ErrorLabel(self)
        top.addRow("Name", with_error(self, self.name, self.name_error))
        self.rule = QLineEdit(self)
        self.rule.setPlaceholderText("0 9 * * 1-5, @daily or every 15 min")
        self.rule.setAccessibleName("Rule")
        self.rule.setToolTip(
            "A cron expression (minute hour day-of-month month day-of-week), @hourly, @daily, @weekly, @monthly, "
            "or an interval: every 90s, every 15 min, every 2 hours, every day"
        )
        self.rule_error = ErrorLabel(self)
        self.schedule_error = self.rule_error  # JobDialog's "when" error line
        top.addRow("Rule *", with_error(self, self.rule, self.rule_error))
        self.description_label = QLabel(self)
        self.description_label.setWordWrap(True)
        top.addRow("", self.description_label)
        self.next_runs = QLabel(self)
        self.next_runs.setAccessibleName("Next runs")
        top.addRow("Next runs", self.next_runs)
        self.tz = QLineEdit(self)
        self.tz.setPlaceholderText("this computer's zone")
        self.tz.setToolTip("A time zone name such as Europe/Berlin or UTC; cron times follow its clock and DST")
        self.tz_error = ErrorLabel(self)
        top.addRow("Time zone", with_error(self, self.tz, self.tz_error))
        self.catch_up = QComboBox(self)
        self.catch_up.setAccessibleName("Missed runs")
        self.catch_up.setToolTip("Runs missed while the worker was down or the computer slept")
        self.catch_up_error = ErrorLabel(self)
        top.addRow("Missed runs", with_error(self, self.catch_up, self.catch_up_error))
        self.overlap = QComboBox(self)
        self.overlap.setAccessibleName("Overlap")
        self.overlap_error = ErrorLabel(self)
        top.addRow("Overlap", with_error(self, self.overlap, self.overlap_error))
        self.top_form = top
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(PREVIEW_DELAY_MS)
        self._timer.timeout.connect(self._on_timer_timeout)
        self.rule.textChanged.connect(self._on_rule_text_changed)
        self.tz.textChanged.connect(self._on_tz_text_changed)
        on_focus_left(self.rule, self._on_rule_left)
        on_focus_left(self.tz, self._on_rule_left)

    def start(self) -> asyncio.Future[Any]:
        """Ask the worker what to offer (policies, this computer's zone), then preview the rule as it stands."""
        self.options_task = asyncio.ensure_future(self._load_options())
        return self.options_task

    async def _load_options(self) -> None:
        try:
            options = await self.request("schedule_options")
        except (JobdeckError, OSError, TimeoutError) as exc:
            self.form_error.setText(f"Could not ask the worker about schedules: {exc}")
            self.form_error.show()
            return
        current = self.policies
        limit = options.get("catch_up_limit", "")
        for combo, values, texts, chosen in (
            (self.catch_up, options["catch_up"], CATCH_UP_TEXT, current.get("catch_up") or options["catch_up_default"]),
            (self.overlap, options["overlap"], OVERLAP_TEXT, current.get("overlap") or options["overlap_default"]),
        ):
            combo.clear()
            for value in values:
                combo.addItem(texts.get(value, value).format(limit=limit), value)
            combo.setCurrentIndex(max(0, combo.findData(chosen)))
        self.tz.setPlaceholderText(f"this computer's zone: {options['local_tz']}")
        if self.rule.text().strip():
            self.check_rule()

    # ------------------------------------------------------------------ the rule, checked by the engine
    def _on_rule_text_changed(self, _text: str) -> None:
        self.rule_left = False
        self.preview = None
        self._timer.start()
        self._revalidate()

    def _on_tz_text_changed(self, _text: str) -> None:
        self._timer.start()

    def _on_timer_timeout(self) -> None:
        self.check_rule()

    def _on_rule_left(self) -> None:
        self.rule_left = True
        self.check_rule()  # answers at once with the message for what was typed

    def done(self, result: int) -> None:
        """Closed: an answer still on its way (or a check the closing focus change asked for) has nowhere to go."""
        self._closed = True
        self._timer.stop()
        for task in (self.preview_task, self.options_task):
            if task is not None and not task.done():
                task.cancel()
        super().done(result)

    def check_rule(self) -> asyncio.Future[Any]:
        """Ask the engine about the rule as it stands now; the answer fills the preview (or the error line)."""
        self._timer.stop()
        if self._closed:
            self.preview_task = asyncio.ensure_future(asyncio.sleep(0))
            return self.preview_task
        self._asked += 1
        self.preview_task = asyncio.ensure_future(self._preview(self._asked, self.rule.text(), self.tz.text()))
        return self.preview_task

    async def _preview(self, asked: int, rule: str, tz: str) -> None:
        if not rule.strip():
            self._show_preview(None, None)
            return
        error: ValidationError | None = None
        try:
            reply = await self.request("schedule_preview", rule=rule, tz=tz.strip() or None)
        except ValidationError as exc:
            reply, error = None, exc
        except (JobdeckError, OSError, TimeoutError) as exc:
            if asked == self._asked and not self._closed:
                self.next_runs.setText(f"Could not check the rule: {exc}")
            return
        if asked == self._asked and not self._closed:  # else a newer text was asked about, or the editor closed
            self._show_preview(reply, error)

    def _show_preview(self, reply: dict[str, Any] | None, error: ValidationError | None) -> None:
        self.preview = reply
        tz_problem = error.message if error is not None and error.field == "tz" else None
        rule_problem = error.message if error is not None and error.field != "tz" else None
        # A problem is shown once the user left the field; one already on screen follows each answer at once.
        if self.rule_left or self.rule_error.isVisible() or rule_problem is None:
            self.rule_problem = rule_problem
        if self.rule_left or self.tz_error.isVisible() or tz_problem is None:
            self.tz_error.show_error(tz_problem)
        if reply is None:
            self.description_label.setText("")
            self.next_runs.setText("")
        else:
            self.description_label.setText(f"{reply['description']} ({reply['tz']})")
            now = datetime.now(UTC)
            lines = [run_time_text(when, now) for when in reply["next_runs"]]
            self.next_runs.setText("\n".join(lines) or "none: the schedule has ended")
        self._revalidate()

    # ------------------------------------------------------------------ JobDialog's hooks
    def when_error(self) -> str | None:
        return self.rule_problem

    def blocking_reason(self) -> str:
        """A type that cannot be scheduled says so first (the engine's line), before any field it would want."""
        refusal = (self.types.get(self.job_type) or {}).get("schedule_refusal")
        return str(refusal) if refusal else super().blocking_reason()

    def when_blocking(self) -> str:
        if not self.rule.text().strip():
            return "Type a rule to save the schedule: 0 9 * * 1-5, @daily or every 15 min."
        return ""

    def error_targets(self) -> dict[str, ErrorLabel]:
        return {
            **super().error_targets(),
            **dict.fromkeys(RULE_FIELDS, self.rule_error),
            "tz": self.tz_error,
            "name": self.name_error,
            "catch_up": self.catch_up_error,
            "overlap": self.overlap_error,
        }

    def show_error(self, field: str | None, message: str) -> None:
        if field in RULE_FIELDS:
            self.rule_problem = message
            self.rule.setFocus()
        super().show_error(field, message)

    def prefill(self, job: dict[str, Any]) -> None:
        """The template of a job or a schedule: its type, parameters, priority and retries."""
        super().prefill(job)
        self.setWindowTitle("New schedule" if self.editing is None else f"Edit schedule “{self.editing['name']}”")

    async def send(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            **self.template(),
            "name": self.name.text().strip() or None,
            "catch_up": self.catch_up.currentData(),
            "overlap": self.overlap.currentData(),
        }
        rule, tz = self.rule.text().strip(), self.tz.text().strip() or None
        if self.editing is None:
            result: dict[str, Any] = await self.request("schedule_add", rule=rule, tz=tz, **values)
            return result
        # An edit sends the rule and zone only when they changed: sending them moves the next run to the rule's
        # first planned time from now.
        if rule != self.editing["rule"]:
            values["rule"] = rule
        if tz is not None and tz != self.editing["tz"]:
            values["tz"] = tz
        values["name"] = self.name.text().strip()
        result = await self.request("schedule_edit", schedule_id=self.editing["id"], **values)
        return result
