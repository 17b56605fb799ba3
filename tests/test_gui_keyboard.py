"""The main window from the keyboard: a menu bar holding every action with its shortcut, the shortcuts list and the
About box built from it, Tab moving pane to pane, and the paused worker shown as a banner over the table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication
from test_gui_support import *  # noqa: F403  (fixtures)
from test_gui_support import QT_LOG_IGNORE, email, run

from desktop.views.main_window import WORKER_DOWN_NOTE
from engine import __version__

pytestmark = QT_LOG_IGNORE
NATIVE = QKeySequence.SequenceFormat.NativeText


def test_tab_moves_from_the_filter_bar_to_the_table_to_the_detail_panel(qtbot: Any, make_window: Any) -> None:
    window = make_window(begin=False)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    window.filter_bar.search.setFocus()
    qtbot.waitUntil(window.filter_bar.search.hasFocus)
    assert not window.table.tabKeyNavigation()
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
    assert QApplication.focusWidget() is window.table
    qtbot.keyClick(window.table, Qt.Key.Key_Tab)  # one stop for the whole table, not one per cell
    assert window.detail.isAncestorOf(QApplication.focusWidget())
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Backtab)
    assert QApplication.focusWidget() is window.table


def test_every_action_with_a_shortcut_is_in_a_menu_that_shows_it(qtbot: Any, make_window: Any, gui_env: Path) -> None:
    from desktop.views.window_menus import menu_actions

    window = make_window(begin=False)
    titles = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert titles == ["File", "Edit", "View", "Jobs", "Worker", "Help"]
    in_menus = {action for _path, action in menu_actions(window.menus.values())}
    with_keys = [a for a in window.actions() if not a.shortcut().isEmpty()]
    assert with_keys and not [a.text() for a in with_keys if a not in in_menus]
    assert window.theme_menu.menuAction() in window.menus["View"].actions()
    assert window.settings_action.shortcut().toString() == "Ctrl+,"
    dialog = window.open_shortcuts()
    listed = {(dialog.table.item(r, 0).text(), dialog.table.item(r, 1).text()) for r in range(dialog.table.rowCount())}
    for path, action in menu_actions(window.menus.values()):
        if not action.shortcut().isEmpty():
            assert action.isShortcutVisibleInContextMenu()
            assert (f"{path} → {action.text()}", action.shortcut().toString(NATIVE)) in listed
    dialog.close()
    about = window.open_about()
    assert __version__ in about.text() and str(gui_env) in about.text() and "Worker:" in about.text()
    about.close()


def test_a_paused_worker_is_a_banner_over_the_table_with_resume(qtbot: Any, make_window: Any) -> None:
    window = make_window()
    assert not window.paused_banner.isVisible()
    run(qtbot, window.connection.request("pause"))
    qtbot.waitUntil(window.paused_banner.isVisible, timeout=15_000)
    assert "Worker paused — 0 jobs waiting" in window.paused_banner.label.text()
    qtbot.mouseClick(window.paused_banner.resume_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.paused_banner.isVisible(), timeout=15_000)
    assert window.badge.state == "connected"


def test_running_rows_say_the_worker_is_down_instead_of_freezing_at_their_progress(
    qtbot: Any, make_window: Any, gui_env: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert

    from desktop.models.jobs import Col
    from engine.config import Paths
    from engine.storage.repository import JOBS, Ledger

    now = datetime.now(UTC)
    with Ledger(Paths(gui_env).database_url()).engine.begin() as conn:  # a job some worker is running (lease held)
        conn.execute(insert(JOBS), [{"job_type": "send_email", "status": "running", "priority": 0, "max_retries": 3,
                                     "attempts": 1, "parameters": email(), "schedule_type": "immediate",
                                     "created_at": now, "started_at": now, "heartbeat_at": now + timedelta(hours=1),
                                     "worker_id": "elsewhere"}])  # fmt: skip
    window = make_window()
    row = window.model.row_of(1)
    assert row is not None and window.model.job(1)["status"] == "running"
    window.model.apply_progress({1: {"done": 69, "total": 100}})
    assert window.model.progress_at(row) is not None
    assert window.model.cell(row, Col.OUTCOME) != WORKER_DOWN_NOTE
    run(qtbot, window.supervisor.stop(window.worker_control.shutdown_request), timeout_ms=40_000)
    qtbot.waitUntil(lambda: window.model.cell(row, Col.OUTCOME) == WORKER_DOWN_NOTE, timeout=15_000)
    assert window.model.progress_at(row) is None
    window.supervisor.start()
    qtbot.waitUntil(lambda: window.badge.state == "connected", timeout=30_000)
    assert window.model.cell(row, Col.OUTCOME) != WORKER_DOWN_NOTE


def test_the_row_the_keys_act_on_is_outlined_while_the_table_has_the_focus(qtbot: Any, make_window: Any) -> None:
    """The cells' delegates paint no focus hint: without the outline, the current row of an unselected table is
    invisible, and Down seems to skip the first row."""
    from PySide6.QtCore import QItemSelectionModel

    from desktop.widgets.theme import color

    window = make_window()
    for n in range(3):
        run(qtbot, window.connection.request("create", job_type="send_email", parameters=email(f"u{n}@example.com"),
                                             scheduled_time="2099-01-01T00:00"))  # fmt: skip
    qtbot.waitUntil(lambda: window.model.rowCount() == 3)
    table = window.table
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    table.selectionModel().setCurrentIndex(window.model.index(1, 0), QItemSelectionModel.SelectionFlag.NoUpdate)
    table.setFocus()
    qtbot.waitUntil(table.hasFocus)
    assert table.selectionModel().selectedRows() == []

    def edge_colours() -> set[str]:  # the pixels along the current row's top edge, in a plain column
        image = table.viewport().grab().toImage()
        ratio = image.devicePixelRatio()
        y = int((table.rowViewportPosition(1) + 1) * ratio)
        x0 = int(table.columnViewportPosition(2) * ratio)
        return {image.pixelColor(x, y).name() for x in range(x0 + 4, x0 + 24)}

    assert edge_colours() == {color("focus").name()}
    window.filter_bar.search.setFocus()  # the outline is the focused table's alone
    qtbot.waitUntil(lambda: not table.hasFocus())
    assert color("focus").name() not in edge_colours()
