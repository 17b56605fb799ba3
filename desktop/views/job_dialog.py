"""The new-job form, generated from the job type's parameter schema; the engine's errors appear at their field."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.models import format as fmt
from desktop.models.meta import EngineMeta
from desktop.views.forms import (
    ErrorLabel,
    ScheduleChooser,
    add_footer,
    disabled_reason,
    fit_to_screen,
    on_focus_left,
    scroll_body,
    with_error,
)
from engine.errors import JobdeckError, ValidationError

Request = Callable[..., Awaitable[Any]]


def _kind(schema: dict[str, Any]) -> tuple[str, list[Any] | None, bool]:
    """(json type, enum or None, nullable) from a property schema, looking through ``anyOf: [X, null]``."""
    options = schema.get("anyOf") or [schema]
    nullable = any(o.get("type") == "null" for o in options)
    main: dict[str, Any] = next((o for o in options if o.get("type") != "null"), {})
    return str(main.get("type", "string")), main.get("enum"), nullable


class TextBox(QPlainTextEdit):
    """A multi-line field that asks for six lines, not Qt's default 192 px box: two of those pushed Create off
    a 768 px screen. It still grows when the dialog is made taller."""

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        frame = 2 * self.frameWidth() + int(self.document().documentMargin() * 2)
        return QSize(hint.width(), self.fontMetrics().lineSpacing() * 6 + frame)


class ParamField:
    """One schema property: its widget, its inline error, its value and its cheap local check."""

    def __init__(self, name: str, schema: dict[str, Any], required: bool, parent: QWidget) -> None:
        self.name, self.schema, self.required = name, schema, required
        self.format = schema.get("format", "")
        self.type, self.enum, self.nullable = _kind(schema)
        self.edited = False  # typed into since the form opened: leaving it then shows what is wrong
        self.error = ErrorLabel(parent)
        self.container = QWidget(parent)
        layout = QVBoxLayout(self.container)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.widget: QWidget
        if self.enum:
            combo = QComboBox(parent)
            if self.nullable:
                combo.addItem("(default from settings)", None)
            for option in self.enum:
                combo.addItem(str(option), option)
            self.widget = combo
            row: QWidget = combo
        elif self.type == "boolean":
            self.widget = QCheckBox(schema.get("description", ""), parent)
            self.widget.setChecked(bool(schema.get("default")))
            row = self.widget
        elif self.format == "multiline":
            edit = TextBox(parent)
            edit.setTabChangesFocus(True)
            edit.setMinimumHeight(edit.fontMetrics().lineSpacing() * 3)
            if schema.get("description"):
                edit.setPlaceholderText(schema["description"])
            self.widget = row = edit
        else:
            line = QLineEdit(parent)
            if self.format == "email-list":
                line.setPlaceholderText("name@example.com, other@example.com")
            elif schema.get("description"):
                line.setPlaceholderText(schema["description"])
            self.widget = line
            row = line
            if self.format == "file-path":
                row = QWidget(parent)
                hl = QHBoxLayout(row)
                hl.setContentsMargins(0, 0, 0, 0)
                hl.addWidget(line, 1)
                browse = QPushButton("Browse…", row)
                browse.clicked.connect(self._on_browse_clicked)
                hl.addWidget(browse)
        self.widget.setAccessibleName(self.label)
        if schema.get("description") and self.type != "boolean":
            self.widget.setToolTip(schema["description"])
        layout.addWidget(row)
        layout.addWidget(self.error)

    @property
    def label(self) -> str:
        return fmt.field_label(self.name, self.schema.get("title")) + (" *" if self.required else "")

    def _on_browse_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.container, "Choose a file")
        if path:
            self.set_value(path)

    def connect_left(self, slot: Callable[[], None]) -> None:
        on_focus_left(self.widget, slot)

    def connect_changed(self, slot: Callable[[], None]) -> None:
        w = self.widget
        if isinstance(w, QComboBox):
            w.currentIndexChanged.connect(lambda _i: slot())
        elif isinstance(w, QCheckBox):
            w.toggled.connect(lambda _c: slot())
        elif isinstance(w, QPlainTextEdit):
            w.textChanged.connect(slot)
        elif isinstance(w, QLineEdit):
            w.textChanged.connect(lambda _t: slot())

    def value(self) -> Any:
        w = self.widget
        if isinstance(w, QComboBox):
            return w.currentData()
        if isinstance(w, QCheckBox):
            return w.isChecked()
        text = w.toPlainText() if isinstance(w, QPlainTextEdit) else w.text()  # type: ignore[attr-defined]
        if self.type == "integer":
            try:
                return int(text.strip()) if text.strip() else None
            except ValueError:
                return text
        return text if text.strip() else None

    def set_value(self, value: Any) -> None:
        w = self.widget
        if isinstance(w, QComboBox):
            w.setCurrentIndex(max(0, w.findData(value)))
        elif isinstance(w, QCheckBox):
            w.setChecked(bool(value))
        elif isinstance(w, QPlainTextEdit):
            w.setPlainText("" if value is None else str(value))
        elif isinstance(w, QLineEdit):
            w.setText("" if value is None else str(value))

    def local_error(self) -> str | None:
        value = self.value()
        if value is None:
            return "Required." if self.required else None
        if isinstance(value, str):  # the rest (an address's form…) is the engine's to judge, at Create
            limit = self.schema.get("maxLength")
            if limit and len(value) > limit:
                return f"At most {limit} characters."
            if self.type == "integer":
                return "Must be a whole number."
        return None


class JobDialog(QDialog):
    """Type chooser → generated form → `create`.

    A field is judged when the user leaves it or presses Create, never at every key. Create stays disabled only
    while a required field is empty or the schedule is in the past, and the line beside it says which.

    The schedule editor is this form with another "when" (a rule instead of a time) and another request: it
    overrides ``_build_when``, ``when_error``, ``when_blocking``, ``error_targets`` and ``send``.
    """

    created = Signal(object)  # the new job dict (the schedule, in the schedule editor)
    repeated = Signal(object)  # "Repeat…" made a schedule of this form instead of a job
    submit_label = "Create job"
    busy_label = "Creating…"
    goal = "create the job"  # "Fill in Recipient to …"

    def __init__(
        self,
        types: list[dict[str, Any]],
        request: Request,
        *,
        default_max_retries: int = 3,
        parent: QWidget | None = None,
        meta: EngineMeta | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("New job")
        self.meta = meta or EngineMeta(self)
        self.types = {t["name"]: t for t in types}
        self.types_list = types
        self.repeat_editor: QDialog | None = None
        self.request = request
        self.fields: dict[str, ParamField] = {}
        self._submitting = False
        self.submit_task: asyncio.Future[Any] | None = None
        self._checks: set[asyncio.Future[None]] = set()
        outer, body, self.scroll_area = scroll_body(self)
        top = QFormLayout()
        self.type_combo = QComboBox(self)
        for kind in types:
            self.type_combo.addItem(kind.get("label") or kind["name"], kind["name"])
        top.addRow("Job type", self.type_combo)
        self.description = QLabel(self)
        self.description.setWordWrap(True)
        top.addRow("", self.description)
        # Before anything is created: the engine says this type's jobs would fail for lack of configuration.
        self.setup_warning = QLabel(self)
        self.setup_warning.setObjectName("warning")
        self.setup_warning.setWordWrap(True)
        self.setup_warning.setTextFormat(Qt.TextFormat.PlainText)
        self.setup_warning.hide()
        top.addRow("", self.setup_warning)
        body.addLayout(top)
        self.params_box = QWidget(self)
        self.params_form = QFormLayout(self.params_box)
        self.params_form.setContentsMargins(0, 0, 0, 0)
        body.addWidget(self.params_box)
        common = QFormLayout()
        self._build_when(common)
        self.priority = QSpinBox(self)
        self.priority.setRange(0, 9)
        self.priority.setValue(5)
        self.priority.setToolTip("0–9; higher runs first")
        self.priority_error = ErrorLabel(self)
        common.addRow("Priority", with_error(self, self.priority, self.priority_error))
        self.max_retries = QSpinBox(self)
        self.max_retries.setRange(0, 100)
        self.max_retries.setValue(default_max_retries)
        self.retries_error = ErrorLabel(self)
        common.addRow("Max retries", with_error(self, self.max_retries, self.retries_error))
        body.addLayout(common)
        body.addStretch(1)
        self.body = body
        self.form_error, self.buttons, self.submit_button = add_footer(
            self, outer, self.submit_label, self._on_buttons_accepted
        )
        self.reason = disabled_reason(self)
        self.type_combo.currentIndexChanged.connect(self._on_type_combo_current_index_changed)
        self.meta.changed.connect(self._show_missing)
        self._build_fields()
        if self.fields:  # typing starts in the first field, not in the type chooser
            next(iter(self.fields.values())).widget.setFocus(Qt.FocusReason.OtherFocusReason)
        fit_to_screen(self, self.scroll_area, self.fontMetrics().horizontalAdvance("M") * 40)

    # ------------------------------------------------------------------ when it runs
    def _build_when(self, form: QFormLayout) -> None:
        """The "Run" row: immediately or at a time, or "Repeat…" to make a schedule of this form instead."""
        self.schedule = ScheduleChooser(self)
        self.schedule_error = ErrorLabel(self)
        self.repeat_button = QPushButton("Repeat…", self)
        self.repeat_button.setToolTip("Run this job on a schedule: every day at 09:00, every 15 minutes…")
        self.repeat_button.clicked.connect(self._on_repeat_button_clicked)
        row = QWidget(self)
        hl = QHBoxLayout(row)
        hl.setContentsMargins(0, 0, 0, 0)
        hl.addWidget(self.schedule, 1)
        hl.addWidget(self.repeat_button)
        form.addRow("Run", with_error(self, row, self.schedule_error))
        self.schedule.changed.connect(self._revalidate)

    def when_error(self) -> str | None:
        return self.schedule.local_error()

    def when_blocking(self) -> str:
        return "Pick a time in the future to create the job." if self.schedule.local_error() else ""

    def template(self) -> dict[str, Any]:
        """What the form holds, as a job (type, parameters, priority, retries): for "Repeat…" and clones."""
        return {"job_type": self.job_type, "parameters": self.parameters(), "priority": self.priority.value(),
                "max_retries": self.max_retries.value()}  # fmt: skip

    def _on_repeat_button_clicked(self) -> None:
        self.open_repeat()

    def open_repeat(self) -> QDialog:
        """The schedule editor, filled from this form; this dialog steps aside while it is open and closes once
        the schedule is saved (cancel brings it back as it was)."""
        from desktop.views.schedule_editor import ScheduleEditor

        editor = ScheduleEditor(self.types_list, self.request, default_max_retries=self.max_retries.value(),
                                parent=self.parentWidget())  # fmt: skip
        editor.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        editor.prefill(self.template())
        editor.created.connect(self._on_repeat_saved)
        editor.rejected.connect(self.show)
        self.hide()
        editor.open()
        editor.start()
        self.repeat_editor = editor
        return editor

    def _on_repeat_saved(self, schedule: dict[str, Any]) -> None:
        self.repeated.emit(schedule)
        self.reject()

    # ------------------------------------------------------------------ form building
    @property
    def job_type(self) -> str:
        return str(self.type_combo.currentData() or "")

    def _on_type_combo_current_index_changed(self, _index: int) -> None:
        self._build_fields()

    def _build_fields(self) -> None:
        while self.params_form.rowCount():
            self.params_form.removeRow(0)
        self.fields = {}
        kind = self.types.get(self.job_type) or {}
        self.description.setText(kind.get("description", ""))
        self._show_missing()
        schema = kind.get("schema") or {}
        required = set(schema.get("required") or [])
        for name, prop in (schema.get("properties") or {}).items():
            if prop.get("readOnly"):
                continue
            field = ParamField(name, prop, name in required, self.params_box)
            field.connect_changed(partial(self._on_field_changed, field))
            field.connect_left(partial(self._on_field_left, field))
            self.fields[name] = field
            self.params_form.addRow(field.label if field.type != "boolean" else "", field.container)
        self._revalidate()

    def _show_missing(self) -> None:
        gaps = self.meta.missing(self.job_type)
        text = ""
        if gaps:
            text = f"A job of this type would fail now: {'; '.join(gaps)}. Set it up in Settings first."
        self.setup_warning.setText(text)
        self.setup_warning.setVisible(bool(text))

    def _on_field_changed(self, field: ParamField) -> None:
        field.edited = True
        if field.error.isVisible():  # already flagged: say at once when it is fixed (or what is wrong now)
            self._judge(field)
        self._revalidate()

    def _on_field_left(self, field: ParamField) -> None:
        if field.edited:
            self._judge(field)

    def _judge(self, field: ParamField) -> None:
        """What the schema says at once (required, length); the rest the engine judges (`check`), as at Create."""
        local = field.local_error()
        field.error.show_error(local)
        if local is None and field.value() is not None:
            task = asyncio.ensure_future(self._check(field))
            self._checks.add(task)
            task.add_done_callback(self._checks.discard)

    async def _check(self, field: ParamField) -> None:
        try:
            reply = await self.request("check", job_type=self.job_type, parameters=self.parameters())
        except (JobdeckError, OSError, TimeoutError):
            return  # judged at Create instead
        if self.fields.get(field.name) is field and field.local_error() is None:
            message = (reply.get("errors") or {}).get(field.name)
            field.error.show_error(message[:1].upper() + message[1:] if message else None)

    # ------------------------------------------------------------------ validation
    def local_errors(self) -> dict[str, str]:
        errors = {name: msg for name, f in self.fields.items() if (msg := f.local_error())}
        when = self.when_error()
        if when:
            errors["scheduled_time"] = when
        return errors

    def blocking_reason(self) -> str:
        """Why Create is disabled, in words for the line beside it; empty when it can be pressed."""
        if not self.job_type:
            return "No job types yet: the worker has not said which it runs."
        missing = [f.label.rstrip(" *") for f in self.fields.values() if f.local_error() == "Required."]
        if missing:
            names = ", ".join(missing[:-1]) + (" and " if len(missing) > 1 else "") + missing[-1]
            return f"Fill in {names} to {self.goal}."
        return self.when_blocking()

    def _revalidate(self) -> None:
        self.schedule_error.show_error(self.when_error())
        reason = self.blocking_reason()
        self.submit_button.setEnabled(not reason and not self._submitting)
        self.submit_button.setToolTip(reason)
        self.reason.setText(reason)
        self.reason.setVisible(bool(reason) and not self._submitting)

    def show_local_errors(self) -> bool:
        """Create was pressed: every field says what is wrong, and the first one takes the focus."""
        errors = self.local_errors()
        for name, field in self.fields.items():
            field.error.show_error(errors.get(name))
        self.schedule_error.show_error(errors.get("scheduled_time"))
        first = next((self.fields[n].widget for n in self.fields if n in errors), None)
        if first is not None:
            first.setFocus(Qt.FocusReason.OtherFocusReason)
            self.scroll_area.ensureWidgetVisible(first)
        return bool(errors)

    def show_error(self, field: str | None, message: str) -> None:
        """Put an engine error next to its field; unknown fields go to the form-level line."""
        target = self.error_targets().get(field or "")
        if field in self.fields:
            target = self.fields[field].error
            self.fields[field].widget.setFocus()
            self.scroll_area.ensureWidgetVisible(self.fields[field].widget)
        if target is not None:
            target.show_error(message)
            self.form_error.hide()
        else:
            self.form_error.setText(f"{field}: {message}" if field else message)
            self.form_error.show()

    def error_targets(self) -> dict[str, ErrorLabel]:
        """The engine's field names → the error line under the field that holds them."""
        return {"priority": self.priority_error, "max_retries": self.retries_error,
                "scheduled_time": self.schedule_error, "schedule_type": self.schedule_error}  # fmt: skip

    # ------------------------------------------------------------------ submit
    def parameters(self) -> dict[str, Any]:
        return {name: v for name, f in self.fields.items() if (v := f.value()) is not None}

    def prefill(self, job: dict[str, Any]) -> None:
        """Clone and edit: the same type, parameters, priority and retries; scheduled from now on."""
        index = self.type_combo.findData(job.get("job_type"))
        if index >= 0:
            self.type_combo.setCurrentIndex(index)
        for name, value in (job.get("parameters") or {}).items():
            if name in self.fields:
                self.fields[name].set_value(value)
        self.priority.setValue(int(job.get("priority", 5)))
        self.max_retries.setValue(int(job.get("max_retries", self.max_retries.value())))
        self.setWindowTitle(f"New job (clone of {job.get('id')})")
        self._revalidate()

    def _on_buttons_accepted(self) -> None:
        self.submit_task = asyncio.ensure_future(self.submit())

    async def submit(self) -> dict[str, Any] | None:
        if self._submitting or self.show_local_errors():
            return None
        self._submitting = True
        self.form_error.hide()
        self.submit_button.setEnabled(False)
        self.submit_button.setText(self.busy_label)
        try:
            job = await self.send()
        except ValidationError as exc:
            self.show_error(exc.field, exc.message)
            return None
        except (JobdeckError, OSError, TimeoutError) as exc:
            self.show_error(None, f"Could not {self.goal}: {exc}")
            return None
        finally:
            self._submitting = False
            self.submit_button.setText(self.submit_label)
            self._revalidate()
        self.created.emit(job)
        self.accept()
        return job

    async def send(self) -> dict[str, Any]:
        """The request Create makes; its ValidationError lands at the field it names."""
        result: dict[str, Any] = await self.request(
            "create",
            **self.template(),
            scheduled_time=self.schedule.iso(),
            schedule_type="scheduled" if self.schedule.scheduled else "immediate",
        )
        return result

    def keyPressEvent(self, event: Any) -> None:
        # Enter in a single-line field must not submit a half-filled form by accident.
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not self.submit_button.isEnabled():
            return
        super().keyPressEvent(event)
