"""The main window fits small screens: its minimum size stays within 800×600 whatever the counts, and the first
window opens within the screen's available area."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QApplication
from sqlalchemy import insert
from test_gui_support import *  # noqa: F403  (fixtures)
from test_gui_support import QT_LOG_IGNORE

from engine.config import Paths
from engine.storage.repository import JOBS, Ledger

pytestmark = QT_LOG_IGNORE


def seed(home: Path, count: int = 100) -> None:
    ledger = Ledger(Paths(home).database_url())
    now = datetime(2026, 11, 1, tzinfo=UTC)
    rows = [{"job_type": "send_email", "status": "failed", "priority": 0, "max_retries": 3, "attempts": 3,
             "parameters": {"recipient": f"someone.with.a.long.name{i}@example.com", "subject": "Quarterly " * 8,
                            "body": "Hi"},
             "schedule_type": "immediate", "created_at": now, "error": "connection refused " * 6}
            for i in range(count)]  # fmt: skip
    with ledger.engine.begin() as conn:
        conn.execute(insert(JOBS), rows)


def test_minimum_size_fits_800_by_600_with_many_jobs_and_large_counts(
    qtbot: Any, make_window: Any, gui_env: Path
) -> None:
    seed(gui_env)
    window = make_window()
    assert window.model.rowCount() == 100
    big = 123_456_789
    window.filter_bar.set_counts({"total": big * 7, "by_status": dict.fromkeys(window.meta.status_names, big)})
    window.filter_bar.select_status("canceled")  # a checked pill far along the row stays in view
    window.count_label.setText(f"{big:,} of {big * 7:,} matching")
    hint = window.minimumSizeHint()
    assert hint.width() <= 800 and hint.height() <= 600, hint
    window.resize(800, 600)
    qtbot.waitUntil(lambda: window.width() <= 800)
    pills = window.filter_bar.pills
    assert window.filter_bar.buttons["canceled"].isVisible() and window.filter_bar.buttons[""].isVisible()
    assert pills.hidden() and pills.more.isVisible()  # what does not fit is in the "More" menu
    assert window.menuBar().isVisible()


def test_first_window_fits_the_available_screen_and_spare_width_goes_to_summary_and_result(
    qtbot: Any, make_window: Any
) -> None:
    window = make_window(begin=False)
    area = (window.screen() or QApplication.primaryScreen()).availableGeometry()
    size = window.initial_size()
    assert size.width() <= area.width() and size.height() <= area.height()
    assert size.width() >= window.minimumSizeHint().width()
    from desktop.models.jobs import Col

    table = window.table
    before = {c: table.columnWidth(c) for c in (Col.SUMMARY, Col.OUTCOME, Col.DURATION)}
    window.resize(2400, size.height())  # far wider than the columns need
    qtbot.waitUntil(lambda: table.columnWidth(Col.SUMMARY) > before[Col.SUMMARY])
    assert table.columnWidth(Col.OUTCOME) > before[Col.OUTCOME]
    assert table.columnWidth(Col.DURATION) == before[Col.DURATION]
    assert not table.horizontalHeader().highlightSections()


def test_a_long_status_message_is_elided_on_one_line_with_the_whole_text_in_a_tooltip(
    qtbot: Any, make_window: Any
) -> None:
    window = make_window()
    window.resize(800, 600)
    qtbot.waitUntil(lambda: window.width() <= 800)
    message = "Job 2 failed: billing@example.com — Invoice run could not deliver via 127.0.0.1:9:\n" + "refused " * 20
    window.tell(message)
    bar = window.statusBar()
    shown = bar.currentMessage()
    assert shown.endswith("…") and "\n" not in shown and shown.startswith("Job 2 failed: billing@example.com")
    room = window.count_label.geometry().left() - bar.contentsRect().left()
    assert bar.fontMetrics().horizontalAdvance(shown) < room, (shown, room)
    assert bar.toolTip() == message and window.messages[-1] == message
    window.tell("Copied http://127.0.0.1/x")  # a short one is shown whole, with no tooltip
    assert bar.currentMessage() == "Copied http://127.0.0.1/x" and bar.toolTip() == ""
    bar.clearMessage()
    assert bar.toolTip() == ""


def test_a_status_message_is_elided_again_when_the_room_beside_it_changes(qtbot: Any, make_window: Any) -> None:
    """The count beside the message grows after the message was shown (a snapshot's count arrives): the message
    is elided again to the room left, not left running under the count."""
    window = make_window()
    window.resize(800, 600)
    qtbot.waitUntil(lambda: window.width() <= 800)
    # The window's own count settles first (the stats arrive after the first page), or it could overwrite the
    # count set below and give the room back.
    qtbot.waitUntil(lambda: window.live.stats is not None and window.model.counted)
    bar = window.statusBar()
    window.tell("Job 2 failed: billing@example.com — Invoice run could not deliver via 127.0.0.1:9: refused")
    before = bar.currentMessage()
    grown = "123,456,789 of 987,654,321 matching · counting matches…"
    window.count_label.setText(grown)

    def fits() -> bool:
        room = window.count_label.geometry().left() - bar.contentsRect().left()
        return bar.fontMetrics().horizontalAdvance(bar.currentMessage()) < room

    qtbot.waitUntil(lambda: window.count_label.width() >= window.count_label.sizeHint().width())  # laid out
    qtbot.waitUntil(fits)
    assert window.count_label.text() == grown
    assert bar.currentMessage() != before and bar.currentMessage().endswith("…")
