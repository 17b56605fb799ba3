"""Secrets: the OS keyring, or the process environment in headless mode — never a file or the ledger."""

from engine.credentials.store import (
    CREDENTIAL_NAMES,
    Credentials,
    CredentialStore,
    KeyringStore,
    MemoryStore,
    default_store,
    keyring_status,
)

__all__ = [
    "CREDENTIAL_NAMES",
    "CredentialStore",
    "Credentials",
    "KeyringStore",
    "MemoryStore",
    "default_store",
    "keyring_status",
]
