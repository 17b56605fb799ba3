"""The real `jobdeck worker` as a child process of a test: start, wait until it serves, stop or kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class WorkerProcess:
    def __init__(self, home: Path, env: dict[str, str] | None = None, concurrency: int | None = None) -> None:
        self.home = home
        self.extra_env = env or {}
        self.concurrency = concurrency
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = home / "worker-stdout.log"

    @property
    def info_path(self) -> Path:
        return self.home / "runtime" / "worker.json"

    def env(self) -> dict[str, str]:
        env = {**os.environ, "JOBDECK_HOME": str(self.home), **self.extra_env}
        env.setdefault("JOBDECK_KEYRING", "memory")
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        return env

    def launch(self) -> None:
        """Start the process without waiting for it to serve (a storm may kill it while it starts up)."""
        args = [sys.executable, str(ROOT / "main.py"), "worker"]
        if self.concurrency:
            args += ["--concurrency", str(self.concurrency)]
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(args, env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def start(self, timeout: float = 20.0) -> dict[str, Any]:
        self.launch()
        return self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 20.0) -> dict[str, Any]:
        """Wait until the launched process serves (its runtime file names its pid); its info."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.info()
            if info and info.get("pid") == self.proc.pid:
                return info
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.output()}")
            time.sleep(0.01)
        self.kill()
        raise TimeoutError(f"worker did not start within {timeout} s:\n{self.output()}")

    def info(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.info_path.read_text())
        except (OSError, ValueError):
            return None

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (graceful), then SIGKILL if it does not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def children(self) -> list[int]:
        """The pids of the worker's child processes (its courier), from /proc."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == self.pid:
                found.append(int(stat.parent.name))
        return found

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> WorkerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
