"""The sheet that opens when files or folders are dropped: what will be uploaded, where, when and how."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from PySide6.QtCore import Signal
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
        self.submit_task: asyncio.Future[Any] | None = None
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
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(DropCol.KEY, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(DropCol.SIZE, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(DropCol.STATE, QHeaderView.ResizeMode.ResizeToContents)
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
        self.submit_button.setEnabled(False)
        line = self.fontMetrics().height()
        fit_to_screen(self, None, line * 44, line * 34)
        self.scan_task: asyncio.Future[None] = asyncio.ensure_future(self.scan(paths))

    async def scan(self, paths: list[str]) -> None:
        items = await asyncio.to_thread(expand, paths, self.settings.max_upload_bytes, self.guard)
        self.model.set_prefix(self.prefix.text())
        self.model.set_items(items)
        ok, flagged = self.model.ok_items, self.model.flagged
        total = sum(i.size or 0 for i in ok)
        self.summary.setText(f"{len(ok):,} file{'s' if len(ok) != 1 else ''} to upload · {fmt_size(total)} in total")
        if flagged:
            self.warning.setText(
                f"{len(flagged):,} file{'s' if len(flagged) != 1 else ''} will not be uploaded (see “Will upload?”)."
            )
            self.warning.show()
        self._revalidate()

    def _on_bucket_text_changed(self, _text: str) -> None:
        self.bucket_error.show_error(None)
        self._revalidate()

    def _on_prefix_text_changed(self, text: str) -> None:
        self.prefix_error.show_error(None)
        self.model.set_prefix(text)
        self._revalidate()

    def local_errors(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        if not self.model.ok_items:
            errors["path"] = "Nothing to upload."
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
        count = len(self.model.ok_items)
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
        if self.local_errors() or self._submitting:
            return None
        self._submitting = True
        self.submit_button.setEnabled(False)
        self.form_error.hide()
        prefix = self.prefix.text()
        items = self.model.ok_items
        try:
            jobs = await self.request(
                "upload",
                timeout=600.0,
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
        self.created.emit(jobs)
        self.accept()
        return list(jobs)
