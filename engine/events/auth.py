"""Who may talk to the worker: the per-start token, the handshake check, and the 0600 ``runtime/worker.json``.

Any web page the user visits can open ``ws://127.0.0.1:…``; browsers always send ``Origin``, so a request
carrying one is refused (403) unless the user allowed that origin. A page that reached us through a name it
controls (DNS rebinding) names that host in ``Host``, so only ``127.0.0.1``, ``localhost`` or ``[::1]`` with our
port is served (else 421). Everyone else must present the token that only the user's own processes can read,
compared in constant time (else 401). Browsers cannot set an ``Authorization`` header on a websocket, so an
allowed page may instead offer the token as a subprotocol
(``new WebSocket(url, ["jobdeck.v1", "jobdeck.token.<token>"])``): still in the handshake, never in a URL.
A header these checks read that appears twice is refused (400): which copy counts would be a guess.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

SUBPROTOCOL = Subprotocol("jobdeck.v1")
TOKEN_SUBPROTOCOL_PREFIX = "jobdeck.token."
TOKEN_BYTES = 32  # 256 bits; the issue asks for at least 128
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
SINGLE_HEADERS = ("Host", "Origin", "Authorization")  # each read as one value below


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
    """``process_request`` for websockets' ``serve``: 400 for a repeated header, 403 for a foreign Origin, 421 for a
    Host that is not this worker, 401 without the right token; ``None`` lets the handshake go on."""

    def __init__(self, token: str, allowed_origins: Iterable[str], port: int = 0) -> None:
        self._token = token.encode()
        self.allowed_origins = frozenset(o.rstrip("/") for o in allowed_origins)
        self.port = port  # set once the server has bound its port
        # Called with the connection once its token checked out (the server stops counting it as a stranger).
        self.on_authenticated: Callable[[ServerConnection], None] | None = None

    def __call__(self, conn: ServerConnection, request: Request) -> Response | None:
        for name in SINGLE_HEADERS:
            if len(request.headers.get_all(name)) > 1:
                return conn.respond(HTTPStatus.BAD_REQUEST, f"Header {name} appears more than once\n")
        origin = request.headers.get("Origin")
        if origin is not None and origin.rstrip("/") not in self.allowed_origins:
            return conn.respond(HTTPStatus.FORBIDDEN, f"Origin {origin} is not allowed (setting allowed_origins)\n")
        host = request.headers.get("Host", "")
        if host.lower() not in {f"{name}:{self.port}" for name in LOOPBACK_NAMES}:
            expected = f"127.0.0.1:{self.port}, localhost:{self.port} or [::1]:{self.port}"
            return conn.respond(HTTPStatus.MISDIRECTED_REQUEST, f"Host {host!r} is not this worker; use {expected}\n")
        token = presented_token(request)
        # compare_digest on bytes of any length: the time taken does not reveal how much of the token matched.
        if token is None or not hmac.compare_digest(token.encode(), self._token):
            return conn.respond(HTTPStatus.UNAUTHORIZED, "Missing or wrong bearer token (see runtime/worker.json)\n")
        if self.on_authenticated is not None:
            self.on_authenticated(conn)
        return None


def select_subprotocol(_conn: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
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
