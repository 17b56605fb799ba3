"""Settings are read and written through a real worker, secrets only to the keyring; "Test connection" is the
worker's probe; the stats view follows the worker live."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_gui_support import *  # noqa: F403  (fixtures)
from test_gui_support import QT_LOG_IGNORE, ops_request, run

from desktop.views.settings_dialog import SettingsDialog
from desktop.views.stats_view import StatsView
from engine.config import Paths, load_settings, save_settings
from engine.credentials import MemoryStore

pytestmark = QT_LOG_IGNORE

SECRET = "pw-7f3a9c-never-on-disk"
KEY_SECRET = "aws-secret-51bd0e-never-on-disk"


@pytest.fixture
def connection(qtbot: Any, aloop: Any, jobdeck_home: Path, worker_factory: Callable[..., Any]) -> Iterator[Any]:
    """A real worker on this test's data folder and the window's connection to it (requests and events)."""
    from desktop.services.connection import WorkerConnection

    worker_factory()
    conn = WorkerConnection(Paths(jobdeck_home))
    yield conn
    run(qtbot, conn.close())


def test_settings_save_to_config_and_secrets_only_to_the_keyring(
    qtbot: Any, connection: Any, jobdeck_home: Path
) -> None:
    store = MemoryStore()
    dialog = SettingsDialog(connection.request, store)
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
    again = SettingsDialog(connection.request, store)
    qtbot.addWidget(again)
    run(qtbot, again.load_task)
    assert again.smtp_password.text() == "" and "saved in the keyring" in again.smtp_password.placeholderText()


def test_invalid_setting_is_shown_at_its_field(qtbot: Any, connection: Any, jobdeck_home: Path) -> None:
    dialog = SettingsDialog(connection.request, MemoryStore())
    qtbot.addWidget(dialog)
    run(qtbot, dialog.load_task)
    dialog.changes = lambda: {"smtp_port": 0}  # type: ignore[method-assign]
    assert run(qtbot, dialog.save()) is False
    assert not dialog.errors["smtp_port"].isHidden()
    assert not Paths(jobdeck_home).config.exists()


class _NoKeyring(MemoryStore):
    def describe(self) -> str:
        return "unavailable: no OS keyring is available. On Linux start a Secret Service (GNOME Keyring)."


def test_without_a_keyring_the_dialog_says_why_and_refuses_secrets(
    qtbot: Any, connection: Any, jobdeck_home: Path
) -> None:
    dialog = SettingsDialog(connection.request, _NoKeyring())
    qtbot.addWidget(dialog)
    run(qtbot, dialog.load_task)
    assert "cannot be saved" in dialog.keyring_label.text() and "Secret Service" in dialog.keyring_label.text()
    assert not dialog.smtp_password.isEnabled() and not dialog.aws_secret.isEnabled()
    dialog.smtp_password.setText(SECRET)  # even if text got there somehow, it is not written anywhere
    assert run(qtbot, dialog.save()) is False
    assert "cannot be saved" in dialog.form_error.text()
    assert not any(SECRET.encode() in p.read_bytes() for p in jobdeck_home.rglob("*") if p.is_file())


def test_connection_tests_are_the_workers_probes_and_report_plainly(
    qtbot: Any, connection: Any, jobdeck_home: Path, smtp_server: Any, s3_server: Any, s3_bucket: str
) -> None:
    dialog = SettingsDialog(connection.request, MemoryStore())
    qtbot.addWidget(dialog)
    run(qtbot, dialog.load_task)
    dialog.smtp_host.setText("127.0.0.1")
    dialog.smtp_port.setValue(smtp_server.port)
    assert run(qtbot, dialog.test_smtp()).startswith("✔ Connected to 127.0.0.1")
    dialog.s3_bucket.setText(s3_bucket)
    dialog.s3_endpoint_url.setText(s3_server.endpoint_url)
    dialog.s3_path_style.setChecked(True)
    dialog.aws_key_id.setText("testing")
    dialog.aws_secret.setText(KEY_SECRET)  # typed, not saved: the worker's probe uses it once
    assert run(qtbot, dialog.test_s3()).startswith(f"✔ Bucket '{s3_bucket}' is reachable")
    dialog.s3_bucket.setText("no-such-bucket-jobdeck")
    assert run(qtbot, dialog.test_s3()).startswith("✘ S3 answered 404")
    dialog.smtp_port.setValue(9)
    assert "Could not connect to 127.0.0.1:9" in run(qtbot, dialog.test_smtp())
    assert not Paths(jobdeck_home).config.exists()  # what a probe tried was never saved
    # the keys typed for the probe went nowhere: not into a file, not into the worker's log
    for path in jobdeck_home.rglob("*"):
        if path.is_file():
            assert b"never-on-disk" not in path.read_bytes(), path


def test_a_setting_the_workers_environment_overrides_is_shown_and_not_editable(
    qtbot: Any, aloop: Any, jobdeck_home: Path, worker_factory: Callable[..., Any]
) -> None:
    from desktop.services.connection import WorkerConnection

    worker_factory(env={"EMAIL_HOST": "relay.example.com"})
    connection = WorkerConnection(Paths(jobdeck_home))
    dialog = SettingsDialog(connection.request, MemoryStore())
    qtbot.addWidget(dialog)
    run(qtbot, dialog.load_task)
    assert dialog.smtp_host.text() == "relay.example.com"  # the worker's value, not this process's
    assert not dialog.smtp_host.isEnabled() and "EMAIL_HOST" in dialog.smtp_host.toolTip()
    assert dialog.smtp_port.isEnabled()
    run(qtbot, connection.close())


def test_a_probe_names_a_bad_job_type_or_setting(qtbot: Any, connection: Any) -> None:
    from engine.errors import ValidationError

    with pytest.raises(ValidationError, match="unknown job type 'fax'"):
        run(qtbot, connection.request("probe", job_type="fax"))
    with pytest.raises(ValidationError) as bad:
        run(qtbot, connection.request("probe", job_type="send_email", settings={"smtp_port": 0}))
    assert bad.value.field == "smtp_port" and "at least 1" in bad.value.message


def test_a_change_from_the_cli_reaches_the_window_at_once(
    qtbot: Any, connection: Any, jobdeck: Callable[..., Any], jobdeck_home: Path
) -> None:
    from desktop.models.meta import EngineMeta
    from desktop.services.engine_info import EngineInfo

    meta = EngineMeta()
    info = EngineInfo(connection, meta)
    run(qtbot, info.load())
    connection.start_stream(0)
    assert "no default S3 bucket is set" in meta.missing("upload_file")
    assert jobdeck("config", "set", "s3_bucket", "reports").returncode == 0
    qtbot.waitUntil(lambda: info.settings.s3_bucket == "reports", timeout=10_000)  # the worker's settings.changed
    qtbot.waitUntil(lambda: meta.missing("upload_file") == [], timeout=10_000)
    run(qtbot, info.save({"s3_bucket": "archive"}))
    assert info.settings.s3_bucket == "archive"
    assert json.loads(Paths(jobdeck_home).config.read_text())["s3_bucket"] == "archive"


def test_cleanup_button_aborts_stale_multipart_uploads_after_confirmation(
    qtbot: Any, aloop: Any, ops: Any, jobdeck_home: Path, s3_server: Any, s3_bucket: str
) -> None:
    save_settings({"s3_endpoint_url": s3_server.endpoint_url, "s3_path_style": True, "s3_bucket": s3_bucket})
    ops.credentials.store.set("aws-access-key-id", s3_server.ACCESS_KEY)
    ops.credentials.store.set("aws-secret-access-key", s3_server.SECRET_KEY)
    client = s3_server.client()
    stale = client.create_multipart_upload(Bucket=s3_bucket, Key="backups/stale.tar")["UploadId"]
    dialog = SettingsDialog(ops_request(ops), MemoryStore())
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


def test_stats_follow_the_worker_live_over_each_window_with_values_on_hover(qtbot: Any, connection: Any) -> None:
    from desktop.models.meta import EngineMeta

    save_settings({"smtp_host": "127.0.0.1", "smtp_port": 9, "smtp_timeout_s": 5.0})  # emails fail at once
    meta = EngineMeta()
    view = StatsView(connection.request, meta=meta, events=connection.job_events)
    qtbot.addWidget(view)
    view.show()
    view.start_refresh()
    qtbot.waitUntil(lambda: view.chart.timeline is not None)
    connection.start_stream(0)
    assert not hasattr(view, "refresh_button")
    assert [view.window_combo.itemData(i) for i in range(view.window_combo.count())] == ["1h", "24h", "7d", "30d"]
    assert list(view.status_labels) == list(meta.status_names) and "failed" in view.status_labels  # as the engine says
    email = {"recipient": "a@example.com", "subject": "s", "body": "b"}
    job = run(qtbot, connection.request("create", job_type="send_email", parameters=email, max_retries=0))
    # no refresh asked for: the worker's events bring the failure to the view
    qtbot.waitUntil(lambda: view.status_labels["failed"].text() == "1", timeout=20_000)
    qtbot.waitUntil(lambda: sum(view.chart.timeline["failed"]) == 1, timeout=10_000)
    assert "last hour: 0 succeeded, 1 failed" in view.headline.text()
    assert "<b>Email</b>: 1" in view.by_type.text()
    assert run(qtbot, connection.request("get", job_id=job["id"]))["status"] == "failed"
    # hovering the bar shows its time span and counts
    view.chart.grab()  # painted: the bars have their places
    index = max(i for i, n in enumerate(view.chart.timeline["failed"]) if n)
    x = view.chart._plot.left() + (index + 0.5) * view.chart._bar_w
    text = view.chart.show_bar_at(x)
    assert text.endswith("0 succeeded, 1 failed") and "–" in text and view.chart.hover_index == index
    for window, buckets in (("24h", 96), ("7d", 168), ("30d", 120)):
        view.window_combo.setCurrentIndex(view.window_combo.findData(window))
        qtbot.waitUntil(lambda w=window: (view.chart.timeline or {}).get("window") == w, timeout=10_000)
        assert view.chart.timeline["buckets"] == buckets and sum(view.chart.timeline["failed"]) == 1
        assert not view.chart.grab().isNull()
    with pytest.raises(Exception, match="must be one of 1h, 24h, 7d, 30d"):
        run(qtbot, connection.request("timeline", window="2d"))
