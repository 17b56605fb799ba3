"""Credential stores: one interface, a keyring implementation and an in-memory twin for tests.

Lookup order for a job: the original system's environment variables (headless and server use), then the
keyring. AWS keys may also come from boto3's own chain, which the upload job leaves to boto3.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Protocol

from engine.credentials.redact import SEEN
from engine.errors import CredentialStoreUnavailable, ValidationError

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

SERVICE = "jobdeck"

# name → environment variable that overrides it.
CREDENTIAL_NAMES: dict[str, str] = {
    "smtp-password": "EMAIL_HOST_PASSWORD",
    "aws-access-key-id": "AWS_ACCESS_KEY_ID",
    "aws-secret-access-key": "AWS_SECRET_ACCESS_KEY",
}


def check_name(name: str) -> str:
    if name not in CREDENTIAL_NAMES:
        raise ValidationError("name", f"unknown credential {name!r}; known: {', '.join(CREDENTIAL_NAMES)}")
    return name


class CredentialStore(Protocol):
    def get(self, name: str) -> str | None: ...
    def set(self, name: str, secret: str) -> None: ...
    def delete(self, name: str) -> None: ...
    def describe(self) -> str: ...


class MemoryStore:
    """The in-memory twin: fast, honest tests of everything above the keyring."""

    def __init__(self) -> None:
        self._secrets: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> str | None:
        with self._lock:
            return self._secrets.get(check_name(name))

    def set(self, name: str, secret: str) -> None:
        if not secret:
            raise ValidationError("secret", "must not be empty")
        with self._lock:
            self._secrets[check_name(name)] = secret

    def delete(self, name: str) -> None:
        with self._lock:
            self._secrets.pop(check_name(name), None)

    def describe(self) -> str:
        return "in-memory (tests only)"


class KeyringStore:
    """The OS keyring. With no usable backend it refuses loudly; there is no plaintext fallback."""

    def _backend(self) -> KeyringBackend:
        import keyring
        from keyring.backends import fail

        backend = keyring.get_keyring()
        if isinstance(backend, fail.Keyring) or (
            type(backend).__name__ == "ChainerBackend" and not getattr(backend, "backends", None)
        ):
            raise CredentialStoreUnavailable(
                "no OS keyring is available. On Linux start a Secret Service (GNOME Keyring or KWallet) in "
                "your session — for a headless machine: dbus-run-session and "
                "`printf PASSWORD | gnome-keyring-daemon --unlock --components=secrets` — or set the "
                "environment variables " + ", ".join(CREDENTIAL_NAMES.values()) + " for the worker instead."
            )
        return backend

    def get(self, name: str) -> str | None:
        from keyring.errors import KeyringError

        try:
            return self._backend().get_password(SERVICE, check_name(name))
        except KeyringError as exc:
            raise CredentialStoreUnavailable(f"the keyring refused to read {name!r}: {type(exc).__name__}") from None

    def set(self, name: str, secret: str) -> None:
        from keyring.errors import KeyringError

        if not secret:
            raise ValidationError("secret", "must not be empty")
        try:
            self._backend().set_password(SERVICE, check_name(name), secret)
        except KeyringError as exc:
            raise CredentialStoreUnavailable(f"the keyring refused to store {name!r}: {type(exc).__name__}") from None

    def delete(self, name: str) -> None:
        from keyring.errors import KeyringError, PasswordDeleteError

        try:
            self._backend().delete_password(SERVICE, check_name(name))
        except PasswordDeleteError:
            pass
        except KeyringError as exc:
            raise CredentialStoreUnavailable(f"the keyring refused to delete {name!r}: {type(exc).__name__}") from None

    def describe(self) -> str:
        try:
            backend = self._backend()
        except CredentialStoreUnavailable as exc:
            return f"unavailable: {exc}"
        return f"{type(backend).__module__}.{type(backend).__name__}"


class Credentials:
    """What a job sees: environment first (headless), then the store."""

    def __init__(self, store: CredentialStore) -> None:
        self.store = store

    def get(self, name: str) -> str | None:
        secret = os.environ.get(CREDENTIAL_NAMES[check_name(name)])
        if not secret:
            try:
                secret = self.store.get(name)
            except CredentialStoreUnavailable:
                secret = None
        if secret:
            SEEN.add(secret)
        return secret

    def redact(self, text: str) -> str:
        """Scrub every secret this process has handed out, in any form it takes on the wire, from text before it
        is stored, sent or logged (see ``engine.credentials.redact``)."""
        return SEEN.redact(text)


_default: CredentialStore | None = None


def default_store() -> CredentialStore:
    """The keyring, unless JOBDECK_KEYRING=memory (tests and benchmarks of processes we spawn)."""
    global _default
    if _default is None:
        _default = MemoryStore() if os.environ.get("JOBDECK_KEYRING") == "memory" else KeyringStore()
    return _default


def keyring_status() -> tuple[bool, str]:
    """(usable, description) for the settings dialog and `jobdeck credentials status`."""
    store = default_store()
    text = store.describe()
    return (not text.startswith("unavailable"), text)
