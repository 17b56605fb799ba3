"""kill -9 storms over email jobs with the real worker and a real SMTP server: nothing lost, duplicates rare.

SMTP is at least once by nature: a sender killed between its final dot and the server's 250 cannot know whether
the server took the message, and sends it again. The worker leaves the exchange to its courier (a child process,
``engine.worker.courier``), which finishes it when the worker is killed and notes the delivery; the next worker
waits for the courier before it recovers. So kills of the worker repeat no email, and only a kill of the courier
too (``with_courier``: what a power cut does) leaves SMTP's own window. Two models of where kills fall:

- while sending: each kill at a random moment of the worker's first 60 ms after it is ready (strict: no kill is
  wasted on a starting or idle worker). Before these changes a kill repeated one to two emails on average.
- anywhere: each kill at a uniformly random moment of the worker's life from launch to start-up plus a slack,
  both measured in the same run (a warm-up batch), so kills land in start-up, recovery, claiming, sending,
  committing and idle alike. A moment past start-up counts from when this launch serves, since start-ups vary
  by half under load. The slack makes the expected sending time per kill that of emails/kills emails, so that
  50 kills are spread over the run of 200 emails rather than spent before the first or after the last.

The bound for both is nothing lost, and no duplicate unless the courier is killed too (then at most one per kill).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from servers import SmtpServer
from test_lock_wait import hold
from workerproc import WorkerProcess

from engine.config import Paths, save_settings
from engine.credentials.store import MemoryStore
from engine.events.client import try_wake
from engine.operations import Operations

EMAIL = {"recipient": "ops@example.com", "body": "."}
STORM_WINDOW_S = 0.06  # while sending: how long after a worker is ready it may be killed
WARM_UP = 40  # anywhere: emails sent to measure the worker's start-up time and pace


@dataclass(frozen=True)
class StormFigures:
    jobs: int
    kills: int
    kills_after_ready: int
    sent_in_storm: int
    lost: int
    duplicates: int
    seed: int
    life_s: float

    def row(self) -> str:
        return (
            f"emails {self.jobs}, kills {self.kills} ({self.kills_after_ready} after start-up), seed {self.seed},"
            f" kill moments up to {self.life_s * 1000:.0f} ms, {self.sent_in_storm} sent during the kills:"
            f" lost {self.lost}, duplicate emails {self.duplicates}"
        )


def _received(smtp: SmtpServer, subjects: set[str]) -> Counter[str]:
    """How many times the server accepted each of these subjects (one subject per job)."""
    return Counter(s for m in smtp.messages if (s := m.message["Subject"]) in subjects)


def _until_more(smtp: SmtpServer, accepted: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while len(smtp.messages) <= accepted and time.monotonic() < deadline:
        time.sleep(0.001)


def _anywhere_life(ops: Operations, worker: WorkerProcess, smtp: SmtpServer, per_kill: float) -> tuple[float, float]:
    """Start-up ``r`` and the slack ``s`` for which a kill uniform on [0, r + s] leaves on average ``per_kill``
    emails' time of sending (s² / 2(r + s) = per_kill × pace)."""
    subjects = {f"warm-up {n}" for n in range(WARM_UP)}
    for subject in subjects:
        ops.create("send_email", {**EMAIL, "subject": subject})
    began = time.monotonic()
    worker.start()
    ready = time.monotonic()
    first = None  # the pace counts from the first acceptance: claiming the first batch is start-up's share
    while (count := len(_received(smtp, subjects))) < WARM_UP and time.monotonic() < ready + 60:
        first = first or (time.monotonic() if count else None)
        time.sleep(0.005)
    pace = (time.monotonic() - (first or ready)) / (WARM_UP - 1)
    worker.stop()
    startup, wanted = ready - began, per_kill * pace
    return startup, 2 * wanted + math.sqrt(4 * wanted**2 + 2 * wanted * startup)


def email_storm(
    home: Path,
    smtp: SmtpServer,
    emails: int,
    kills: int,
    seed: int,
    anywhere: bool = False,
    with_courier: bool = False,
) -> StormFigures:
    """Submit ``emails`` jobs, kill -9 the worker ``kills`` times while it works on them, then let it finish;
    ``with_courier``: its courier is killed with it (what a power cut does), which leaves SMTP's own window."""
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
        startup, slack = _anywhere_life(ops, worker, smtp, emails / kills) if anywhere else (0.0, STORM_WINDOW_S)
        warmed = ops.list(limit=1)["total"]
        subjects = [f"storm {n}" for n in range(emails)]
        ids = {ops.create("send_email", {**EMAIL, "subject": s}, max_retries=100)["id"]: s for s in subjects}
        done = after_ready = 0
        for _ in range(kills):
            moment = rng.uniform(0.0, startup + slack)
            accepted = len(smtp.messages)
            worker.launch()
            if moment >= startup:  # past start-up: counted from when this launch serves
                worker.wait_ready()
                moment -= startup
                if with_courier:  # and from its first acceptance: the courier starts with the first email
                    _until_more(smtp, accepted)
            time.sleep(moment)
            info = worker.info()
            after_ready += bool(info and info.get("pid") == worker.pid)
            for pid in worker.children() if with_courier else ():
                os.kill(pid, signal.SIGKILL)
            worker.kill()
            done += 1
            if len(_received(smtp, set(subjects))) >= emails:
                break
        sent_in_storm = len(_received(smtp, set(subjects)))
        worker.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            page = ops.list(status=["succeeded", "failed"], limit=1)
            if page["total"] >= warmed + emails:
                break
            time.sleep(0.1)
        worker.stop()
        statuses = {job_id: ops.get(job_id)["status"] for job_id in ids}
        received = _received(smtp, set(subjects))
        lost = sum(1 for job_id, subject in ids.items() if received[subject] == 0 or statuses[job_id] != "succeeded")
        duplicates = sum(count - 1 for count in received.values() if count > 1)
        return StormFigures(emails, done, after_ready, sent_in_storm, lost, duplicates, seed, startup + slack)
    finally:
        worker.kill()
        ops.ledger.close()


def _check(figures: StormFigures, with_courier: bool = False) -> None:
    print(f"\nemail storm: {figures.row()}", flush=True)  # the figure for docs/reliability.md (pytest -s)
    assert figures.lost == 0
    assert figures.duplicates <= (figures.kills if with_courier else 0)


def test_email_storm_short(jobdeck_home: Path, smtp_server: SmtpServer) -> None:
    _check(email_storm(jobdeck_home, smtp_server, emails=40, kills=10, seed=1))


@pytest.mark.long
@pytest.mark.timeout(900)
def test_email_storm_long(jobdeck_home: Path, smtp_server: SmtpServer) -> None:
    _check(email_storm(jobdeck_home, smtp_server, emails=200, kills=50, seed=int(time.time())))


@pytest.mark.long
@pytest.mark.timeout(900)
def test_email_storm_with_the_courier_long(jobdeck_home: Path, smtp_server: SmtpServer) -> None:
    _check(email_storm(jobdeck_home, smtp_server, emails=200, kills=50, seed=int(time.time()), with_courier=True), True)


def test_email_storm_anywhere_short(jobdeck_home: Path, smtp_server: SmtpServer) -> None:
    _check(email_storm(jobdeck_home, smtp_server, emails=40, kills=10, seed=1, anywhere=True))


@pytest.mark.long
@pytest.mark.timeout(900)
def test_email_storm_anywhere_long(jobdeck_home: Path, smtp_server: SmtpServer) -> None:
    _check(email_storm(jobdeck_home, smtp_server, emails=200, kills=50, seed=int(time.time()), anywhere=True))


def quick_retries(home: Path, smtp: SmtpServer) -> Operations:
    """Operations on ``home``, sending through ``smtp``, with retries a fraction of a second apart."""
    paths = Paths(home)
    settings = {"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "email_from": "j@example.com"}
    save_settings({**settings, "retry_base_s": 0.05, "retry_cap_s": 0.1}, paths)
    return Operations(paths, store=MemoryStore())


def until_final(ops: Operations, job_id: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and ops.get(job_id)["status"] not in ("succeeded", "failed"):
        time.sleep(0.05)


def test_a_kill_after_the_servers_250_does_not_send_the_email_again(
    jobdeck_home: Path, smtp_server: SmtpServer
) -> None:
    """The worker learns of the 250 while another process holds the ledger's write lock, so its commit waits; it is
    killed then. Its delivery note (one write, no lock) tells the next worker that the attempt delivered."""
    ops = quick_retries(jobdeck_home, smtp_server)
    job = ops.create("send_email", {**EMAIL, "subject": "once"})
    worker = WorkerProcess(jobdeck_home)
    smtp_server.hold_answers()
    holder = None
    try:
        worker.start()
        assert smtp_server.wait_holding(20), "the worker never sent the message"
        holder = hold(jobdeck_home / "jobdeck.db", "IMMEDIATE")  # the worker's commit of the success must wait
        smtp_server.answer_held()
        notes = jobdeck_home / "jobdeck.db.delivered"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (notes.exists() and f'"job":{job["id"]},' in notes.read_text()):
            time.sleep(0.01)
        time.sleep(0.05)
        worker.kill()
        assert ops.get(job["id"])["status"] == "running"  # the ledger never heard of the 250
        holder.communicate("", timeout=10)
        holder = None
        worker.start()
        until_final(ops, job["id"])
        worker.stop()
        done = ops.get(job["id"])
        copies = [m for m in smtp_server.messages if m.message["Subject"] == "once"]
        assert len(copies) == 1
        assert done["status"] == "succeeded"
        assert done["result"]["message_id"] == copies[0].message["Message-ID"]
        assert not notes.read_text()  # recovery used the note; the next start compacted it away
    finally:
        if holder is not None:
            holder.kill()
        worker.kill()
        ops.ledger.close()


def _exited(pid: int) -> bool:
    """Gone, or a zombie that init has not reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


@contextlib.contextmanager
def _answer_held(home: Path, smtp: SmtpServer, subject: str) -> Iterator[tuple[Operations, int, WorkerProcess]]:
    """A worker that has sent one job's message to the end and waits for the 250, which the server holds back."""
    ops = quick_retries(home, smtp)
    job_id = ops.create("send_email", {**EMAIL, "subject": subject})["id"]
    worker = WorkerProcess(home)
    smtp.hold_answers()
    try:
        worker.start()
        assert smtp.wait_holding(20), "the worker never sent the message"
        yield ops, job_id, worker
    finally:
        worker.kill()
        ops.ledger.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The test's ledger: SQLite in its data folder, or a PostgreSQL database of its own (workers inherit the URL)."""
    if request.param == "sqlite":
        yield request.param
        return
    request.getfixturevalue("postgres_url")  # skips (or fails in CI) without a server
    from servers import PostgresDatabase

    with PostgresDatabase() as database:
        monkeypatch.setenv("JOBDECK_DATABASE_URL", database.url)
        yield request.param


def test_a_worker_killed_before_the_250_does_not_send_the_email_again(
    ledger: str, jobdeck_home: Path, smtp_server: SmtpServer
) -> None:
    """Killed after the final dot and before the 250, the worker cannot know whether the server took the message;
    its courier, which carries the exchange, can. The next worker waits for that courier and reads its note (beside
    a SQLite ledger, in the data folder's runtime folder for PostgreSQL)."""
    with _answer_held(jobdeck_home, smtp_server, "once") as (ops, job_id, worker):
        courier = worker.children()
        worker.kill()
        worker.launch()  # while the courier still waits for the 250: the new worker must wait for it
        time.sleep(0.5)
        assert ops.get(job_id)["status"] == "running"
        smtp_server.answer_held()
        worker.wait_ready()
        until_final(ops, job_id)
        worker.stop()
        done = ops.get(job_id)
        copies = [m for m in smtp_server.messages if m.message["Subject"] == "once"]
        assert len(copies) == 1
        assert (done["status"], done["attempts"]) == ("succeeded", 1)
        assert done["result"]["message_id"] == copies[0].message["Message-ID"]
        assert courier and all(_exited(pid) for pid in courier)  # it exited by itself


def test_an_email_sent_twice_by_a_kill_of_worker_and_courier_before_the_250_carries_one_message_id(
    jobdeck_home: Path, smtp_server: SmtpServer
) -> None:
    """With the courier killed too (a power cut, a kill of the process group), SMTP's own at-least-once is left:
    the message is sent again, and the copy has the first one's Message-ID, so mail systems can drop it."""
    with _answer_held(jobdeck_home, smtp_server, "twice") as (ops, job_id, worker):
        for pid in worker.children():
            os.kill(pid, signal.SIGKILL)
        worker.kill()
        smtp_server.answer_held()
        worker.start()
        until_final(ops, job_id)
        worker.stop()
        copies = [m.message["Message-ID"] for m in smtp_server.messages if m.message["Subject"] == "twice"]
        assert len(copies) == 2
        assert copies[0] == copies[1] == ops.get(job_id)["result"]["message_id"]
