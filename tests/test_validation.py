"""Bad input gets a specific error naming the field, and writes nothing — the same for every front end."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.config import Paths, save_settings
from engine.errors import ValidationError

EMAIL = {"recipient": "ops@example.com", "subject": "Hi", "body": "Hello"}


def nothing_written(ops: Any) -> bool:
    return ops.ledger.list()[1] == 0 and ops.ledger.last_seq() == 0


@pytest.mark.parametrize(
    ("job_type", "params", "kwargs", "field", "text"),
    [
        ("nope", EMAIL, {}, "job_type", "unknown job type 'nope'; known types: "),
        ("send_email", {k: v for k, v in EMAIL.items() if k != "subject"}, {}, "subject", "is required"),
        ("send_email", {**EMAIL, "cc": "x"}, {}, "cc", "is not a parameter of send_email; allowed: recipient"),
        (
            "send_email",
            {**EMAIL, "recipient": "a@example.com, nope"},
            {},
            "recipient",
            "not a valid email address: nope",
        ),
        ("send_email", {**EMAIL, "recipient": " , "}, {}, "recipient", "needs at least one address"),
        ("send_email", {**EMAIL, "subject": "a\nb"}, {}, "subject", "single line"),
        ("send_email", EMAIL, {"priority": 10}, "priority", "from 0 to 9"),
        ("send_email", EMAIL, {"priority": "high"}, "priority", "got 'high'"),
        ("send_email", EMAIL, {"max_retries": -1}, "max_retries", "from 0 to 100"),
        ("send_email", EMAIL, {"schedule_type": "scheduled"}, "scheduled_time", "is required"),
        ("send_email", EMAIL, {"scheduled_time": "2001-01-01T00:00:00Z"}, "scheduled_time", "in the past"),
        ("send_email", EMAIL, {"scheduled_time": "tomorrow"}, "scheduled_time", "not an ISO 8601 time"),
        ("send_email", EMAIL, {"schedule_type": "weekly"}, "schedule_type", "immediate or scheduled"),
    ],
)
def test_create_rejects_bad_input(ops: Any, job_type: str, params: dict, kwargs: dict, field: str, text: str) -> None:
    with pytest.raises(ValidationError) as err:
        ops.create(job_type, params, **kwargs)
    assert err.value.field == field
    assert text in err.value.message
    assert nothing_written(ops)


def test_upload_path_rules(ops: Any, tmp_path: Path) -> None:
    save_settings({"s3_bucket": "bkt", "max_upload_bytes": 10}, Paths(ops.paths.root))
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 11)
    unreadable = tmp_path / "secret.txt"
    unreadable.write_text("x")
    unreadable.chmod(0)
    cases = [
        (str(tmp_path / "missing.txt"), "does not exist"),
        (str(tmp_path), "is a directory"),
        (str(big), "over the upload limit of 10 bytes"),
    ]
    if os.geteuid() != 0:  # root reads everything
        cases.append((str(unreadable), "not readable"))
    for path, text in cases:
        with pytest.raises(ValidationError) as err:
            ops.upload([path])
        assert err.value.field == "path" and text in err.value.message
    ok = tmp_path / "ok.txt"
    ok.write_text("fine")
    with pytest.raises(ValidationError) as err:  # one bad file: none of the batch is written
        ops.upload([str(ok), str(tmp_path / "missing.txt")])
    assert err.value.field == "path"
    assert nothing_written(ops)
    assert not any(ops.paths.spool.iterdir())


def test_upload_dry_run_judges_each_file_with_the_settings_now_and_per_file_creates_the_good_ones(
    ops: Any, tmp_path: Path
) -> None:
    save_settings({"s3_bucket": "bkt", "max_upload_bytes": 100}, Paths(ops.paths.root))
    small, big = tmp_path / "small.txt", tmp_path / "big.bin"
    small.write_text("fine")
    big.write_bytes(b"x" * 50)
    paths = [str(small), str(big), str(tmp_path / "missing.txt")]
    verdict = ops.upload(paths, dry_run=True)
    assert [f["error"] for f in verdict["files"]][:2] == [None, None]
    assert (
        verdict["files"][2]["error"]["field"] == "path" and "does not exist" in verdict["files"][2]["error"]["message"]
    )
    assert verdict["created"] == 0 and nothing_written(ops) and not any(ops.paths.spool.iterdir())
    save_settings({"max_upload_bytes": 10}, Paths(ops.paths.root))  # as `jobdeck config set` does
    verdict = ops.upload(paths, dry_run=True)
    assert "over the upload limit of 10 bytes" in verdict["files"][1]["error"]["message"]
    done = ops.upload(paths, per_file=True, key_prefix="in/")
    assert done["created"] == 1 and done["files"][0]["job"]["parameters"]["key"] == "in/small.txt"
    assert [bool(f["error"]) for f in done["files"]] == [False, True, True]
    assert [j["parameters"]["path"] for j in ops.list()["jobs"]] == [str(small)]


def test_upload_needs_a_bucket(ops: Any, tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("a")
    with pytest.raises(ValidationError) as err:
        ops.upload([str(f)])
    assert err.value.field == "bucket" and "jobdeck config set s3_bucket" in err.value.message
    assert nothing_written(ops)


def test_naive_time_is_local_and_stored_in_utc(ops: Any) -> None:
    local = (datetime.now() + timedelta(hours=2)).replace(microsecond=0)
    job = ops.create("send_email", EMAIL, scheduled_time=local.isoformat())
    stored = datetime.fromisoformat(job["scheduled_time"])
    assert stored.utcoffset() == timedelta(0)
    assert stored == local.astimezone()
    assert job["status"] == "scheduled"


def test_unknown_operation_ids_and_filters(ops: Any) -> None:
    with pytest.raises(ValidationError) as err:
        ops.get(999)
    assert err.value.field == "id" and "no job with id 999" in err.value.message
    with pytest.raises(ValidationError) as err:
        ops.list(status="done")
    assert err.value.field == "status" and "allowed: pending, scheduled" in err.value.message
    with pytest.raises(ValidationError) as err:
        ops.cancel("abc")
    assert err.value.field == "id"


def test_settings_reject_unknown_keys_and_bad_values(jobdeck_home: Path) -> None:
    paths = Paths(jobdeck_home)
    with pytest.raises(ValidationError) as err:
        save_settings({"smtp_hots": "x"}, paths)
    assert err.value.field == "smtp_hots" and "unknown setting" in err.value.message
    with pytest.raises(ValidationError) as err:
        save_settings({"smtp_port": 70000}, paths)
    assert err.value.field == "smtp_port"
    with pytest.raises(ValidationError) as err:
        save_settings({"smtp_tls": "maybe"}, paths)
    assert err.value.field == "smtp_tls" and "plain" in err.value.message
    assert not paths.config.exists()
