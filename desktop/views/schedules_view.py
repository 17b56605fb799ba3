"""The schedules window: each schedule's rule in plain language, next run and how its latest runs went; new, edit,
pause (with a note and an optional time to resume by itself), resume, run now, delete.

It reaches the engine only through the worker's control channel (``schedule_*`` requests), as the rest of the
window does. It reloads after each action, and when a schedule changes or one of its runs does (events), at most
once per ``RELOAD_MS``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from PySide6.QtCore import QDateTime, Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDateTimeEdit,
    QDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.models import format as fmt
from desktop.models.meta import EngineMeta
from desktop.views.forms import ErrorLabel, add_footer, with_error
from desktop.views.table_dialog import Request, TableDialog
from engine.errors import JobdeckError, ValidationError

HEADERS = ("ID", "Name", "Type", "Rule", "Next run", "Last run", "Recent runs", "State")
COLUMN = {name: i for i, name in enumerate(HEADERS)}
RECENT = 12  # runs shown per schedule, as glyphs
RUNS = 50  # runs listed in the selected schedule's detail
RELOAD_MS = 500
# One glyph per run status: how a schedule's latest runs went, readable at a glance and without colour.
GLYPHS = {"succeeded": "✓", "failed": "✗", "running": "▶", "retrying": "↻", "pending": "○", "scheduled": "○",
          "canceled": "–"}  # fmt: skip
# button label → (control request, what the status bar says); the others open a dialog first
ACTIONS = {
    "Resume": ("schedule_resume", "Resumed"),
    "Run now": ("schedule_run_now", "Started a run of"),
}
BUTTONS = ("New…", "Edit…", "Duplicate…", "Pause…", "Resume", "Run now", "Delete…")


def state_text(schedule: dict[str, Any]) -> str:
    if not schedule["paused"]:
        return "Active" if schedule["next_run_at"] else "Ended"
    until = f" until {fmt.local_time(schedule['paused_until'], seconds=False)}" if schedule["paused_until"] else ""
    note = f" — {schedule['pause_note']}" if schedule["pause_note"] else ""
    return f"Paused{until}{note}"


def recent_glyphs(runs: list[dict[str, Any]]) -> str:
    """The latest runs, oldest on the left (as a sparkline reads): ``✓✓✗✓▶``."""
    return "".join(GLYPHS.get(run["status"], "?") for run in reversed(runs))


def recent_tooltip(runs: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{GLYPHS.get(r['status'], '?')} {fmt.local_time(r['planned_at'], seconds=False)}  job {r['id']}  {r['status']}"
        for r in runs
    )


def last_run_text(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return "never"
    last = runs[0]
    return f"{fmt.local_time(last['planned_at'], seconds=False)} {last['status']}"


def run_time_text(when: str, now: datetime) -> str:
    """A planned time in this computer's time, and how far it is: "2026-12-03 09:00 (in 25 min)", or with its day
    when further: "2026-12-03 09:00 (tomorrow)", "2026-12-09 09:00 (Wednesday)"."""
    absolute = fmt.local_time(when, seconds=False)
    near = fmt.relative(when, now)
    if not near.startswith("in ") and not near.endswith(" ago") and near != "just now":
        day, parsed = near.rsplit(" ", 1)[0], fmt.parse_iso(when)
        named = day in ("today", "tomorrow", "yesterday") or parsed is None
        near = day if named or parsed is None else parsed.astimezone().strftime("%A")
    return f"{absolute} ({near})"


def next_run_text(schedule: dict[str, Any], now: datetime) -> str:
    when = schedule["next_run_at"]
    return run_time_text(when, now) if when else "—"


class PauseDialog(QDialog):
    """Pause a schedule: an optional note, and an optional time at which it resumes by itself."""

    def __init__(self, schedule: dict[str, Any], request: Request, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Pause “{schedule['name']}”")
        self.schedule = schedule
        self.request = request
        self.result_schedule: dict[str, Any] | None = None
        outer = QVBoxLayout(self)
        form = QFormLayout()
        self.note = QLineEdit(self)
        self.note.setPlaceholderText("why (shown with the schedule)")
        self.note_error = ErrorLabel(self)
        form.addRow("Note", with_error(self, self.note, self.note_error))
        self.until_box = QCheckBox("Resume by itself at", self)
        self.until = QDateTimeEdit(self)
        self.until.setCalendarPopup(True)
        self.until.setDisplayFormat("yyyy-MM-dd HH:mm")
        self.until.setAccessibleName("Resume at (local time)")
        tomorrow = QDateTime.currentDateTime().addDays(1)
        tomorrow.setTime(tomorrow.time().addSecs(-tomorrow.time().second()))
        self.until.setDateTime(tomorrow)
        self.until.setEnabled(False)
        self.until_box.toggled.connect(self.until.setEnabled)
        self.until_error = ErrorLabel(self)
        form.addRow(self.until_box, with_error(self, self.until, self.until_error))
        outer.addLayout(form)
        self.form_error, self.buttons, self.submit_button = add_footer(self, outer, "Pause", self._on_accepted)
        self.task: Any = None

    def until_iso(self) -> str | None:
        if not self.until_box.isChecked():
            return None
        naive = cast(datetime, self.until.dateTime().toPython())
        return naive.astimezone().isoformat(timespec="seconds")

    def _on_accepted(self) -> None:
        import asyncio

        self.task = asyncio.ensure_future(self.submit())

    async def submit(self) -> dict[str, Any] | None:
        """The engine judges the time (it must be in the future); its message lands under the field."""
        for label in (self.note_error, self.until_error):
            label.show_error(None)
        self.form_error.hide()
        try:
            schedule: dict[str, Any] = await self.request(
                "schedule_pause", schedule_id=self.schedule["id"], note=self.note.text().strip() or None,
                until=self.until_iso(),
            )  # fmt: skip
        except ValidationError as exc:
            target = {"until": self.until_error, "note": self.note_error}.get(exc.field or "")
            if target is not None:
                target.show_error(exc.message)
            else:
                self.form_error.setText(f"{exc.field}: {exc.message}" if exc.field else exc.message)
                self.form_error.show()
            return None
        except (JobdeckError, OSError, TimeoutError) as exc:
            self.form_error.setText(f"Could not pause the schedule: {exc}")
            self.form_error.show()
            return None
        self.result_schedule = schedule
        self.accept()
        return schedule


class RunsPane(QWidget):
    """The selected schedule's runs: each job it made, its planned time and how it went; Enter or a double click
    shows the job in the main window."""

    def __init__(self, meta: EngineMeta, show_job: Callable[[int], None] | None, parent: QWidget | None) -> None:
        super().__init__(parent)
        self.meta = meta
        self.show_job = show_job
        self.schedule_id: int | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel("Select a schedule to see its runs.", self)
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.title)
        self.table = QTableWidget(0, 4, self)
        self.table.setHorizontalHeaderLabels(["Job", "Planned", "Status", "Outcome"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setTabKeyNavigation(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setMaximumHeight(self.fontMetrics().height() * 8)
        self.table.activated.connect(self._on_table_activated)
        layout.addWidget(self.table)

    def show_runs(self, schedule: dict[str, Any] | None, runs: list[dict[str, Any]]) -> None:
        self.schedule_id = schedule["id"] if schedule else None
        if schedule is None:
            self.title.setText("Select a schedule to see its runs.")
        else:
            count = f"its latest {len(runs)}" if len(runs) >= RUNS else f"{len(runs)}"
            self.title.setText(f"Runs of “{schedule['name']}” ({count}):" if runs else f"“{schedule['name']}” has "
                               "not run yet.")  # fmt: skip
        self.table.setRowCount(len(runs))
        for row, run in enumerate(runs):
            cells = (str(run["id"]), fmt.local_time(run["planned_at"], seconds=False),
                     f"{GLYPHS.get(run['status'], '?')} {self.meta.status_label(run['status'])}",
                     fmt.outcome(run, self.meta.link(run)))  # fmt: skip
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                item.setData(Qt.ItemDataRole.UserRole, run["id"])
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()

    def _on_table_activated(self, index: Any) -> None:
        item = self.table.item(index.row(), 0)
        if self.show_job is not None and item is not None:
            self.show_job(int(item.data(Qt.ItemDataRole.UserRole)))


class SchedulesView(TableDialog):
    def __init__(
        self, request: Request, parent: QWidget | None = None,
        open_editor: Callable[[dict[str, Any] | None, bool], QDialog] | None = None, meta: EngineMeta | None = None,
        show_job: Callable[[int], None] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(request, "Schedules", HEADERS, BUTTONS, 90, parent, stretch=COLUMN["Rule"])
        self.meta = meta or EngineMeta(self)  # type labels as the engine gives them
        self.table.setSelectionMode(self.table.SelectionMode.SingleSelection)
        self.open_editor = open_editor
        for label, (op, verb) in ACTIONS.items():
            self.buttons[label].clicked.connect(lambda _=False, op=op, verb=verb: self._spawn(self._act(op, verb)))
        self.buttons["New…"].clicked.connect(self._on_new_clicked)
        self.buttons["Edit…"].clicked.connect(self._on_edit_clicked)
        self.buttons["Duplicate…"].clicked.connect(self._on_duplicate_clicked)
        self.buttons["Pause…"].clicked.connect(self._on_pause_clicked)
        self.buttons["Delete…"].clicked.connect(self._on_delete_clicked)
        self.buttons["New…"].setEnabled(open_editor is not None)
        self.table.selectionModel().selectionChanged.connect(self._on_selection_changed)
        self.table.doubleClicked.connect(self._on_edit_clicked)
        self.runs = RunsPane(self.meta, show_job, self)
        self.table.setMinimumHeight(self.fontMetrics().height() * 7)  # a few schedules stay in view above the runs
        layout = self.layout()
        assert isinstance(layout, QVBoxLayout)
        layout.insertWidget(layout.indexOf(self.table) + 1, self.runs)
        self.schedules: list[dict[str, Any]] = []
        self.confirm: Callable[[str, str], bool] = self._ask
        self.pause_dialog: PauseDialog | None = None
        self._reload = QTimer(self)
        self._reload.setSingleShot(True)
        self._reload.setInterval(RELOAD_MS)
        self._reload.timeout.connect(self.start)
        self._on_selection_changed()

    def selected(self) -> dict[str, Any] | None:
        rows = self.table.selectionModel().selectedRows()
        return self.schedules[rows[0].row()] if rows and rows[0].row() < len(self.schedules) else None

    def _on_selection_changed(self, *_args: Any) -> None:
        chosen = self.selected()
        for label in ("Edit…", "Duplicate…", "Run now", "Delete…"):
            editor = label in ("Edit…", "Duplicate…")
            self.buttons[label].setEnabled(chosen is not None and (not editor or self.open_editor is not None))
        self.buttons["Pause…"].setEnabled(chosen is not None and not chosen["paused"])
        self.buttons["Resume"].setEnabled(chosen is not None and bool(chosen["paused"]))
        if chosen is None:
            self.runs.show_runs(None, [])
        else:
            self._spawn(self._load_runs(chosen))

    async def _load_runs(self, schedule: dict[str, Any]) -> None:
        """The selected schedule's detail: the jobs it made, newest planned time first."""
        try:
            found = await self.request("schedule_get", schedule_id=schedule["id"], runs=RUNS)
        except (JobdeckError, OSError, TimeoutError) as exc:
            self.runs.title.setText(f"Could not read the runs of “{schedule['name']}”: {exc}")
            return
        chosen = self.selected()
        if chosen is not None and chosen["id"] == schedule["id"]:  # else the user has moved on
            self.runs.show_runs(found, found.get("runs", []))

    def follow(self, events: list[dict[str, Any]]) -> None:
        """Events from the worker: a schedule changed, or one of its runs did. Reload soon (once for a burst)."""
        ours = any(e.get("type") == "schedule.updated" or (e.get("job") or {}).get("schedule_id") for e in events)
        if ours and not self._reload.isActive():
            self._reload.start()

    async def load(self) -> None:
        try:
            found = await self.request("schedule_list", recent=RECENT)
        except (JobdeckError, OSError, TimeoutError) as exc:
            self.headline.setText(f"Could not read the schedules: {exc}")
            return
        chosen = self.selected()  # kept selected across the reload, by id
        self.schedules = found
        now = datetime.now(UTC)
        self.fill(
            [(str(s["id"]), s["name"], self.meta.type_label(s["job_type"]), f"{s['description']} ({s['tz']})",
              next_run_text(s, now), last_run_text(s.get("recent_runs", [])),
              recent_glyphs(s.get("recent_runs", [])), state_text(s))
             for s in self.schedules]
        )  # fmt: skip
        for row, schedule in enumerate(self.schedules):
            item = self.table.item(row, COLUMN["Recent runs"])
            assert item is not None  # fill() made every cell
            item.setToolTip(recent_tooltip(schedule.get("recent_runs", [])))
            item.setData(Qt.ItemDataRole.AccessibleTextRole, last_run_text(schedule.get("recent_runs", [])))
            if chosen is not None and schedule["id"] == chosen["id"]:
                self.table.selectRow(row)
        count = len(self.schedules)
        self.headline.setText(
            f"{count:,} schedule{'s' if count != 1 else ''}." if count else "No schedules yet — press New… (or "
            "Make recurring… on a job) to add one."
        )  # fmt: skip
        self._on_selection_changed()

    async def _act(self, op: str, verb: str) -> None:
        schedule = self.selected()
        if schedule is None:
            return
        try:
            await self.request(op, schedule_id=schedule["id"])
        except (JobdeckError, OSError, TimeoutError) as exc:
            self.headline.setText(str(exc))
            return
        self.changed.emit(f"{verb} schedule “{schedule['name']}”.")
        await self.load()

    # ------------------------------------------------------------------ the buttons that ask first
    def _on_new_clicked(self) -> None:
        self.edit(None)

    def _on_edit_clicked(self, *_args: Any) -> None:
        schedule = self.selected()
        if schedule is not None:
            self.edit(schedule)

    def _on_duplicate_clicked(self) -> None:
        schedule = self.selected()
        if schedule is not None:
            self.edit(schedule, copy=True)

    def edit(self, schedule: dict[str, Any] | None, *, copy: bool = False) -> QDialog | None:
        """The editor on ``schedule`` (None: a new one; ``copy``: a new one filled from it)."""
        if self.open_editor is None:
            return None
        editor = self.open_editor(schedule, copy)
        editor.accepted.connect(self.start)
        return editor

    def _on_pause_clicked(self) -> None:
        self.pause()

    def pause(self) -> PauseDialog | None:
        schedule = self.selected()
        if schedule is None:
            return None
        dialog = PauseDialog(schedule, self.request, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self._on_paused(dialog.result_schedule))
        dialog.open()
        self.pause_dialog = dialog
        return dialog

    def _on_paused(self, schedule: dict[str, Any] | None) -> None:
        if schedule is not None:
            until = schedule["paused_until"]
            self.changed.emit(f"Paused schedule “{schedule['name']}”"
                              + (f" until {fmt.local_time(until, seconds=False)}." if until else "."))  # fmt: skip
        self.start()

    def _on_delete_clicked(self) -> None:
        schedule = self.selected()
        if schedule is None:
            return
        runs = len(schedule.get("recent_runs", []))
        kept = " The jobs it made stay in the list." if runs else ""
        if self.confirm("Delete schedule", f"Delete the schedule “{schedule['name']}”? It makes no more runs.{kept}"):
            self._spawn(self._act("schedule_delete", "Deleted"))

    def _ask(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes
