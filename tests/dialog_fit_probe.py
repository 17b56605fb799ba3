"""Opens every Jobdeck dialog on the screen the environment describes and prints their sizes as JSON.

Run in a fresh process (``QT_SCALE_FACTOR`` and the offscreen screen's size only take effect at start-up) by
tests/test_gui_dialogs.py: ``python tests/dialog_fit_probe.py DATA_DIR``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]

from PySide6.QtWidgets import QApplication, QDialog, QPushButton  # noqa: E402

from engine.credentials import MemoryStore  # noqa: E402


class NoKeyring(MemoryStore):
    """The state with the longest Settings: the warning that secrets cannot be saved."""

    def describe(self) -> str:
        return "unavailable: no OS keyring is available. On Linux start a Secret Service (GNOME Keyring)."


async def _request(op: str, **_args: Any) -> Any:
    if op == "settings":  # the defaults, as a worker on a fresh data folder answers
        from engine.config import Settings

        return {"settings": Settings().model_dump(mode="json"), "origins": {}}
    if op == "upload" and _args.get("dry_run"):  # every file fine but one, refused with a long reason
        files = [
            {"path": p, "key": k, "job": None, "error": None}
            for p, k in zip(_args["paths"], _args["keys"], strict=True)
        ]
        files[0]["error"] = {
            "field": "path",
            "message": f"path: {files[0]['path']} is 256 MiB, over the limit of 50 MiB (max_upload_bytes); raise "
            "the limit in Settings → Uploads or split the file",
        }
        return {"files": files, "created": 0}
    raise OSError(f"{op}: no worker in this probe")


def measure(dialog: QDialog, submit: QPushButton) -> dict[str, Any]:
    dialog.show()
    QApplication.processEvents()
    screen = dialog.screen()
    room = screen.availableGeometry()
    button = submit.mapTo(dialog, submit.rect().bottomRight())
    return {
        "minimum": [dialog.minimumSizeHint().width(), dialog.minimumSizeHint().height()],
        "size": [dialog.width(), dialog.height()],
        "submit_bottom_right": [button.x(), button.y()],
        "screen": [room.width(), room.height()],
        "ratio": screen.devicePixelRatio(),
    }


def main(data: Path) -> None:
    app = QApplication([])
    from desktop.event_loop import GuiEventLoop
    from desktop.views.drop_sheet import DropSheet
    from desktop.views.job_dialog import JobDialog
    from desktop.views.schedule_editor import ScheduleEditor
    from desktop.views.settings_dialog import SettingsDialog
    from desktop.views.stats_view import StatsView
    from desktop.widgets.theme import apply_style
    from engine.config import Paths, Settings
    from engine.jobs import registry

    apply_style(app)
    loop = GuiEventLoop(app)
    asyncio.set_event_loop(loop)
    results: dict[str, Any] = {}
    types = [kind.describe() for _, kind in sorted(registry.load().items())]
    job = JobDialog(types, _request)
    results["new job (email)"] = measure(job, job.submit_button)
    job.type_combo.setCurrentIndex(job.type_combo.findData("upload_file"))
    results["new job (upload)"] = measure(job, job.submit_button)
    editor = ScheduleEditor(types, _request)  # the tallest form: the rule, its next runs and the job's fields
    editor.rule.setText("0 9 * * 1-5")
    editor.next_runs.setText("\n".join(f"2026-12-0{day} 09:00 (Monday)" for day in range(1, 6)))
    results["schedule editor"] = measure(editor, editor.submit_button)
    settings = SettingsDialog(_request, NoKeyring())
    with loop:
        loop.run_until_complete(settings.load_task)
        results["settings (no keyring)"] = measure(settings, settings.submit_button)
        files = data.parent / "files"  # outside the data folder, whose files are never uploaded
        files.mkdir(exist_ok=True)
        for i in range(40):
            (files / f"report-{i:02d}.csv").write_text("a,b\n")
        sheet = DropSheet([str(files)], Settings(s3_bucket="reports"), _request, data_folder=Paths(data))
        loop.run_until_complete(sheet.scan_task)
        results["drop sheet"] = measure(sheet, sheet.submit_button)
        loop.run_until_complete(asyncio.sleep(0.5))  # the dry run's answer, with its long refusal
        results["drop sheet"]["sideways"] = sheet.table.horizontalScrollBar().maximum()
        stats = StatsView(_request)
        results["statistics"] = measure(stats, stats.window_combo)
    print(json.dumps(results))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
