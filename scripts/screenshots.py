"""Render the main window with jobs in every state, the Transfers window, the new-job dialog, Settings, the drop sheet
and the stats view.

Everything is real: a temporary JOBDECK_HOME, the worker the GUI starts, a loopback SMTP server and a moto S3
server (the test helpers). Run offscreen (default) or under ``xvfb-run -a``:

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--scale 2] [--theme dark] [--size 1600x1000]

``--matrix`` renders every view (main window, New job, Settings, drop sheet, statistics, Transfers, Schedules and
its editor, Trash, About, keyboard shortcuts) at 800×600, 1600×1000 and 2× scale, light and dark, into
``docs/screenshots/matrix/VIEW-SIZE-THEME.png``.

``--dialogs`` renders only New job, Settings and the drop sheet (no worker, a few seconds), on an offscreen screen
of ``--size``. The dialog pictures in docs/screenshots come from

    for args in "--size 1366x768" "--size 1366x768 --theme dark" "--size 2560x1600 --scale 2 --theme dark"; do
        .venv/bin/python scripts/screenshots.py --dialogs --out /tmp/shots $args; done

named without the size and reduced to 64 colours (``convert F +dither -colors 64 OUT``) to keep the repository small.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--scale", type=float, default=1.0, help="QT_SCALE_FACTOR, e.g. 2 for 200 %%")
    parser.add_argument("--theme", choices=("light", "dark"), default="light", help="View → Theme to render in")
    parser.add_argument("--dark", action="store_const", const="dark", dest="theme", help="same as --theme dark")
    parser.add_argument("--size", default="", help="screen size offscreen, e.g. 800x600 (dialogs fit it)")
    parser.add_argument("--dialogs", action="store_true", help="only the dialogs: no worker, no jobs, seconds")
    parser.add_argument("--matrix", action="store_true", help="every view at 800x600, 1600x1000 and 2x, light and dark")
    return parser.parse_args()


def _screen(size: str, home: Path) -> None:
    """An offscreen screen of ``size`` pixels (before the scale factor), so dialogs size themselves to it."""
    if not size or os.environ.get("QT_QPA_PLATFORM", "offscreen") != "offscreen":
        return
    width, height = (int(n) for n in size.lower().split("x"))
    config = home / "screen.json"
    screen = {"name": "shot", "x": 0, "y": 0, "width": width, "height": height, "logicalDpi": 96, "dpr": 1}
    config.write_text(json.dumps({"screens": [screen]}))
    os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={config}"


def flag_new_job(dialog: Any) -> None:
    """The new-job dialog as a user leaves it: one address mistyped, flagged at its field, a time chosen."""
    dialog.show()
    dialog.fields["recipient"].set_value("ops@example.com, finance@")
    dialog.fields["subject"].set_value("Payment reminder")
    dialog.fields["body"].set_value("Dear customer,\n\nyour invoice is due on Friday.\n")
    dialog.schedule.at_radio.setChecked(True)
    dialog.show_local_errors()


def render_dialogs(out: Path, suffix: str, home: Path) -> None:
    """New job, Settings (without a keyring: its longest state) and the drop sheet, with no worker behind them."""
    from PySide6.QtWidgets import QApplication

    from desktop.views.drop_sheet import DropSheet
    from desktop.views.job_dialog import JobDialog
    from desktop.views.settings_dialog import SettingsDialog
    from engine.config import Paths, Settings
    from engine.credentials import MemoryStore
    from engine.jobs import registry

    class NoKeyring(MemoryStore):
        def describe(self) -> str:
            return "unavailable: no OS keyring is available. On Linux start a Secret Service (GNOME Keyring)."

    async def request(op: str, **_args: Any) -> Any:
        if op == "settings":  # the defaults, as a worker on a fresh data folder answers
            return {"settings": Settings().model_dump(mode="json"), "origins": {}}
        if op == "upload" and _args.get("dry_run"):  # every file fine, as a worker with default settings says
            files = [
                {"path": p, "key": k, "job": None, "error": None}
                for p, k in zip(_args["paths"], _args["keys"], strict=True)
            ]
            return {"files": files, "created": 0}
        raise OSError(f"{op}: no worker while rendering")

    async def shoot() -> None:
        types = [kind.describe() for _, kind in sorted(registry.load().items())]
        dialog = JobDialog(types, request)
        flag_new_job(dialog)
        await asyncio.sleep(0.2)
        dialog.grab().save(str(out / f"new-job{suffix}.png"))
        settings = SettingsDialog(request, NoKeyring())
        settings.show()
        await settings.load_task
        settings._say(settings.smtp_result, "✘ Could not connect to smtp.example.com:587: connection refused")
        await asyncio.sleep(0.2)
        settings.grab().save(str(out / f"settings{suffix}.png"))
        folder = Path(tempfile.mkdtemp(prefix="jobdeck-drop-")) / "site-assets"  # outside the data folder
        (folder / "img").mkdir(parents=True, exist_ok=True)
        for name, size in (
            ("index.html", 4_200),
            ("img/hero.jpg", 812_000),
            ("img/icon.svg", 1_900),
            ("robots.txt", 0),
        ):
            (folder / name).write_bytes(os.urandom(size))
        sheet = DropSheet([str(folder)], Settings(s3_bucket="reports"), request, data_folder=Paths(home))
        sheet.show()
        await sheet.scan_task
        await asyncio.sleep(0.2)
        sheet.grab().save(str(out / f"drop-sheet{suffix}.png"))
        for window in (dialog, settings, sheet):
            window.close()
        QApplication.processEvents()

    asyncio.get_event_loop().run_until_complete(shoot())


async def until(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)


async def scenario(window: Any, out: Path, smtp: Any, s3: Any, bucket: str, files: Path, suffix: str) -> None:
    from engine.config import save_settings

    request = window.connection.request
    await until(lambda: window.live.loaded_once and window.badge.state == "connected")

    def email(to: str, subject: str) -> dict[str, Any]:
        return {"recipient": to, "subject": subject, "body": "Hello,\n\nthe report is attached.\n"}

    later = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    # failed for good and retrying: SMTP points at a closed port
    for to in ("ops@example.com", "billing@example.com"):
        await request("create", job_type="send_email", parameters=email(to, "Invoice run"), max_retries=0)
    await request("create", job_type="send_email", parameters=email("cfo@example.com", "Quarterly numbers"),
                  max_retries=3, retry_base_s=900.0)  # fmt: skip
    await until(lambda: window.model.rowCount() == 3 and all(
        window.model.job_at(r)["status"] in ("failed", "retrying") for r in range(3)))  # fmt: skip
    save_settings({"smtp_port": smtp.port})
    for i, to in enumerate(("alice@example.com", "bob@example.com, carol@example.com", "team@example.com")):
        await request("create", job_type="send_email", parameters=email(to, f"Weekly digest #{40 + i}"))
    small = [files / "q1-report.pdf", files / "logo.png"]
    for f in small:
        f.write_bytes(os.urandom(300_000))
    await request("upload", paths=[str(f) for f in small], bucket=bucket, key_prefix="reports/")
    await until(lambda: sum(window.model.job_at(r)["status"] == "succeeded" for r in range(window.model.rowCount()))
                == 5)  # fmt: skip
    # scheduled and canceled
    for to in ("board@example.com", "audit@example.com"):
        await request("create", job_type="send_email", parameters=email(to, "Monthly close"), scheduled_time=later)
    canceled = await request("create", job_type="send_email", parameters=email("old@example.com", "Outdated notice"),
                             scheduled_time=later)  # fmt: skip
    await request("cancel", job_id=canceled["id"])
    failed_id = next(window.model.job_at(r)["id"] for r in range(window.model.rowCount())
                     if window.model.job_at(r)["status"] == "failed")  # fmt: skip
    window.select_job(failed_id)
    await until(lambda: window.detail.job is not None and window.detail.job.get("history"))
    # running (a large upload with live progress) and pending behind it (concurrency 1)
    big = files / "backup-2026-11.tar"
    big.write_bytes(os.urandom(256 * 1024 * 1024))
    running = (await request("upload", paths=[str(big)], bucket=bucket, key_prefix="backups/"))[0]
    for to in ("support@example.com", "sales@example.com"):
        await request("create", job_type="send_email", parameters=email(to, "Follow-up"))

    def progress() -> dict[str, Any]:
        return window.model.progress_at(window.model.row_of(running["id"]) or 0) or {}

    await until(lambda: progress().get("rate") and progress().get("eta_s") is not None, timeout=60)
    await window.live.refresh_counts()
    await asyncio.sleep(0.15)
    window.grab().save(str(out / f"main{suffix}.png"))

    # View → Transfers: the running upload's own bar, rate and time left, the finished ones below
    transfers = window.open_transfers()
    await until(lambda: transfers.loaded and bool(transfers.model.progress(transfers.model.job_at(0))))
    await asyncio.sleep(0.3)
    transfers.grab().save(str(out / f"transfers{suffix}.png"))
    transfers.close()
    await more_views(window, out, suffix, email)

    # the new-job dialog, with an invalid address flagged inline
    dialog = window.new_job_dialog()
    flag_new_job(dialog)
    await asyncio.sleep(0.2)
    dialog.grab().save(str(out / f"new-job{suffix}.png"))
    dialog.close()

    # the drop sheet: a folder with nested files, an empty file and one over the limit
    save_settings({"max_upload_bytes": 50 * 1024 * 1024})
    await window.info.load()
    folder = files / "site-assets"
    (folder / "img").mkdir(parents=True, exist_ok=True)
    for name, size in (("index.html", 4_200), ("img/hero.jpg", 812_000), ("img/icon.svg", 1_900), ("robots.txt", 0)):
        (folder / name).write_bytes(os.urandom(size))
    sheet = window.drop_sheet([str(folder), str(big)])
    sheet.show()
    await sheet.scan_task
    await asyncio.sleep(0.2)
    sheet.grab().save(str(out / f"drop-sheet{suffix}.png"))
    sheet.close()

    # stats
    view = window.open_stats()
    await until(lambda: view.refresh_task is not None and view.refresh_task.done())
    await asyncio.sleep(0.2)
    view.grab().save(str(out / f"stats{suffix}.png"))
    view.close()
    await until(lambda: window.model.job(running["id"])["status"] == "succeeded", timeout=120)


async def more_views(window: Any, out: Path, suffix: str, email: Any) -> None:
    """Schedules and the schedule editor, Trash, Settings, About and the keyboard shortcuts."""
    request = window.connection.request

    async def shoot(widget: Any, name: str) -> None:
        await asyncio.sleep(0.4)
        widget.grab().save(str(out / f"{name}{suffix}.png"))
        widget.close()

    for name, rule in (("Weekly digest", "0 9 * * 1"), ("Nightly report", "every 6 hours")):
        await request("schedule_add", job_type="send_email", parameters=email("team@example.com", name),
                      rule=rule, name=name)  # fmt: skip
    await shoot(window.open_schedules(), "schedules")
    template = {"job_type": "send_email", "parameters": email("ops@example.com", "Daily digest")}
    editor = window.open_schedule_editor(prefill=template)
    await shoot(editor, "schedule-editor")
    gone = await request("create", job_type="send_email", parameters=email("old@example.com", "Superseded draft"),
                         scheduled_time=(datetime.now(UTC) + timedelta(days=2)).isoformat())  # fmt: skip
    await request("delete", job_id=gone["id"])
    await shoot(window.open_trash(), "trash")
    await shoot(window.open_settings(), "settings")
    await shoot(window.open_about(), "about")
    await shoot(window.open_shortcuts(), "shortcuts")


# Every view at the sizes and scales the issue names, light and dark: (suffix part, screen size, scale).
MATRIX = (("800x600", "800x600", 1.0), ("1600x1000", "1600x1000", 1.0), ("2x", "1600x1000", 2.0))


def matrix(out: Path) -> int:
    """Run this script once per size and theme (a Qt process has one scale factor), reduced to 64 colours."""
    import shutil
    import subprocess

    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name, size, scale in MATRIX:
        for theme in ("light", "dark"):
            shots = Path(tempfile.mkdtemp(prefix="jobdeck-matrix-"))
            args = ["--out", str(shots), "--size", size, "--scale", str(scale), "--theme", theme]
            done = subprocess.run([sys.executable, __file__, *args], check=False)
            failed += done.returncode != 0
            for png in sorted(shots.glob("*.png")):
                view = png.stem.split("-" + size)[0].split("@")[0].removesuffix("-dark")
                target = out / f"{view}-{name}-{theme}.png"
                if shutil.which("convert"):
                    subprocess.run(["convert", str(png), "+dither", "-colors", "64", str(target)], check=False)
                else:
                    shutil.copy(png, target)
            shutil.rmtree(shots, ignore_errors=True)
    print(f"screenshots written to {out} ({failed} run(s) failed)")
    return 1 if failed else 0


def main() -> int:
    args = _args()
    if args.matrix:
        return matrix(args.out / "matrix")
    args.out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="jobdeck-shots-"))
    os.environ["JOBDECK_HOME"] = str(home)
    os.environ["JOBDECK_KEYRING"] = "memory"
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "offscreen")
    if args.scale != 1.0:
        os.environ["QT_SCALE_FACTOR"] = str(args.scale)
    _screen(args.size, home)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(var, None)
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"

    from PySide6.QtWidgets import QApplication
    from servers import S3Server, SmtpServer

    from desktop.event_loop import GuiEventLoop
    from desktop.views.main_window import MainWindow
    from desktop.widgets.theme import apply_style, apply_theme
    from engine.config import Paths, save_settings
    from engine.credentials import default_store

    suffix = (f"-{args.size}" if args.size else "") + ("-dark" if args.theme == "dark" else "")
    suffix += f"@{args.scale:g}x" if args.scale != 1.0 else ""
    if args.dialogs:
        app = QApplication(sys.argv[:1])
        apply_style(app)
        apply_theme(args.theme)
        loop = GuiEventLoop(app)
        asyncio.set_event_loop(loop)
        with loop:
            render_dialogs(args.out, suffix, home)
        print(f"screenshots written to {args.out}")
        return 0
    with SmtpServer() as smtp, S3Server() as s3:
        bucket = s3.create_bucket("jobdeck-demo")
        store = default_store()
        store.set("aws-access-key-id", "testing")
        store.set("aws-secret-access-key", "testing")
        os.environ["AWS_ACCESS_KEY_ID"] = os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
        save_settings({"smtp_host": "127.0.0.1", "smtp_port": 9, "smtp_timeout_s": 5.0, "s3_bucket": bucket,
                       "s3_endpoint_url": s3.endpoint_url, "s3_path_style": True, "concurrency": 1,
                       "s3_key_prefix": "uploads/"})  # fmt: skip
        app = QApplication(sys.argv[:1])
        apply_style(app)
        apply_theme(args.theme)
        loop = GuiEventLoop(app)
        asyncio.set_event_loop(loop)
        window = MainWindow(Paths(home), store=store)
        line = window.fontMetrics().height()
        room = window.screen().availableGeometry().size()
        window.resize(min(int(line * 100), room.width()), min(int(line * 40), room.height()))
        window.show()
        window.begin()
        files = Path(tempfile.mkdtemp(prefix="jobdeck-shots-files-"))  # outside the data folder: never uploaded
        try:
            with loop:
                try:
                    loop.run_until_complete(scenario(window, args.out, smtp, s3, bucket, files, suffix))
                finally:  # a failed scene must not leave the worker the window started running
                    loop.run_until_complete(window.shutdown(stop_worker=True))
        finally:
            shutil.rmtree(files, ignore_errors=True)
    print(f"screenshots written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
