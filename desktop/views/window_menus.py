"""The main window's menu bar (File, Edit, View, Jobs, Worker, Help), the keyboard-shortcuts list and the About box:
every action is reachable from a menu, where its shortcut is shown, so shortcuts can be discovered."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QMenu,
    QMenuBar,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine import __version__

if TYPE_CHECKING:
    from desktop.views.main_window import MainWindow

# Keys handled by the widgets themselves rather than by an action: listed so that they are discoverable too.
WIDGET_KEYS = (
    ("Move between the filter bar, the table and the detail panel", "Tab / Shift+Tab"),
    ("First / last job in the table", "Home / End"),
    ("Extend the selection", "Shift+Up / Shift+Down"),
)

Entry = QAction | QMenu | None


def build_menu_bar(window: MainWindow) -> dict[str, QMenu]:
    """Fill the window's menu bar; returns its menus by name."""
    jobs, worker, badge = window.job_actions, window.worker_control, window.badge
    layout: dict[str, tuple[Entry, ...]] = {
        "&File": (window.new_action, window.upload_action, None, window.quit_action),
        "&Edit": (jobs.copy_id, window.select_all_action, window.find_action, None, window.settings_action),
        "&View": (
            window.theme_menu,
            None,
            window.transfers_action,
            window.stats_action,
            window.schedules_action,
            window.trash_action,
        ),
        "&Jobs": (
            jobs.retry,
            jobs.cancel,
            jobs.run_now,
            jobs.clone,
            jobs.make_recurring,
            None,
            jobs.open_link,
            None,
            jobs.delete,
            None,
            jobs.retry_all,
        ),
        "&Worker": (worker.pause_action, None, badge.start_action, badge.stop_action, badge.restart_action),
        "&Help": (window.shortcuts_action, window.about_action),
    }
    bar: QMenuBar = window.menuBar()
    menus: dict[str, QMenu] = {}
    for title, entries in layout.items():
        menu = bar.addMenu(title)
        for entry in entries:
            if entry is None:
                menu.addSeparator()
            elif isinstance(entry, QMenu):
                menu.addMenu(entry)
            else:
                entry.setShortcutVisibleInContextMenu(True)
                menu.addAction(entry)
        menus[title.replace("&", "")] = menu
    return menus


def menu_actions(menus: Iterable[QMenu]) -> list[tuple[str, QAction]]:
    """Every action in the menus (submenus included), with the menu path it is under."""
    found: list[tuple[str, QAction]] = []
    for menu in menus:
        for action in menu.actions():
            if action.menu() is not None:
                sub = action.menu()
                found += [(f"{menu.title()} → {path}", a) for path, a in menu_actions([sub])]  # type: ignore[list-item]
            elif not action.isSeparator():
                found.append((menu.title(), action))
    return [(path.replace("&", ""), action) for path, action in found]


def shortcut_rows(menus: Iterable[QMenu]) -> list[tuple[str, str]]:
    """(what, keys) for every menu action that has a shortcut, then the keys the widgets handle."""
    rows = []
    for path, action in menu_actions(menus):
        keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        if keys:
            rows.append((f"{path} → {action.text().replace('&', '')}", keys))
    return rows + list(WIDGET_KEYS)


class ShortcutsDialog(QDialog):
    """Help → Keyboard shortcuts: a two-column list built from the menus themselves, so it never drifts."""

    def __init__(self, menus: Iterable[QMenu], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.rows = shortcut_rows(menus)
        layout = QVBoxLayout(self)
        self.table = QTableWidget(len(self.rows), 2, self)
        self.table.setHorizontalHeaderLabels(["Action", "Shortcut"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setTabKeyNavigation(False)
        for row, (what, keys) in enumerate(self.rows):
            self.table.setItem(row, 0, QTableWidgetItem(what))
            self.table.setItem(row, 1, QTableWidgetItem(keys))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        layout.addWidget(self.table, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        line = self.fontMetrics().height()
        self.resize(line * 34, line * 26)


def about_text(window: MainWindow) -> str:
    """Version, data folder and worker state, for the About box (and for bug reports)."""
    worker = window.worker
    state = window.badge_state
    pid = worker.get("pid") or window.supervisor.pid
    folder = html.escape(str(window.paths.root))
    return (f"<h3>Jobdeck {html.escape(__version__)}</h3>"
            "<p>A desktop control panel for background jobs: emails and S3 uploads.</p>"
            f"<p><b>Data folder:</b> {folder}<br>"
            f"<b>Worker:</b> {html.escape(state)}{f' (pid {pid})' if pid and state in ('connected', 'paused') else ''}"
            "</p>")  # fmt: skip
