"""The command-line contract scripts depend on: output, --json fields, exit statuses 0 / 2 / 1."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

JOB_FIELDS = {
    "id", "job_type", "status", "priority", "parameters", "attempts", "max_retries", "schedule_type",
    "scheduled_time", "next_attempt_at", "created_at", "started_at", "finished_at", "result", "error",
    "schedule_id", "planned_at", "cancel_requested_at",
}  # fmt: skip


def test_submit_list_show_and_json_fields(jobdeck: Callable[..., Any]) -> None:
    out = jobdeck(
        "submit",
        "send_email",
        "--param",
        "recipient=a@example.com",
        "--param",
        "subject=Hi",
        "--param",
        "body=Hello there",
        "--priority",
        "7",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    job = json.loads(out.stdout)
    assert set(job) == JOB_FIELDS
    assert job["status"] == "pending" and job["priority"] == 7 and job["created_at"].endswith("+00:00")
    listed = jobdeck("list", "--json")
    assert [j["id"] for j in json.loads(listed.stdout)["jobs"]] == [job["id"]]
    human = jobdeck("list")
    assert "a@example.com — Hi" in human.stdout and "pending" in human.stdout
    shown = json.loads(jobdeck("show", str(job["id"]), "--json").stdout)
    assert shown["history"][0]["type"] == "created"
    assert "created" in jobdeck("show", str(job["id"])).stdout


def test_params_json_and_schedule(jobdeck: Callable[..., Any]) -> None:
    params = json.dumps({"recipient": "b@example.com", "subject": "S", "body": "B"})
    out = jobdeck("submit", "send_email", "--params-json", params, "--at", "2999-01-01T09:00+01:00", "--json")
    job = json.loads(out.stdout)
    assert job["status"] == "scheduled" and job["scheduled_time"] == "2999-01-01T08:00:00+00:00"
    assert jobdeck("run-now", str(job["id"])).stdout.strip() == f"job {job['id']} is pending"
    assert jobdeck("cancel", str(job["id"])).stdout.strip() == f"job {job['id']} is canceled"
    assert jobdeck("retry", str(job["id"])).stdout.strip() == f"job {job['id']} is pending again"
    assert jobdeck("delete", str(job["id"])).stdout.strip() == f"job {job['id']} deleted"
    assert json.loads(jobdeck("list", "--json").stdout)["jobs"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["submit", "fax"], "TYPE: unknown job type 'fax'"),
        (
            ["submit", "send_email", "--param", "recipient=x", "--param", "subject=s", "--param", "body=b"],
            "recipient: not a valid email address: x",
        ),
        (["submit", "send_email", "--param", "oops"], "--param: 'oops' must look like KEY=VALUE"),
        (["submit", "send_email", "--params-json", "[1]"], "--params-json: must be a JSON object"),
        (["submit", "send_email", "--params-json", "{", "--priority", "1"], "--params-json: is not valid JSON"),
        (["list", "--status", "done"], "--status: unknown status 'done'"),
        (["show", "42"], "id: no job with id 42"),
        (["cancel", "x"], "id: must be a positive job id"),
        (["upload", "/nonexistent/file.txt", "--bucket", "b"], "path: /nonexistent/file.txt does not exist"),
        (["config", "set", "colour", "blue"], "colour: unknown setting"),
        (["config", "set", "smtp_port", "0"], "smtp_port: 0 must be at least 1"),
        (["credentials", "set", "api-key"], "name: unknown credential 'api-key'"),
    ],
)
def test_invalid_input_exits_2_with_the_field(jobdeck: Callable[..., Any], args: list[str], message: str) -> None:
    out = jobdeck(*args)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert message in out.stderr
    assert out.stdout == ""


def test_cancel_of_a_running_job_says_it_is_asked_to_stop(jobdeck: Callable[..., Any], jobdeck_home: Path) -> None:
    """The job stays running (its worker ends it), and the command says so rather than "is running"."""
    from engine.config import Paths
    from engine.storage.repository import Ledger
    from engine.storage.status import STOP_NOTE

    jobs = [json.loads(jobdeck("submit", "send_email", "--param", f"recipient={n}@example.com", "--param",
                               "subject=s", "--param", "body=b", "--json").stdout) for n in "ab"]  # fmt: skip
    ledger = Ledger(Paths(jobdeck_home).database_url())
    try:
        for job in jobs:
            ledger.claim(job["id"], "a-worker")
    finally:
        ledger.close()
    one = jobdeck("cancel", str(jobs[0]["id"]))
    assert one.returncode == 0 and one.stdout.strip() == f"job {jobs[0]['id']} is running: {STOP_NOTE}", one
    many = jobdeck("cancel", "--status", "running")
    assert many.returncode == 0, many.stderr
    said = f"cancel: 1 job done; 1 running: {STOP_NOTE}; 1 unchanged: already asked to stop, or ended meanwhile"
    assert many.stdout.splitlines()[-1] == said, many.stdout
    again = jobdeck("cancel", "--status", "running")  # nothing left to ask: it says so rather than "0 done"
    unchanged = "cancel: 0 jobs done; 2 unchanged: already asked to stop, or ended meanwhile"
    assert again.stdout.splitlines()[-1] == unchanged, again.stdout
    shown = json.loads(jobdeck("list", "--json").stdout)["jobs"]
    assert [(j["status"], bool(j["cancel_requested_at"])) for j in shown] == [("running", True)] * 2


def test_invalid_state_for_an_action_exits_2(jobdeck: Callable[..., Any]) -> None:
    job = json.loads(
        jobdeck(
            "submit",
            "send_email",
            "--param",
            "recipient=a@example.com",
            "--param",
            "subject=s",
            "--param",
            "body=b",
            "--json",
        ).stdout
    )
    out = jobdeck("retry", str(job["id"]))
    assert out.returncode == 2
    assert f"job {job['id']} is pending; retry needs a job that is failed or canceled" in out.stderr


def test_upload_creates_one_job_per_file(jobdeck: Callable[..., Any], tmp_path: Path) -> None:
    files = []
    for name in ("a.txt", "b c é.txt", "empty.bin"):
        path = tmp_path / name
        path.write_text("" if name == "empty.bin" else name)
        files.append(str(path))
    out = jobdeck("upload", *files, "--bucket", "bkt", "--key-prefix", "in/", "--json")
    assert out.returncode == 0, out.stderr
    jobs = json.loads(out.stdout)
    assert [j["parameters"]["key"] for j in jobs] == ["in/a.txt", "in/b c é.txt", "in/empty.bin"]
    assert all(set(j) == JOB_FIELDS and j["job_type"] == "upload_file" for j in jobs)


def test_types_and_stats(jobdeck: Callable[..., Any]) -> None:
    types = json.loads(jobdeck("types", "--json").stdout)
    assert [t["name"] for t in types] == ["send_email", "upload_file"]
    assert types[0]["schema"]["required"] == ["recipient", "subject", "body"]
    stats = json.loads(jobdeck("stats", "--json").stdout)
    assert stats["total"] == 0 and stats["success_rate"] is None
    assert "success rate: —" in jobdeck("stats").stdout


def test_config_roundtrip_keeps_secrets_out(jobdeck: Callable[..., Any], jobdeck_home: Path) -> None:
    assert jobdeck("config", "set", "smtp_host", "mail.example.com").returncode == 0
    assert jobdeck("config", "set", "smtp_tls", "starttls").returncode == 0
    shown = jobdeck("config", "show").stdout
    assert '"mail.example.com"  (file)' in shown and "smtp_port" in shown
    assert json.loads((jobdeck_home / "config.json").read_text()) == {
        "smtp_host": "mail.example.com",
        "smtp_tls": "starttls",
    }
    overridden = jobdeck("config", "show", extra_env={"EMAIL_HOST": "env.example.com"}).stdout
    assert '"env.example.com"' in overridden
    one = jobdeck("config", "show", "smtp_host")  # one setting alone
    assert one.returncode == 0 and one.stdout.split() == ["smtp_host", '"mail.example.com"', "(file)"], one.stdout
    unknown = jobdeck("config", "show", "smtp_hots")
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr.startswith("jobdeck: error: smtp_hots: unknown setting; known settings: ")
    assert jobdeck("config", "show", "smtp_host", "x").returncode == 2


def test_credentials_without_a_keyring_fail_loudly(jobdeck: Callable[..., Any], jobdeck_home: Path) -> None:
    """No Secret Service on the bus: say so and how to fix it; never fall back to a file."""
    env = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    out = jobdeck("credentials", "set", "smtp-password", stdin="hunter22\n", extra_env=env)
    assert out.returncode == 1
    assert "no OS keyring is available" in out.stderr and "EMAIL_HOST_PASSWORD" in out.stderr
    for path in jobdeck_home.rglob("*"):
        assert not path.is_file() or b"hunter22" not in path.read_bytes()


def test_help_reads_well(jobdeck: Callable[..., Any]) -> None:
    out = jobdeck("--help")
    assert out.returncode == 0
    for command in (
        "worker",
        "submit",
        "upload",
        "list",
        "show",
        "retry",
        "cancel",
        "run-now",
        "delete",
        "stats",
        "types",
        "watch",
        "credentials",
        "config",
    ):
        assert command in out.stdout
    assert jobdeck("--version").stdout.startswith("jobdeck ")
