"""The trash view: deleted jobs (most recent first) that can still be restored, or purged for good."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QWidget

from desktop.models import format as fmt
from desktop.models.meta import EngineMeta
from desktop.views.table_dialog import Request, TableDialog
from engine.errors import JobdeckError

SHOWN = 1000  # the most recently deleted; the CLI (`jobdeck trash list --limit`) reaches the rest
HEADERS = ("ID", "Type", "Status", "Deleted", "Summary")


class TrashView(TableDialog):
    def __init__(self, request: Request, parent: QWidget | None = None, meta: EngineMeta | None = None) -> None:
        super().__init__(request, "Trash", HEADERS, ("Restore", "Delete for good", "Empty trash"), 60, parent)
        self.meta = meta or EngineMeta(self)  # labels and summaries as the engine gives them
        self.restore_button, self.purge_button, self.empty_button = self.buttons.values()
        self.restore_button.clicked.connect(lambda: self._spawn(self._act("restore", ids=self.selected_ids())))
        self.purge_button.clicked.connect(lambda: self._spawn(self._act("purge_trash", ids=self.selected_ids())))
        self.empty_button.clicked.connect(lambda: self._spawn(self._act("purge_trash", everything=True)))

    def selected_ids(self) -> list[int]:
        rows = {index.row() for index in self.table.selectionModel().selectedRows()}
        return [int(item.text()) for row in sorted(rows) if (item := self.table.item(row, 0)) is not None]

    async def load(self) -> None:
        try:
            page = await self.request("trash", limit=SHOWN)
        except (JobdeckError, OSError, TimeoutError) as exc:
            self.headline.setText(f"Could not read the trash: {exc}")
            return
        jobs = page["jobs"]
        self.fill(
            [(str(job["id"]), self.meta.type_label(job["job_type"]), self.meta.status_label(job["status"]),
              fmt.local_time(job["deleted_at"], seconds=False), self.meta.summary(job)) for job in jobs]
        )  # fmt: skip
        total = int(page["total"])
        more = f" (the {SHOWN:,} most recently deleted shown)" if total > len(jobs) else ""
        self.headline.setText(f"{total:,} deleted job{'s' if total != 1 else ''} in the trash{more}.")

    async def _act(self, op: str, **args: Any) -> None:
        if "ids" in args and not args["ids"]:
            return
        try:
            result = await self.request(op, **args)
        except (JobdeckError, OSError, TimeoutError) as exc:
            self.headline.setText(str(exc))
            return
        if op == "restore":
            self.changed.emit(f"Restored {result['restored']:,} job(s) from the trash.")
        else:
            self.changed.emit(f"Deleted {result['purged']:,} job(s) for good.")
        await self.load()
