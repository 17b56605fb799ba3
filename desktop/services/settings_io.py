"""Settings and secrets off the GUI thread: engine.config for settings, the keyring for secrets, connection tests."""

from __future__ import annotations

import asyncio
import smtplib
from typing import Any

from engine.config import Paths, Settings, load_settings, save_settings
from engine.credentials import CREDENTIAL_NAMES, Credentials, CredentialStore, keyring_status
from engine.credentials.redact import redact


async def load(paths: Paths) -> Settings:
    return await asyncio.to_thread(load_settings, paths)


async def save(paths: Paths, changes: dict[str, Any]) -> Settings:
    """Validated by engine.config; raises ValidationError naming the setting."""
    return await asyncio.to_thread(save_settings, changes, paths)


async def keyring_state(store: CredentialStore | None = None) -> tuple[bool, str]:
    if store is None:
        return await asyncio.to_thread(keyring_status)
    text = await asyncio.to_thread(store.describe)
    return (not text.startswith("unavailable"), text)


async def secrets_present(store: CredentialStore) -> dict[str, bool]:
    """Which secrets are set — never their values, which the GUI does not need to show."""

    def _check() -> dict[str, bool]:
        return {name: bool(store.get(name)) for name in CREDENTIAL_NAMES}

    return await asyncio.to_thread(_check)


async def store_secrets(store: CredentialStore, secrets: dict[str, str]) -> None:
    def _write() -> None:
        for name, secret in secrets.items():
            store.set(name, secret)

    await asyncio.to_thread(_write)


class OverlayStore:
    """Secrets typed into the dialog (not yet saved) in front of the real store, for "Test connection"."""

    def __init__(self, typed: dict[str, str], store: CredentialStore) -> None:
        self.typed = {k: v for k, v in typed.items() if v}
        self.store = store

    def get(self, name: str) -> str | None:
        return self.typed.get(name) or self.store.get(name)

    def set(self, name: str, secret: str) -> None:
        raise NotImplementedError("the overlay is read-only")

    def delete(self, name: str) -> None:
        raise NotImplementedError("the overlay is read-only")

    def describe(self) -> str:
        return self.store.describe()


def _smtp_check(settings: Settings, password: str | None) -> str:
    """Under the job's own rules (engine.jobs.smtp): no password over an unencrypted connection, UTF-8 login."""
    from engine.jobs import smtp

    host, port = settings.smtp_host, settings.smtp_port
    try:
        if settings.smtp_user and password:
            smtp.check_login_is_encrypted(settings)
        with smtp.connect(settings, min(settings.smtp_timeout_s, 15.0)) as client:
            client.ehlo()
            if settings.smtp_user:
                if not password:
                    return f"Connected to {host}:{port}, but no SMTP password is set for user {settings.smtp_user!r}."
                smtp.login(client, settings.smtp_user, password)
                return f"Connected to {host}:{port} and logged in as {settings.smtp_user}."
            return f"Connected to {host}:{port} (no login: SMTP user is empty)."
    except smtp.InsecureLoginRefused as exc:
        raise ConnectionError(f"Not tested: {exc}.") from None
    except smtplib.SMTPAuthenticationError as exc:
        raise ConnectionError(f"The server refused the login for {settings.smtp_user!r}: {exc.smtp_code}") from None
    except (smtplib.SMTPException, OSError) as exc:
        text = redact(f"{type(exc).__name__}: {exc}", [password] if password else [])  # a server may echo AUTH
        raise ConnectionError(f"Could not connect to {host}:{port}: {text}") from None


async def test_smtp(settings: Settings, password: str | None) -> str:
    """Connect (and log in when a user is set); the message says plainly what worked."""
    return await asyncio.to_thread(_smtp_check, settings, password)


def _s3_check(settings: Settings, store: CredentialStore) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    from engine.s3 import make_client

    if not settings.s3_bucket:
        raise ConnectionError("Set a bucket first.")
    client = make_client(settings, Credentials(store))
    try:
        client.head_bucket(Bucket=settings.s3_bucket)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise ConnectionError(f"S3 answered {code or 'an error'} for bucket {settings.s3_bucket!r}.") from None
    except BotoCoreError as exc:
        raise ConnectionError(f"Could not reach S3: {exc}") from None
    where = settings.s3_endpoint_url or f"AWS region {settings.s3_region}"
    return f"Bucket {settings.s3_bucket!r} is reachable at {where}."


async def test_s3(settings: Settings, store: CredentialStore) -> str:
    return await asyncio.to_thread(_s3_check, settings, store)
