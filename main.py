"""Jobdeck's one entry point: no command opens the window; `worker` runs the headless worker; others are CLI."""

from __future__ import annotations

import os
import sys

GUI_ENTRIES = ("gui", "--minimized", "--no-worker", "--smoke-test")  # what opens the window (see desktop/app.py)


def main(argv: list[str] | None = None) -> int:
    from engine.executable import COURIER
    from engine.modes import PRIVATE_UMASK

    os.umask(PRIVATE_UMASK)  # before any file is made: every file and folder Jobdeck creates is its user's alone
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == [COURIER] and len(args) in (2, 3) and all(a.isdigit() for a in args[2:]):
        from pathlib import Path

        from engine.worker.courier import serve

        if sys.stdin.isatty():
            print(f"jobdeck: {COURIER} is started by the worker, not by hand", file=sys.stderr)
            return 2
        return serve(Path(args[1]), int(args[2]) if len(args) == 3 else None)
    if not args or args[0] in GUI_ENTRIES:
        from desktop.app import main as gui_main

        return gui_main(args[1:] if args and args[0] == "gui" else args)
    from engine.cli import run

    return run(args)


if __name__ == "__main__":
    if getattr(sys, "frozen", False):  # a bundled build: child processes start through this same executable
        import multiprocessing

        multiprocessing.freeze_support()
    sys.exit(main())
