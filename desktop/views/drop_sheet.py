"""The sheet that opens when files or folders are dropped: what will be uploaded, where, when and how.

Which files will be uploaded is the worker's verdict (``upload`` with ``dry_run``, asked again when the settings,
the bucket or the prefix change), so a row marked "Yes" is judged by the rules and settings the worker will apply.
The upload itself is ``per_file``: one bad file never refuses the others; it stays in the sheet, saying why."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QSpinBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from desktop.models.drop import DropCol, DropModel, expand
from desktop.models.format import size as fmt_size
from desktop.views.forms import ErrorLabel, ScheduleChooser, add_footer, disabled_reason, fit_to_screen, with_error
from engine.config import Paths, Settings
from engine.errors import JobdeckError, ValidationError
from engine.upload_paths import DataGuard, check_key

Request = Callable[..., Awaitable[Any]]
CONFLICTS = (("overwrite", "Overwrite it"), ("skip", "Skip this file"), ("rename", "Upload under a new name"))


def about_file(message: str, path: str) -> str:
    """The engine's message without the file's path, which the row already shows."""
    return message.removeprefix(f"{path} ").removesuffix(f" ({path})")


class DropSheet(QDialog):
    created = Signal(object)  # list of new upload jobs

    def __init__(
        self,
        paths: list[str],
        settings: Settings,
        request: Request,
        parent: QWidget | None = None,
        *,
        data_folder: Paths | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Upload files")
        self.settings = settings
        # Jobdeck's own files are listed as not uploaded, whatever folder holding them was dropped.
        self.guard = DataGuard(data_folder or Paths())
        self.request = request
        self.model = DropModel(self)
        self._submitting = False
        self._asked = 0  # which dry run is the latest: an older answer is dropped
        self.submit_task: asyncio.Future[Any] | None = None
        self.check_task: asyncio.Future[None] | None = None
        self._recheck = QTimer(self)  # the bucket or prefix changed: ask again once typing pauses
        self._recheck.setSingleShot(True)
        self._recheck.setInterval(400)
        self._recheck.timeout.connect(self._on_recheck_timeout)
        layout = QVBoxLayout(self)
        self.summary = QLabel("Looking at the dropped files…", self)
        self.summary.setObjectName("sectionTitle")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.warning = QLabel(self)
        self.warning.setObjectName("warning")
        self.warning.setWordWrap(True)
        self.warning.hide()
        layout.addWidget(self.warning)
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)  # a long refusal elides on its one line (the tooltip has it whole)
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        self.table.setTabKeyNavigation(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(DropCol.KEY, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(DropCol.SIZE, QHeaderView.ResizeMode.ResizeToContents)
        # A refusal's reason can be long: it shares the width with the key (both elide; the tooltip has it whole)
        # instead of widening the table past the sheet, where its header would sit out of sight.
        header.setSectionResizeMode(DropCol.STATE, QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.table, 1)
        form = QFormLayout()
        self.bucket = QLineEdit(settings.s3_bucket, self)
        self.bucket.setPlaceholderText("bucket name (no default set in Settings)")
        self.bucket_error = ErrorLabel(self)
        form.addRow("Bucket", with_error(self, self.bucket, self.bucket_error))
        self.prefix = QLineEdit(settings.s3_key_prefix, self)
        self.prefix.setPlaceholderText("optional, e.g. reports/2026/")
        self.prefix_error = ErrorLabel(self)
        form.addRow("Key prefix", with_error(self, self.prefix, self.prefix_error))
        self.conflict = QComboBox(self)
        for value, label in CONFLICTS:
            self.conflict.addItem(label, value)
        self.conflict.setCurrentIndex(max(0, self.conflict.findData(settings.upload_conflict)))
        form.addRow("If the object exists", self.conflict)
        self.schedule = ScheduleChooser(self)
        self.schedule_error = ErrorLabel(self)
        form.addRow("Run", with_error(self, self.schedule, self.schedule_error))
        self.priority = QSpinBox(self)
        self.priority.setRange(0, 9)
        self.priority.setValue(5)
        form.addRow("Priority", self.priority)
        layout.addLayout(form)
        self.form_error, self.buttons, self.submit_button = add_footer(
            self, layout, "Upload", self._on_buttons_accepted
        )
        self.bucket.textChanged.connect(self._on_bucket_text_changed)
        self.prefix.textChanged.connect(self._on_prefix_text_changed)
        self.schedule.changed.connect(self._revalidate)
        self.model.dataChanged.connect(self._on_model_data_changed)
        self.submit_button.setEnabled(False)
        line = self.fontMetrics().height()
        fit_to_screen(self, None, line * 44, line * 34)
        self.scan_task: asyncio.Future[None] = asyncio.ensure_future(self.scan(paths))

    async def scan(self, paths: list[str]) -> None:
        # No size limit here: whether a file fits ``max_upload_bytes`` is the worker's to say, with its settings.
        items = await asyncio.to_thread(expand, paths, sys.maxsize, self.guard)
        self.model.set_prefix(self.prefix.text())
        self.model.set_items(items)
        self._revalidate()
        await self.check()

    async def check(self) -> None:
        """Ask the worker which files it would create (``upload`` with ``dry_run``: nothing is written)."""
        self._asked += 1
        asked = self._asked
        rows = [row for row, item in enumerate(self.model.items) if not item.problem]
        prefix = self.prefix.text()
        if not rows or "key" in self.local_errors():
            self.model.set_verdicts([None] * len(self.model.items))
            self._revalidate()
            return
        items = [self.model.items[row] for row in rows]
        try:
            answer = await self.request(
                "upload",
                timeout=120.0,
                dry_run=True,
                paths=[i.path for i in items],
                keys=[prefix + i.key for i in items],
                bucket=self.bucket.text().strip() or None,
                key_prefix=prefix,
            )
        except ValidationError as exc:
            if asked == self._asked:
                self.model.set_verdicts([None] * len(self.model.items))
                self.show_error(exc.field, exc.message)
                self._revalidate()
            return
        except (JobdeckError, OSError, TimeoutError) as exc:
            if asked == self._asked:  # the upload itself still judges each file
                self.model.set_verdicts([None] * len(self.model.items))
                self.show_error(None, f"Could not ask the worker which files it would upload: {exc}")
                self._revalidate()
            return
        if asked != self._asked:
            return
        verdicts: list[str | None] = [None] * len(self.model.items)
        bucket_error = None
        for row, entry in zip(rows, answer["files"], strict=True):
            error = entry.get("error")
            if not error:
                verdicts[row] = ""
            elif error.get("field") == "bucket":  # about the form's bucket, not this file
                bucket_error = error["message"]
                verdicts[row] = ""
            else:
                verdicts[row] = about_file(error["message"], entry["path"])
        self.bucket_error.show_error(bucket_error if self.bucket.text().strip() else None)
        self.model.set_verdicts(verdicts)
        self._revalidate()

    def done(self, result: int) -> None:
        """Closed (and soon deleted): a scan or a dry run still on its way must not touch the sheet's widgets."""
        self._recheck.stop()
        for task in (self.scan_task, self.check_task):
            if task is not None and not task.done():
                task.cancel()
        super().done(result)

    def use_settings(self, settings: Settings) -> None:
        """The worker's settings changed (in the window or with ``jobdeck config set``): judge the files again."""
        self.settings = settings
        self._ask_again()

    def _ask_again(self) -> None:
        if self.scan_task.done():
            self.check_task = asyncio.ensure_future(self.check())

    def _on_recheck_timeout(self) -> None:
        self._ask_again()

    def _on_model_data_changed(self, *_args: Any) -> None:
        self._revalidate()

    def _update_summary(self) -> None:
        model = self.model
        chosen = [model.items[row] for row in model.chosen_rows]
        total = sum(i.size or 0 for i in chosen)
        count, flagged = len(chosen), len(model.flagged)
        checking = model.verdicts is None and bool(model.items)
        text = f"{count:,} file{'s' if count != 1 else ''} to upload · {fmt_size(total)} in total"
        self.summary.setText("Checking the dropped files with the worker…" if checking else text)
        if flagged:
            self.warning.setText(
                f"{flagged:,} file{'s' if flagged != 1 else ''} will not be uploaded (see “Will upload?”)."
            )
        self.warning.setVisible(bool(flagged))

    def _on_bucket_text_changed(self, _text: str) -> None:
        self.bucket_error.show_error(None)
        self._revalidate()
        self._recheck.start()

    def _on_prefix_text_changed(self, text: str) -> None:
        self.prefix_error.show_error(None)
        self.model.set_prefix(text)
        self._revalidate()
        self._recheck.start()

    def local_errors(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        if self.model.verdicts is None:
            errors["path"] = "Checking the files with the worker…"
        elif not self.model.chosen_rows:
            errors["path"] = "Nothing to upload: tick at least one file that will be uploaded."
        if not self.bucket.text().strip():
            errors["bucket"] = "Give a bucket (or set a default in Settings)."
        try:
            check_key("key", self.prefix.text(), prefix=True)
        except ValidationError as exc:
            errors["key"] = exc.message
        schedule = self.schedule.local_error()
        if schedule:
            errors["scheduled_time"] = schedule
        return errors

    def _revalidate(self) -> None:
        errors = self.local_errors()
        self.schedule_error.show_error(errors.get("scheduled_time"))
        if "key" in errors:
            self.prefix_error.show_error(errors["key"])
        self._update_summary()
        count = len(self.model.chosen_rows)
        self.submit_button.setText(f"Upload {count:,} file{'s' if count != 1 else ''}")
        self.submit_button.setEnabled(not errors and not self._submitting)
        reason = disabled_reason(self)  # why Upload is disabled, in the sheet rather than only in a tooltip
        reason.setText(next(iter(errors.values()), ""))
        reason.setVisible(bool(errors) and not self._submitting)

    def show_error(self, field: str | None, message: str) -> None:
        target = {"bucket": self.bucket_error, "key": self.prefix_error, "scheduled_time": self.schedule_error}.get(
            field or ""
        )
        if target is not None:
            target.show_error(message)
        else:
            self.form_error.setText(f"{field}: {message}" if field else message)
            self.form_error.show()

    def _on_buttons_accepted(self) -> None:
        self.submit_task = asyncio.ensure_future(self.submit())

    async def submit(self) -> list[dict[str, Any]] | None:
        """Create the ticked files' uploads, each on its own: the created rows leave the sheet; a file the worker
        refuses stays, with its reason, and the sheet stays open for it."""
        if self.local_errors() or self._submitting:
            return None
        self._submitting = True
        self.submit_button.setEnabled(False)
        self.form_error.hide()
        prefix = self.prefix.text()
        rows = self.model.chosen_rows
        items = [self.model.items[row] for row in rows]
        try:
            answer = await self.request(
                "upload",
                timeout=600.0,
                per_file=True,
                paths=[i.path for i in items],
                keys=[prefix + i.key for i in items],
                bucket=self.bucket.text().strip(),
                key_prefix=prefix,
                conflict=self.conflict.currentData(),
                priority=self.priority.value(),
                scheduled_time=self.schedule.iso(),
            )
        except ValidationError as exc:
            self.show_error(exc.field, exc.message)
            return None
        except (JobdeckError, OSError, TimeoutError) as exc:
            self.show_error(None, f"Could not create the uploads: {exc}")
            return None
        finally:
            self._submitting = False
            self._revalidate()
        jobs = [entry["job"] for entry in answer["files"] if entry.get("job")]
        if jobs:
            self.created.emit(jobs)
        refused = [(row, entry["error"]) for row, entry in zip(rows, answer["files"], strict=True) if entry["error"]]
        if not refused:
            self.accept()
            return jobs
        self._keep_refused(refused, len(jobs))
        return jobs

    def _keep_refused(self, refused: list[tuple[int, dict[str, Any]]], created: int) -> None:
        """Only the files that were not created stay, each saying why; the others are jobs now."""
        keep = {row: error for row, error in refused}
        items = [self.model.items[row] for row in sorted(keep)]
        self._asked += 1  # a dry run still on its way would speak of rows that are gone
        self.model.set_items(items)
        self.model.set_verdicts(
            [about_file(keep[row]["message"], self.model.items[i].path) for i, row in enumerate(sorted(keep))]
        )
        bucket = next((e["message"] for e in keep.values() if e.get("field") == "bucket"), None)
        self.bucket_error.show_error(bucket)
        done = f"Created {created:,} upload job{'s' if created != 1 else ''}; " if created else ""
        self.show_error(
            None, f"{done}{len(keep):,} file{'s' if len(keep) != 1 else ''} could not be: see “Will upload?”."
        )
        self._revalidate()
