"""The job detail panel: parameters, result with its link, error and traceback, history and retry schedule."""

from __future__ import annotations

import html
import json
from typing import Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QTextBrowser, QVBoxLayout, QWidget

from desktop.models import format as fmt
from desktop.widgets import theme
from desktop.widgets.theme import STATUS_COLORS


def _e(value: Any) -> str:
    return html.escape(str(value))


def _value(value: Any) -> str:
    if isinstance(value, str):
        return _e(value).replace("\n", "<br>")
    return _e(json.dumps(value, ensure_ascii=False))


class DetailPanel(QWidget):
    """Read-only; everything shown comes from one `get` reply (job + history + retry schedule)."""

    link_copied = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job: dict[str, Any] | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        self.title = QLabel("No job selected", self)
        self.title.setObjectName("sectionTitle")
        self.title.setTextFormat(Qt.TextFormat.PlainText)  # the job type and status come from the ledger
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.title.setWordWrap(True)
        layout.addWidget(self.title)
        buttons = QHBoxLayout()
        self.copy_link_button = QPushButton("Copy link", self)
        self.open_link_button = QPushButton("Open link", self)
        self.copy_link_button.clicked.connect(self._on_copy_link_button_clicked)
        self.open_link_button.clicked.connect(self._on_open_link_button_clicked)
        buttons.addWidget(self.copy_link_button)
        buttons.addWidget(self.open_link_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.browser = QTextBrowser(self)
        self.browser.setObjectName("detail")
        self.browser.setOpenExternalLinks(True)
        layout.addWidget(self.browser, 1)
        self.show_job(None)

    @property
    def file_url(self) -> str | None:
        result = (self.job or {}).get("result") or {}
        url = result.get("file_url") if isinstance(result, dict) else None
        return str(url) if url else None

    def show_job(self, job: dict[str, Any] | None, message: str = "") -> None:
        self.job = job
        has_link = self.file_url is not None
        self.copy_link_button.setVisible(has_link)
        self.open_link_button.setVisible(has_link)
        if job is None:
            self.title.setText("No job selected")
            self.browser.setHtml(
                f"<p>{_e(message or 'Select a job to see its parameters, result, error and history.')}</p>"
            )
            return
        self.title.setText(f"Job {job['id']} · {job.get('job_type', '')} · {job.get('status', '')}")
        self.browser.setHtml(render(job))

    def _on_copy_link_button_clicked(self) -> None:
        if self.file_url:
            QGuiApplication.clipboard().setText(self.file_url)
            self.link_copied.emit(self.file_url)

    def _on_open_link_button_clicked(self) -> None:
        if self.file_url:
            QDesktopServices.openUrl(QUrl(self.file_url))


def render(job: dict[str, Any]) -> str:
    status = job.get("status", "")
    color = STATUS_COLORS.get(status, "#7a808a")
    parts = [
        f"<p><span style='background:{color};color:white;font-weight:bold'>&nbsp;{_e(status)}&nbsp;</span> "
        f"&nbsp;priority {_e(job.get('priority'))} · attempt {_e(job.get('attempts'))} of "
        f"{int(job.get('max_retries') or 0) + 1}</p>",
        "<table cellspacing='0' cellpadding='2'>",
    ]
    times = [("Created", "created_at"), ("Scheduled", "scheduled_time"), ("Started", "started_at"),
             ("Finished", "finished_at"), ("Next attempt", "next_attempt_at")]  # fmt: skip
    for label, key in times:
        if job.get(key):
            parts.append(f"<tr><td><b>{label}</b></td><td>{_e(fmt.local_time(job[key]))}</td></tr>")
    duration = fmt.job_duration(job)
    if duration is not None:
        parts.append(f"<tr><td><b>Duration</b></td><td>{_e(fmt.duration(duration))}</td></tr>")
    parts.append("</table><h4>Parameters</h4><table cellspacing='0' cellpadding='2'>")
    for key, value in (job.get("parameters") or {}).items():
        parts.append(f"<tr><td valign='top'><b>{_e(key)}</b></td><td>{_value(value)}</td></tr>")
    parts.append("</table>")
    result = job.get("result")
    if result:
        parts.append("<h4>Result</h4><table cellspacing='0' cellpadding='2'>")
        for key, value in result.items() if isinstance(result, dict) else [("value", result)]:
            cell = f"<a href='{_e(value)}'>{_e(value)}</a>" if key == "file_url" and value else _value(value)
            parts.append(f"<tr><td valign='top'><b>{_e(key)}</b></td><td>{cell}</td></tr>")
        parts.append("</table>")
    if job.get("error"):
        parts.append(f"<h4>Error</h4><p style='color:{theme.color('error').name()}'>{_value(job['error'])}</p>")
    if job.get("traceback"):
        parts.append(f"<h4>Traceback</h4><pre>{_e(job['traceback'])}</pre>")
    schedule = job.get("retry_schedule") or []
    if schedule:
        parts.append("<h4>Retry schedule</h4><table cellspacing='0' cellpadding='2'>")
        for step in schedule:
            if step.get("at"):
                when = fmt.local_time(step["at"])
            else:
                when = f"between {fmt.local_time(step.get('earliest'))} and {fmt.local_time(step.get('latest'))}"
            parts.append(f"<tr><td>attempt {_e(step.get('attempt'))}</td><td>{_e(when)}</td></tr>")
        parts.append("</table>")
    history = job.get("history") or []
    if history:
        parts.append("<h4>History</h4><table cellspacing='0' cellpadding='2'>")
        day = fmt.local_time(job.get("created_at"))[:10]
        for item in history:
            error = f" — {_e(item['error'])}" if item.get("error") else ""
            stamp = fmt.local_time(item.get("at"))
            stamp = stamp[11:] if stamp[:10] == day else stamp  # the day is in "Created" above
            parts.append(
                f"<tr><td nowrap valign='top'>{_e(stamp)}</td><td nowrap valign='top'><b>{_e(item.get('type'))}</b>"
                f"</td><td valign='top'>{_e(item.get('status'))}{error}</td></tr>"
            )
        parts.append("</table>")
    return "".join(parts)
