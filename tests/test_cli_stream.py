"""`--wait` follows jobs to their end with real workers, SMTP and S3 servers; `list --jsonl` streams a line a job."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from servers import S3Server, SmtpServer
from test_upload import MiB, write_file
from workerproc import ROOT

AWS_ENV = {"AWS_ACCESS_KEY_ID": S3Server.ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": S3Server.SECRET_KEY}
EMAIL = ["send_email", "--param", "recipient=a@example.com", "--param", "subject=Hi", "--param", "body=Hello"]


def _smtp(jobdeck: Callable[..., Any], port: int) -> None:
    assert jobdeck("config", "set", "smtp_port", str(port)).returncode == 0
    assert jobdeck("config", "set", "smtp_host", "127.0.0.1").returncode == 0


def _popen(home: Path, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "JOBDECK_HOME": str(home), "PYTHONPATH": str(ROOT), **(extra_env or {})}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


def test_submit_wait_follows_the_job_and_exits_0_when_it_succeeded(
    jobdeck: Callable[..., Any], worker_factory: Callable[..., Any], smtp_server: SmtpServer
) -> None:
    _smtp(jobdeck, smtp_server.port)
    worker_factory()
    done = jobdeck("submit", *EMAIL, "--wait")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["created job 1 (pending)", "job 1: running", "job 1: succeeded"]
    assert done.stderr == ""
    assert len(smtp_server.messages) == 1


def test_submit_wait_exits_1_when_the_job_failed_after_its_retries(
    jobdeck: Callable[..., Any], worker_factory: Callable[..., Any], make_smtp_server: Callable[..., SmtpServer]
) -> None:
    server = make_smtp_server(reject_recipients={"a@example.com"})
    _smtp(jobdeck, server.port)
    worker_factory()
    done = jobdeck("submit", *EMAIL, "--max-retries", "0", "--wait")
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["created job 1 (pending)", "job 1: running"]
    assert lines[2].startswith("job 1: failed — ") and len(lines) == 3
    ended = jobdeck("retry", "1", "--wait")  # the same from retry
    assert ended.returncode == 1 and ended.stdout.splitlines()[0] == "job 1 is pending again"
    assert ended.stdout.splitlines()[-1].startswith("job 1: failed — ")


def test_wait_json_prints_the_job_as_it_ended(
    jobdeck: Callable[..., Any], worker_factory: Callable[..., Any], smtp_server: SmtpServer
) -> None:
    _smtp(jobdeck, smtp_server.port)
    worker_factory()
    done = jobdeck("submit", *EMAIL, "--wait", "--json")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["status"] == "succeeded" and job["result"] is not None


def test_wait_exits_3_when_the_job_is_canceled_meanwhile(
    jobdeck: Callable[..., Any], jobdeck_home: Path, worker_factory: Callable[..., Any]
) -> None:
    worker_factory()
    waiting = _popen(jobdeck_home, "submit", *EMAIL, "--at", "2099-01-01T00:00", "--wait")
    try:
        assert waiting.stdout is not None
        assert waiting.stdout.readline() == "created job 1 (scheduled)\n"
        assert jobdeck("cancel", "1").returncode == 0
    finally:
        status, out, err = _finish(waiting)
    assert (status, out, err) == (3, "job 1: canceled\n", "")


def test_wait_with_no_worker_says_so_and_follows_the_job_once_one_starts(
    jobdeck: Callable[..., Any], jobdeck_home: Path, worker_factory: Callable[..., Any], smtp_server: SmtpServer
) -> None:
    _smtp(jobdeck, smtp_server.port)
    waiting = _popen(jobdeck_home, "submit", *EMAIL, "--wait")
    try:
        assert waiting.stderr is not None
        assert "no worker is running" in waiting.stderr.readline()
        assert waiting.stderr.readline() == "jobdeck: waiting for a worker to start; the job runs when one does\n"
        worker_factory()
    finally:
        status, out, err = _finish(waiting)
    assert status == 0, err
    assert out.splitlines() == ["created job 1 (pending)", "job 1: running", "job 1: succeeded"]


def _run_on_a_terminal(home: Path, args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run `main.py ARGS` with a pseudo-terminal as its stdout; its exit status and everything it wrote."""
    leader, follower = pty.openpty()
    full = {**os.environ, "JOBDECK_HOME": str(home), "PYTHONPATH": str(ROOT), **env}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), *args], env=full, stdout=follower, stderr=subprocess.PIPE
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the terminal's other side closed: the process ended
                    break
                if not chunk:
                    break
                seen += chunk
            elif proc.poll() is not None:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        os.close(leader)
    return proc.returncode, seen.decode()


def test_upload_wait_on_a_terminal_draws_bytes_rate_and_time_left_on_one_line(
    jobdeck: Callable[..., Any],
    jobdeck_home: Path,
    worker_factory: Callable[..., Any],
    s3_server: S3Server,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    settings = {"s3_endpoint_url": s3_server.endpoint_url, "s3_path_style": "true", "s3_bucket": s3_bucket,
                "multipart_threshold_bytes": str(5 * MiB), "multipart_part_bytes": str(5 * MiB),
                "bandwidth_limit_bytes_s": str(4 * MiB)}  # fmt: skip
    for key, value in settings.items():
        assert jobdeck("config", "set", key, value).returncode == 0
    write_file(tmp_path / "film.bin", 12 * MiB, seed=3)
    worker_factory(env=AWS_ENV)
    status, seen = _run_on_a_terminal(jobdeck_home, ["upload", str(tmp_path / "film.bin"), "--wait"], AWS_ENV)
    assert status == 0, seen
    assert "\r\x1b[K" in seen  # the live line, rewritten in place
    live = [part for part in seen.split("\r\x1b[K") if " of 12.6 MB (" in part]
    assert live, seen
    assert any("MB/s" in part and " left" in part for part in live), live
    lines = [line for line in seen.replace("\r\x1b[K", "\n").splitlines() if line.startswith("job 1: ")]
    assert lines[-1].startswith("job 1: succeeded → "), lines
    plain = jobdeck("upload", str(tmp_path / "film.bin"), "--wait", "--conflict", "overwrite", extra_env=AWS_ENV)
    assert plain.returncode == 0 and "\r" not in plain.stdout  # not a terminal: a line per change of state
    assert plain.stdout.splitlines()[1:] == ["job 2: running", plain.stdout.splitlines()[-1]]
    assert plain.stdout.splitlines()[-1].startswith("job 2: succeeded → ")


def test_list_jsonl_streams_a_header_then_one_job_a_line(
    jobdeck: Callable[..., Any], worker_factory: Callable[..., Any]
) -> None:
    for _ in range(3):
        assert jobdeck("submit", *EMAIL, "--at", "2099-01-01T00:00").returncode == 0
    whole = json.loads(jobdeck("list", "--json").stdout)
    for served in (False, True):
        if served:
            worker_factory()
        lines = [json.loads(line) for line in jobdeck("list", "--jsonl").stdout.splitlines()]
        assert lines[0] == {"total": 3, "seq": whole["seq"]}
        assert lines[1:] == whole["jobs"]
        two = jobdeck("list", "--jsonl", "--limit", "2").stdout.splitlines()
        assert [json.loads(line).get("id") for line in two] == [None, 3, 2]
    bad = jobdeck("list", "--jsonl", "--limit", "0")
    assert (bad.returncode, bad.stderr) == (2, "jobdeck: error: --limit: must be a positive whole number; got 0\n")


def test_list_jsonl_follows_the_ids_down_past_a_page(jobdeck: Callable[..., Any], ops: Any) -> None:
    from engine.cli import JSONL_PAGE

    for i in range(JSONL_PAGE + 5):
        ops.ledger.create(job_type="send_email", parameters={"recipient": f"r{i}@example.com", "subject": "s",
                          "body": "b"}, priority=5, max_retries=0, scheduled_time=None)  # fmt: skip
    lines = jobdeck("list", "--jsonl", "--status", "pending").stdout.splitlines()
    ids = [json.loads(line)["id"] for line in lines[1:]]
    assert json.loads(lines[0])["total"] == JSONL_PAGE + 5
    assert ids == list(range(JSONL_PAGE + 5, 0, -1))


def test_watch_jsonl_is_one_json_message_a_line(
    jobdeck: Callable[..., Any], jobdeck_home: Path, worker_factory: Callable[..., Any]
) -> None:
    worker_factory()
    assert jobdeck("submit", *EMAIL, "--at", "2099-01-01T00:00").returncode == 0
    watching = _popen(jobdeck_home, "watch", "--jsonl", "--since", "0")
    try:
        assert watching.stdout is not None
        first, second = json.loads(watching.stdout.readline()), json.loads(watching.stdout.readline())
    finally:
        watching.kill()
        _finish(watching)
    assert (first["type"], first["seq"], first["job"]["id"]) == ("job.created", 1, 1)
    assert second == {**second, "type": "replay.done", "seq": 1}
