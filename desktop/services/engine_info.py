"""Keeps the window's picture of the engine current: ``meta`` (statuses, actions, job types, what the settings lack)
and the settings in effect, read from the worker at start, after it restarts and whenever the settings change
(the worker's ``settings.changed`` event: a save in the window or `jobdeck config set`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from PySide6.QtCore import QObject, Signal

from desktop.models.meta import EngineMeta
from desktop.services.connection import WorkerConnection
from engine.config import Settings
from engine.errors import JobdeckError

log = logging.getLogger(__name__)


class EngineInfo(QObject):
    settings_changed = Signal(object)  # Settings

    def __init__(self, connection: WorkerConnection, meta: EngineMeta, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.connection = connection
        self.meta = meta
        self.settings = Settings()
        self.origins: dict[str, str] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        connection.settings_event.connect(self._on_connection_settings_event)
        connection.state_changed.connect(self._on_connection_state_changed)

    async def load(self) -> None:
        """Settings, then ``meta`` (which says what those settings lack)."""
        reply = await self.connection.request("settings")
        self._take_settings(reply)
        self.meta.update(await self.connection.request("meta"))

    def _take_settings(self, reply: dict[str, Any]) -> None:
        self.origins = dict(reply.get("origins") or {})
        settings = Settings(**reply["settings"])
        if settings != self.settings:
            self.settings = settings
            self.settings_changed.emit(settings)

    async def save(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Validated and written by the worker; raises its ``ValidationError`` naming the setting."""
        reply = await self.connection.request("settings_set", changes=changes)
        self._take_settings(reply)
        self._reload()
        return dict(reply)

    def _reload(self) -> None:
        task = asyncio.ensure_future(self._load_quietly())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _load_quietly(self) -> None:
        try:
            await self.load()
        except (JobdeckError, OSError, TimeoutError) as exc:
            log.info("could not read the engine's settings and rules: %s", exc)

    def _on_connection_settings_event(self, _settings: dict[str, Any]) -> None:
        self._reload()

    def _on_connection_state_changed(self, state: str) -> None:
        if state == "connected" and self.meta.loaded:  # a worker (re)started: its settings may differ
            self._reload()
