"""Who may talk to the worker: the per-start token, the handshake check, and the 0600 ``runtime/worker.json``.

Any web page the user visits can open ``ws://127.0.0.1:…``; browsers always send ``Origin``, so a request
carrying one is refused (403) unless the user allowed that origin. Everyone else must present the token that
only the user's own processes can read, compared in constant time (else 401). Browsers cannot set an
``Authorization`` header on a websocket, so an allowed page may instead offer the token as a subprotocol
(``new WebSocket(url, ["jobdeck.v1", "jobdeck.token.<token>"])``): still in the handshake, never in a URL.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

SUBPROTOCOL = "jobdeck.v1"
TOKEN_SUBPROTOCOL_PREFIX = "jobdeck.token."
TOKEN_BYTES = 32  # 256 bits; the issue asks for at least 128


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def _offered_subprotocols(request: Request) -> list[str]:
    return [p.strip() for value in request.headers.get_all("Sec-WebSocket-Protocol") for p in value.split(",")]


def presented_token(request: Request) -> str | None:
    """The bearer token from ``Authorization``, else from a ``jobdeck.token.…`` subprotocol."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    for offered in _offered_subprotocols(request):
        if offered.startswith(TOKEN_SUBPROTOCOL_PREFIX):
            return offered.removeprefix(TOKEN_SUBPROTOCOL_PREFIX)
    return None


class HandshakeGuard:
    """``process_request`` for websockets' ``serve``: 403 for a foreign Origin, 401 without the right token."""

    def __init__(self, token: str, allowed_origins: Iterable[str]) -> None:
        self._token = token.encode()
        self.allowed_origins = frozenset(o.rstrip("/") for o in allowed_origins)

    def __call__(self, conn: ServerConnection, request: Request) -> Response | None:
        origin = request.headers.get("Origin")
        if origin is not None and origin.rstrip("/") not in self.allowed_origins:
            return conn.respond(HTTPStatus.FORBIDDEN, f"Origin {origin} is not allowed (setting allowed_origins)\n")
        token = presented_token(request)
        # compare_digest on bytes of any length: the time taken does not reveal how much of the token matched.
        if token is None or not hmac.compare_digest(token.encode(), self._token):
            return conn.respond(HTTPStatus.UNAUTHORIZED, "Missing or wrong bearer token (see runtime/worker.json)\n")
        return None


def select_subprotocol(_conn: ServerConnection, offered: Sequence[str]) -> str | None:
    """Answer ``jobdeck.v1`` to a browser that offered it (it must get one of its offers back); else none."""
    return SUBPROTOCOL if SUBPROTOCOL in offered else None


def write_worker_info(path: Path, *, port: int, token: str, worker_id: Any, wake_port: int | None = None) -> None:
    """Atomically, and readable by the owner only (0600 file in a 0700 folder) from its first byte.

    ``wake_port`` is left out when the wake datagram could not be set up, so clients use the control channel."""
    with contextlib.suppress(OSError):
        os.chmod(path.parent, 0o700)
    info: dict[str, Any] = {
        "pid": os.getpid(),
        "port": port,
        "token": token,
        "started_at": datetime.now(UTC).isoformat(),
        "worker_id": worker_id,
    }
    if wake_port is not None:
        info["wake_port"] = wake_port
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(info, fh)
    os.chmod(tmp, 0o600)  # Windows ignores the mode bits; the user's profile folder protects it there
    os.replace(tmp, path)


def remove_worker_info(path: Path) -> None:
    """Remove the file only if it is ours: a newer worker may already have replaced it."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(info, dict) and info.get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass
