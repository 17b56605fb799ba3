"""The command line tells the truth: where a setting comes from, what a server refused, what a count means."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from workerproc import ROOT

EMAIL = ["send_email", "--param", "recipient=a@example.com", "--param", "subject=Hi", "--param", "body=Hello"]


def _watch_until(home: Path, needle: str, *args: str, on_stderr: bool = False) -> str:
    """What `jobdeck watch ARGS` printed (on stdout, or stderr) up to the first line holding ``needle``."""
    env = {**os.environ, "JOBDECK_HOME": str(home), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "watch", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = ""
    try:
        for line in proc.stderr if on_stderr else proc.stdout:  # type: ignore[union-attr]
            seen += line
            if needle in line:
                break
    finally:
        proc.kill()
        proc.wait(timeout=10)
    return seen


def test_config_show_labels_where_each_value_comes_from(jobdeck: Callable[..., Any]) -> None:
    assert jobdeck("config", "set", "smtp_port", "2525").returncode == 0
    shown = jobdeck("config", "show", extra_env={"EMAIL_HOST": "env.example.com", "EMAIL_USE_SSL": "1"}).stdout
    lines = {line.split()[0]: line for line in shown.splitlines()}
    assert lines["smtp_host"].endswith('"env.example.com"  (env EMAIL_HOST)')
    assert lines["smtp_tls"].endswith('"ssl"  (env EMAIL_USE_SSL)')
    assert lines["smtp_port"].endswith("2525  (file)")
    assert lines["trash_days"].endswith("(default)")


def test_config_errors_are_worded_by_jobdeck(jobdeck: Callable[..., Any]) -> None:
    from_env = jobdeck("config", "show", extra_env={"EMAIL_PORT": "abc"})
    assert from_env.returncode == 2
    assert from_env.stderr == (
        "jobdeck: error: smtp_port: 'abc' must be a whole number (from the environment variable EMAIL_PORT)\n"
    )
    too_big = jobdeck("config", "set", "smtp_port", "99999")
    assert (too_big.returncode, too_big.stderr) == (2, "jobdeck: error: smtp_port: 99999 must be at most 65535\n")
    choice = jobdeck("config", "set", "smtp_tls", "tls")
    assert choice.stderr == "jobdeck: error: smtp_tls: 'tls' must be one of: plain, starttls or ssl\n"


@pytest.mark.parametrize(
    ("args", "start"),
    [
        (["submit", *EMAIL, "--at", "tomorrow"], "jobdeck: error: --at: 'tomorrow' is not an ISO 8601 time"),
        (["submit", "nope"], "jobdeck: error: TYPE: unknown job type 'nope'"),
        (["list", "--type", "nope"], "jobdeck: error: --type: unknown job type 'nope'"),
        (["cancel", "--status", "failed", "--type", "nope"], "jobdeck: error: --type: unknown job type 'nope'"),
        (["submit", *EMAIL, "--max-retries", "x"], "jobdeck: error: --max-retries: must be an integer"),
    ],
)
def test_errors_name_the_flag_that_was_typed(jobdeck: Callable[..., Any], args: list[str], start: str) -> None:
    out = jobdeck(*args)
    assert out.returncode == 2 and out.stderr.startswith(start), out.stderr
    assert out.stderr.count("\n") == 1


def test_list_json_carries_the_total_and_the_seq_to_watch_from(jobdeck: Callable[..., Any]) -> None:
    for _ in range(3):
        assert jobdeck("submit", *EMAIL).returncode == 0
    page = json.loads(jobdeck("list", "--limit", "1", "--json").stdout)
    assert len(page["jobs"]) == 1 and page["total"] == 3
    newest = json.loads(jobdeck("show", str(page["jobs"][0]["id"]), "--json").stdout)
    assert page["seq"] == newest["history"][-1]["seq"] == 3


def test_submit_with_no_worker_says_so(jobdeck: Callable[..., Any], worker_factory: Callable[..., Any]) -> None:
    alone = jobdeck("submit", *EMAIL)
    assert alone.returncode == 0
    assert "no worker is running for this data folder; the job will run when one starts" in alone.stderr
    worker_factory()
    served = jobdeck("submit", *EMAIL)
    assert served.returncode == 0 and served.stderr == ""


def test_gui_is_a_listed_command_with_its_own_help(jobdeck: Callable[..., Any]) -> None:
    listed = jobdeck("--help").stdout
    assert any(line.split()[:1] == ["gui"] for line in listed.splitlines()), listed
    own = jobdeck("gui", "--help")
    assert own.returncode == 0 and "--smoke-test" in own.stdout and "--no-worker" in own.stdout
    assert own.stdout.startswith("usage: jobdeck gui "), own.stdout


@pytest.mark.secret_service
def test_credentials_status_of_one_and_delete_of_none(jobdeck: Callable[..., Any], secret_service: Any) -> None:
    env = {**secret_service.env, "JOBDECK_KEYRING": "keyring"}
    assert jobdeck("credentials", "set", "smtp-password", extra_env=env, stdin="hunter22\n").returncode == 0
    one = jobdeck("credentials", "status", "smtp-password", extra_env=env)
    assert one.returncode == 0 and "  smtp-password: set" in one.stdout
    assert len([line for line in one.stdout.splitlines() if line.startswith("  ")]) == 1, one.stdout
    assert jobdeck("credentials", "delete", "smtp-password", extra_env=env).returncode == 0
    again = jobdeck("credentials", "delete", "smtp-password", extra_env=env)
    assert again.returncode == 2
    assert again.stderr == "jobdeck: error: smtp-password: is not set in the keyring: nothing to delete\n"


def test_watch_reports_a_refused_since(jobdeck: Callable[..., Any], worker_factory: Callable[..., Any]) -> None:
    worker_factory()
    refused = jobdeck("watch", "--since", "-5")
    err = refused.stderr
    assert refused.returncode == 2
    assert err.splitlines()[-1].startswith("jobdeck: error: --since: must be a non-negative integer seq"), err
    assert "Traceback" not in err


def test_watch_past_the_end_says_what_it_waits_for(
    jobdeck_home: Path, jobdeck: Callable[..., Any], worker_factory: Callable[..., Any]
) -> None:
    # one event, and none while watched
    assert jobdeck("submit", *EMAIL, "--at", "2099-01-01T00:00").returncode == 0
    worker_factory()
    seen = _watch_until(jobdeck_home, "waiting for events after 1000", "--since", "1000", on_stderr=True)
    assert "[waiting for events after 1000; the ledger's last event so far is 1]" in seen


def test_watch_json_prints_every_message_raw(
    jobdeck_home: Path, jobdeck: Callable[..., Any], worker_factory: Callable[..., Any]
) -> None:
    assert jobdeck("submit", *EMAIL, "--at", "2099-01-01T00:00").returncode == 0
    worker_factory()
    seen = _watch_until(jobdeck_home, '"replay.done"', "--json", "--since", "0")
    messages = [json.loads(line) for line in seen.splitlines()]
    assert [m["type"] for m in messages] == ["job.created", "replay.done"]
    assert messages[-1]["seq"] == 1


def test_stats_failed_counts_jobs_that_ended_failed(jobdeck: Callable[..., Any], ops: Any) -> None:
    """A failure that a retry turned into a success is not a failed job."""
    recovered, lost = (
        ops.create("send_email", {"recipient": "a@example.com", "subject": "s", "body": "b"}) for _ in "ab"
    )
    for job in (recovered, lost):
        ops.ledger.claim(job["id"], "w1")
        ops.ledger.fail(job["id"], "w1", "refused", None)
    ops.retry(recovered["id"])
    ops.ledger.succeed(ops.ledger.claim(recovered["id"], "w1").job, "w1", None)
    stats = json.loads(jobdeck("stats", "--json").stdout)
    assert (stats["finished_last_hour"], stats["failed_last_hour"]) == (1, 1)
    assert "finished in the last hour: 1 (failed: 1)" in jobdeck("stats").stdout


def test_the_window_with_no_display_says_so_in_one_line(jobdeck_home: Path) -> None:
    """Qt would abort the process with a page of plugin messages (exit 134); the entry point says why first."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    for argv in ([], ["gui"], ["--minimized"]):
        done = subprocess.run([sys.executable, str(ROOT / "main.py"), *argv], capture_output=True, text=True,
                              timeout=60, env={**env, "JOBDECK_HOME": str(jobdeck_home)})  # fmt: skip
        assert done.returncode == 1, (argv, done.returncode, done.stderr)
        assert done.stderr.startswith("jobdeck: no display to open the window on") and done.stderr.count("\n") == 1
        assert "jobdeck worker" in done.stderr and done.stdout == ""


def test_an_unknown_option_is_blamed_on_the_command_it_was_given_to(jobdeck: Callable[..., Any]) -> None:
    cases = [
        (["list", "--sort", "id"], "jobdeck list", "--sort id"),
        (["schedule", "list", "--all"], "jobdeck schedule list", "--all"),
        (["--bogus"], "jobdeck", "--bogus"),
    ]
    for argv, prog, extra in cases:
        done = jobdeck(*argv)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr == f"{prog}: error: unrecognized arguments: {extra} (see: {prog} --help)\n", done.stderr


def test_parameter_errors_name_the_flags_typed(jobdeck: Callable[..., Any]) -> None:
    bad_json = jobdeck("submit", "send_email", "--params-json", "[1]")
    assert bad_json.returncode == 2 and bad_json.stderr == "jobdeck: error: --params-json: must be a JSON object\n"
    bad_pair = jobdeck("submit", "send_email", "--param", "x")
    assert bad_pair.returncode == 2 and bad_pair.stderr == "jobdeck: error: --param: 'x' must look like KEY=VALUE\n"
