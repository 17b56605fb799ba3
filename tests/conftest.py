"""Shared pytest setup: a hermetic environment and fixtures wrapping the real servers in servers.py.

The environment is fixed at import time, before any test imports Qt or an HTTP client, so
tests never need a display and never send loopback traffic through a developer's proxy.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from servers import PostgresDatabase, S3Server, SecretService, ServerUnavailable, SmtpServer

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
for _proxy_var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_proxy_var, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

# Settings Jobdeck reads from the environment; a developer's own values must not leak in.
JOBDECK_ENV_VARS = (
    "EMAIL_HOST",
    "EMAIL_PORT",
    "EMAIL_HOST_USER",
    "EMAIL_HOST_PASSWORD",
    "EMAIL_USE_TLS",
    "EMAIL_USE_SSL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_STORAGE_BUCKET_NAME",
    "AWS_REGION",
    "JOBDECK_S3_ENDPOINT_URL",
    "JOBDECK_EMAIL_FROM",
    "JOBDECK_DATABASE_URL",
    "JOBDECK_JOB_MODULES",
)

# Fixture name -> marker, so `-m "not postgres"` also deselects tests that merely use the fixture.
_FIXTURE_MARKERS = {"postgres_url": "postgres", "secret_service": "secret_service"}


def in_ci() -> bool:
    """CI must have every server, so a missing one there is a failure rather than a skip."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _unavailable(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{reason} (CI is set, so this is not skipped)", pytrace=False)
    pytest.skip(reason)


def _start_or_skip(server: SecretService | PostgresDatabase, what: str) -> None:
    """Start ``server``; skip (or fail in CI) only when its prerequisites are missing."""
    try:
        server.start()
    except ServerUnavailable as error:
        reason = f"{what} unavailable: {error}"
    else:
        return
    # Outside the except block, so the report isn't cluttered with a chained traceback.
    _unavailable(reason)


def pytest_configure(config: pytest.Config) -> None:
    # aiosmtpd itself sets the deprecated attribute on every successful AUTH.
    config.addinivalue_line("filterwarnings", "ignore:Session.login_data is deprecated:DeprecationWarning")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The long fault-injection runs only when asked for by marker (`-m long`); every CI run has their short twins.
    run_long = "long" in (config.getoption("markexpr", "") or "").replace("not long", "")
    for item in items:
        if not run_long and item.get_closest_marker("long"):
            item.add_marker(pytest.mark.skip(reason="long fault-injection run: select it with -m long"))
        for fixture, marker in _FIXTURE_MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)


@pytest.fixture(autouse=True)
def _release_test_modifiers(request: pytest.FixtureRequest) -> Iterator[None]:
    """QTest leaves the application's keyboard modifiers as its last key event had them (Ctrl after a simulated
    Ctrl+Home), and a later test's ``selectRow`` would then toggle like a Ctrl+click: every Qt test ends with them
    released."""
    yield
    if "qtbot" in request.fixturenames:
        from PySide6.QtCore import Qt
        from PySide6.QtTest import QTest
        from PySide6.QtWidgets import QWidget

        probe = QWidget()
        QTest.keyRelease(probe, Qt.Key.Key_Control)
        probe.deleteLater()


@pytest.fixture
def jobdeck_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty, existing JOBDECK_HOME, with every Jobdeck setting removed from the environment."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("JOBDECK_HOME", str(home))
    for name in JOBDECK_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def jobdeck(jobdeck_home: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `main.py` as a user would, on this test's JOBDECK_HOME, with no session bus (so never the real keyring)
    unless ``extra_env`` brings one."""
    from workerproc import ROOT

    env = {**os.environ, "JOBDECK_HOME": str(jobdeck_home), "PYTHONPATH": str(ROOT)}
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)

    def run(*args: str, stdin: str | None = None, extra_env: dict[str, str] | None = None) -> Any:
        return subprocess.run(
            [sys.executable, str(ROOT / "main.py"), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            env={**env, **(extra_env or {})},
        )

    return run


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A fresh SMTP server per test, so received messages never carry over between tests."""
    with SmtpServer() as server:
        yield server


@pytest.fixture
def make_smtp_server() -> Iterator[Callable[..., SmtpServer]]:
    """Start SmtpServer(**options) (fail_first, reject_recipients, auth); all stop after the test."""
    with contextlib.ExitStack() as stack:

        def make(**options: Any) -> SmtpServer:
            return stack.enter_context(SmtpServer(**options))

        yield make


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One moto server per session: starting it is slow, and unique buckets keep tests apart.

    Tests that simulate an outage should use their own ``S3Server()`` instead of stopping this one.
    """
    with S3Server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[str]:
    """A new, empty bucket name on ``s3_server``; emptied and deleted afterwards."""
    # Self-healing in case an earlier test stopped the shared server despite the advice above.
    s3_server.start()
    name = f"jobdeck-test-{uuid.uuid4().hex[:16]}"
    s3_server.create_bucket(name)
    yield name
    s3_server.start()
    client = s3_server.client()
    with contextlib.suppress(Exception):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=name, Key=item["Key"])
        client.delete_bucket(Bucket=name)


@pytest.fixture(scope="session")
def secret_service() -> Iterator[SecretService]:
    """A private, unlocked gnome-keyring on its own D-Bus; use ``.env`` in the client's environment."""
    service = SecretService()
    _start_or_skip(service, "Secret Service")
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of a database created for this session on the local PostgreSQL server."""
    database = PostgresDatabase()
    _start_or_skip(database, "PostgreSQL")
    try:
        yield database.url
    finally:
        database.stop()


# --- fixtures for engine and desktop tests below ---


@pytest.fixture
def worker_factory(jobdeck_home: Path) -> Iterator[Callable[..., Any]]:
    """Start real `jobdeck worker` processes for this test's JOBDECK_HOME; all are stopped afterwards."""
    from workerproc import WorkerProcess

    started: list[WorkerProcess] = []

    def _start(env: dict[str, str] | None = None, concurrency: int | None = None, start: bool = True) -> Any:
        worker = WorkerProcess(jobdeck_home, env, concurrency)
        started.append(worker)
        if start:
            worker.start()
        return worker

    yield _start
    for worker in started:
        worker.stop()


@pytest.fixture
def ops(jobdeck_home: Path) -> Iterator[Any]:
    """Engine operations on this test's JOBDECK_HOME with an in-memory credential store."""
    from engine.config import Paths
    from engine.credentials.store import MemoryStore
    from engine.operations import Operations

    operations = Operations(Paths(jobdeck_home), store=MemoryStore())
    yield operations
    operations.ledger.close()
