"""The jobs table at scale against a real worker: orders from the ledger, every row reachable, bulk actions as one
request on everything that matches, the detail panel and the empty state following what is visible."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt
from sqlalchemy import insert
from test_gui_support import *  # noqa: F403  (fixtures)
from test_gui_support import QT_LOG_IGNORE, run

from desktop.models.jobs import PAGE, SORT_KEY_OF
from engine.config import Paths
from engine.storage.repository import JOBS, Ledger

pytestmark = QT_LOG_IGNORE
N = 3 * PAGE + 37  # several pages and a short last one
STATUSES = ("succeeded", "failed", "canceled", "succeeded", "failed")


def seed(home: Path) -> Ledger:
    ledger = Ledger(Paths(home).database_url())
    start = datetime(2026, 11, 1, tzinfo=UTC)
    rows = []
    for i in range(N):
        status = STATUSES[i % len(STATUSES)]
        rows.append({
            "job_type": "send_email", "status": status, "priority": i % 7, "max_retries": 3, "attempts": i % 3,
            "parameters": {"recipient": f"user{i}@example.com", "subject": f"Digest {i}", "body": "Hi"},
            "schedule_type": "immediate", "created_at": start + timedelta(seconds=i % 11),
            "started_at": start, "finished_at": start + timedelta(milliseconds=i % 13),
            "error": f"refused {i % 4}" if status == "failed" else None,
        })  # fmt: skip
    with ledger.engine.begin() as conn:
        conn.execute(insert(JOBS), rows)
    return ledger


def shown_ids(window: Any, rows: range) -> list[int]:
    return [int(window.model.job_at(r)["id"]) for r in rows]


def loaded(window: Any, row: int) -> bool:
    return not window.live.loading and bool(window.model.job_at(row))


def test_every_column_sorts_in_the_ledger_and_end_reaches_the_last_row(
    qtbot: Any, make_window: Any, gui_env: Path
) -> None:
    ledger = seed(gui_env)
    window = make_window()
    header = window.table.horizontalHeader()
    qtbot.waitUntil(lambda: window.model.rowCount() == N)  # the first page comes before its count
    assert not window.empty_label.isVisible()
    for col, key in SORT_KEY_OF.items():
        for order in (Qt.SortOrder.AscendingOrder, Qt.SortOrder.DescendingOrder):
            header.setSortIndicator(col, order)
            descending = order == Qt.SortOrder.DescendingOrder
            qtbot.waitUntil(lambda key=key, d=descending: window.model.filter.sort == key
                            and window.model.filter.descending == d and loaded(window, 0)
                            and window.model.rowCount() == N)  # fmt: skip
            want = [j["id"] for j in ledger.list(sort=key, descending=descending, limit=N)[0]]
            assert shown_ids(window, range(PAGE)) == want[:PAGE], (key, descending)
            window.table.setFocus()
            qtbot.keyClick(window.table, Qt.Key.Key_End)  # End inside the table: the last row, fetched alone
            assert window.table.currentIndex().row() == N - 1
            qtbot.waitUntil(lambda: loaded(window, N - 1))
            assert shown_ids(window, range(3 * PAGE, N)) == want[3 * PAGE :], (key, descending)
            qtbot.keyClick(window.table, Qt.Key.Key_Home, Qt.KeyboardModifier.ControlModifier)
            assert window.table.currentIndex().row() == 0
    ledger.close()


def test_select_all_matching_acts_in_one_request_and_the_panel_follows_the_filter(
    qtbot: Any, make_window: Any, gui_env: Path
) -> None:
    ledger = seed(gui_env)
    window = make_window()
    sent: list[tuple[str, dict[str, Any]]] = []
    real = window.connection.request

    async def recording(op: str, timeout: float = 60.0, **args: Any) -> Any:
        sent.append((op, args))
        return await real(op, timeout=timeout, **args)

    window.connection.request = recording  # type: ignore[method-assign]
    # a succeeded job in the panel, then the "Failed" filter: the panel and the actions follow what is visible
    succeeded = next(j for j in ledger.list(limit=10)[0] if j["status"] == "succeeded")
    assert window.select_job(succeeded["id"])
    qtbot.waitUntil(lambda: (window.detail.job or {}).get("id") == succeeded["id"])
    window.table.scrollToBottom()
    window.filter_bar.select_status("failed")
    failed = sum(1 for i in range(N) if STATUSES[i % len(STATUSES)] == "failed")
    qtbot.waitUntil(lambda: window.model.filter.statuses == ("failed",) and window.model.rowCount() == failed)
    assert window.table.verticalScrollBar().value() == 0
    assert window.detail.job is None and window.selected_ids() == [] and not window.delete_action.isEnabled()
    qtbot.waitUntil(lambda: window.count_label.text() == f"{failed:,} of {failed:,} matching")
    # two rows selected: the link offers all; Ctrl+A selects every matching job, loaded or not
    window.table.selectRow(0)
    window.table.selectionModel().select(window.model.index(1, 0), window.table.selectionModel().SelectionFlag.Select
                                         | window.table.selectionModel().SelectionFlag.Rows)  # fmt: skip
    assert window.select_all_link.isVisible() and f"Select all {failed:,} matching" in window.select_all_link.text()
    window.table.setFocus()
    qtbot.keyClick(window.table, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    assert window.table.all_selected() and window.table.selection_count() == failed > PAGE
    assert not window.select_all_link.isVisible() and window.retry_action.isEnabled()
    # every one of them failed: what cannot apply to a failed job is not offered (the counts say so)
    assert not window.cancel_action.isEnabled() and not window.run_now_action.isEnabled()
    asked: list[str] = []
    window.confirm = lambda _title, text: asked.append(text) or True
    sent.clear()
    result = run(qtbot, window.retry_selected())
    assert asked == [f"Retry {failed:,} of {failed:,} selected?"]
    actions = [args for op, args in sent if op == "bulk" and not args.get("dry_run")]
    assert len(actions) == 1 and actions[0]["action"] == "retry" and "ids" not in actions[0]
    assert result["done"] == failed and ledger.list(status=["failed"])[1] == 0
    ledger.close()


def test_the_empty_hint_waits_for_the_first_snapshot_and_stays_when_nothing_matches(
    qtbot: Any, make_window: Any, gui_env: Path
) -> None:
    seed(gui_env).close()
    window = make_window(begin=False)
    seen: list[bool] = []
    window.live.loading_changed.connect(lambda _loading: seen.append(window.empty_label.isVisible()))
    window.model.modelReset.connect(lambda: seen.append(window.empty_label.isVisible()))
    window.begin()
    qtbot.waitUntil(lambda: window.live.loaded_once and not window.live.loading, timeout=30_000)
    assert not any(seen) and not window.empty_label.isVisible()  # never shown while the jobs were loading
    window.filter_bar.search.setText("no such job anywhere")
    qtbot.waitUntil(lambda: window.model.filter.search == "no such job anywhere" and not window.live.loading)
    assert window.model.rowCount() == 0 and window.empty_label.isVisible()
    window.table.verticalScrollBar().setValue(10)
    qtbot.wait(50)
    assert window.empty_label.isVisible() and window.empty_label.text() == "No jobs match these filters."


def test_delete_goes_to_the_trash_and_undo_brings_it_back(qtbot: Any, make_window: Any, gui_env: Path) -> None:
    ledger = seed(gui_env)
    window = make_window()
    canceled = ledger.list(status=["canceled"])[1]
    window.filter_bar.select_status("canceled")
    qtbot.waitUntil(lambda: window.model.filter.statuses == ("canceled",) and window.model.rowCount() == canceled)
    window.table.selectAll()
    asked: list[str] = []
    window.confirm = lambda _title, text: asked.append(text) or True
    run(qtbot, window.delete_selected())
    assert asked == [f"Delete {canceled:,} of {canceled:,} selected?"]
    assert ledger.list(status=["canceled"])[1] == 0 and ledger.trash_list()[1] == canceled
    assert window.undo_button.isVisible()
    qtbot.waitUntil(lambda: window.model.rowCount() == 0 and window.empty_label.isVisible())  # refreshed at the top
    assert run(qtbot, window.undo_delete()) == canceled and not window.undo_button.isVisible()
    assert ledger.list(status=["canceled"])[1] == canceled and ledger.trash_list()[1] == 0
    qtbot.waitUntil(lambda: window.model.rowCount() == canceled)
    # the trash view lists what a later delete put there, and restores it
    window.table.selectRow(0)
    job_id = window.selected_ids()[0]
    run(qtbot, window.delete_selected())
    view = window.open_trash()
    qtbot.waitUntil(lambda: view.table.rowCount() == 1)
    assert view.table.item(0, 0).text() == str(job_id) and view.headline.text() == "1 deleted job in the trash."
    view.table.selectRow(0)
    view.restore_button.click()
    qtbot.waitUntil(lambda: view.table.rowCount() == 0)
    assert ledger.get(job_id)["status"] == "canceled"
    view.close()
    ledger.close()


def test_a_search_paints_its_first_page_before_its_count_and_says_it_is_counting(
    qtbot: Any, make_window: Any, gui_env: Path
) -> None:
    seed(gui_env).close()
    window = make_window()
    qtbot.waitUntil(lambda: window.model.rowCount() == N and window.count_label.text() == f"{N:,} of {N:,} matching")
    held = asyncio.Event()  # the view's count waits here, as a count over a million jobs would
    real = window.connection.request

    async def slow_counts(op: str, timeout: float = 60.0, **args: Any) -> Any:
        if op == "status_counts":
            await held.wait()
        return await real(op, timeout=timeout, **args)

    window.connection.request = slow_counts  # type: ignore[method-assign]
    painted: list[str] = []  # the status bar's text at each paint of the table with rows in it

    class PaintWatch(QObject):
        def eventFilter(self, _obj: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint and window.model.rowCount() > 0:
                painted.append(window.count_label.text())
            return False

    watch = PaintWatch()
    window.table.viewport().installEventFilter(watch)
    window.filter_bar.search.setText("@example.com")  # every job: more than a page
    qtbot.waitUntil(lambda: window.model.filter.search == "@example.com" and not window.live.loading)
    painted.clear()
    window.table.viewport().update()
    qtbot.waitUntil(lambda: bool(painted))  # the first page is on screen while its count is still on its way
    assert window.model.rowCount() == PAGE and int(window.model.job_at(0)["id"]) == N
    assert painted[-1] == window.count_label.text() == f"{PAGE:,} shown · counting matches…"
    held.set()
    qtbot.waitUntil(lambda: window.model.rowCount() == N)
    qtbot.waitUntil(lambda: window.count_label.text() == f"{N:,} of {N:,} matching")
    # a search that matches less than a page: its first page is its count, nothing is said to be counting
    held.clear()
    window.filter_bar.search.setText("user12@")
    qtbot.waitUntil(lambda: window.model.filter.search == "user12@" and not window.live.loading)
    assert window.model.rowCount() == 1 and window.count_label.text() == "1 of 1 matching"
    held.set()
    qtbot.waitUntil(lambda: window.filter_bar.buttons[""].text() == "All 1")
    assert window.count_label.text() == "1 of 1 matching"
