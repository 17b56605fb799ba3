"""``jobdeck schedule …``: recurring jobs from the command line (add, list, show, pause, resume, run-now, edit, delete).

Bad input ends with exit status 2 and one line naming the option as it was typed (``--cron``, ``--every``,
``--tz``, ``--param recipient``…), whatever layer found the fault.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from engine.errors import ValidationError
from engine.inert import inert
from engine.storage.status import CATCH_UP_POLICIES, OVERLAP_POLICIES

# The engine's field names → the options a user typed.
OPTIONS = {
    "cron": "--cron", "every": "--every", "tz": "--tz", "name": "--name", "priority": "--priority",
    "max_retries": "--max-retries", "catch_up": "--catch-up", "overlap": "--overlap", "start": "--start",
    "end": "--end", "until": "--until", "note": "--note", "id": "ID", "job_type": "TYPE",
    "params-json": "--params-json", "param": "--param", "parameters": "--params-json",
}  # fmt: skip


def add_parser(sub: Any) -> None:
    """The ``schedule`` command and its actions, on the main parser's sub-commands."""
    sc = sub.add_parser("schedule", help="recurring jobs: add, list, show, pause, resume, run-now, edit, delete")
    actions = sc.add_subparsers(dest="schedule_action", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="a new schedule")
    add.add_argument("job_type", metavar="TYPE", help="a job type (see: jobdeck types)")
    rule = add.add_mutually_exclusive_group(required=True)
    rule.add_argument("--cron", metavar="EXPR", help="5 fields (minute hour day month weekday), or @hourly, @daily…")
    rule.add_argument("--every", metavar="DURATION", help="an interval: 90s, 15m, 2h, 1d")
    _template_options(add)

    edit = actions.add_parser("edit", help="change a schedule (options as for add; what is left out stays)")
    edit.add_argument("id", metavar="ID")
    edit.add_argument("--type", dest="job_type", metavar="TYPE", help="another job type")
    rule = edit.add_mutually_exclusive_group()
    rule.add_argument("--cron", metavar="EXPR")
    rule.add_argument("--every", metavar="DURATION")
    _template_options(edit)

    ls = actions.add_parser("list", help="every schedule")
    ls.add_argument("--json", action="store_true")
    sh = actions.add_parser("show", help="one schedule, its next 5 runs and its latest runs")
    sh.add_argument("id", metavar="ID")
    sh.add_argument("--json", action="store_true")
    pa = actions.add_parser("pause", help="no runs until resumed (or until a time)")
    pa.add_argument("id", metavar="ID")
    pa.add_argument("--note", metavar="TEXT", help="why (shown with the schedule)")
    pa.add_argument("--until", metavar="ISO", help="resume by itself at this time (local time unless an offset)")
    for name, text in (("resume", "run again from the next planned time"), ("run-now", "one run now, outside the "
                       "rule"), ("delete", "remove the schedule (the jobs it made stay)")):  # fmt: skip
        p = actions.add_parser(name, help=text)
        p.add_argument("id", metavar="ID")
        p.add_argument("--json", action="store_true")


def _template_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="a parameter (repeatable)")
    p.add_argument("--params-json", metavar="JSON", help="parameters as a JSON object")
    p.add_argument("--name", metavar="NAME")
    p.add_argument("--tz", metavar="ZONE", help="a time zone name such as Europe/Berlin (default: this computer's)")
    p.add_argument("--priority", metavar="N", help="0–9, higher runs first (default 5)")
    p.add_argument("--max-retries", metavar="N", help="retries after the first attempt (default 3)")
    p.add_argument("--catch-up", choices=CATCH_UP_POLICIES, help="runs missed while the worker was down or the "
                   "machine slept: none, one (default) or all")  # fmt: skip
    p.add_argument("--overlap", choices=OVERLAP_POLICIES, help="a new run while the last one still waits or runs: "
                   "skip it (default) or allow it")  # fmt: skip
    p.add_argument("--start", metavar="ISO", help="no run before this time")
    p.add_argument("--end", metavar="ISO", help="no run after this time")
    p.add_argument("--json", action="store_true", help="print the schedule as JSON")


def dispatch(args: argparse.Namespace, ops: Any) -> int:
    """Run one ``schedule`` action; a ``ValidationError`` leaves naming the option the user typed."""
    try:
        _dispatch(args, ops)
    except ValidationError as exc:
        raise ValidationError(_option(exc.field), exc.message) from None
    return 0


def _option(field: str | None) -> str | None:
    if field is None:
        return None
    return OPTIONS.get(field, f"--param {field}")


def _dispatch(args: argparse.Namespace, ops: Any) -> None:
    from engine.cli import _parse_params, _print_json

    schedules = ops.schedules
    action = args.schedule_action
    if action in ("add", "edit"):
        given = bool(args.param or args.params_json)
        params = _parse_params(args.param, args.params_json) if given or action == "add" else None
        options = {
            "cron": args.cron, "every": args.every, "name": args.name, "tz": args.tz, "priority": args.priority,
            "max_retries": args.max_retries, "catch_up": args.catch_up, "overlap": args.overlap,
        }  # fmt: skip
        if action == "add":
            schedule = schedules.add(args.job_type, params, start=args.start, end=args.end, **options)
            _out(args, schedule, "added")
        else:
            times = {k: v for k, v in (("start", args.start), ("end", args.end)) if v is not None}
            schedule = schedules.edit(args.id, job_type=args.job_type, parameters=params, **options, **times)
            _out(args, schedule, "changed")
    elif action == "list":
        found = schedules.list()
        if args.json:
            _print_json(found)
        elif not found:
            print("no schedules yet — add one with: jobdeck schedule add send_email --cron '0 9 * * 1-5' --param …")
        else:
            for schedule in found:
                print(inert(_line(schedule)))
    elif action == "show":
        schedule = schedules.get(args.id)
        if args.json:
            _print_json(schedule)
        else:
            _print_schedule(schedule)
    elif action == "pause":
        schedule = schedules.pause(args.id, note=args.note, until=args.until)
        until = f" until {schedule['paused_until']}" if schedule["paused_until"] else ""
        print(f"schedule {schedule['id']} paused{until}")
    elif action == "resume":
        _out(args, schedules.resume(args.id), "resumed")
    elif action == "run-now":
        job = schedules.run_now(args.id)
        _print_json(job) if args.json else print(f"created job {job['id']} ({job['status']})")
    elif action == "delete":
        schedule = schedules.delete(args.id)
        _print_json(schedule) if args.json else print(f"schedule {schedule['id']} deleted")


def _out(args: argparse.Namespace, schedule: dict[str, Any], verb: str) -> None:
    from engine.cli import _print_json

    if args.json:
        _print_json(schedule)
    else:
        print(f"{verb} schedule {schedule['id']}")
        print(inert(_line(schedule)))


def _line(s: dict[str, Any]) -> str:
    state = "paused" if s["paused"] else (f"next {s['next_run_at'][:19]}" if s["next_run_at"] else "ended")
    return (
        f"{s['id']:>5}  {s['name'][:30]:<30}  {s['job_type']:<12}  {s['description'][:40]:<40}  {s['tz']:<18}  {state}"
    )


def _print_schedule(s: dict[str, Any]) -> None:
    for field in ("id", "name", "job_type", "rule", "description", "tz", "priority", "max_retries", "catch_up",
                  "overlap", "start_at", "end_at", "paused", "pause_note", "paused_until", "next_run_at"):  # fmt: skip
        if s.get(field) not in (None, ""):
            print(inert(f"{field:>13}: {s[field]}"))
    print(inert(f"{'parameters':>13}: {json.dumps(s['parameters'], ensure_ascii=False)}"))
    for when in s["next_runs"]:
        print(f"{'next':>13}: {when}")
    for job in s.get("runs", []):
        print(inert(f"{'run':>13}: {job['planned_at']}  job {job['id']}  {job['status']}"))
