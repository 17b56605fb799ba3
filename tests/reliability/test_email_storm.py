"""kill -9 storms over email jobs with the real worker and a real SMTP server: nothing lost, duplicates rare.

SMTP is at least once by nature: a worker killed after the server's 250 and before the ledger's commit sends that
message again. The worker commits an email's success the moment the server accepts it (``ctx.delivered``), before
QUIT and on the job's own thread, and the commit is visible before its sync (``Ledger._connection``), so the window
is the 250's way back plus one commit. Each kill falls at a random moment of the worker's first 60 ms after it is
ready, when it is sending (a strict model: no kill is wasted on an idle or starting worker). Before these changes
a kill repeated one to two emails on average; the bound below is one per kill.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from servers import SmtpServer
from workerproc import WorkerProcess

from engine.config import Paths, save_settings
from engine.credentials.store import MemoryStore
from engine.events.client import try_wake
from engine.operations import Operations

EMAIL = {"recipient": "ops@example.com", "body": "."}
STORM_WINDOW_S = 0.06  # how long after a worker is ready it may be killed


@dataclass(frozen=True)
class StormFigures:
    jobs: int
    kills: int
    lost: int
    duplicates: int

    def row(self) -> str:
        return f"emails {self.jobs}, kills {self.kills}: lost {self.lost}, duplicate emails {self.duplicates}"


def email_storm(home: Path, smtp: SmtpServer, emails: int, kills: int, seed: int) -> StormFigures:
    """Submit ``emails`` jobs, kill -9 the worker ``kills`` times while it sends them, then let it finish."""
    rng = random.Random(seed)
    paths = Paths(home)
    save_settings(
        {
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "email_from": "jobdeck@example.com",
            "retry_base_s": 0.05,
            "retry_cap_s": 0.5,
        },
        paths,
    )
    ops = Operations(paths, store=MemoryStore())
    ops.after_enqueue = lambda: try_wake(ops.paths)
    worker = WorkerProcess(home)
    try:
        subjects = [f"storm {n}" for n in range(emails)]
        ids = {ops.create("send_email", {**EMAIL, "subject": s}, max_retries=100)["id"]: s for s in subjects}
        done = 0
        for _ in range(kills):
            worker.start()
            time.sleep(rng.uniform(0.0, STORM_WINDOW_S))  # a random moment of its life: mostly sending
            worker.kill()
            done += 1
            if len(Counter(m.message["Subject"] for m in smtp.messages)) >= emails:
                break
        worker.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            page = ops.list(status=["succeeded", "failed"], limit=1)
            if page["total"] >= emails:
                break
            time.sleep(0.1)
        worker.stop()
        statuses = {job_id: ops.get(job_id)["status"] for job_id in ids}
        received = Counter(m.message["Subject"] for m in smtp.messages)
        lost = sum(1 for job_id, subject in ids.items() if received[subject] == 0 or statuses[job_id] != "succeeded")
        duplicates = sum(count - 1 for count in received.values() if count > 1)
        return StormFigures(emails, done, lost, duplicates)
    finally:
        worker.kill()
        ops.ledger.close()


def _check(figures: StormFigures) -> None:
    print(f"\nemail storm: {figures.row()}")  # the figure for docs/reliability.md (pytest -s)
    assert figures.lost == 0
    assert figures.duplicates <= figures.kills


def test_email_storm_short(jobdeck_home: Path, smtp_server: SmtpServer) -> None:
    _check(email_storm(jobdeck_home, smtp_server, emails=40, kills=10, seed=1))


@pytest.mark.long
@pytest.mark.timeout(900)
def test_email_storm_long(jobdeck_home: Path, smtp_server: SmtpServer) -> None:
    _check(email_storm(jobdeck_home, smtp_server, emails=200, kills=50, seed=int(time.time())))
