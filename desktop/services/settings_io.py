"""Secrets for the Settings dialog, off the GUI thread: only the OS keyring (settings themselves are the worker's:
see the `settings` and `settings_set` requests)."""

from __future__ import annotations

import asyncio

from engine.credentials import CREDENTIAL_NAMES, CredentialStore, keyring_status


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
