"""Settings: read and written through the worker (`settings`, `settings_set`), secrets only to the OS keyring
(masked), and "Test connection" as the worker's `probe` with the job type's own connection code."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.models import plain_text
from desktop.services import settings_io
from desktop.views.forms import ErrorLabel, add_footer, fit_to_screen, scroll_body, with_error
from engine.config import Settings
from engine.credentials import CredentialStore
from engine.errors import JobdeckError, ValidationError

TLS_MODES = (("plain", "None (plain SMTP)"), ("starttls", "STARTTLS"), ("ssl", "SSL/TLS"))
CONFLICTS = (("overwrite", "Overwrite"), ("skip", "Skip"), ("rename", "Rename"))
ON_QUIT = (("ask", "Ask each time"), ("keep", "Keep the worker running"), ("stop", "Stop the worker"))
STALE_UPLOAD_HOURS = 24

Request = Callable[..., Awaitable[Any]]  # the worker's control channel (WorkerConnection.request)


class SettingsDialog(QDialog):
    def __init__(self, request: Request, store: CredentialStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.store = store
        self.request = request
        self.confirm: Callable[[str, str], bool] = self._confirm_dialog  # tests answer for the operator
        self.settings: Settings | None = None
        self.keyring_ok = False
        self.errors: dict[str, ErrorLabel] = {}
        self.widgets: dict[str, Any] = {}
        self.tasks: list[asyncio.Future[Any]] = []
        outer, layout, self.scroll_area = scroll_body(self)
        self.keyring_label = QLabel("Checking the keyring…", self)
        self.keyring_label.setWordWrap(True)
        self.keyring_label.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.keyring_label)

        smtp = QGroupBox("Email (SMTP)", self)
        f = QFormLayout(smtp)
        self.smtp_host = self._row(f, "Host", QLineEdit(self), "smtp_host")
        self.smtp_port = self._row(f, "Port", QSpinBox(self), "smtp_port")
        self.smtp_port.setRange(1, 65535)
        self.smtp_user = self._row(f, "User", QLineEdit(self), "smtp_user")
        self.smtp_password = self._row(f, "Password", self._secret(), "smtp-password")
        self.smtp_tls = self._row(f, "Encryption", self._combo(TLS_MODES), "smtp_tls")
        self.smtp_allow_insecure_auth = self._row(
            f, "", QCheckBox("Allow sending the password unencrypted (insecure)", self), "smtp_allow_insecure_auth"
        )
        self.smtp_allow_insecure_auth.setToolTip(
            "With Encryption set to None, anyone on the network path can read the password. Jobdeck refuses to log "
            "in that way unless this is ticked: choose STARTTLS (usually port 587) or SSL/TLS (usually port 465) "
            "instead, and tick this only for a relay you trust on this machine or network."
        )
        self.email_from = self._row(f, "From address", QLineEdit(self), "email_from")
        self.smtp_test = QPushButton("Test connection", self)
        self.smtp_result = QLabel(self)
        self.smtp_result.setWordWrap(True)
        f.addRow(self._pair(self.smtp_test, self.smtp_result))
        self.smtp_test.clicked.connect(self._on_smtp_test_clicked)
        layout.addWidget(smtp)

        s3 = QGroupBox("Storage (S3 or compatible)", self)
        g = QFormLayout(s3)
        self.s3_bucket = self._row(g, "Bucket", QLineEdit(self), "s3_bucket")
        self.s3_region = self._row(g, "Region", QLineEdit(self), "s3_region")
        self.s3_endpoint_url = self._row(g, "Endpoint URL", QLineEdit(self), "s3_endpoint_url")
        self.s3_endpoint_url.setPlaceholderText("empty for AWS; e.g. http://127.0.0.1:9000 for MinIO")
        self.s3_path_style = self._row(g, "", QCheckBox("Path-style addressing", self), "s3_path_style")
        self.s3_key_prefix = self._row(g, "Default key prefix", QLineEdit(self), "s3_key_prefix")
        self.upload_conflict = self._row(g, "If the object exists", self._combo(CONFLICTS), "upload_conflict")
        self.aws_key_id = self._row(g, "Access key ID", self._secret(), "aws-access-key-id")
        self.aws_secret = self._row(g, "Secret access key", self._secret(), "aws-secret-access-key")
        self.s3_test = QPushButton("Test connection", self)
        self.s3_result = QLabel(self)
        self.s3_result.setWordWrap(True)
        g.addRow(self._pair(self.s3_test, self.s3_result))
        self.s3_test.clicked.connect(self._on_s3_test_clicked)
        self.s3_cleanup = QPushButton("Clean up stale uploads…", self)
        self.s3_cleanup.setToolTip(
            f"Abort multipart uploads started more than {STALE_UPLOAD_HOURS} hours ago that no job will resume: "
            "S3 keeps (and bills) their parts until they are aborted."
        )
        self.s3_cleanup_result = QLabel(self)
        self.s3_cleanup_result.setWordWrap(True)
        g.addRow(self._pair(self.s3_cleanup, self.s3_cleanup_result))
        self.s3_cleanup.clicked.connect(self._on_s3_cleanup_clicked)
        layout.addWidget(s3)

        app = QGroupBox("Desktop", self)
        h = QFormLayout(app)
        self.notify_success = self._row(h, "", QCheckBox("Notify when a job succeeds", self), "notify_success")
        self.close_to_tray = self._row(h, "", QCheckBox("Closing the window keeps Jobdeck in the tray", self),
                                       "close_to_tray")  # fmt: skip
        self.on_quit = self._row(h, "On quit", self._combo(ON_QUIT), "on_quit")
        layout.addWidget(app)
        layout.addStretch(1)

        self.form_error, self.buttons, self.submit_button = add_footer(self, outer, None, self._on_buttons_accepted)
        fit_to_screen(self, self.scroll_area, self.fontMetrics().horizontalAdvance("M") * 46)
        self.setEnabled(False)
        self.load_task = asyncio.ensure_future(self.load())

    # ------------------------------------------------------------------ building
    def _row(self, form: QFormLayout, label: str, widget: Any, key: str) -> Any:
        error = ErrorLabel(self, reserve=False)  # shown only after Save, whose button stays put in the footer
        form.addRow(label, with_error(self, widget, error))
        self.errors[key] = error
        self.widgets[key] = widget
        widget.setAccessibleName(label or key)
        return widget

    def _secret(self) -> QLineEdit:
        edit = QLineEdit(self)
        edit.setEchoMode(QLineEdit.EchoMode.Password)
        return edit

    def _combo(self, options: tuple[tuple[str, str], ...]) -> QComboBox:
        combo = QComboBox(self)
        for value, label in options:
            combo.addItem(label, value)
        return combo

    def _pair(self, button: QPushButton, label: QLabel) -> QWidget:
        """The button, and its result on the full width below it: a wrapped reply beside a button gets clipped to
        half lines, because a form row does not give a wrapped label the height its width needs."""
        label.setTextFormat(Qt.TextFormat.PlainText)  # server replies and S3 keys: shown as text, never as markup
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        label.hide()  # no empty line under the button until there is something to say
        box = QWidget(self)
        v = QVBoxLayout(box)
        v.setContentsMargins(0, 0, 0, 0)
        v.setSpacing(2)
        h = QHBoxLayout()
        h.addWidget(button)
        h.addStretch(1)
        v.addLayout(h)
        v.addWidget(label)
        return box

    @staticmethod
    def _say(label: QLabel, text: str) -> None:
        label.setText(text)
        label.setVisible(bool(text))

    # ------------------------------------------------------------------ load
    async def load(self) -> None:
        try:
            reply = await self.request("settings")
        except (JobdeckError, OSError, TimeoutError) as exc:
            self.keyring_label.setText(f"Could not read the settings from the worker: {exc}")
            return
        settings = Settings(**reply["settings"])
        self._show_origins(reply.get("origins") or {})
        self.keyring_ok, text = await settings_io.keyring_state(self.store)
        present = await settings_io.secrets_present(self.store) if self.keyring_ok else {}
        self.settings = settings
        self.smtp_host.setText(settings.smtp_host)
        self.smtp_port.setValue(settings.smtp_port)
        self.smtp_user.setText(settings.smtp_user)
        self.smtp_tls.setCurrentIndex(max(0, self.smtp_tls.findData(settings.smtp_tls)))
        self.smtp_allow_insecure_auth.setChecked(settings.smtp_allow_insecure_auth)
        self.email_from.setText(settings.email_from)
        self.s3_bucket.setText(settings.s3_bucket)
        self.s3_region.setText(settings.s3_region)
        self.s3_endpoint_url.setText(settings.s3_endpoint_url)
        self.s3_path_style.setChecked(settings.s3_path_style)
        self.s3_key_prefix.setText(settings.s3_key_prefix)
        self.upload_conflict.setCurrentIndex(max(0, self.upload_conflict.findData(settings.upload_conflict)))
        self.notify_success.setChecked(settings.notify_success)
        self.close_to_tray.setChecked(settings.close_to_tray)
        self.on_quit.setCurrentIndex(max(0, self.on_quit.findData(settings.on_quit)))
        for name, edit in self._secret_fields().items():
            edit.setEnabled(self.keyring_ok)
            if not self.keyring_ok:
                edit.setPlaceholderText("unavailable: no keyring")
            elif present.get(name):
                edit.setPlaceholderText("saved in the keyring — type to replace")
            else:
                edit.setPlaceholderText("not set")
        if self.keyring_ok:
            self.keyring_label.setText(f"Passwords and keys are kept in the OS keyring ({text}).")
            self.keyring_label.setObjectName("")
        else:
            self.keyring_label.setObjectName("warning")
            self.keyring_label.setText(
                "Passwords and keys cannot be saved: " + text.removeprefix("unavailable: ") + " Jobdeck never stores "
                "them in a file instead."
            )
        self.keyring_label.style().polish(self.keyring_label)
        self.setEnabled(True)

    def _show_origins(self, origins: dict[str, str]) -> None:
        """A setting the worker's environment overrides cannot be changed here: saying so beats a save that seems to
        do nothing."""
        for key, origin in origins.items():
            widget = self.widgets.get(key)
            if widget is not None and origin.startswith("env "):
                widget.setEnabled(False)
                widget.setToolTip(f"Set by the worker's environment variable {origin[4:]}; change it there.")

    def _secret_fields(self) -> dict[str, QLineEdit]:
        return {
            "smtp-password": self.smtp_password,
            "aws-access-key-id": self.aws_key_id,
            "aws-secret-access-key": self.aws_secret,
        }

    def changes(self) -> dict[str, Any]:
        return {
            "smtp_host": self.smtp_host.text().strip(),
            "smtp_port": self.smtp_port.value(),
            "smtp_user": self.smtp_user.text().strip(),
            "smtp_tls": self.smtp_tls.currentData(),
            "smtp_allow_insecure_auth": self.smtp_allow_insecure_auth.isChecked(),
            "email_from": self.email_from.text().strip(),
            "s3_bucket": self.s3_bucket.text().strip(),
            "s3_region": self.s3_region.text().strip(),
            "s3_endpoint_url": self.s3_endpoint_url.text().strip(),
            "s3_path_style": self.s3_path_style.isChecked(),
            "s3_key_prefix": self.s3_key_prefix.text(),
            "upload_conflict": self.upload_conflict.currentData(),
            "notify_success": self.notify_success.isChecked(),
            "close_to_tray": self.close_to_tray.isChecked(),
            "on_quit": self.on_quit.currentData(),
        }

    def typed_secrets(self) -> dict[str, str]:
        return {name: edit.text() for name, edit in self._secret_fields().items() if edit.text()}

    # ------------------------------------------------------------------ save
    def _on_buttons_accepted(self) -> None:
        self.tasks.append(asyncio.ensure_future(self.save()))

    async def save(self) -> bool:
        for label in self.errors.values():
            label.show_error(None)
        self.form_error.hide()
        try:
            reply = await self.request("settings_set", changes=self.changes())
            settings = Settings(**reply["settings"])
            secrets = self.typed_secrets()
            if secrets:
                if not self.keyring_ok:
                    raise JobdeckError("no keyring is available, so passwords and keys cannot be saved")
                await settings_io.store_secrets(self.store, secrets)
        except ValidationError as exc:
            target = self.errors.get(exc.field or "")
            if target is not None:
                target.show_error(exc.message)
            else:
                self.form_error.setText(str(exc))
                self.form_error.show()
            return False
        except JobdeckError as exc:
            self.form_error.setText(str(exc))
            self.form_error.show()
            return False
        self.settings = settings
        for edit in self._secret_fields().values():
            edit.clear()
        self.accept()
        return True

    # ------------------------------------------------------------------ tests of the connection
    def _on_smtp_test_clicked(self) -> None:
        self.tasks.append(asyncio.ensure_future(self.test_smtp()))

    def _on_s3_test_clicked(self) -> None:
        self.tasks.append(asyncio.ensure_future(self.test_s3()))

    async def test_smtp(self) -> str:
        return await self._probe("send_email", self.smtp_result, ("smtp-password",))

    async def test_s3(self) -> str:
        return await self._probe("upload_file", self.s3_result, ("aws-access-key-id", "aws-secret-access-key"))

    async def _probe(self, job_type: str, result: QLabel, secret_names: tuple[str, ...]) -> str:
        """The worker connects as a job of this type would, with the form's settings (not saved) and any secret
        typed here (not stored: it travels once over the worker's private channel and is kept nowhere)."""
        self._say(result, "Testing…")
        typed = {name: value for name, value in self.typed_secrets().items() if name in secret_names}
        try:
            reply = await self.request("probe", job_type=job_type, settings=self.changes(), secrets=typed)
            text = ("✔ " if reply["ok"] else "✘ ") + str(reply["message"])
        except Exception as exc:  # reported plainly, whatever it is
            text = f"✘ {exc}"
        self._say(result, text)
        return text

    # ------------------------------------------------------------------ stale multipart uploads
    def _confirm_dialog(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _on_s3_cleanup_clicked(self) -> None:
        # Asked here, in the click, not inside a task: a modal loop must not run within an asyncio step.
        bucket = self.s3_bucket.text().strip()
        where = f"bucket '{bucket}'" if bucket else "the default bucket"
        if self.confirm(
            "Clean up stale uploads",
            f"Abort the multipart uploads in {where} started more than {STALE_UPLOAD_HOURS} hours ago?\n\n"
            "Their uploaded parts are deleted. Uploads that pending or retrying jobs will resume are kept. "
            "The worker uses the saved S3 settings and keys.",
        ):
            self.tasks.append(asyncio.ensure_future(self.cleanup_uploads()))

    async def cleanup_uploads(self) -> str:
        """Run ``cleanup_uploads`` in the worker and say plainly what was aborted."""
        self.s3_cleanup.setEnabled(False)
        self._say(self.s3_cleanup_result, "Cleaning up…")
        bucket = self.s3_bucket.text().strip() or None
        try:
            report = await self.request("cleanup_uploads", bucket=bucket, older_than_hours=STALE_UPLOAD_HOURS)
            text, detail = cleanup_report(report)
        except Exception as exc:  # reported plainly, whatever it is
            text, detail = f"✘ {exc}", ""
        finally:
            self.s3_cleanup.setEnabled(True)
        self._say(self.s3_cleanup_result, text)
        self.s3_cleanup_result.setToolTip(plain_text.tooltip(detail) or "")
        return text


def cleanup_report(report: dict[str, Any]) -> tuple[str, str]:
    """One line for the dialog and the full list of aborted keys for its tooltip."""
    aborted = report.get("aborted") or []
    kept = int(report.get("kept") or 0)
    bucket = report.get("bucket", "")
    keys = [str(a.get("key", "")) for a in aborted]
    if not aborted:
        text = f"✔ Nothing to clean up in '{bucket}'"
    else:
        shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3:,} more" if len(keys) > 3 else "")
        text = f"✔ Aborted {len(aborted):,} stale upload{'s' if len(aborted) != 1 else ''} in '{bucket}': {shown}"
    if kept:
        text += f" · kept {kept:,} recent or still needed"
    if report.get("pending_retried"):
        text += f" · retried {report['pending_retried']} earlier failed abort(s)"
    detail = "\n".join(f"{a.get('key')} (started {a.get('initiated') or 'unknown'})" for a in aborted)
    return text + ".", detail
