"""A local attacker's flood of half-open websocket handshakes, as a child process of a test.

``python handshake_flood.py PORT COUNT`` keeps COUNT connections to 127.0.0.1:PORT open, each having sent the first
line of a handshake and nothing more; a connection the server closes is replaced at once, as an attacker would.
It prints ``ready`` once COUNT connections have been opened, then a line ``opened N cut M`` every second, and stops
when its stdin closes. ``Flood`` runs it from a test.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
from typing import IO

MAX_NEW_PER_S = 2000  # pace of new connections (a cut one is replaced), so the flood leaves the machine some CPU


def flood(port: int, count: int) -> None:
    try:
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass
    head = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode()  # never the blank line that ends it
    sel = selectors.DefaultSelector()
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    opened = cut = live = 0
    announced = False
    last_report = time.monotonic()
    budget, budget_at = 0.0, time.monotonic()

    def open_one() -> None:
        nonlocal live
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        code = sock.connect_ex(("127.0.0.1", port))
        if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            sock.close()
            return
        sel.register(sock, selectors.EVENT_WRITE, "connecting")
        live += 1

    while not stop.is_set():
        now = time.monotonic()
        budget = min(MAX_NEW_PER_S / 10, budget + (now - budget_at) * MAX_NEW_PER_S)
        budget_at = now
        while live < count and budget >= 1:
            open_one()
            budget -= 1
        for key, _mask in sel.select(0.05):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if key.data == "connecting":
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    try:
                        sock.send(head)
                        sel.modify(sock, selectors.EVENT_READ, "open")
                        opened += 1
                        continue
                    except OSError:
                        pass
            else:
                try:
                    if sock.recv(4096):
                        continue  # an answer; the close follows
                except BlockingIOError:
                    continue
                except OSError:
                    pass
                cut += 1
            sel.unregister(sock)
            sock.close()
            live -= 1
        if not announced and opened >= count:
            announced = True
            print("ready", flush=True)
        if now - last_report >= 1.0:
            last_report = now
            print(f"opened {opened} cut {cut}", flush=True)


class Flood:
    """The flood as a child process of the test: ``with Flood(port, 1000) as f: f.wait_ready()``."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.count = count
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self._ready = threading.Event()

    def __enter__(self) -> Flood:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), str(self.port), str(self.count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        threading.Thread(target=self._pump, args=(self.proc.stdout,), daemon=True).start()
        return self

    def _pump(self, stdout: IO[str]) -> None:
        for line in stdout:
            self.lines.append(line.strip())
            if line.strip() == "ready":
                self._ready.set()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Every one of the COUNT connections has been opened (some may have been cut since)."""
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the flood did not open {self.count} connections: {self.lines[-3:]}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


if __name__ == "__main__":
    flood(int(sys.argv[1]), int(sys.argv[2]))
