"""The real `jobdeck worker` process against real servers: delivery, retries, schedule, priority, crashes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from servers import SmtpServer
from workerproc import ROOT

import bench.noop_jobs  # noqa: F401 - registers the noop type in this process too
from engine.config import Paths, save_settings
from engine.events.client import try_wake

NOOP_ENV = {"JOBDECK_JOB_MODULES": "bench.noop_jobs"}
EMAIL = {"recipient": "ops@example.com", "subject": "Report", "body": "All good."}


def wait_for(ops: Any, job_id: int, statuses: set[str], timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    job = ops.get(job_id)
    while time.monotonic() < deadline:
        job = ops.get(job_id)
        if job["status"] in statuses:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} stayed {job['status']}, wanted {statuses}: {job}")


def smtp_config(ops: Any, smtp: SmtpServer, **extra: Any) -> None:
    save_settings(
        {"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "email_from": "jobdeck@example.com", **extra},
        Paths(ops.paths.root),
    )


@pytest.fixture
def waking_ops(ops: Any) -> Any:
    """Like the CLI: wake the running worker after each submission."""
    ops.after_enqueue = lambda: try_wake(ops.paths)
    return ops


def test_email_is_delivered(waking_ops: Any, smtp_server: SmtpServer, worker_factory: Callable[..., Any]) -> None:
    ops = waking_ops
    smtp_config(ops, smtp_server)
    worker_factory()
    job = ops.create(
        "send_email", {**EMAIL, "recipient": "a@example.com, b@example.com", "html_body": "<p>All good.</p>"}
    )
    done = wait_for(ops, job["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded", done
    (mail,) = smtp_server.wait_for(1)
    assert sorted(mail.rcpt_tos) == ["a@example.com", "b@example.com"]
    assert mail.message["Subject"] == "Report" and mail.message["From"] == "jobdeck@example.com"
    assert mail.message.is_multipart()
    assert done["result"]["message_id"] == mail.message["Message-ID"]
    assert [h["type"] for h in done["history"]] == ["created", "started", "succeeded"]


def test_refused_then_accepted_retries_with_backoff(
    waking_ops: Any, make_smtp_server: Callable[..., SmtpServer], worker_factory: Callable[..., Any]
) -> None:
    ops = waking_ops
    smtp = make_smtp_server(fail_first=2)
    smtp_config(ops, smtp, retry_base_s=0.3, retry_cap_s=1.0)
    worker_factory()
    job = ops.create("send_email", EMAIL, max_retries=3)
    done = wait_for(ops, job["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded" and done["attempts"] == 3
    kinds = [h["type"] for h in done["history"]]
    assert kinds == ["created", "started", "retry_scheduled", "started", "retry_scheduled", "started", "succeeded"]
    assert "451" in done["history"][2]["error"]
    assert smtp.data_attempts == 3 and len(smtp.wait_for(1)) == 1


def test_retries_run_out(
    waking_ops: Any, make_smtp_server: Callable[..., SmtpServer], worker_factory: Callable[..., Any]
) -> None:
    ops = waking_ops
    smtp = make_smtp_server(fail_first=10)
    smtp_config(ops, smtp, retry_base_s=0.1, retry_cap_s=0.2)
    worker_factory()
    job = ops.create("send_email", EMAIL, max_retries=1)
    done = wait_for(ops, job["id"], {"succeeded", "failed"})
    assert done["status"] == "failed" and done["attempts"] == 2
    assert "gave up after 2 attempts" in done["error"]


def test_rejected_recipient_fails_at_once(
    waking_ops: Any, make_smtp_server: Callable[..., SmtpServer], worker_factory: Callable[..., Any]
) -> None:
    ops = waking_ops
    smtp = make_smtp_server(reject_recipients={"nobody@example.com"})
    smtp_config(ops, smtp)
    worker_factory()
    job = ops.create("send_email", {**EMAIL, "recipient": "nobody@example.com"}, max_retries=5)
    done = wait_for(ops, job["id"], {"succeeded", "failed"})
    assert done["status"] == "failed" and done["attempts"] == 1
    assert "recipient rejected" in done["error"] and "550" in done["error"]


def test_scheduled_job_starts_at_its_time_and_never_before(waking_ops: Any, worker_factory: Callable[..., Any]) -> None:
    ops = waking_ops
    worker_factory(NOOP_ENV)
    at = datetime.now(UTC) + timedelta(seconds=2.5)
    job = ops.create("noop", {}, scheduled_time=at.isoformat())
    assert job["status"] == "scheduled"
    done = wait_for(ops, job["id"], {"succeeded"}, timeout=15)
    started = datetime.fromisoformat(done["started_at"])
    assert started >= at
    assert (started - at).total_seconds() <= 1.5


def test_run_now_starts_a_scheduled_job(waking_ops: Any, worker_factory: Callable[..., Any]) -> None:
    ops = waking_ops
    worker_factory(NOOP_ENV)
    job = ops.create("noop", {}, scheduled_time=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    ops.run_now(job["id"])
    assert wait_for(ops, job["id"], {"succeeded"})["attempts"] == 1


def test_higher_priority_runs_first_under_one_busy_worker(waking_ops: Any, worker_factory: Callable[..., Any]) -> None:
    ops = waking_ops
    worker_factory(NOOP_ENV, concurrency=1)
    blocker = ops.create("noop", {"sleep_s": 1.5})
    wait_for(ops, blocker["id"], {"running"})
    low = [ops.create("noop", {}, priority=1)["id"] for _ in range(3)]
    high = [ops.create("noop", {}, priority=9)["id"] for _ in range(3)]
    for job_id in low + high:
        wait_for(ops, job_id, {"succeeded"})
    started = {job_id: ops.get(job_id)["started_at"] for job_id in low + high}
    assert max(started[h] for h in high) < min(started[lo] for lo in low)


def test_kill_9_mid_job_loses_nothing(waking_ops: Any, worker_factory: Callable[..., Any]) -> None:
    ops = waking_ops
    first = worker_factory(NOOP_ENV)
    job = ops.create("noop", {"sleep_s": 2.0}, max_retries=2)
    wait_for(ops, job["id"], {"running"})
    first.kill()  # SIGKILL: Huey has already deleted the message
    assert ops.get(job["id"])["status"] == "running"
    worker_factory(NOOP_ENV)
    done = wait_for(ops, job["id"], {"succeeded", "failed"}, timeout=30)
    assert done["status"] == "succeeded" and done["attempts"] == 2
    assert "lease_expired" in [h["type"] for h in done["history"]]


def test_waiting_jobs_survive_a_restart(waking_ops: Any, worker_factory: Callable[..., Any]) -> None:
    """Jobs submitted while no worker runs (or whose queue messages were lost) run when one starts; the queue file
    of an earlier version (before the queue moved into the ledger's file) is rebuilt from the ledger and removed."""
    from engine.queue.huey_queue import JobQueue

    ops = waking_ops
    ids = [ops.create("noop", {})["id"] for _ in range(5)]
    ops.queue.flush()  # the queue is disposable: the ledger alone must be enough
    earlier = JobQueue(ops.paths.root / "queue.db")
    earlier.enqueue(ids[0], 5)
    earlier.storage.close()
    worker_factory(NOOP_ENV)
    for job_id in ids:
        assert wait_for(ops, job_id, {"succeeded"})["attempts"] == 1
    assert not list(ops.paths.root.glob("queue.db*"))


def test_sigterm_lets_a_running_job_finish(waking_ops: Any, worker_factory: Callable[..., Any]) -> None:
    ops = waking_ops
    worker = worker_factory(NOOP_ENV)
    job = ops.create("noop", {"sleep_s": 1.0})
    wait_for(ops, job["id"], {"running"})
    assert worker.stop() == 0
    assert ops.get(job["id"])["status"] == "succeeded"
    assert not worker.info_path.exists()


def test_grace_period_over_hands_the_job_back(waking_ops: Any, worker_factory: Callable[..., Any]) -> None:
    ops = waking_ops
    save_settings({"shutdown_grace_s": 0.3}, Paths(ops.paths.root))
    worker = worker_factory(NOOP_ENV)
    job = ops.create("noop", {"sleep_s": 30})
    wait_for(ops, job["id"], {"running"})
    assert worker.stop() == 0
    back = ops.get(job["id"])
    assert back["status"] == "pending" and back["attempts"] == 0
    assert back["history"][-1]["type"] == "released"


def test_one_worker_per_home(worker_factory: Callable[..., Any]) -> None:
    worker_factory()
    second = worker_factory(start=False)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "worker"], env=second.env(), capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 1
    assert "a worker is already running for this data folder" in proc.stdout + proc.stderr


def test_a_job_module_that_cannot_be_imported_stops_the_worker_before_it_claims_anything(
    worker_factory: Callable[..., Any], ops: Any
) -> None:
    job = ops.create("noop", {})
    worker = worker_factory({"JOBDECK_JOB_MODULES": "bench.noop_jobs, no_such_jobs"}, start=False)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "worker"], env=worker.env(), capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 1
    assert "cannot import job module 'no_such_jobs' named in JOBDECK_JOB_MODULES" in proc.stdout + proc.stderr
    assert ops.get(job["id"])["status"] == "pending"  # nothing claimed, and the lock went with the process
    worker_factory(NOOP_ENV)
    wait_for(ops, job["id"], {"succeeded"})


def test_secrets_never_reach_ledger_config_logs_or_events(
    waking_ops: Any, make_smtp_server: Callable[..., SmtpServer], worker_factory: Callable[..., Any]
) -> None:
    ops = waking_ops
    password = "pw-Zq8u3-not-in-any-file"
    smtp = make_smtp_server(auth=("mailer", password))
    smtp_config(ops, smtp, smtp_user="mailer", smtp_allow_insecure_auth=True, retry_base_s=0.1)
    worker_factory({"EMAIL_HOST_PASSWORD": password})
    ok = ops.create("send_email", EMAIL)
    assert wait_for(ops, ok["id"], {"succeeded", "failed"})["status"] == "succeeded"
    assert smtp.wait_for(1)
    events = json.dumps(ops.ledger.events_since(0))
    assert password not in events
    for path in Path(ops.paths.root).rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path


def test_wrong_password_is_a_permanent_failure(
    waking_ops: Any, make_smtp_server: Callable[..., SmtpServer], worker_factory: Callable[..., Any]
) -> None:
    ops = waking_ops
    smtp = make_smtp_server(auth=("mailer", "right"))
    smtp_config(ops, smtp, smtp_user="mailer", smtp_allow_insecure_auth=True)
    worker_factory({"EMAIL_HOST_PASSWORD": "wrong-password-123"})
    job = ops.create("send_email", EMAIL, max_retries=3)
    done = wait_for(ops, job["id"], {"failed", "succeeded"})
    assert done["status"] == "failed" and done["attempts"] == 1
    assert "authentication refused" in done["error"] and "wrong-password-123" not in done["error"]


def test_password_from_a_real_secret_service(
    jobdeck_home: Path,
    secret_service: Any,
    make_smtp_server: Callable[..., SmtpServer],
    worker_factory: Callable[..., Any],
    ops: Any,
) -> None:
    """The CLI stores the secret in gnome-keyring; the worker reads it from there to log in."""
    env_overrides = {**secret_service.env, "JOBDECK_KEYRING": "keyring"}
    password = "from-the-keyring-42"
    smtp = make_smtp_server(auth=("mailer", password))
    smtp_config(ops, smtp, smtp_user="mailer", smtp_allow_insecure_auth=True)
    worker = worker_factory(env_overrides, start=False)
    cli = [sys.executable, str(ROOT / "main.py")]
    stored = subprocess.run(
        [*cli, "credentials", "set", "smtp-password"],
        input=password + "\n",
        env=worker.env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert stored.returncode == 0, stored.stderr
    status = subprocess.run(
        [*cli, "credentials", "status"], env=worker.env(), capture_output=True, text=True, timeout=30
    )
    assert "SecretService" in status.stdout and "smtp-password: set" in status.stdout
    worker.start()
    ops.after_enqueue = lambda: try_wake(ops.paths)
    job = ops.create("send_email", EMAIL)
    assert wait_for(ops, job["id"], {"succeeded", "failed"})["status"] == "succeeded"
    assert smtp.wait_for(1)
    assert password.encode() not in Path(ops.paths.database).read_bytes()


def test_the_whole_path_on_a_postgresql_ledger(
    jobdeck_home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch, worker_factory: Callable[..., Any]
) -> None:
    """The easy switch the original system promised: same worker, same CLI, ledger on PostgreSQL.

    ``postgres_url`` is asked for so the test skips (or fails in CI) without a server; it uses its own database.
    """
    from servers import PostgresDatabase
    from sqlalchemy import update

    from engine.credentials.store import MemoryStore
    from engine.operations import Operations
    from engine.storage.repository import JOBS

    workers = []

    with PostgresDatabase() as database:  # a private database: the worker rebuilds its queue from every waiting job
        monkeypatch.setenv("JOBDECK_DATABASE_URL", database.url)
        ops = Operations(Paths(jobdeck_home), store=MemoryStore())
        ops.after_enqueue = lambda: try_wake(ops.paths)
        try:
            first = worker_factory({**NOOP_ENV, "JOBDECK_DATABASE_URL": database.url})
            workers.append(first)
            quick = ops.create("noop", {})
            slow = ops.create("noop", {"sleep_s": 2.0}, max_retries=1)
            assert wait_for(ops, quick["id"], {"succeeded"})["attempts"] == 1
            wait_for(ops, slow["id"], {"running"})
            first.kill()
            # On PostgreSQL several workers may share the ledger, so a dead one is noticed by its lapsed lease.
            with ops.ledger.engine.begin() as conn:
                conn.execute(update(JOBS).where(JOBS.c.id == slow["id"]).values(heartbeat_at=None))
            workers.append(worker_factory({**NOOP_ENV, "JOBDECK_DATABASE_URL": database.url}))
            done = wait_for(ops, slow["id"], {"succeeded", "failed"}, timeout=30)
            assert done["status"] == "succeeded" and done["attempts"] == 2
            seqs = [e["seq"] for e in ops.ledger.events_since(0)]
            assert seqs == sorted(set(seqs))
            assert ops.ledger.dialect == "postgresql"
        finally:
            for worker in workers:  # before the database is dropped
                worker.stop()
            ops.ledger.close()
