"""The ``send_email`` job type: one message over SMTP (plain, STARTTLS or SSL)."""

from __future__ import annotations

import contextlib
import hashlib
import re
import smtplib
import unicodedata
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from pydantic import Field, field_validator

from engine.config import Settings
from engine.credentials.redact import redact
from engine.credentials.store import Credentials
from engine.errors import JobdeckError, JobError, PermanentJobError
from engine.jobs import smtp
from engine.jobs.base import JobContext, JobType, Params
from engine.jobs.registry import register

# Deliberately simple: the SMTP server is the final judge; this catches typos before anything is written.
_ADDRESS = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")


# Control characters (C0 with NUL, VT, FF, C1 with NEL) and the Unicode line and paragraph separators: in a header
# they either break it into two (an injected header) or make the message unsendable on every attempt.
_BREAKING = frozenset(("Cc", "Zl", "Zp"))


def split_addresses(value: str) -> list[str]:
    return [part.strip() for part in re.split(r"[,;]", value) if part.strip()]


def check_header_text(value: str) -> str:
    """Refuse a header value with a control character or line break, naming it by code point (never echoing it)."""
    for position, char in enumerate(value, 1):
        if unicodedata.category(char) in _BREAKING:
            raise ValueError(
                f"contains the control character U+{ord(char):04X} ({unicodedata.name(char, 'control')}) at "
                f"character {position}; it must be a single line of printable text"
            )
    return value


class EmailParams(Params):
    recipient: str = Field(
        description="One address, or several separated by commas",
        json_schema_extra={"format": "email-list"},
        min_length=1,
    )
    subject: str = Field(description="Subject line", max_length=998)
    body: str = Field(description="Plain-text body", json_schema_extra={"format": "multiline"})
    html_body: str | None = Field(
        default=None, description="Optional HTML alternative", json_schema_extra={"format": "multiline"}
    )

    @field_validator("recipient")
    @classmethod
    def _check_recipients(cls, value: str) -> str:
        addresses = split_addresses(check_header_text(value))
        if not addresses:
            raise ValueError("needs at least one address, e.g. ops@example.com")
        bad = [a for a in addresses if not _ADDRESS.match(a)]
        if bad:
            raise ValueError(f"not a valid email address: {', '.join(bad)} (expected name@example.com)")
        return ", ".join(addresses)

    @field_validator("subject")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return check_header_text(value)


def message_id(ctx: JobContext, sender: str) -> str:
    """The same for every attempt of a job: a copy that a crash sent twice (SMTP is at least once) carries the
    first one's Message-ID, by which mail systems and readers recognise and drop duplicates. Without the job's
    creation time (a context made outside the worker) it is unique per attempt instead."""
    if not ctx.created_at:
        return make_msgid(idstring=f"jobdeck{ctx.job_id}", domain=_domain(sender))
    token = hashlib.sha256(f"{ctx.job_id}\0{ctx.created_at}".encode()).hexdigest()[:20]
    return f"<jobdeck.{ctx.job_id}.{token}@{_domain(sender)}>"


@register
class SendEmail(JobType):
    name = "send_email"
    label = "Send email"
    short_label = "Email"
    description = "Send an email over SMTP to one or more recipients."
    Params = EmailParams
    summary_fields = ("recipient", "subject")

    def probe(self, settings: Settings, credentials: Credentials) -> str:
        """Connect (and log in when a user is set) under the job's own rules: no password over an unencrypted
        connection, UTF-8 login."""
        host, port = settings.smtp_host, settings.smtp_port
        password = credentials.get("smtp-password") if settings.smtp_user else None
        try:
            if settings.smtp_user and password:
                smtp.check_login_is_encrypted(settings)
            with smtp.connect(settings, min(settings.smtp_timeout_s, 15.0)) as client:
                client.ehlo()
                if not settings.smtp_user:
                    return f"Connected to {host}:{port} (no login: SMTP user is empty)."
                if not password:
                    return f"Connected to {host}:{port}, but no SMTP password is set for user {settings.smtp_user!r}."
                smtp.login(client, settings.smtp_user, password)
                return f"Connected to {host}:{port} and logged in as {settings.smtp_user}."
        except smtp.InsecureLoginRefused as exc:
            raise JobdeckError(f"Not tested: {exc}.") from None
        except smtplib.SMTPAuthenticationError as exc:
            raise JobdeckError(f"The server refused the login for {settings.smtp_user!r}: {exc.smtp_code}") from None
        except (smtplib.SMTPException, OSError) as exc:
            text = redact(f"{type(exc).__name__}: {exc}", [password] if password else [])  # a server may echo AUTH
            raise JobdeckError(f"Could not connect to {host}:{port}: {text}") from None

    def missing(self, settings: Settings, configured: set[str], credentials: Credentials) -> list[str]:
        gaps = []
        if "smtp_host" not in configured:
            gaps.append(f"no SMTP server is set (emails would go to {settings.smtp_host}:{settings.smtp_port})")
        if settings.smtp_user and not credentials.get("smtp-password"):
            gaps.append(f"no password is saved for SMTP user {settings.smtp_user!r}")
        return gaps

    def run(self, ctx: JobContext, params: EmailParams) -> dict[str, Any] | None:  # type: ignore[override]
        settings = ctx.settings
        recipients = split_addresses(params.recipient)
        message = EmailMessage()
        message["From"] = settings.email_from
        message["To"] = ", ".join(recipients)
        message["Subject"] = params.subject
        message["Date"] = formatdate(localtime=True)
        message["Message-ID"] = message_id(ctx, settings.email_from)
        message.set_content(params.body)
        if params.html_body:
            message.add_alternative(params.html_body, subtype="html")

        smtp.check_login_is_encrypted(settings)
        password = ctx.credentials.get("smtp-password") if settings.smtp_user else None
        if settings.smtp_user and not password:
            raise PermanentJobError(
                f"SMTP user {settings.smtp_user!r} is set but the credential 'smtp-password' is not "
                "(set it with: jobdeck credentials set smtp-password)"
            )
        # In the courier: a worker killed while the message is on the wire does not send it twice.
        return ctx.deliver(send, settings, password, message, recipients)


def send(settings: Settings, password: str | None, message: EmailMessage, recipients: list[str]) -> dict[str, Any]:
    """One SMTP exchange; its errors become job errors here, in the process that sees them (the courier)."""
    try:
        client = smtp.connect(settings, settings.smtp_timeout_s)
        try:
            if settings.smtp_user and password:
                smtp.login(client, settings.smtp_user, password)
            refused = client.send_message(message, to_addrs=recipients)
        finally:
            _hang_up(client)
    except smtplib.SMTPNotSupportedError as exc:
        raise PermanentJobError(
            f"{settings.smtp_host}:{settings.smtp_port}: {exc} (check smtp_tls and smtp_port in the settings)"
        ) from None
    except smtplib.SMTPAuthenticationError as exc:
        raise PermanentJobError(
            f"SMTP authentication refused for user {settings.smtp_user!r}: {exc.smtp_code} {_text(exc.smtp_error)}"
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        codes = {code for code, _ in exc.recipients.values()}
        detail = "; ".join(f"{addr}: {code} {_text(msg)}" for addr, (code, msg) in exc.recipients.items())
        if all(code >= 500 for code in codes):
            raise PermanentJobError(f"recipient rejected — {detail}") from None
        raise JobError(f"recipient temporarily refused — {detail}") from None
    except smtplib.SMTPResponseException as exc:
        text = f"SMTP server answered {exc.smtp_code} {_text(exc.smtp_error)}"
        if exc.smtp_code >= 500:
            raise PermanentJobError(text) from None
        raise JobError(text) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise JobError(
            f"could not deliver via {settings.smtp_host}:{settings.smtp_port}: {exc.__class__.__name__}: {exc}"
        ) from None
    return {
        "message_id": message["Message-ID"],
        "recipients": [r for r in recipients if r not in refused],
        "refused": sorted(refused),
    }


def _hang_up(client: smtplib.SMTP) -> None:
    """QUIT without waiting for its 221: the server has the message, and the note of that is written the moment
    ``send`` returns, not one round trip later."""
    with contextlib.suppress(smtplib.SMTPException, OSError):  # not connected: SMTPServerDisconnected
        client.send(b"QUIT\r\n")
    client.close()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _domain(address: str) -> str:
    """The sender's domain for the Message-ID, as RFC 5322 suggests (a bare name falls back to a fixed one)."""
    domain = address.rpartition("@")[2].strip(" <>")
    return domain if "." in domain or domain == "localhost" else "jobdeck.local"
