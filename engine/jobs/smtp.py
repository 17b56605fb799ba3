"""Opening an SMTP session: encrypted before any password leaves the machine, and credentials sent as UTF-8.

Used by the ``send_email`` job and by the settings dialog's "Test connection", so both follow the same rules.
"""

from __future__ import annotations

import base64
import smtplib
import ssl

from engine.config import Settings
from engine.errors import PermanentJobError

# The preferred order; both send the password itself, which is why they are only used over TLS by default.
MECHANISMS = ("PLAIN", "LOGIN")


class InsecureLoginRefused(PermanentJobError):
    """A user and password are configured but the connection would not be encrypted."""


def check_login_is_encrypted(settings: Settings) -> None:
    """Refuse, before connecting, to send a password over plain SMTP unless the user chose to allow it."""
    if settings.smtp_user and settings.smtp_tls == "plain" and not settings.smtp_allow_insecure_auth:
        raise InsecureLoginRefused(
            f"refusing to send the password of SMTP user {settings.smtp_user!r} unencrypted to "
            f"{settings.smtp_host}:{settings.smtp_port}: turn on encryption with "
            "`jobdeck config set smtp_tls starttls` (usually port 587) or `jobdeck config set smtp_tls ssl` "
            "(usually port 465), or Settings → Email → Encryption; only for a relay you trust on this machine or "
            "network, `jobdeck config set smtp_allow_insecure_auth true` sends it in clear text"
        )


def login_advice(settings: Settings) -> str | None:
    """What `config set` says about the SMTP login once the settings are saved (None: nothing to say)."""
    if not settings.smtp_user or settings.smtp_tls != "plain":
        return None
    if settings.smtp_allow_insecure_auth:
        return (
            f"warning: the password of SMTP user {settings.smtp_user!r} will be sent unencrypted (smtp_tls is plain "
            "and smtp_allow_insecure_auth is true): anyone who can see the traffic can read it"
        )
    return (
        f"note: with smtp_tls plain, emails will fail rather than send the password of SMTP user "
        f"{settings.smtp_user!r} unencrypted: set smtp_tls to starttls (usually port 587) or ssl (usually port 465)"
    )


def connect(settings: Settings, timeout: float) -> smtplib.SMTP:
    """A connected client, after STARTTLS when configured (certificates are verified: a server that does not
    offer STARTTLS raises ``SMTPNotSupportedError`` instead of falling back to plain text)."""
    host, port = settings.smtp_host, settings.smtp_port
    if settings.smtp_tls == "ssl":
        return smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
    client = smtplib.SMTP(host, port, timeout=timeout)
    if settings.smtp_tls == "starttls":
        try:
            client.ehlo()
            client.starttls(context=ssl.create_default_context())
            client.ehlo()
        except BaseException:
            client.close()
            raise
    return client


def login(client: smtplib.SMTP, user: str, password: str) -> None:
    """AUTH PLAIN or LOGIN with the user and password encoded as UTF-8 (RFC 4954 and 4616).

    ``smtplib.SMTP.login`` encodes them as ASCII: a password such as "pässwort" fails with a
    ``UnicodeEncodeError`` whose text shows the offending character.
    """
    client.ehlo_or_helo_if_needed()
    if not client.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("the server does not offer SMTP AUTH, so it cannot log in")
    offered = client.esmtp_features["auth"].upper().split()
    mechanism = next((m for m in MECHANISMS if m in offered), None)
    if mechanism is None:
        raise smtplib.SMTPNotSupportedError(
            f"the server offers AUTH {' '.join(offered) or '(nothing)'}; Jobdeck logs in with PLAIN or LOGIN"
        )
    if mechanism == "PLAIN":
        code, reply = client.docmd("AUTH", "PLAIN " + _b64(b"\0" + user.encode() + b"\0" + password.encode()))
    else:
        code, reply = client.docmd("AUTH", "LOGIN " + _b64(user.encode()))
        if code == 334:
            code, reply = client.docmd(_b64(password.encode()))
    if code not in (235, 503):  # 503: already authenticated
        raise smtplib.SMTPAuthenticationError(code, reply)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
