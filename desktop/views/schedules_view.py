"""The schedules window: every schedule with its rule in plain language and next run; pause, resume, run now, delete.

It reaches the engine only through the worker's control channel (``schedule_*`` requests), as the rest of the
window does, and reloads after each action.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QWidget

from desktop.models import format as fmt
from desktop.views.table_dialog import Request, TableDialog
from engine.errors import JobdeckError

HEADERS = ("ID", "Name", "Type", "Rule", "Next run", "State")
# button label → (control request, what the status bar says)
ACTIONS = {
    "Pause": ("schedule_pause", "Paused"),
    "Resume": ("schedule_resume", "Resumed"),
    "Run now": ("schedule_run_now", "Started a run of"),
    "Delete": ("schedule_delete", "Deleted"),
}


def state_text(schedule: dict[str, Any]) -> str:
    if not schedule["paused"]:
        return "Active" if schedule["next_run_at"] else "Ended"
    until = f" until {fmt.local_time(schedule['paused_until'], seconds=False)}" if schedule["paused_until"] else ""
    note = f" — {schedule['pause_note']}" if schedule["pause_note"] else ""
    return f"Paused{until}{note}"


class SchedulesView(TableDialog):
    def __init__(self, request: Request, parent: QWidget | None = None) -> None:
        super().__init__(request, "Schedules", HEADERS, tuple(ACTIONS), 70, parent)
        self.table.setSelectionMode(self.table.SelectionMode.SingleSelection)
        for label, (op, verb) in ACTIONS.items():
            self.buttons[label].clicked.connect(lambda _=False, op=op, verb=verb: self._spawn(self._act(op, verb)))
        self.schedules: list[dict[str, Any]] = []

    def selected(self) -> dict[str, Any] | None:
        rows = self.table.selectionModel().selectedRows()
        return self.schedules[rows[0].row()] if rows else None

    async def load(self) -> None:
        try:
            self.schedules = await self.request("schedule_list")
        except (JobdeckError, OSError, TimeoutError) as exc:
            self.headline.setText(f"Could not read the schedules: {exc}")
            return
        self.fill(
            [(str(s["id"]), s["name"], s["job_type"], f"{s['description']} ({s['tz']})",
              fmt.local_time(s["next_run_at"], seconds=False), state_text(s)) for s in self.schedules]
        )  # fmt: skip
        count = len(self.schedules)
        self.headline.setText(
            f"{count:,} schedule{'s' if count != 1 else ''}." if count else "No schedules yet — add one with: "
            "jobdeck schedule add TYPE --cron '0 9 * * 1-5' (or --every 15m) --param …"
        )  # fmt: skip

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
