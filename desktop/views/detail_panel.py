"""The job detail panel: the job's state in a sentence that ticks ("Retry in 4 min 12 s · Retry now"), its live
progress, its parameters and result in words, the error with a Copy button, and its attempts as a timeline."""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication, QResizeEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop.models import format as fmt
from desktop.models import job_text
from desktop.models.meta import EngineMeta
from desktop.widgets import theme
from engine.errors import JobdeckError

if TYPE_CHECKING:
    from desktop.services.connection import WorkerConnection

Spawn = Callable[[Awaitable[Any]], Any]
TICK_MS = 1000  # the state line counts down to the second
GLYPHS = {"info": "●", "running": "▶", "ok": "✓", "error": "✗", "waiting": "○"}  # shape, not colour alone
STEP_COLORS = {"running": "running", "ok": "succeeded", "error": "failed", "waiting": "retrying", "info": "pending"}
RUN_NOW_TEXT = {"retrying": "Retry now", "scheduled": "Run now"}
WORKER_DOWN = "Worker not running — continues when it restarts"


def _e(value: Any) -> str:
    return html.escape(str(value))


class DetailPanel(QWidget):
    """Shows one `get` reply (job + history + retry schedule) and the job's live progress; the state line and the
    relative times follow the clock."""

    link_copied = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job: dict[str, Any] | None = None
        self.progress: dict[str, Any] | None = None
        self.meta = EngineMeta(self)  # the window's: labels and the result's link, as the engine gives them
        self._connection: WorkerConnection | None = None
        self._spawn: Spawn | None = None
        self._tell: Callable[[str], None] = lambda _text: None
        self._html = ""
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        self.title = QLabel("No job selected", self)
        self.title.setObjectName("sectionTitle")
        self.title.setTextFormat(Qt.TextFormat.PlainText)  # the job type and status come from the ledger
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.title.setWordWrap(True)
        layout.addWidget(self.title)
        state_row = QHBoxLayout()
        self.state_label = QLabel(self)
        self.state_label.setTextFormat(Qt.TextFormat.PlainText)
        self.state_label.setWordWrap(True)
        self.run_now_button = QPushButton("Retry now", self)
        self.run_now_button.clicked.connect(self._on_run_now_button_clicked)
        state_row.addWidget(self.state_label, 1)
        state_row.addWidget(self.run_now_button)
        layout.addLayout(state_row)
        self.progress_bar = QProgressBar(self)
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setAccessibleName("Progress")
        self.progress_label = QLabel(self)
        self.progress_label.setTextFormat(Qt.TextFormat.PlainText)
        self.progress_label.setWordWrap(True)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.progress_label)
        buttons = QHBoxLayout()
        self.copy_error_button = QPushButton("Copy error", self)
        self.copy_error_button.setToolTip("Copy the whole error to the clipboard")
        self.copy_link_button = QPushButton("Copy link", self)
        self.open_link_button = QPushButton("Open link", self)
        self.copy_error_button.clicked.connect(self._on_copy_error_button_clicked)
        self.copy_link_button.clicked.connect(self._on_copy_link_button_clicked)
        self.open_link_button.clicked.connect(self._on_open_link_button_clicked)
        for button in (self.copy_error_button, self.copy_link_button, self.open_link_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.browser = QTextBrowser(self)
        self.browser.setObjectName("detail")
        self.browser.setOpenExternalLinks(True)
        layout.addWidget(self.browser, 1)
        for before, after in ((self.run_now_button, self.copy_error_button),
                              (self.copy_error_button, self.copy_link_button),
                              (self.copy_link_button, self.open_link_button),
                              (self.open_link_button, self.browser)):  # fmt: skip
            QWidget.setTabOrder(before, after)
        self._timer = QTimer(self)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._on_timer_timeout)
        self.show_job(None)

    @property
    def narrow(self) -> bool:
        """Too narrow for labels beside their values (a small window, or the splitter pulled right)."""
        return self.browser.viewport().width() < self.fontMetrics().horizontalAdvance("M") * 24

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self.job is not None:
            self._render(keep_scroll=True)

    @property
    def first_focus(self) -> QWidget:
        """The panel's first stop in the window's tab order (hidden buttons are skipped)."""
        return self.run_now_button

    def attach(self, connection: WorkerConnection, spawn: Spawn, tell: Callable[[str], None]) -> None:
        """Follow the worker's progress events; run "Retry now" through it, reporting in the window's status bar."""
        self._connection, self._spawn, self._tell = connection, spawn, tell
        connection.progress.connect(self._on_connection_progress)
        connection.state_changed.connect(self._on_connection_state_changed)

    @property
    def worker_down(self) -> bool:
        return self._connection is not None and self._connection.state != "connected"

    @property
    def file_url(self) -> str | None:
        """The result's link to what the job made, by the field its type names (``meta``)."""
        return self.meta.link(self.job) if self.job else None

    def show_job(self, job: dict[str, Any] | None, message: str = "") -> None:
        same = job is not None and self.job is not None and job.get("id") == self.job.get("id")
        self.job = job
        if not same or (job or {}).get("status") != "running":
            self.progress = None
        has_link = self.file_url is not None
        self.copy_link_button.setVisible(has_link)
        self.open_link_button.setVisible(has_link)
        self.copy_error_button.setVisible(bool((job or {}).get("error")))
        if job is None:
            self.title.setText("No job selected")
            self.state_label.hide()
            self.run_now_button.hide()
            self._show_progress()
            self._timer.stop()
            self._html = f"<p>{_e(message or 'Select a job to see its parameters, result, error and history.')}</p>"
            self.browser.setHtml(self._html)
            return
        status = str(job.get("status", ""))
        type_label = self.meta.type_label(str(job.get("job_type", "")))
        self.title.setText(f"Job {job['id']} · {type_label} · {self.meta.status_label(status)}")
        self.state_label.show()
        self.run_now_button.setText(RUN_NOW_TEXT.get(status, "Run now"))
        self.run_now_button.setVisible(status in self.meta.allows("run_now"))  # as the engine says
        self._show_progress()
        self._render(keep_scroll=same)
        if status in ("running", "retrying", "scheduled", "pending"):
            self._timer.start()
        else:
            self._timer.stop()

    def _render(self, *, keep_scroll: bool) -> None:
        """The state line, and the HTML when it changed (relative times move on), keeping the reader's place."""
        assert self.job is not None
        now = datetime.now(UTC)
        running = self.job.get("status") == "running"
        self.state_label.setText(WORKER_DOWN if running and self.worker_down else job_text.state_line(self.job, now))
        text = render(self.job, now, narrow=self.narrow)
        if text == self._html:
            return
        self._html = text
        bar = self.browser.verticalScrollBar()
        at = bar.value()
        self.browser.setHtml(text)
        if keep_scroll:
            bar.setValue(at)

    def _show_progress(self) -> None:
        progress = self.progress
        visible = progress is not None and (self.job or {}).get("status") == "running" and not self.worker_down
        self.progress_bar.setVisible(visible)
        self.progress_label.setVisible(visible)
        if not visible or progress is None:
            return
        share = fmt.progress_share(progress)
        if share is None:
            self.progress_bar.setRange(0, 0)  # busy: the total is not known
        else:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(round(share * 1000))
            self.progress_bar.setFormat(f"{100 * share:.0f} %")
        lines = fmt.progress_detail(progress).split("\n")  # "Uploaded … (42 %)", "Rate …", "About … left"
        head = lines[0].rsplit(" (", 1)[0]  # the bar shows the share
        self.progress_label.setText("\n".join([head, " · ".join(lines[1:])]) if len(lines) > 1 else head)

    # ------------------------------------------------------------------ slots
    def _on_connection_progress(self, event: dict[str, Any]) -> None:
        if self.job is not None and event.get("job_id") == self.job.get("id") and self.job.get("status") == "running":
            self.progress = event.get("progress") or {}
            self._show_progress()

    def _on_connection_state_changed(self, _state: str) -> None:
        """With the worker gone a running job's progress would freeze: the panel says why instead."""
        if self.worker_down:
            self.progress = None
        self._show_progress()
        if self.job is not None:
            self._render(keep_scroll=True)

    def _on_timer_timeout(self) -> None:
        if self.job is not None and self.isVisible():
            self._render(keep_scroll=True)

    def _on_run_now_button_clicked(self) -> None:
        if self.job is not None and self._spawn is not None:
            self._spawn(self.run_now(int(self.job["id"])))

    async def run_now(self, job_id: int) -> dict[str, Any] | None:
        """The job's next attempt (or its first, if scheduled) now, without waiting for its time."""
        if self._connection is None:
            return None
        self.run_now_button.setEnabled(False)
        try:
            job: dict[str, Any] = await self._connection.request("run_now", job_id=job_id)
        except JobdeckError as exc:
            self._tell(str(exc))
            return None
        finally:
            self.run_now_button.setEnabled(True)
        self._tell(f"Job {job_id} will run now.")
        return job

    def _on_copy_error_button_clicked(self) -> None:
        error = (self.job or {}).get("error")
        if error:
            QGuiApplication.clipboard().setText(str(error))
            self._tell("Copied the error.")

    def _on_copy_link_button_clicked(self) -> None:
        if self.file_url:
            QGuiApplication.clipboard().setText(self.file_url)
            self.link_copied.emit(self.file_url)

    def _on_open_link_button_clicked(self) -> None:
        if self.file_url:
            QDesktopServices.openUrl(QUrl(self.file_url))


def _rows(rows: list[tuple[str, str]], link: str | None = None, *, narrow: bool = False) -> str:
    """Labelled values: side by side, or (``narrow``) each label above its value, so neither breaks mid-word."""
    cells = []
    for label, value in rows:
        shown = f"<a href='{_e(value)}'>{_e(value)}</a>" if label == link else _e(value).replace("\n", "<br>")
        if narrow:
            cells.append(f"<tr><td><b>{_e(label)}</b><br>{shown}</td></tr>")
        else:
            cells.append(f"<tr><td valign='top' style='white-space:nowrap'><b>{_e(label)}</b></td>"
                         f"<td valign='top'>{shown}</td></tr>")  # fmt: skip
    return "<table cellspacing='0' cellpadding='2'>" + "".join(cells) + "</table>"


def render(job: dict[str, Any], now: datetime | None = None, *, narrow: bool = False) -> str:
    """The panel's text: when, the parameters and result in words, the error, the attempts, the traceback last."""
    parts = [_rows(job_text.overview_rows(job, now))]
    parameters = job_text.parameter_rows(job)
    if parameters:
        parts.append("<h4>Details</h4>" + _rows(parameters, narrow=narrow))
    result = job_text.result_rows(job)
    if result:
        parts.append("<h4>Result</h4>" + _rows(result, link="Link", narrow=narrow))
    if job.get("error"):
        error = _e(job["error"]).replace("\n", "<br>")
        parts.append(f"<h4>Error</h4><p style='color:{theme.color('error').name()}'>{error}</p>")
    steps = job_text.timeline(job)
    if steps:
        parts.append("<h4>Attempts</h4>" + _timeline(steps, fmt.local_time(job.get("created_at"))[:10]))
    if job.get("traceback"):
        parts.append(f"<h4>Traceback (for a bug report)</h4><pre>{_e(job['traceback'])}</pre>")
    return "".join(parts)


def _timeline(steps: list[job_text.Step], day: str) -> str:
    """One row a step: a glyph whose shape says how it went, then what happened, and under it when (without the
    creation day) and why; two columns only, so a narrow panel never cuts a time."""
    error, muted = theme.color("error").name(), theme.color("placeholder").name()
    rows = []
    for step in steps:
        stamp = fmt.local_time(step.at) if step.at else ""
        stamp = stamp[11:] if stamp[:10] == day else stamp
        color = muted if step.kind == "info" else theme.status_color(STEP_COLORS[step.kind]).name()
        when = f"<br><span style='color:{muted}'>{_e(stamp or step.window)}</span>" if stamp or step.window else ""
        why = f"<br><span style='color:{error}'>{_e(step.detail)}</span>" if step.detail else ""
        rows.append(
            f"<tr><td valign='top' style='color:{color}'><b>{GLYPHS[step.kind]}</b></td>"
            f"<td valign='top'>{_e(step.title)}{when}{why}</td></tr>"
        )
    return "<table cellspacing='0' cellpadding='2'>" + "".join(rows) + "</table>"
