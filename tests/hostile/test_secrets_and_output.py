"""Secrets and output at the edges: no password in clear text by default, every wire form of a secret redacted,
header injection refused at submit, and text from outside shown inert by the CLI and the window."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from servers import SmtpServer, _SmtpHandler
from test_gui_support import *  # noqa: F403  (the qasync loop fixture for the window tests)
from test_worker import smtp_config, wait_for
from workerproc import ROOT

from engine.config import Paths
from engine.events.client import try_wake

EMAIL = {"recipient": "ops@example.com", "subject": "Nightly report", "body": "All good."}
# Non-ASCII in the 2-byte, 3-byte and 4-byte UTF-8 ranges: smtplib alone would refuse it with an error showing it.
UTF8_PASSWORD = "pässwörd-€-日本-😀"
FINAL = {"succeeded", "failed", "canceled"}
RAW_CONTROLS = ("\x1b", "\x9b", "\x07", "\u202e", "\u2028")


@pytest.fixture
def live_ops(ops: Any) -> Any:
    """Like the CLI: wake the running worker after each submission."""
    ops.after_enqueue = lambda: try_wake(ops.paths)
    return ops


def jobdeck(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        env={**_env(home), **env},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )


def _env(home: Path) -> dict[str, str]:
    import os

    return {**os.environ, "JOBDECK_HOME": str(home), "JOBDECK_KEYRING": "memory", "PYTHONIOENCODING": "utf-8"}


def wire_forms(user: str, password: str) -> list[str]:
    """How the password travels or gets quoted: literal, base64 alone (AUTH LOGIN), inside AUTH PLAIN's blob, its
    URL-encoding, and the escaped forms a codec error would show."""
    raw = password.encode()
    return [
        password,
        base64.b64encode(raw).decode(),
        base64.b64encode(b"\0" + user.encode() + b"\0" + raw).decode(),
        quote(password, safe=""),
        ascii(password)[1:-1],
        *(ascii(c)[1:-1] for c in password if ord(c) > 127),  # not even one character, escaped
        *(c for c in password if ord(c) > 127),
    ]


class Stored(str):
    """Everything stored, as text; ``in`` looks for a single character only in the text files, events and jobs: in
    a binary file (the ledger's pages) any two bytes may happen to decode as one."""

    text: str

    def __contains__(self, form: object) -> bool:
        return str.__contains__(self.text if isinstance(form, str) and len(form) == 1 else self, form)


def everything_stored(ops: Any) -> Stored:
    """The ledger's events, jobs (error, traceback) and every file under JOBDECK_HOME (ledger, WAL, logs)."""
    texts = [json.dumps(ops.ledger.events_since(0), ensure_ascii=False)]
    texts += [json.dumps(job, ensure_ascii=False) for job in ops.list(limit=100)["jobs"]]
    texts += [json.dumps(ops.get(job["id"]), ensure_ascii=False) for job in ops.list(limit=100)["jobs"]]
    binaries = []
    for path in Path(ops.paths.root).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            try:
                texts.append(data.decode("utf-8"))
            except UnicodeDecodeError:
                binaries.append(data.decode("utf-8", "replace"))
    stored = Stored("\n".join(texts + binaries))
    stored.text = "\n".join(texts)
    return stored


@pytest.fixture
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and its key); the worker trusts it through SSL_CERT_FILE."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jobdeck-test-smtp")])
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def server_tls(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_files)
    return context


# ---------------------------------------------------------------- no password in clear text by default


def test_no_password_goes_out_over_plain_smtp_by_default(
    live_ops: Any, make_smtp_server: Callable[..., SmtpServer], worker_factory: Callable[..., Any]
) -> None:
    ops = live_ops
    password = "pw-cleartext-4b7e1"
    smtp = make_smtp_server(auth=("mailer", password))
    smtp_config(ops, smtp, smtp_user="mailer")
    worker_factory({"EMAIL_HOST_PASSWORD": password})
    job = ops.create("send_email", EMAIL, max_retries=3)
    done = wait_for(ops, job["id"], FINAL)
    assert done["status"] == "failed" and done["attempts"] == 1  # permanent: retrying cannot help
    assert "unencrypted" in done["error"]
    assert "smtp_tls starttls" in done["error"] and "smtp_tls ssl" in done["error"]
    assert "smtp_allow_insecure_auth" in done["error"]
    assert smtp.auth_attempts == 0 and smtp.messages == []


def test_starttls_login_with_a_non_ascii_password_and_the_message_id_recorded(
    live_ops: Any,
    make_smtp_server: Callable[..., SmtpServer],
    worker_factory: Callable[..., Any],
    tls_files: tuple[Path, Path],
) -> None:
    ops = live_ops
    smtp = make_smtp_server(auth=("mailer", UTF8_PASSWORD), tls=server_tls(tls_files))
    smtp_config(ops, smtp, smtp_user="mailer", smtp_tls="starttls")
    worker_factory({"EMAIL_HOST_PASSWORD": UTF8_PASSWORD, "SSL_CERT_FILE": str(tls_files[0])})
    job = ops.create("send_email", EMAIL)
    done = wait_for(ops, job["id"], FINAL)
    assert done["status"] == "succeeded", done["error"]
    [mail] = smtp.wait_for(1)
    message_id = done["result"]["message_id"]
    assert message_id == mail.message["Message-ID"]
    assert message_id.startswith(f"<jobdeck.{job['id']}.") and message_id.endswith("@example.com>")
    assert smtp.auth_attempts == 1


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_insecure_login_only_when_allowed_and_utf8_passwords_never_leak(
    mechanism: str,
    live_ops: Any,
    make_smtp_server: Callable[..., SmtpServer],
    worker_factory: Callable[..., Any],
) -> None:
    """Allowed explicitly, a UTF-8 password logs in over plain SMTP; a wrong one fails permanently and no
    character of it, in any form, reaches the error, the ledger, events or logs."""
    ops = live_ops
    other = "LOGIN" if mechanism == "PLAIN" else "PLAIN"
    smtp = make_smtp_server(auth=("mailer", UTF8_PASSWORD), auth_exclude=(other,))
    smtp_config(ops, smtp, smtp_user="mailer", smtp_allow_insecure_auth=True)
    worker = worker_factory({"EMAIL_HOST_PASSWORD": UTF8_PASSWORD})
    good = ops.create("send_email", EMAIL)
    assert wait_for(ops, good["id"], FINAL)["status"] == "succeeded"
    assert smtp.wait_for(1) and smtp.auth_attempts == 1

    wrong = "wröng-pässwörd-ß"
    worker.stop()
    worker_factory({"EMAIL_HOST_PASSWORD": wrong})
    bad = ops.create("send_email", EMAIL, max_retries=3)
    done = wait_for(ops, bad["id"], FINAL)
    assert done["status"] == "failed" and done["attempts"] == 1
    assert "authentication refused" in done["error"]
    stored = everything_stored(ops)
    for form in wire_forms("mailer", wrong) + wire_forms("mailer", UTF8_PASSWORD):
        assert form not in stored, form


class _EchoingHandler(_SmtpHandler):
    """A server that quotes what it got back in its refusal, as some do: the AUTH PLAIN blob, AUTH LOGIN's
    password line, and the password URL-encoded (an HTTP-backed auth proxy)."""

    async def handle_AUTH(self, server: SMTP, session: Session, envelope: Envelope, args: list[str]) -> str:
        if args[0] == "LOGIN":
            answer = await server.challenge_auth("Password:")
            line = base64.b64encode(answer).decode() if isinstance(answer, bytes) else ""
            password = answer.decode("utf-8", "replace") if isinstance(answer, bytes) else ""
            return f"535 5.7.8 rejected {line} (password={quote(password, safe='')})"
        blob = base64.b64decode(args[1])
        password = blob.split(b"\0")[-1].decode("utf-8", "replace")
        return f"535 5.7.8 rejected AUTH {' '.join(args)} (password={quote(password, safe='')})"


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_a_server_echoing_auth_cannot_put_the_password_in_errors_events_or_the_ledger(
    mechanism: str,
    live_ops: Any,
    make_smtp_server: Callable[..., SmtpServer],
    worker_factory: Callable[..., Any],
) -> None:
    ops = live_ops
    password = "Echo+me/please?&=" + UTF8_PASSWORD
    other = "LOGIN" if mechanism == "PLAIN" else "PLAIN"
    smtp = make_smtp_server(auth=("mailer", password), auth_exclude=(other,))
    smtp._handler.__class__ = _EchoingHandler  # same state, plus the echo
    smtp_config(ops, smtp, smtp_user="mailer", smtp_allow_insecure_auth=True)
    worker_factory({"EMAIL_HOST_PASSWORD": password})
    job = ops.create("send_email", EMAIL, max_retries=2)
    done = wait_for(ops, job["id"], FINAL)
    assert done["status"] == "failed" and "rejected" in done["error"] and "***" in done["error"]
    stored = everything_stored(ops)
    for form in wire_forms("mailer", password):
        assert form not in stored, form


# ---------------------------------------------------------------- config set and the settings dialog explain it


def test_config_set_explains_the_insecure_login_setting(jobdeck_home: Path) -> None:
    user = jobdeck(jobdeck_home, "config", "set", "smtp_user", "mailer")
    assert user.returncode == 0 and "starttls" in user.stderr and "587" in user.stderr
    allowed = jobdeck(jobdeck_home, "config", "set", "smtp_allow_insecure_auth", "true")
    assert allowed.returncode == 0, allowed.stderr
    assert "unencrypted" in allowed.stderr and "warning" in allowed.stderr
    tls = jobdeck(jobdeck_home, "config", "set", "smtp_tls", "starttls")
    assert tls.returncode == 0 and tls.stderr == ""
    headless = jobdeck(jobdeck_home, "config", "show", EMAIL_USE_SSL="true").stdout
    assert any(line.split()[:2] == ["smtp_tls", '"ssl"'] for line in headless.splitlines()), headless


def test_settings_dialog_refuses_a_clear_text_login_test_unless_allowed(
    qtbot: Any, aloop: Any, jobdeck_home: Path, make_smtp_server: Callable[..., SmtpServer], worker_factory: Any
) -> None:
    from test_gui_support import run

    from desktop.services.connection import WorkerConnection
    from desktop.views.settings_dialog import SettingsDialog
    from engine.config import load_settings
    from engine.credentials import MemoryStore

    smtp = make_smtp_server(auth=("mailer", UTF8_PASSWORD))
    worker_factory()  # the test is the worker's probe, with the password typed into the form
    connection = WorkerConnection(Paths(jobdeck_home))
    dialog = SettingsDialog(connection.request, MemoryStore())
    qtbot.addWidget(dialog)
    run(qtbot, dialog.load_task)
    dialog.smtp_host.setText("127.0.0.1")
    dialog.smtp_port.setValue(smtp.port)
    dialog.smtp_user.setText("mailer")
    dialog.smtp_password.setText(UTF8_PASSWORD)
    refused = run(qtbot, dialog.test_smtp())
    assert refused.startswith("✘") and "unencrypted" in refused and smtp.auth_attempts == 0
    assert "insecure" in dialog.smtp_allow_insecure_auth.text().lower()
    dialog.smtp_allow_insecure_auth.setChecked(True)
    assert run(qtbot, dialog.test_smtp()).startswith("✔ Connected")
    assert run(qtbot, dialog.save()) is True
    assert load_settings(Paths(jobdeck_home)).smtp_allow_insecure_auth is True
    for path in jobdeck_home.rglob("*"):  # the probe's password reached no file: not the ledger, not a log
        if path.is_file():
            assert UTF8_PASSWORD.encode() not in path.read_bytes(), path
    run(qtbot, connection.close())


# ---------------------------------------------------------------- headers refused at submit

BREAKERS = ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x00", "\x1b", "\x7f"]


@pytest.mark.parametrize("field", ["subject", "recipient"])
@pytest.mark.parametrize("char", BREAKERS, ids=[f"U+{ord(c):04X}" for c in BREAKERS])
def test_a_header_with_a_line_break_or_control_character_is_refused_at_submit(
    field: str, char: str, jobdeck_home: Path, ops: Any
) -> None:
    value = {"subject": f"Report{char}Bcc: victim@example.com", "recipient": f"ops{char}x@example.com"}[field]
    params = json.dumps({**EMAIL, field: value})  # JSON, because an argument cannot hold NUL
    proc = jobdeck(jobdeck_home, "submit", "send_email", "--params-json", params)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert field in proc.stderr and f"U+{ord(char):04X}" in proc.stderr
    assert char not in proc.stderr and "Traceback" not in proc.stderr
    assert ops.list()["total"] == 0


# ---------------------------------------------------------------- output hygiene: CLI


class _HostileReplyHandler(_SmtpHandler):
    """Answers DATA with terminal escapes: clear screen, a window title, a bell."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "554 5.7.1 \x1b[2J\x1b]0;owned\x07 refused\x1b[0m"


@pytest.fixture
def hostile_job(
    live_ops: Any, make_smtp_server: Callable[..., SmtpServer], worker_factory: Callable[..., Any]
) -> Iterator[dict[str, Any]]:
    ops = live_ops
    smtp = make_smtp_server()
    smtp._handler.__class__ = _HostileReplyHandler
    smtp_config(ops, smtp)
    worker_factory()
    # A subject may hold bidi controls (right-to-left text needs them); a body may hold anything.
    subject = "Invoice \u202etxt.exe\u202c"
    body = "\x9b31m red \x1b]8;;http://evil.example/\x1b\\link\x1b]8;;\x1b\\ \u2028"
    job = ops.create("send_email", {**EMAIL, "subject": subject, "body": body})
    done = wait_for(ops, job["id"], FINAL)
    assert done["status"] == "failed" and "\x1b" in done["error"]  # the raw reply is kept in the ledger
    yield done


def _assert_inert(text: str) -> None:
    for char in RAW_CONTROLS:
        assert char not in text, f"raw U+{ord(char):04X} in output:\n{text!r}"


def test_list_and_show_print_outside_text_inert(hostile_job: dict[str, Any], jobdeck_home: Path) -> None:
    listed = jobdeck(jobdeck_home, "list")
    shown = jobdeck(jobdeck_home, "show", str(hostile_job["id"]))
    shown_json = jobdeck(jobdeck_home, "show", str(hostile_job["id"]), "--json")
    for proc in (listed, shown, shown_json):
        assert proc.returncode == 0, proc.stderr
        _assert_inert(proc.stdout)
    assert "\\u202e" in listed.stdout and "\\x1b" in listed.stdout  # visible escapes, not silence
    assert "\\x1b[2J" in shown.stdout and "\\x07" in shown.stdout and "\\x9b" in shown.stdout
    assert json.loads(shown_json.stdout)["parameters"] == hostile_job["parameters"]


def test_watch_prints_outside_text_inert(hostile_job: dict[str, Any], jobdeck_home: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "watch", "--since", "0"],
        env=_env(jobdeck_home),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if " failed" in line:
                break
    finally:
        proc.kill()
        proc.wait(timeout=10)
    output = "".join(lines)
    assert " failed" in output
    _assert_inert(output)
    assert "\\x1b[2J" in output


# ---------------------------------------------------------------- output hygiene: the window


def _as_displayed(text: str, plain: bool) -> str:
    """What Qt draws for ``text`` in a label (``plain``: its format is PlainText) or a tooltip."""
    from PySide6.QtGui import Qt, QTextDocument

    if plain or not Qt.mightBeRichText(text):
        return text
    document = QTextDocument()
    document.setHtml(text)
    return document.toPlainText()


HOSTILE_MARKUP = "<img src='http://evil.example/x.png'><b>bold</b> & <a href='file:///etc'>link</a>"


def test_window_labels_and_tooltips_show_outside_text_as_text(qtbot: Any, aloop: Any, tmp_path: Path, ops: Any) -> None:
    from PySide6.QtCore import Qt

    from desktop.models.drop import DropCol, DropItem, DropModel
    from desktop.models.jobs import Col, JobTableModel
    from desktop.models.meta import EngineMeta
    from desktop.views.detail_panel import DetailPanel
    from desktop.views.forms import ErrorLabel

    panel = DetailPanel()
    qtbot.addWidget(panel)
    panel.show_job({"id": 7, "job_type": HOSTILE_MARKUP, "status": "failed", "parameters": {}})
    title = panel.title
    shown = _as_displayed(title.text(), title.textFormat() == Qt.TextFormat.PlainText)
    assert HOSTILE_MARKUP in shown

    error = ErrorLabel()
    qtbot.addWidget(error)
    error.show_error(f"path: {HOSTILE_MARKUP} is not a file")
    assert HOSTILE_MARKUP in _as_displayed(error.text(), error.textFormat() == Qt.TextFormat.PlainText)

    model = DropModel()
    name = str(tmp_path / "<b>quarterly</b>.csv")
    model.set_items([DropItem(path=name, key="<b>quarterly</b>.csv", size=1)])
    tooltip = model.data(model.index(0, DropCol.KEY), Qt.ItemDataRole.ToolTipRole)
    assert _as_displayed(tooltip, plain=False).strip() == name

    jobs = JobTableModel()
    meta = EngineMeta()
    meta.update(ops.info.meta())  # summaries as the engine makes them
    jobs.set_meta(meta)
    failed = {"id": 3, "job_type": "send_email", "status": "failed", "priority": 5, "attempts": 1, "max_retries": 0,
              "parameters": {**EMAIL, "subject": HOSTILE_MARKUP}, "error": f"554 {HOSTILE_MARKUP}",
              "created_at": "2026-01-01T00:00:00+00:00"}  # fmt: skip
    jobs.reset([failed], seq=1)
    for col in (Col.SUMMARY, Col.OUTCOME):
        tip = jobs.data(jobs.index(0, col), Qt.ItemDataRole.ToolTipRole)
        assert HOSTILE_MARKUP in _as_displayed(tip, plain=False), col


def test_upload_prints_file_names_from_a_dropped_folder_inert(jobdeck_home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "report\u202etxt.csv").write_text("a,b\n")  # a bidi override: a valid key, shown inert
    (folder / "\x1b]0;owned\x07.csv").write_text("a,b\n")  # no valid key: skipped, and the name shown inert
    (folder / "\x1b[2Jlink").symlink_to("/etc/hostname")  # outside the folder: listed as skipped
    proc = jobdeck(jobdeck_home, "upload", str(folder), "--bucket", "reports")
    assert proc.returncode == 0, proc.stderr
    assert "created job" in proc.stdout and "skipped" in proc.stderr
    _assert_inert(proc.stdout + proc.stderr)
    assert "report\\u202etxt.csv" in proc.stdout
    assert "\\x1b[2Jlink" in proc.stderr and "\\x1b]0;owned\\x07.csv" in proc.stderr


def test_log_records_and_tracebacks_are_redacted(jobdeck_home: Path) -> None:
    """The worker's and the window's log files get the same scrubbing as job errors, tracebacks included."""
    import logging

    from engine.credentials.redact import SEEN
    from engine.logs import configure_logging

    password = "log-pässwörd-9c1e"
    SEEN.add(password)
    root = logging.getLogger()
    before = list(root.handlers)
    configure_logging(Paths(jobdeck_home), "redaction")
    try:
        log = logging.getLogger("jobdeck.test")
        blob = base64.b64encode(b"\0mailer\0" + password.encode()).decode()
        log.error("server answered 535 rejected AUTH PLAIN %s", blob)
        try:
            raise ConnectionError(f"proxy refused https://mailer:{quote(password, safe='')}@relay.example/")
        except ConnectionError:
            log.exception("relay failed")
    finally:
        for handler in root.handlers[len(before) :]:
            handler.close()
            root.removeHandler(handler)
    text = (jobdeck_home / "logs" / "redaction.log").read_text(encoding="utf-8")
    assert "relay failed" in text and "Traceback" in text and "***" in text
    for form in wire_forms("mailer", password):
        assert form not in text, form
