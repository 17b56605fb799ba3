"""Proves the real-server helpers and fixtures behave as documented, before other tests rely on them."""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import uuid
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy
from botocore.exceptions import EndpointConnectionError
from servers import S3Server, SecretService, SmtpServer

SMTP_TIMEOUT = 10


def _message(to: str = "bob@example.com", subject: str = "Hello") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "jobdeck@example.com"
    message["To"] = to
    message["Subject"] = subject
    message.set_content("body text")
    return message


def test_environment_is_hermetic() -> None:
    assert os.environ["QT_QPA_PLATFORM"]
    assert os.environ["NO_PROXY"] == os.environ["no_proxy"] == "127.0.0.1,localhost"
    assert "HTTP_PROXY" not in os.environ and "https_proxy" not in os.environ


def test_jobdeck_home_isolates_settings(jobdeck_home: Path) -> None:
    assert jobdeck_home.is_dir()
    assert os.environ["JOBDECK_HOME"] == str(jobdeck_home)
    assert "EMAIL_HOST" not in os.environ and "JOBDECK_DATABASE_URL" not in os.environ


def test_smtp_collects_messages(smtp_server: SmtpServer) -> None:
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=SMTP_TIMEOUT) as client:
        client.send_message(_message(subject="Collected"))

    [mail] = smtp_server.wait_for(1, timeout=5)
    assert mail.mail_from == "jobdeck@example.com"
    assert mail.rcpt_tos == ("bob@example.com",)
    assert mail.message["Subject"] == "Collected"


def test_smtp_fail_first_gives_451_then_250(make_smtp_server: Callable[..., SmtpServer]) -> None:
    server = make_smtp_server(fail_first=1)
    with smtplib.SMTP(server.host, server.port, timeout=SMTP_TIMEOUT) as client:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.send_message(_message())
        assert refused.value.smtp_code == 451
        assert client.send_message(_message()) == {}

    assert len(server.wait_for(1)) == 1
    assert server.data_attempts == 2


def test_smtp_rejects_listed_recipients(make_smtp_server: Callable[..., SmtpServer]) -> None:
    server = make_smtp_server(reject_recipients={"Gone@example.com"})
    with smtplib.SMTP(server.host, server.port, timeout=SMTP_TIMEOUT) as client:
        refused = client.sendmail("jobdeck@example.com", ["gone@example.com", "bob@example.com"], _message().as_bytes())
        assert refused["gone@example.com"][0] == 550
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.sendmail("jobdeck@example.com", ["gone@example.com"], _message().as_bytes())

    [mail] = server.wait_for(1)
    assert mail.rcpt_tos == ("bob@example.com",)


def test_smtp_auth_is_required_and_checked(make_smtp_server: Callable[..., SmtpServer]) -> None:
    server = make_smtp_server(auth=("mailer", "s3cret"))
    with smtplib.SMTP(server.host, server.port, timeout=SMTP_TIMEOUT) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as unauthenticated:
            client.send_message(_message())
        assert unauthenticated.value.smtp_code == 530
        with pytest.raises(smtplib.SMTPAuthenticationError) as wrong:
            client.login("mailer", "wrong")
        assert wrong.value.smtp_code == 535
        client.login("mailer", "s3cret")
        client.send_message(_message())

    assert len(server.wait_for(1)) == 1


def test_s3_put_and_get(s3_server: S3Server, s3_bucket: str) -> None:
    client = s3_server.client()
    client.put_object(Bucket=s3_bucket, Key="reports/a.txt", Body=b"payload")

    assert client.get_object(Bucket=s3_bucket, Key="reports/a.txt")["Body"].read() == b"payload"


def test_s3_outage_and_recovery_on_same_port() -> None:
    bucket = f"jobdeck-outage-{uuid.uuid4().hex[:12]}"
    with S3Server() as server:
        client = server.client()
        server.create_bucket(bucket)
        client.put_object(Bucket=bucket, Key="k", Body=b"v")
        port = server.port

        server.stop()
        with pytest.raises(EndpointConnectionError):
            client.head_object(Bucket=bucket, Key="k")

        server.start()
        assert server.port == port
        assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


def test_keyring_uses_real_secret_service(secret_service: SecretService) -> None:
    script = (
        "import keyring; keyring.set_password('jobdeck-test', 'x', 'y'); "
        "print(keyring.get_password('jobdeck-test', 'x'), type(keyring.get_keyring()))"
    )
    env = {**os.environ, **secret_service.env}
    env.pop("PYTHON_KEYRING_BACKEND", None)
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "y <class 'keyring.backends.SecretService.Keyring'>"


def test_postgres_database_is_usable(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://postgres@127.0.0.1:5432/jobdeck_test_")
    engine = sqlalchemy.create_engine(postgres_url)
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text("CREATE TABLE probe (id int PRIMARY KEY, name text)"))
            connection.execute(sqlalchemy.text("INSERT INTO probe VALUES (1, 'one')"))
            rows = connection.execute(sqlalchemy.text("SELECT id, name FROM probe")).all()
            connection.execute(sqlalchemy.text("DROP TABLE probe"))
    finally:
        engine.dispose()

    assert [tuple(row) for row in rows] == [(1, "one")]
