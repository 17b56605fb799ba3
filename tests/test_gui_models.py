"""The adapter models: Qt's model contract, event application, paging, and the PySide6 6.12 refcount trap."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from desktop.models.drop import DropModel, expand
from desktop.models.jobs import PAGE, Col, Filter, JobTableModel, Role
from engine.config import Paths
from engine.upload_paths import DataGuard


def job(job_id: int, status: str = "pending", **extra: Any) -> dict[str, Any]:
    return {
        "id": job_id, "job_type": "send_email", "status": status, "priority": 5,
        "parameters": {"recipient": f"u{job_id}@example.com", "subject": f"s{job_id}", "body": "b"},
        "attempts": 0, "max_retries": 3, "schedule_type": "immediate", "scheduled_time": None,
        "next_attempt_at": None, "created_at": "2026-01-01T10:00:00+00:00", "started_at": None,
        "finished_at": None, "result": None, "error": None, **extra,
    }  # fmt: skip


def event(seq: int, j: dict[str, Any], kind: str = "job.updated", name: str = "started") -> dict[str, Any]:
    return {"v": 1, "type": kind, "seq": seq, "at": "2026-01-01T10:00:00+00:00", "event": name, "job": j}


def test_jobs_model_passes_qtmodeltester(qtmodeltester: Any) -> None:
    model = JobTableModel()
    model.reset([job(i) for i in range(10, 0, -1)], seq=5)
    qtmodeltester.check(model)
    model.apply_events([event(6, job(11), "job.created", "created"), event(7, job(3, "running"))])
    qtmodeltester.check(model)
    big = JobTableModel()  # more rows than loaded: the others are asked for, not invented
    big.reset([job(i) for i in range(3 * PAGE, 2 * PAGE, -1)], seq=0, total=3 * PAGE, max_id=3 * PAGE)
    qtmodeltester.check(big)


def test_drop_model_passes_qtmodeltester(qtmodeltester: Any, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    model = DropModel()
    model.set_items(expand([str(tmp_path / "a.txt")], 10, DataGuard(Paths(tmp_path / "data"))))
    model.set_prefix("in/")
    qtmodeltester.check(model)


def test_events_update_rows_in_place_add_new_ones_on_top_and_dim_deleted_ones(ops: Any) -> None:
    from desktop.models.meta import EngineMeta

    model = JobTableModel()
    meta = EngineMeta()
    meta.update(ops.info.meta())  # labels as the engine gives them
    model.set_meta(meta)
    model.reset([job(2), job(1)], seq=10)
    resets: list[int] = []
    model.modelReset.connect(lambda: resets.append(1))
    # an event already in the snapshot is ignored; newer ones apply
    model.apply_events([event(9, job(2, "failed"))])
    assert model.job(2)["status"] == "pending"
    model.apply_events([event(11, job(3), "job.created", "created"), event(12, job(1, "running"))])
    assert [model.index(r, Col.ID).data() for r in range(3)] == ["3", "2", "1"]
    assert model.index(2, Col.STATUS).data() == "Running"
    model.apply_events([event(13, job(2), "job.deleted", "deleted")])
    assert [model.index(r, 0).data(Role.ID) for r in range(model.rowCount())] == [3, 2, 1]  # no row moves…
    assert [model.index(r, 0).data(Role.STALE) for r in range(3)] == [False, True, False]  # …it is dimmed
    assert model.stale and not resets


def test_coalesced_batch_keeps_the_latest_state_of_each_job() -> None:
    model = JobTableModel()
    model.reset([], seq=0)
    model.apply_events([
        event(1, job(1), "job.created", "created"),
        event(2, job(1, "running"), name="started"),
        event(3, job(1, "succeeded", result={"recipients": ["a@b.c"]}), name="succeeded"),
    ])  # fmt: skip
    assert model.rowCount() == 1
    assert model.job(1)["status"] == "succeeded"
    assert model.index(0, Col.OUTCOME).data() == "sent to 1 recipient(s)"


def test_a_job_leaving_the_filter_is_dimmed_and_one_entering_it_makes_the_view_stale() -> None:
    model = JobTableModel()
    model.reset([job(5, "failed")], seq=1, filt=Filter(statuses=("failed",)))
    stale: list[int] = []
    model.stale_changed.connect(lambda: stale.append(1))
    model.apply_events([event(2, job(5, "pending"), name="retried")])
    assert model.rowCount() == 1 and model.index(0, 0).data(Role.STALE) and stale == [1]
    model.apply_events([event(3, job(4, "failed"), name="failed")])  # below max_id: its place is the ledger's
    assert model.job(4) is None and stale == [1]


def test_rows_anywhere_are_fetched_a_page_at_a_time_and_the_far_end_from_the_end() -> None:
    model = JobTableModel()
    total = 1_000_000
    model.reset([job(i) for i in range(total, total - PAGE, -1)], seq=0, total=total, max_id=total)
    wanted: list[int] = []
    model.fetch_requested.connect(wanted.append)
    assert model.rowCount() == total and model.index(total - 1, Col.ID).data() == ""
    model.index(total - 1, Col.SUMMARY).data()  # the same page again: asked once
    last_page = (total - 1) // PAGE
    assert wanted == [last_page]
    query = model.page_query(last_page)
    assert query["descending"] is False and query["offset"] == 0 and query["reverse"] and query["max_id"] == total
    model.set_page(last_page, [job(i) for i in range(PAGE, 0, -1)])
    assert model.index(total - 1, Col.ID).data() == "1" and model.row_of(1) == total - 1
    assert model.page_query(3) == {**Filter().list_args(), "max_id": total, "count": False, "limit": PAGE,
                                   "offset": 3 * PAGE}  # fmt: skip


def test_new_jobs_wait_above_a_view_scrolled_away_and_appear_on_return() -> None:
    model = JobTableModel()
    model.reset([job(2), job(1)], seq=0)
    counts: list[int] = []
    model.new_jobs_changed.connect(counts.append)
    model.set_following(False)
    model.apply_events([event(1, job(3), "job.created", "created"), event(2, job(4), "job.created", "created")])
    assert model.rowCount() == 2 and counts == [2]  # the rows in view do not move
    model.set_following(True)
    assert [model.index(r, 0).data(Role.ID) for r in range(4)] == [4, 3, 2, 1] and counts[-1] == 0


@pytest.mark.parametrize("sort", ["priority", "summary", "created_at"])
def test_new_jobs_are_counted_above_a_view_scrolled_away_in_any_order(sort: str) -> None:
    """In an order other than newest first a new job's place is anywhere: the view keeps its rows, says how many
    arrived ("N new jobs ↑"), and is read again when the operator returns to its top."""
    model = JobTableModel()
    model.reset([job(2), job(1)], seq=0, filt=Filter(sort=sort, descending=False))
    counts: list[int] = []
    stale: list[bool] = []
    model.new_jobs_changed.connect(counts.append)
    model.stale_changed.connect(lambda: stale.append(model.stale))
    model.set_following(False)
    model.apply_events([event(1, job(3), "job.created", "created"), event(2, job(4), "job.created", "created")])
    model.apply_events([event(3, job(4, "canceled"), name="canceled")])  # a waiting job changed: still one job
    assert model.rowCount() == 2 and counts == [2] and model.waiting_new == 2 and not stale  # rows stay put
    model.set_following(True)
    assert counts[-1] == 0 and stale == [True]  # back at the top: the view is read again, the new jobs in place


def test_jobs_older_than_the_loaded_range_wait_for_their_page() -> None:
    model = JobTableModel()
    model.reset([job(i) for i in range(10, 5, -1)], seq=0)
    model.apply_events([event(1, job(2, "running"))])
    assert model.job(2) is None


def test_progress_is_shown_only_for_running_jobs() -> None:
    model = JobTableModel()
    model.reset([job(1, "running")], seq=0)
    model.apply_progress({1: {"done": 50, "total": 100, "rate": 10.0, "eta_s": 5.0}})
    assert model.index(0, Col.OUTCOME).data(Role.PROGRESS)["done"] == 50
    model.apply_events([event(1, job(1, "succeeded"), name="succeeded")])
    assert model.index(0, Col.OUTCOME).data(Role.PROGRESS) is None


def test_none_refcount_is_stable_across_10000_model_updates() -> None:
    """PySide6 6.12 on Python 3.11 decrements None's refcount on void calls, emit() and data() returning None."""
    if sys.version_info >= (3, 12):
        pytest.skip("None is immortal from Python 3.12; the bug cannot show")
    model = JobTableModel()
    model.reset([job(i) for i in range(50, 0, -1)], seq=0)
    # Calls go through C++ (QModelIndex.data, signal emission) into our Python overrides.
    for _ in range(100):  # warm caches
        model.index(0, Col.ID).data(Qt.ItemDataRole.DecorationRole)
    before = sys.getrefcount(None)
    for n in range(10_000):
        job_id = n % 50 + 1
        model.apply_events([event(n + 1, job(job_id, "running" if n % 2 else "pending"))])  # emits dataChanged
        model.index(model.row_of(job_id) or 0, Col.ID).data(Qt.ItemDataRole.DecorationRole)  # data() → None
        model.index(0, Col.SUMMARY).data(Qt.ItemDataRole.DecorationRole)
        model.headerData(99, Qt.Orientation.Horizontal)  # → None
    drift = sys.getrefcount(None) - before
    assert abs(drift) < 500, f"refcount of None drifted by {drift} over 10,000 updates"


def test_a_batch_is_announced_in_row_ranges(qtmodeltester: Any) -> None:
    model = JobTableModel()
    model.reset([job(i) for i in range(40, 0, -1)], seq=0, filt=Filter(statuses=("pending",)))
    changes: list[tuple[int, int]] = []
    removals: list[tuple[int, int]] = []
    model.dataChanged.connect(lambda a, b, _roles: changes.append((a.row(), b.row())))
    model.rowsRemoved.connect(lambda _p, first, last: removals.append((first, last)))
    # jobs 40..31 (rows 0-9) and 5 (row 35) change; 20..11 (rows 20-29) leave the filter; 30 changes twice
    batch = [event(n, job(i, "pending", priority=1)) for n, i in enumerate([*range(40, 30, -1), 5], start=1)]
    batch += [event(100 + i, job(i, "running")) for i in range(20, 10, -1)]
    batch += [event(200, job(30, "pending", priority=2)), event(201, job(30, "pending", priority=3))]
    model.apply_events(batch)
    assert removals == []  # rows leaving the filter are dimmed where they are
    assert changes == [(0, 10), (20, 29), (35, 35)]  # rows 0-10 (40..30) as one range
    assert model.job(30)["priority"] == 3 and model.index(25, 0).data(Role.STALE)
    assert model.rowCount() == 40
    qtmodeltester.check(model)


def test_long_results_and_errors_and_running_uploads_have_tooltips() -> None:
    error = "could not deliver: " + "x" * 300 + "\nTraceback line"
    model = JobTableModel()
    model.reset([job(2, "failed", error=error), job(1, "running", job_type="upload_file")], seq=0)
    tooltip = Qt.ItemDataRole.ToolTipRole
    assert model.index(0, Col.OUTCOME).data() == error.splitlines()[0]
    assert model.index(0, Col.OUTCOME).data(tooltip) == error
    model.apply_progress(
        {1: {"done": 42 * 2**20, "total": 100 * 2**20, "unit": "bytes", "rate": 12.3 * 2**20, "eta_s": 7.6}}
    )
    assert model.progress_at(1) is not None
    assert "Uploaded 42.0 MiB of 100 MiB (42.0 %)" in model.index(1, Col.OUTCOME).data(tooltip)


def test_progress_text_is_compact_enough_for_the_cell() -> None:
    from desktop.models.format import progress_compact

    text = progress_compact({"done": 42 * 2**20, "total": 100 * 2**20, "unit": "bytes", "rate": 12.3 * 2**20,
                             "eta_s": 7.6})  # fmt: skip
    assert text == "42 % · 42.0 of 100 MiB · 12.3 MiB/s · 8 s left"
    assert progress_compact({"done": 2048, "total": None, "unit": "bytes"}) == "2.0 KiB"
    assert progress_compact({"done": 3, "total": 12}) == "25 % · 3 of 12"  # not bytes: counted as they are


def test_live_counts_follow_known_transitions_and_admit_unknown_ones() -> None:
    from desktop.models.counts import LiveCounts

    counts = LiveCounts()
    counts.reset({"total": 3, "by_status": {"pending": 2, "failed": 1},
                  "by_type": {"send_email": {"pending": 2, "failed": 1}}})  # fmt: skip
    counts.remember([job(1), job(2), job(3, "failed")])
    assert counts.apply([event(4, job(4), "job.created", "created"), event(5, job(1, "running"))])
    assert counts.apply([event(6, job(3), "job.deleted", "deleted")])
    stats = counts.stats
    assert stats is not None
    assert (stats["total"], stats["by_status"]["pending"], stats["by_status"]["running"]) == (3, 2, 1)
    assert stats["by_status"]["failed"] == 0 and stats["by_type"]["send_email"]["running"] == 1
    assert not counts.apply([event(7, job(99, "succeeded"), name="succeeded")])  # never seen: ask the server
    assert stats["by_status"].get("succeeded", 0) == 0


def test_a_burst_reaches_the_model_in_bounded_slices_coalesced_per_job(
    qtbot: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from desktop.services import live
    from desktop.services.connection import WorkerConnection
    from engine.config import Paths

    monkeypatch.setattr(live, "FLUSH_BUDGET_S", 0.0)  # one slice per flush
    connection = WorkerConnection(Paths(tmp_path))
    model = JobTableModel()
    feed = live.LiveJobs(connection, model)
    model.reset([], seq=0)
    feed.loaded_once = True
    feed.counts.reset({"total": 0, "by_status": {}, "by_type": {}})
    announced: list[int] = []
    feed.events_applied.connect(lambda events: announced.append(len(events)))
    burst = [event(i, job(i), "job.created", "created") for i in range(1, live.FLUSH_SLICE * 2 + 11)]
    burst.append(event(len(burst) + 1, job(7, "running")))  # the same job again: one row, its latest state
    connection.job_events.emit(burst)
    feed._flush()
    assert model.rowCount() == live.FLUSH_SLICE and announced == [len(burst)]
    assert feed.stats is not None and feed.stats["total"] == live.FLUSH_SLICE * 2 + 10  # counts see every event
    feed._flush()
    feed._flush()
    assert model.rowCount() == live.FLUSH_SLICE * 2 + 10 and announced == [len(burst), 0, 0]
    assert model.job(7)["status"] == "running" and feed.stats["by_status"]["running"] == 1
    feed._flush()
    assert announced == [len(burst), 0, 0]  # nothing left: nothing announced


def test_sizes_are_binary_units_and_times_are_relative() -> None:
    from datetime import UTC, datetime, timedelta

    from desktop.models.format import countdown, relative, size

    assert [size(n) for n in (512, 1536, 12.3 * 2**20, 240 * 2**30)] == ["512 B", "1.5 KiB", "12.3 MiB", "240 GiB"]
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    from desktop.models.job_text import state_line

    in_4_12 = (now + timedelta(minutes=4, seconds=12)).isoformat()
    assert relative(in_4_12, now) == "in 4 min"  # the text around it stays still; the state line ticks
    assert state_line({"status": "retrying", "next_attempt_at": in_4_12}, now) == "Retry in 4 min 12 s"
    assert relative((now - timedelta(minutes=3, seconds=5)).isoformat(), now) == "3 min ago"
    assert relative((now - timedelta(seconds=2)).isoformat(), now) == "just now"
    assert relative((now + timedelta(hours=2, minutes=5)).isoformat(), now) == "in 2 h 5 min"
    assert countdown(0.2) == "1 s" and countdown(3725) == "1 h 02 min"


def test_the_detail_text_has_no_bookkeeping_fields() -> None:
    from desktop.models.job_text import parameter_rows, result_rows, timeline

    job = {"id": 4, "job_type": "upload_file", "status": "succeeded", "attempts": 2,
           "parameters": {"path": "/data/a.bin", "bucket": "b", "key": "k/a.bin", "conflict": "rename",
                          "in_place": False, "size": 3 * 2**20, "mtime_ns": 17, "job_tag": "f00"},
           "result": {"file_url": "https://s3/b/k/a.bin", "bucket": "b", "key": "k/a.bin", "size": 3 * 2**20,
                      "etag": "x", "multipart": False, "parts": 1, "found_complete": False,
                      "checksum_algorithm": "CRC32", "checksum": "AbC=", "bytes_sent_this_attempt": 3},
           "history": [{"type": "created", "at": "2026-06-01T12:00:00+00:00", "attempts": 0},
                       {"type": "started", "at": "2026-06-01T12:00:01+00:00", "attempts": 1},
                       {"type": "retry_scheduled", "at": "2026-06-01T12:00:03+00:00", "attempts": 1,
                        "error": "upload failed: timeout"},
                       {"type": "started", "at": "2026-06-01T12:00:09+00:00", "attempts": 2},
                       {"type": "succeeded", "at": "2026-06-01T12:00:10.5+00:00", "attempts": 2}]}  # fmt: skip
    params = dict(parameter_rows(job))
    assert params == {"File": "/data/a.bin", "Size": "3.0 MiB", "Destination": "s3://b/k/a.bin",
                      "If the key exists": "upload under a new name",
                      "Sends": "a copy taken when the job was created"}  # fmt: skip
    result = dict(result_rows(job))
    assert result["Link"] == "https://s3/b/k/a.bin" and result["Sent"] == "in one request"
    assert result["Checksum"] == "CRC32 AbC=" and not {"Etag", "Bytes sent this attempt"} & set(result)
    steps = [(s.title, s.detail, s.kind) for s in timeline(job)]
    assert steps[2] == ("Attempt 1 failed after 2.0 s; retry planned", "upload failed: timeout", "error")
    assert steps[-1] == ("Attempt 2 succeeded after 1.5 s", "", "ok")


def test_the_timeline_and_state_say_when_a_running_attempt_was_asked_to_stop_and_canceled() -> None:
    from desktop.models.job_text import state_line, timeline

    at = "2026-06-01T12:00:0{}+00:00".format
    history = [{"type": "created", "at": at(0), "attempts": 0},
               {"type": "started", "at": at(1), "attempts": 1},
               {"type": "retry_scheduled", "at": at(2), "attempts": 1, "error": "timeout"},
               {"type": "started", "at": at(4), "attempts": 2},
               {"type": "cancel_requested", "at": at(6), "attempts": 2}]  # fmt: skip
    running = {"id": 5, "status": "running", "attempts": 2, "started_at": at(4), "cancel_requested_at": at(6),
               "history": history}  # fmt: skip
    now = datetime(2026, 6, 1, 12, 0, 9, tzinfo=UTC)
    assert state_line(running, now) == "Canceling: running for 5 s"
    assert timeline(running)[-1].title == "Cancel requested: the run stops at its next safe point"
    done = {**running, "status": "canceled", "history": [*history, {"type": "canceled", "at": at(7), "attempts": 2}]}
    assert timeline(done)[-1].title == "Attempt 2 canceled after 3.0 s"
    # a waiting job's cancel ends no attempt: the one before it had ended with its failure
    waiting = [*history[:3], {"type": "canceled", "at": at(5), "attempts": 1}]
    assert timeline({"id": 5, "status": "canceled", "history": waiting})[-1].title == "Canceled"


def test_a_search_is_judged_by_the_ledger_not_by_a_copy_in_the_window(ops: Any) -> None:
    from desktop.models.meta import EngineMeta

    meta = EngineMeta()
    meta.update(ops.info.meta())
    assert meta.search_fields == ("parameters", "result", "error")  # the ledger's own list
    model = JobTableModel()
    model.set_meta(meta)
    model.reset([job(2), job(1)], seq=10, filt=Filter(search="u1@"))
    # a status change leaves what the search looks at as it was: the ledger's answer stands, nothing to re-ask
    model.apply_events([event(11, job(1, "running"))])
    assert not model.stale and not model.is_stale(model.row_of(1))
    # a result arrived: only the ledger can say whether the job still matches, so the view asks it again
    model.apply_events([event(12, job(1, "succeeded", result={"recipients": ["u1@example.com"]}), name="succeeded")])
    assert model.stale and not model.is_stale(model.row_of(1))  # not dimmed on a guess
    # a new job is not placed by a guess either
    fresh = JobTableModel()
    fresh.set_meta(meta)
    fresh.reset([job(1)], seq=10, filt=Filter(search="u3@"))
    fresh.apply_events([event(11, job(3), "job.created", "created")])
    assert fresh.rowCount() == 1 and fresh.stale
