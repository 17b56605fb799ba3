"""The control channel's requests: which engine operations and worker commands a client may call, and the replies.

A request runs the very ``Operations`` method the CLI runs, so validation and messages are the CLI's; errors become
``{"ok": false, "error": {"field", "message"}}`` replies and never reach the connection.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, Protocol

from engine.credentials.redact import redact_seen
from engine.errors import JobdeckError, ValidationError
from engine.events import schema
from engine.operations import Operations

log = logging.getLogger(__name__)

# Operations a client may call: wire name → method of Operations (keyword arguments from `args`).
OPERATIONS: dict[str, str] = {
    "create": "create",
    "list": "list",
    "status_counts": "status_counts",
    "get": "get",
    "delete": "delete",
    "retry": "retry",
    "retry_all_failed": "retry_all_failed",
    "cancel": "cancel",
    "run_now": "run_now",
    "stats": "stats",
    "timeline": "timeline",
    "types": "types",
    "upload": "upload",
    "count_failed": "count_failed",
    "cleanup_uploads": "cleanup_uploads",
    "bulk": "bulk",
    "meta": "info.meta",
    "settings": "info.settings",
    "settings_set": "info.settings_set",
    "probe": "info.probe",
    "check": "info.check",
    "trash": "trash",
    "restore": "restore",
    "purge_trash": "purge_trash",
    "schedule_add": "schedules.add",
    "schedule_list": "schedules.list",
    "schedule_preview": "schedules.preview",
    "schedule_options": "schedules.options",
    "schedule_get": "schedules.get",
    "schedule_edit": "schedules.edit",
    "schedule_pause": "schedules.pause",
    "schedule_resume": "schedules.resume",
    "schedule_run_now": "schedules.run_now",
    "schedule_delete": "schedules.delete",
}
WORKER_COMMANDS = ("wake", "pause", "resume", "shutdown", "status")


class WorkerControl(Protocol):
    def wake(self) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def shutdown(self) -> None: ...
    def status(self) -> dict[str, Any]: ...


class Dispatcher:
    """Runs one request off the event loop (operations touch the database) and always returns a reply."""

    def __init__(
        self, ops: Operations, control: WorkerControl, executor: Executor, status: Callable[[], dict[str, Any]]
    ) -> None:
        self.ops = ops
        self.control = control
        self.executor = executor
        self.status = status

    async def __call__(self, request_id: Any, op: Any, args: Any) -> dict[str, Any]:
        if args is None:
            args = {}
        if not isinstance(args, dict):
            return schema.error_reply(request_id, "args", "must be an object of argument name → value")
        loop = asyncio.get_running_loop()
        try:
            if op in WORKER_COMMANDS:
                if args:
                    raise ValidationError("args", f"{op} takes no arguments; got {', '.join(sorted(args))}")
                if op == "status":
                    result: Any = self.status()
                else:
                    await loop.run_in_executor(self.executor, getattr(self.control, op))
                    result = {"done": op}
            elif isinstance(op, str) and op in OPERATIONS:
                method: Any = self.ops
                for name in OPERATIONS[op].split("."):  # "schedules.add": a method of ``ops.schedules``
                    method = getattr(method, name)
                result = await loop.run_in_executor(self.executor, _call, method, args)
            else:
                allowed = ", ".join([*OPERATIONS, *WORKER_COMMANDS])
                return schema.error_reply(request_id, "op", f"unknown operation {op!r}; allowed: {allowed}")
        except ValidationError as exc:
            return schema.error_reply(request_id, exc.field, exc.message)
        except JobdeckError as exc:
            return schema.error_reply(request_id, None, str(exc))
        except Exception as exc:
            log.exception("operation %s failed", op)
            text = redact_seen(f"internal error in {op}: {type(exc).__name__}: {exc}")
            return schema.error_reply(request_id, None, text)
        return schema.reply(request_id, result)


def _call(method: Callable[..., Any], args: dict[str, Any]) -> Any:
    try:
        inspect.signature(method).bind(**args)
    except TypeError as exc:
        raise ValidationError("args", f"bad arguments for {method.__name__}: {exc}") from None
    return method(**args)
