"""Helpers for the event-server tests: a worker with the ``noop`` job type, clients, and waiting on events."""

from __future__ import annotations

import asyncio
import functools
import json
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from engine.config import Paths
from engine.events.client import WorkerClient

TESTS = Path(__file__).resolve().parent
NOOP_ENV = {"JOBDECK_JOB_MODULES": "jobtypes_noop", "PYTHONPATH": str(TESTS)}
WAIT_S = 60.0  # a hang guard, not a speed requirement


def run_async(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an ``async def`` test on a fresh event loop (pytest sees the original signature for fixtures)."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return wrapper


def noop_worker(worker_factory: Callable[..., Any], env: dict[str, str] | None = None, **kwargs: Any) -> Any:
    return worker_factory(env={**NOOP_ENV, **(env or {})}, **kwargs)


async def raw_connect(port: int, headers: dict[str, str] | None = None, **kwargs: Any) -> ClientConnection:
    """A plain websockets client (no Jobdeck code), to test the handshake itself."""
    return await connect(f"ws://127.0.0.1:{port}/", additional_headers=headers or {}, proxy=None, **kwargs)


def bearer(info: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {info['token']}"}


class Recorder:
    """Collects every event a client receives and lets a test wait for a condition on them."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = WAIT_S) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self.events):
                self._changed.clear()
                await self._changed.wait()

    def job_events(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type", "").startswith("job.") and "seq" in e]

    def seqs(self) -> list[int]:
        return [e["seq"] for e in self.job_events()]


def finished(count: int, status: str = "succeeded") -> Callable[[list[dict[str, Any]]], bool]:
    return lambda events: sum(1 for e in events if e.get("job", {}).get("status") == status) >= count


async def client(home: Path, recorder: Recorder | None = None) -> WorkerClient:
    return await WorkerClient.connect(Paths(home), on_event=recorder, timeout=WAIT_S)  # a loaded machine is slow


async def create_many(c: WorkerClient, count: int, parameters: dict[str, Any] | None = None) -> list[int]:
    """Create ``count`` noop jobs with up to 32 requests in flight (the server's per-client limit)."""
    ids: list[int] = []
    for start in range(0, count, 32):
        batch = [
            c.request("create", job_type="noop", parameters=parameters or {}) for _ in range(min(32, count - start))
        ]
        ids += [job["id"] for job in await asyncio.gather(*batch)]
    return ids


def ledger_events(home: Path) -> list[dict[str, Any]]:
    """Every stored event, read straight from the ledger, as the wire carries them."""
    from engine.events import schema
    from engine.storage.repository import Ledger

    ledger = Ledger(Paths(home).database_url())
    try:
        out: list[dict[str, Any]] = []
        while batch := ledger.events_since(out[-1]["seq"] if out else 0, 1000):
            out += [json.loads(json.dumps(schema.job_event(e))) for e in batch]
        return out
    finally:
        ledger.close()


def env_for_cli(home: Path) -> dict[str, str]:
    """The environment for a `main.py` subprocess on this home with the noop type loaded."""
    from workerproc import ROOT

    env = {**os.environ, "JOBDECK_HOME": str(home), "JOBDECK_KEYRING": "memory", **NOOP_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS)])
    return env


class CliWatch:
    """`jobdeck watch` as a child process; its stdout lines are collected by a thread as they arrive."""

    def __init__(self, home: Path, *args: str) -> None:
        import queue
        import subprocess
        import sys
        import threading

        from workerproc import ROOT

        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, "-u", str(ROOT / "main.py"), "watch", *args],
            env=env_for_cli(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.endswith("\n"):  # a line cut by a kill was never fully seen
                self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def read_until(self, predicate: Callable[[list[str]], bool], timeout: float = WAIT_S) -> list[str]:
        import queue
        import time

        deadline = time.monotonic() + timeout
        while not predicate(self.lines):
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"watch printed {len(self.lines)} line(s), not what was awaited") from None
            if line is None:
                raise EOFError(
                    f"watch exited with {self.proc.wait()}: {self.proc.stderr.read() if self.proc.stderr else ''}"
                )
            self.lines.append(line)
        return self.lines

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def json_seqs(self) -> list[int]:
        events = [json.loads(line) for line in self.lines]
        return [e["seq"] for e in events if e.get("type", "").startswith("job.") and "seq" in e]
