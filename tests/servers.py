"""Real loopback servers (SMTP, S3, Secret Service, PostgreSQL) that tests run Jobdeck against.

Each helper is a context manager that owns the processes or threads it starts and stops them
on exit, so a test never leaks a server. Nothing here imports pytest: the fixtures in
``conftest.py`` and ad-hoc scripts (benchmarks, manual checks) share the same helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.message
import email.policy
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import boto3
import psycopg
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from botocore.client import BaseClient
from botocore.config import Config
from psycopg import sql

LOOPBACK = "127.0.0.1"


class ServerUnavailable(RuntimeError):
    """A prerequisite of a helper is missing on this machine.

    A distinct type lets fixtures skip locally (or fail in CI) on a missing server without
    also swallowing genuine bugs in the helpers.
    """


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago.

    The OS picks it, so parallel test runs don't collide on hard-coded ports; the small
    race until the caller binds it is accepted (callers retry where it matters).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _port_is_bindable(port: int) -> bool:
    """Tell whether ``port`` can be listened on, since the servers fail slowly (or hang) if not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


class _ManagedServer:
    """Context-manager plumbing shared by the helpers, so each only defines start/stop."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# SMTP
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    """One accepted DATA transaction, kept whole so tests can assert on envelope and headers."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: email.message.Message
    raw: bytes


class _SmtpHandler:
    """aiosmtpd hooks; they run on the controller's event-loop thread, hence the lock."""

    def __init__(
        self,
        fail_first: int,
        reject_recipients: Iterable[str],
        require_auth: bool,
    ) -> None:
        self._fail_remaining = fail_first
        self._reject = {address.lower() for address in reject_recipients}
        self._require_auth = require_auth
        self.condition = threading.Condition()
        self.received: list[ReceivedMail] = []
        self.data_attempts = 0
        self.answering = threading.Event()  # cleared: a message that arrives waits for its 250 (see hold_answers)
        self.answering.set()
        self.holding = threading.Event()  # set once a whole message waits for its answer

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        # Enforced here rather than with aiosmtpd's auth_required, which warns on every
        # connection when combined with auth_require_tls=False; the reply is the same 530.
        if self._require_auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address.lower() in self._reject:
            return f"550 5.1.1 <{address}>: Recipient address rejected"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        with self.condition:
            self.data_attempts += 1
            if self._fail_remaining > 0:
                self._fail_remaining -= 1
                return "451 4.3.0 Temporary failure, please retry"
            mail = ReceivedMail(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                message=email.message_from_bytes(raw, policy=email.policy.default),
                raw=raw,
            )
            self.received.append(mail)
            self.condition.notify_all()
        if not self.answering.is_set():  # the message is kept; only its 250 waits
            self.holding.set()
            while not self.answering.is_set():
                await asyncio.sleep(0.005)
        return "250 Message accepted for delivery"


class SmtpServer(_ManagedServer):
    """An aiosmtpd server on loopback that records what Jobdeck delivers.

    ``fail_first`` answers the first N DATA commands with 451 so retry logic meets a real
    temporary failure; ``reject_recipients`` answers RCPT with 550 (permanent) for those
    addresses; ``auth=(user, password)`` makes AUTH PLAIN/LOGIN mandatory without TLS and
    answers wrong credentials with 535 (``auth_attempts`` counts the AUTH commands it got).
    ``tls=context`` offers and requires STARTTLS (and AUTH only after it); ``auth_exclude``
    names mechanisms not to offer (e.g. ``("PLAIN",)`` to leave only LOGIN).
    """

    def __init__(
        self,
        *,
        fail_first: int = 0,
        reject_recipients: Iterable[str] = (),
        auth: tuple[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
        auth_exclude: Iterable[str] = (),
    ) -> None:
        self.host = LOOPBACK
        self.port = 0
        self.auth = auth
        self.tls = tls
        self.auth_exclude = list(auth_exclude)
        self.auth_attempts = 0
        self._handler = _SmtpHandler(fail_first, reject_recipients, require_auth=auth is not None)
        self._controller: Controller | None = None

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        # Handled=False lets aiosmtpd send its standard 535 on failure.
        assert self.auth is not None
        self.auth_attempts += 1
        if isinstance(auth_data, LoginPassword):
            user, password = self.auth
            if auth_data.login == user.encode() and auth_data.password == password.encode():
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def start(self) -> None:
        last_error: Exception | None = None
        # free_port() can race with another process; a few attempts make that harmless.
        for _ in range(5):
            port = free_port()
            if not _port_is_bindable(port):
                # aiosmtpd would only notice after its full ready_timeout.
                continue
            kwargs: dict[str, Any] = {}
            if self.auth is not None:
                kwargs = {
                    "authenticator": self._authenticate,
                    "auth_require_tls": self.tls is not None,
                    "auth_exclude_mechanism": self.auth_exclude,
                }
            if self.tls is not None:
                kwargs.update(tls_context=self.tls, require_starttls=True)
            controller = Controller(
                self._handler,
                hostname=self.host,
                port=port,
                ready_timeout=10.0,
                # A fixed name avoids socket.getfqdn(), which can stall on hosts without DNS.
                server_hostname="jobdeck-test-smtp",
                **kwargs,
            )
            try:
                controller.start()
            except Exception as error:  # aiosmtpd re-raises bind errors as-is
                last_error = error
                with contextlib.suppress(Exception):
                    controller.stop(no_assert=True)
                continue
            self._controller = controller
            self.port = port
            return
        raise RuntimeError(f"could not start the SMTP server: {last_error}") from last_error

    def stop(self) -> None:
        self._handler.answering.set()  # a held answer must not keep the server's loop from stopping
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def hold_answers(self) -> None:
        """Keep the next messages' 250 back until ``answer_held()``: the server has taken the message, the client
        has sent the final dot and waits."""
        self._handler.holding.clear()
        self._handler.answering.clear()

    def wait_holding(self, timeout: float) -> bool:
        return self._handler.holding.wait(timeout)

    def answer_held(self) -> None:
        self._handler.answering.set()

    @property
    def messages(self) -> list[ReceivedMail]:
        """A snapshot, so callers can iterate while the server keeps receiving."""
        with self._handler.condition:
            return list(self._handler.received)

    @property
    def data_attempts(self) -> int:
        """DATA commands seen, including refused ones: lets retry tests count attempts."""
        with self._handler.condition:
            return self._handler.data_attempts

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMail]:
        """Block until ``count`` messages arrived, because delivery happens on other threads."""
        deadline = time.monotonic() + timeout
        with self._handler.condition:
            while len(self._handler.received) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"expected {count} message(s) within {timeout}s, got {len(self._handler.received)}"
                    )
                self._handler.condition.wait(remaining)
            return list(self._handler.received)


# --------------------------------------------------------------------------------------------
# S3
# --------------------------------------------------------------------------------------------


class S3Server(_ManagedServer):
    """moto's S3 on a loopback port, restartable on the same port to simulate an outage.

    moto keeps its state in-process, so objects survive a stop()/start() cycle and all
    S3Server instances in one process share buckets: use unique bucket names.
    """

    ACCESS_KEY = "testing"
    SECRET_KEY = "testing"
    REGION = "us-east-1"

    def __init__(self, port: int | None = None) -> None:
        self.host = LOOPBACK
        self.port = port or free_port()
        self._server: Any = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        if self._server is not None:
            return
        # Imported lazily: moto.server costs ~0.7 s, which sessions without S3 shouldn't pay.
        from moto.server import ThreadedMotoServer

        if not _port_is_bindable(self.port):
            raise RuntimeError(f"S3 port {self.port} is in use; moto would hang on start()")
        server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        server.start()
        self._server = server

    def stop(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        server.stop()
        # ThreadedMotoServer.stop() only ends serve_forever(); the listening socket stays
        # open, so clients would hang instead of being refused and a restart couldn't bind.
        werkzeug_server = getattr(server, "_server", None)
        if werkzeug_server is not None:
            werkzeug_server.server_close()

    def client(self) -> BaseClient:
        """A boto3 client with dummy credentials, independent of the developer's AWS config."""
        return boto3.session.Session(
            aws_access_key_id=self.ACCESS_KEY,
            aws_secret_access_key=self.SECRET_KEY,
            region_name=self.REGION,
        ).client(
            "s3",
            endpoint_url=self.endpoint_url,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
                connect_timeout=5,
                read_timeout=30,
            ),
        )

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name


# --------------------------------------------------------------------------------------------
# Secret Service (D-Bus + gnome-keyring)
# --------------------------------------------------------------------------------------------

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={directory}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""

_SECRETS_BUS_NAME = "org.freedesktop.secrets"


class SecretService(_ManagedServer):
    """A private D-Bus session bus with an unlocked gnome-keyring providing Secret Service.

    The bus uses its own config without service directories, so nothing on it is ever
    auto-activated behind our back; HOME, XDG_DATA_HOME and XDG_RUNTIME_DIR of the keyring
    daemon point into a temporary directory, so the developer's real keyring is never read,
    written or reused. ``env`` holds the variables a client process needs (merge it into
    os.environ for a subprocess, or monkeypatch it in before keyring picks its backend).
    """

    def __init__(self, password: str = "jobdeck-test", timeout: float = 15.0) -> None:
        self.password = password
        self.timeout = timeout
        self.env: dict[str, str] = {}
        self._tmp: Path | None = None
        self._bus: subprocess.Popen[bytes] | None = None
        self._keyring: subprocess.Popen[bytes] | None = None

    @staticmethod
    def _require(program: str, package: str) -> str:
        path = shutil.which(program)
        if path is None:
            raise ServerUnavailable(
                f"{program} not found: install the Debian package {package} (scripts/setup.sh does)"
            )
        return path

    def start(self) -> None:
        dbus_daemon = self._require("dbus-daemon", "dbus")
        keyring_daemon = self._require("gnome-keyring-daemon", "gnome-keyring")
        # Short prefix: unix socket paths are limited to 108 bytes.
        self._tmp = Path(tempfile.mkdtemp(prefix="jd-ss-"))
        try:
            self._start_bus(dbus_daemon)
            self._start_keyring(keyring_daemon)
        except BaseException:
            self.stop()
            raise

    def _start_bus(self, dbus_daemon: str) -> None:
        assert self._tmp is not None
        config = self._tmp / "bus.conf"
        config.write_text(_BUS_CONFIG.format(directory=self._tmp))
        with (self._tmp / "dbus.log").open("wb") as log:
            self._bus = subprocess.Popen(
                [dbus_daemon, f"--config-file={config}", "--nofork", "--print-address=1"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        assert self._bus.stdout is not None
        ready, _, _ = select.select([self._bus.stdout], [], [], self.timeout)
        address = self._bus.stdout.readline().decode().strip() if ready else ""
        self._bus.stdout.close()
        if not address:
            raise RuntimeError(f"dbus-daemon printed no address: {self._log('dbus.log')}")
        self.env = {"DBUS_SESSION_BUS_ADDRESS": address}

    def _start_keyring(self, keyring_daemon: str) -> None:
        assert self._tmp is not None
        runtime = self._tmp / "run"
        runtime.mkdir(mode=0o700)
        (self._tmp / "home").mkdir()
        daemon_env = {
            **os.environ,
            **self.env,
            "HOME": str(self._tmp / "home"),
            "XDG_DATA_HOME": str(self._tmp / "data"),
            "XDG_CONFIG_HOME": str(self._tmp / "config"),
            "XDG_RUNTIME_DIR": str(runtime),
        }
        # --foreground instead of --daemonize: the pid stays ours, so stop() can kill it.
        with (self._tmp / "keyring.log").open("wb") as log:
            self._keyring = subprocess.Popen(
                [keyring_daemon, "--foreground", "--unlock", "--components=secrets"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=daemon_env,
            )
        assert self._keyring.stdin is not None
        # --unlock reads the login keyring password from stdin until EOF.
        self._keyring.stdin.write(self.password.encode())
        self._keyring.stdin.close()
        self._wait_for_secrets_name()
        self.env["GNOME_KEYRING_CONTROL"] = str(runtime / "keyring")

    def _wait_for_secrets_name(self) -> None:
        """Poll the bus until the keyring owns org.freedesktop.secrets, i.e. clients can use it."""
        from jeepney import DBus
        from jeepney.io.blocking import open_dbus_connection

        assert self._keyring is not None
        deadline = time.monotonic() + self.timeout
        with open_dbus_connection(bus=self.env["DBUS_SESSION_BUS_ADDRESS"]) as connection:
            while time.monotonic() < deadline:
                if self._keyring.poll() is not None:
                    raise RuntimeError(
                        f"gnome-keyring-daemon exited with {self._keyring.returncode}: {self._log('keyring.log')}"
                    )
                reply = connection.send_and_get_reply(DBus().NameHasOwner(_SECRETS_BUS_NAME), timeout=5)
                if reply.body[0]:
                    return
                time.sleep(0.05)
        raise RuntimeError(
            f"gnome-keyring-daemon did not claim {_SECRETS_BUS_NAME} within {self.timeout}s: {self._log('keyring.log')}"
        )

    def _log(self, name: str) -> str:
        if self._tmp is None:
            return ""
        with contextlib.suppress(OSError):
            return (self._tmp / name).read_text(errors="replace").strip()
        return ""

    @staticmethod
    def _terminate(process: subprocess.Popen[bytes] | None) -> None:
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def stop(self) -> None:
        # Keyring first: it would otherwise notice the bus vanishing and log noise.
        self._terminate(self._keyring)
        self._terminate(self._bus)
        self._keyring = self._bus = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self.env = {}


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------


class PostgresDatabase(_ManagedServer):
    """A throw-away database on the local PostgreSQL server, dropped (forcefully) on exit.

    A unique name per instance keeps parallel runs and leftover databases from interfering;
    ``url`` is in SQLAlchemy form because that is what Jobdeck's storage layer takes.
    """

    def __init__(self, host: str = LOOPBACK, port: int = 5432, user: str = "postgres") -> None:
        self.host = host
        self.port = port
        self.user = user
        self.name = f"jobdeck_test_{uuid.uuid4().hex[:12]}"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{self.name}"

    @property
    def libpq_url(self) -> str:
        """The same database as a plain libpq URL, for psycopg.connect() in tests."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.name}"

    def _admin(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                dbname="postgres",
                autocommit=True,
                connect_timeout=5,
            )
        except psycopg.OperationalError as error:
            raise ServerUnavailable(
                f"PostgreSQL is not reachable at {self.user}@{self.host}:{self.port}: {error}"
            ) from error

    def start(self) -> None:
        with self._admin() as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))

    def stop(self) -> None:
        with self._admin() as connection:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))
