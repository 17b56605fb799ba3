"""Render the main window with jobs in every state, the new-job dialog, the drop sheet and the stats view to PNGs.

Everything is real: a temporary JOBDECK_HOME, the worker the GUI starts, a loopback SMTP server and a moto S3
server (the test helpers). Run offscreen (default) or under ``xvfb-run -a``:

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--scale 2] [--dark]
"""

from __future__ import annotations

import argparse
import asyncio
import os
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
    parser.add_argument("--dark", action="store_true", help="use a dark palette (as a dark desktop would)")
    return parser.parse_args()


def dark_palette() -> Any:
    from PySide6.QtGui import QColor, QPalette

    p = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#202124", QPalette.ColorRole.WindowText: "#e8eaed",
        QPalette.ColorRole.Base: "#17181a", QPalette.ColorRole.AlternateBase: "#232428",
        QPalette.ColorRole.Text: "#e8eaed", QPalette.ColorRole.Button: "#2b2c30",
        QPalette.ColorRole.ButtonText: "#e8eaed", QPalette.ColorRole.Highlight: "#3b6fe0",
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.ToolTipBase: "#2b2c30",
        QPalette.ColorRole.ToolTipText: "#e8eaed", QPalette.ColorRole.PlaceholderText: "#9aa0a6",
        QPalette.ColorRole.Mid: "#5f6368", QPalette.ColorRole.Link: "#8ab4f8",
    }  # fmt: skip
    for role, color in roles.items():
        p.setColor(role, QColor(color))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#80868b"))  # greyed out, as a dark theme does
    return p


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

    # the new-job dialog, with an invalid address flagged inline
    dialog = window.new_job_dialog()
    dialog.show()
    dialog.fields["recipient"].widget.setText("ops@example.com, finance@")
    dialog.fields["recipient"].touched = True
    dialog.fields["subject"].set_value("Payment reminder")
    dialog.fields["body"].set_value("Dear customer,\n\nyour invoice is due on Friday.\n")
    dialog._revalidate()
    dialog.schedule.at_radio.setChecked(True)
    await asyncio.sleep(0.2)
    dialog.grab().save(str(out / f"new-job{suffix}.png"))
    dialog.close()

    # the drop sheet: a folder with nested files, an empty file and one over the limit
    save_settings({"max_upload_bytes": 50 * 1024 * 1024})
    await window._reload_settings()
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
    await window.shutdown(stop_worker=True)


def main() -> int:
    args = _args()
    args.out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="jobdeck-shots-"))
    os.environ["JOBDECK_HOME"] = str(home)
    os.environ["JOBDECK_KEYRING"] = "memory"
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "offscreen")
    if args.scale != 1.0:
        os.environ["QT_SCALE_FACTOR"] = str(args.scale)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(var, None)
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"

    from PySide6.QtWidgets import QApplication
    from servers import S3Server, SmtpServer

    from desktop.event_loop import GuiEventLoop
    from desktop.views.main_window import MainWindow
    from desktop.widgets.theme import apply_style
    from engine.config import Paths, save_settings
    from engine.credentials import default_store

    suffix = ("-dark" if args.dark else "") + (f"@{args.scale:g}x" if args.scale != 1.0 else "")
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
        if args.dark:
            app.setPalette(dark_palette())
        loop = GuiEventLoop(app)
        asyncio.set_event_loop(loop)
        window = MainWindow(Paths(home), store=store)
        line = window.fontMetrics().height()
        window.resize(int(line * 100), int(line * 40))
        window.show()
        window.begin()
        files = home / "files"
        files.mkdir()
        with loop:
            loop.run_until_complete(scenario(window, args.out, smtp, s3, bucket, files, suffix))
    print(f"screenshots written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
