"""Settings go to engine.config, secrets only to the keyring; connection tests; the stats view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_gui_support import *  # noqa: F403  (fixtures)
from test_gui_support import QT_LOG_IGNORE, ops_request, run

from desktop.views.settings_dialog import SettingsDialog
from desktop.views.stats_view import StatsView
from engine.config import Paths, load_settings, save_settings
from engine.credentials import MemoryStore

pytestmark = QT_LOG_IGNORE

SECRET = "pw-7f3a9c-never-on-disk"
KEY_SECRET = "aws-secret-51bd0e-never-on-disk"


def test_settings_save_to_config_and_secrets_only_to_the_keyring(
    qtbot: Any, aloop: Any, ops: Any, jobdeck_home: Path
) -> None:
    ops.list()  # the ledger exists, so the grep below covers it too
    store = MemoryStore()
    dialog = SettingsDialog(Paths(jobdeck_home), store)
    qtbot.addWidget(dialog)
    run(qtbot, dialog.load_task)
    assert dialog.isEnabled() and dialog.smtp_password.isEnabled()
    assert "keyring" in dialog.keyring_label.text()
    dialog.smtp_host.setText("mail.example.com")
    dialog.smtp_port.setValue(587)
    dialog.smtp_user.setText("robot")
    dialog.smtp_tls.setCurrentIndex(dialog.smtp_tls.findData("starttls"))
    dialog.smtp_password.setText(SECRET)
    dialog.s3_bucket.setText("reports")
    dialog.s3_endpoint_url.setText("http://127.0.0.1:9000")
    dialog.s3_path_style.setChecked(True)
    dialog.upload_conflict.setCurrentIndex(dialog.upload_conflict.findData("rename"))
    dialog.aws_key_id.setText("AKIDEXAMPLE")
    dialog.aws_secret.setText(KEY_SECRET)
    assert dialog.smtp_password.echoMode() == dialog.smtp_password.EchoMode.Password
    assert run(qtbot, dialog.save()) is True
    settings = load_settings(Paths(jobdeck_home))
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_user, settings.smtp_tls) == (
        "mail.example.com", 587, "robot", "starttls")  # fmt: skip
    assert (settings.s3_bucket, settings.s3_path_style, settings.upload_conflict) == ("reports", True, "rename")
    assert store.get("smtp-password") == SECRET
    assert store.get("aws-secret-access-key") == KEY_SECRET
    assert store.get("aws-access-key-id") == "AKIDEXAMPLE"
    for path in jobdeck_home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert SECRET.encode() not in data and KEY_SECRET.encode() not in data, path
    # reopening shows that secrets are set, without reading them back into the form
    again = SettingsDialog(Paths(jobdeck_home), store)
    qtbot.addWidget(again)
    run(qtbot, again.load_task)
    assert again.smtp_password.text() == "" and "saved in the keyring" in again.smtp_password.placeholderText()


def test_invalid_setting_is_shown_at_its_field(qtbot: Any, aloop: Any, jobdeck_home: Path) -> None:
    dialog = SettingsDialog(Paths(jobdeck_home), MemoryStore())
    qtbot.addWidget(dialog)
    run(qtbot, dialog.load_task)
    dialog.changes = lambda: {"smtp_port": 0}  # type: ignore[method-assign]
    assert run(qtbot, dialog.save()) is False
    assert not dialog.errors["smtp_port"].isHidden()
    assert not Paths(jobdeck_home).config.exists()


class _NoKeyring(MemoryStore):
    def describe(self) -> str:
        return "unavailable: no OS keyring is available. On Linux start a Secret Service (GNOME Keyring)."


def test_without_a_keyring_the_dialog_says_why_and_refuses_secrets(qtbot: Any, aloop: Any, jobdeck_home: Path) -> None:
    dialog = SettingsDialog(Paths(jobdeck_home), _NoKeyring())
    qtbot.addWidget(dialog)
    run(qtbot, dialog.load_task)
    assert "cannot be saved" in dialog.keyring_label.text() and "Secret Service" in dialog.keyring_label.text()
    assert not dialog.smtp_password.isEnabled() and not dialog.aws_secret.isEnabled()
    dialog.smtp_password.setText(SECRET)  # even if text got there somehow, it is not written anywhere
    assert run(qtbot, dialog.save()) is False
    assert "cannot be saved" in dialog.form_error.text()
    assert not any(SECRET.encode() in p.read_bytes() for p in jobdeck_home.rglob("*") if p.is_file())


def test_connection_tests_report_plainly(
    qtbot: Any, aloop: Any, jobdeck_home: Path, smtp_server: Any, s3_server: Any, s3_bucket: str
) -> None:
    dialog = SettingsDialog(Paths(jobdeck_home), MemoryStore())
    qtbot.addWidget(dialog)
    run(qtbot, dialog.load_task)
    dialog.smtp_host.setText("127.0.0.1")
    dialog.smtp_port.setValue(smtp_server.port)
    assert run(qtbot, dialog.test_smtp()).startswith("✔ Connected to 127.0.0.1")
    dialog.s3_bucket.setText(s3_bucket)
    dialog.s3_endpoint_url.setText(s3_server.endpoint_url)
    dialog.s3_path_style.setChecked(True)
    dialog.aws_key_id.setText("testing")
    dialog.aws_secret.setText("testing")
    assert run(qtbot, dialog.test_s3()).startswith(f"✔ Bucket '{s3_bucket}' is reachable")
    dialog.s3_bucket.setText("no-such-bucket-jobdeck")
    assert run(qtbot, dialog.test_s3()).startswith("✘ S3 answered 404")
    dialog.smtp_port.setValue(9)
    assert "Could not connect to 127.0.0.1:9" in run(qtbot, dialog.test_smtp())


def test_cleanup_button_aborts_stale_multipart_uploads_after_confirmation(
    qtbot: Any, aloop: Any, ops: Any, jobdeck_home: Path, s3_server: Any, s3_bucket: str
) -> None:
    save_settings({"s3_endpoint_url": s3_server.endpoint_url, "s3_path_style": True, "s3_bucket": s3_bucket})
    ops.credentials.store.set("aws-access-key-id", s3_server.ACCESS_KEY)
    ops.credentials.store.set("aws-secret-access-key", s3_server.SECRET_KEY)
    client = s3_server.client()
    stale = client.create_multipart_upload(Bucket=s3_bucket, Key="backups/stale.tar")["UploadId"]
    dialog = SettingsDialog(Paths(jobdeck_home), MemoryStore(), request=ops_request(ops))
    qtbot.addWidget(dialog)
    run(qtbot, dialog.load_task)
    questions: list[str] = []
    answers = iter([False, True])
    dialog.confirm = lambda _title, text: questions.append(text) or next(answers)
    dialog.s3_cleanup.click()  # declined: nothing happens
    assert dialog.tasks == [] and f"bucket '{s3_bucket}'" in questions[0]
    assert [u["UploadId"] for u in client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])] == [stale]
    dialog.s3_cleanup.click()
    text = run(qtbot, dialog.tasks[-1])
    assert text == f"✔ Aborted 1 stale upload in '{s3_bucket}': backups/stale.tar."
    assert dialog.s3_cleanup_result.text() == text and "backups/stale.tar" in dialog.s3_cleanup_result.toolTip()
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert run(qtbot, dialog.cleanup_uploads()) == f"✔ Nothing to clean up in '{s3_bucket}'."


def test_stats_view_shows_counts_and_paints_the_timeline(qtbot: Any, aloop: Any, ops: Any) -> None:
    first = ops.create("send_email", {"recipient": "a@example.com", "subject": "s", "body": "b"})
    ops.cancel(first["id"])
    ops.create("send_email", {"recipient": "b@example.com", "subject": "s", "body": "b"})
    view = StatsView(ops_request(ops))
    qtbot.addWidget(view)
    view.show()
    run(qtbot, view.refresh())
    assert view.status_labels["canceled"].text() == "1" and view.status_labels["pending"].text() == "1"
    assert "2 jobs" in view.headline.text() and "<b>Email</b>: 2" in view.by_type.text()
    assert view.chart.timeline and view.chart.timeline["minutes"] == 60
    view.chart.set_timeline({**view.chart.timeline, "succeeded": [1] * 60, "failed": [2] * 60})
    assert not view.chart.grab().isNull()
