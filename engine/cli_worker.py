"""How a command reaches the engine: through the running worker's control channel when one serves this data folder,
else in the command's own process.

Opening the ledger means importing SQLAlchemy, Huey and the job types, which is most of what a command costs; the
worker has them loaded already. Through the worker a request runs the very same ``Operations`` method (see
``engine.events.control``), so validation, messages and results are those of the local path. Only a worker that
could not be reached at all makes a command fall back to its own process: a request the worker may have acted on
(the connection lost after it was sent) is never repeated, but reported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.errors import JobdeckError, WorkerNotRunning
from engine.events.discovery import read_worker_info
from engine.paths import Paths

if TYPE_CHECKING:
    from engine.events.client import WorkerClient

# The operations the CLI may send to a worker: Operations method name = control-channel op name.
REMOTE_OPERATIONS = frozenset(
    {"create", "list", "get", "retry", "retry_all_failed", "cancel", "run_now", "delete", "bulk", "stats", "trash",
     "restore", "purge_trash"}
)  # fmt: skip
CONNECT_TIMEOUT_S = 5.0
# A request must stay below the worker's message limit (``schema.MAX_MESSAGE_BYTES``); this leaves room for the
# request's envelope. A command whose input is larger (an email with a large body) runs in its own process.
MAX_ARGS_BYTES = 1024 * 1024 - 4096
REQUEST_TIMEOUT_S = 600.0  # a bulk action over many jobs runs in one request


class WorkerEngine:
    """The ``Operations`` methods in ``REMOTE_OPERATIONS``, run by the worker over one connection.

    The connection lives on this object's own event loop, which the calling (synchronous) command drives one
    request at a time; ``follow`` (``--wait``) subscribes on the same connection."""

    through_worker = True

    def __init__(self, paths: Paths, loop: asyncio.AbstractEventLoop, client: WorkerClient) -> None:
        self.paths = paths
        self.loop = loop
        self.client = client

    @classmethod
    def connect(cls, paths: Paths, on_event: Callable[[dict[str, Any]], None] | None = None) -> WorkerEngine | None:
        """A connection to the worker serving ``paths``; None if none runs or it cannot be reached."""
        if read_worker_info(paths) is None:
            return None
        from engine.events.client import WorkerClient

        loop = asyncio.new_event_loop()
        try:
            client = loop.run_until_complete(WorkerClient.connect(paths, on_event, timeout=CONNECT_TIMEOUT_S))
        except WorkerNotRunning:
            loop.close()
            return None
        return cls(paths, loop, client)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name not in REMOTE_OPERATIONS:
            raise AttributeError(name)

        def call(**args: Any) -> Any:
            return self.request(name, **args)

        return call

    def request(self, op: str, **args: Any) -> Any:
        try:
            return self.loop.run_until_complete(self.client.request(op, timeout=REQUEST_TIMEOUT_S, **args))
        except WorkerNotRunning:
            raise JobdeckError(
                f"the worker went away before it answered {op!r}; it may or may not have been done (see: jobdeck list)"
            ) from None
        except TimeoutError:
            raise JobdeckError(f"the worker did not answer {op!r} within {REQUEST_TIMEOUT_S:.0f} s") from None

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.client.close())
        finally:
            self.loop.close()
