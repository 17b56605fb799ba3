"""The command line (headless mode). Exit status: 0 success, 2 invalid input (message on stderr), 1 other failure."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from engine import __version__, cli_schedules
from engine.credentials.store import CREDENTIAL_NAMES
from engine.errors import JobdeckError, ValidationError
from engine.inert import inert, inert_json
from engine.storage.status import ALL_STATUSES, STOP_NOTE, STOPPABLE

if TYPE_CHECKING:
    from engine.config import Paths
    from engine.operations import Operations

# Start-up is most of what a command costs: what it needs beyond argparse (pydantic, SQLAlchemy, Huey, the job
# types) is imported inside the branch that uses it, so `--help` and a bad flag import none of it.


class _Parser(argparse.ArgumentParser):
    """Invalid arguments in one line, as every other invalid input is; the usage is one ``--help`` away."""

    def error(self, message: str) -> NoReturn:
        _usage_error(self.prog, message)


def _usage_error(prog: str, message: str) -> NoReturn:
    sys.stderr.write(f"{prog}: error: {message} (see: {prog} --help)\n")
    raise SystemExit(2)


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    """The arguments, with an unknown one blamed on the command it was given to (argparse blames the top level, and
    points at `jobdeck --help` rather than at the command's own)."""
    args, extra = _parser().parse_known_args(argv)
    if extra:
        words = ["jobdeck", *(w for w in (args.command, getattr(args, "schedule_action", None)) if w)]
        _usage_error(" ".join(words), f"unrecognized arguments: {' '.join(extra)}")
    return args


def _setting_range(field: str, note: str = "") -> Callable[[str], int]:
    """An argparse type for a whole number within the bounds the setting of that name has (one source of truth);
    the bounds are read when a value is parsed, so building the parser does not import the settings model."""

    def parse(text: str) -> int:
        from engine.config import Settings

        bounds = {type(m).__name__: m for m in Settings.model_fields[field].metadata}
        low, high = bounds["Ge"].ge, bounds["Le"].le
        allowed = f"allowed: {low}–{high}{note}"
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; {allowed}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range; {allowed}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="jobdeck",
        description="Jobdeck: create, schedule and watch background jobs. With no command, opens the window.",
    )
    p.add_argument("--version", action="version", version=f"jobdeck {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser(
        "gui", help="open the window (the same as no command; see: jobdeck gui --help)", add_help=False
    )  # main.py hands `gui` to the desktop app before this parser runs; listed here so that --help shows it
    w = sub.add_parser("worker", help="run the headless worker (jobs + live events)")
    w.add_argument(
        "--concurrency", type=_setting_range("concurrency"), default=None, help="worker threads, 1–64 (default 4)"
    )
    w.add_argument(
        "--port",
        type=_setting_range("event_port", " (0 picks a free port)"),
        default=None,
        help="event port on 127.0.0.1 (default: a free port)",
    )

    s = sub.add_parser("submit", help="create a job")
    s.add_argument("job_type", metavar="TYPE", help="a job type (see: jobdeck types)")
    s.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="a parameter (repeatable)")
    s.add_argument("--params-json", metavar="JSON", help="parameters as a JSON object")
    _add_common(s)
    s.add_argument("--max-retries", metavar="N", help="retries after the first attempt (default 3)")
    s.add_argument("--json", action="store_true", help="print the created job as JSON (with --wait: as it ended)")
    _add_wait(s, "the job")

    u = sub.add_parser("upload", help="create one upload job per file")
    u.add_argument("paths", nargs="+", metavar="PATH", help="files, or folders (expanded as a drop on the window is)")
    u.add_argument("--bucket", metavar="B")
    u.add_argument("--key-prefix", metavar="P")
    u.add_argument("--conflict", choices=["overwrite", "skip", "rename"], help="when the key already exists")
    u.add_argument("--in-place", action="store_true", help="upload from the original (no staged copy)")
    _add_common(u)
    u.add_argument("--json", action="store_true", help="print the created jobs as JSON (with --wait: as they ended)")
    _add_wait(u, "the jobs")

    up = sub.add_parser("uploads", help="multipart uploads on the server")
    up.add_argument("action", choices=["cleanup"], help="cleanup: abort stale multipart uploads (S3 bills their parts)")
    up.add_argument("--older-than", type=float, default=24.0, metavar="HOURS", help="started this long ago (24)")
    up.add_argument("--bucket", metavar="B", help="default: the s3_bucket setting")
    up.add_argument("--json", action="store_true")

    ls = sub.add_parser("list", help="list jobs, newest first")
    ls.add_argument("--status", metavar="S", help=f"one or more of: {', '.join(ALL_STATUSES)} (comma-separated)")
    ls.add_argument("--type", dest="job_type", metavar="T")
    ls.add_argument("--search", metavar="TEXT", help="search parameters, results and errors")
    ls.add_argument("--limit", metavar="N", help="at most N jobs (default 50; with --jsonl, every match)")
    out = ls.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help='{"jobs", "total" matching, "seq": watch --since from here}')
    out.add_argument(
        "--jsonl",
        action="store_true",
        help='one JSON object a line, streamed: first {"total", "seq"}, then each job, newest first',
    )

    sh = sub.add_parser("show", help="one job with its history")
    sh.add_argument("id")
    sh.add_argument("--json", action="store_true")

    for name, text in (
        ("retry", "retry a failed or canceled job, or all jobs a filter matches"),
        ("cancel", "cancel a waiting job, or stop a running one; or all jobs a filter matches"),
        ("run-now", "start a scheduled or retrying job now, or all jobs a filter matches"),
        ("delete", "delete a job (not while running), or all jobs a filter matches"),
    ):
        c = sub.add_parser(name, help=text)
        g = c.add_mutually_exclusive_group(required=True)
        g.add_argument("id", nargs="?")
        g.add_argument("--status", metavar="S", help=f"every job in these statuses ({', '.join(ALL_STATUSES)})")
        if name == "retry":
            g.add_argument("--all-failed", action="store_true")
        c.add_argument("--type", dest="job_type", metavar="T", help="with --status: only this job type")
        c.add_argument("--search", metavar="TEXT", help="with --status: only jobs whose parameters, result or error "
                       "contain TEXT")  # fmt: skip
        c.add_argument("--dry-run", action="store_true", help="with --status: count, change nothing")
        if name == "retry":
            _add_wait(c, "the job (with ID)")

    tr = sub.add_parser("trash", help="deleted jobs: list, restore or purge them")
    tr.add_argument("action", choices=["list", "restore", "purge"])
    tr.add_argument("ids", nargs="*", metavar="ID", help="restore or purge: these jobs")
    tr.add_argument("--all", action="store_true", help="purge: empty the whole trash")
    tr.add_argument("--limit", default="50", metavar="N")

    st = sub.add_parser("stats", help="counts, success rate, durations")
    st.add_argument("--json", action="store_true")
    t = sub.add_parser("types", help="job types and their parameters")
    t.add_argument("--json", action="store_true")
    wa = sub.add_parser("watch", help="print live events (resumes across worker restarts)")
    wa.add_argument("--json", "--jsonl", dest="json", action="store_true", help="each message as one JSON line")
    wa.add_argument("--since", type=int, default=None, help="replay events after this seq first")

    cr = sub.add_parser("credentials", help="secrets in the OS keyring")
    cr.add_argument("action", choices=["set", "delete", "status"])
    cr.add_argument("name", nargs="?", help=", ".join(CREDENTIAL_NAMES))

    db = sub.add_parser("db", help="check the ledger, or save what can be read from a damaged one into a new file")
    db.add_argument("action", choices=["check", "recover"])
    db.add_argument("outfile", nargs="?", metavar="OUTFILE", help="recover: the new ledger file to write")

    cf = sub.add_parser("config", help="non-secret settings")
    cf.add_argument("action", choices=["show", "set"])
    cf.add_argument("key", nargs="?", metavar="KEY", help="show: this setting alone; set: the setting to change")
    cf.add_argument("value", nargs="?", metavar="VALUE", help="set: its new value")
    cli_schedules.add_parser(sub)
    return p


def _add_wait(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--wait",
        action="store_true",
        help=f"follow {what} to the end; exit 0 succeeded, 1 failed, 3 canceled or deleted",
    )


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--priority", metavar="N", help="0–9, higher runs first (default 5)")
    p.add_argument("--at", metavar="ISO8601", help="run at this time (local time unless an offset is given)")


def _print_json(value: Any) -> None:
    print(inert_json(json.dumps(value, indent=2, ensure_ascii=False)))


def _say(text: str) -> None:
    """One line of human-readable output; what came from outside cannot drive the terminal."""
    print(inert(text))


def _job_line(job: dict[str, Any]) -> str:
    if "summary" in job:  # made by the engine that read the page (``Operations.list(summaries=True)``)
        summary = str(job["summary"])
    else:
        from engine.jobs import registry

        kind = registry.load().get(job["job_type"])
        summary = kind.summary(job["parameters"]) if kind else ""
    when = job["next_attempt_at"] or job["scheduled_time"] or job["created_at"]
    extra = job["error"] or ((job["result"] or {}).get("file_url") if job["result"] else "") or ""
    return (
        f"{job['id']:>6}  {job['status']:<9}  {job['job_type']:<12}  p{job['priority']}  "
        f"{job['attempts']}/{job['max_retries'] + 1}  {(when or '')[:19]:<19}  {inert(summary)[:40]:<40}  "
        f"{inert(str(extra))[:60]}"
    )


def _print_job(job: dict[str, Any]) -> None:
    for field in (
        "id",
        "job_type",
        "status",
        "priority",
        "attempts",
        "max_retries",
        "schedule_type",
        "scheduled_time",
        "next_attempt_at",
        "created_at",
        "started_at",
        "finished_at",
    ):
        if job.get(field) is not None:
            _say(f"{field:>16}: {job[field]}")
    _say(f"{'parameters':>16}: {json.dumps(job['parameters'], ensure_ascii=False)}")
    if job.get("result") is not None:
        _say(f"{'result':>16}: {json.dumps(job['result'], ensure_ascii=False)}")
    if job.get("error"):
        _say(f"{'error':>16}: {job['error']}")
    for step in job.get("history", []):
        _say(
            f"  #{step['seq']:<6} {step['at'][:19]}  {step['type']:<16} → {step['status']}"
            + (f"  ({step['error']})" if step.get("error") else "")
        )


def _parse_params(pairs: Sequence[str], raw_json: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if raw_json:
        try:
            loaded = json.loads(raw_json)
        except json.JSONDecodeError as exc:
            raise ValidationError("params-json", f"is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise ValidationError("params-json", "must be a JSON object")
        params.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValidationError("param", f"{pair!r} must look like KEY=VALUE")
        params[key.strip()] = value
    return params


def _ops() -> Operations:
    from engine.events.discovery import read_worker_info
    from engine.operations import Operations
    from engine.paths import Paths

    ops = Operations(Paths())

    def wake() -> None:
        if read_worker_info(ops.paths) is None:
            _no_worker_notice()
            return
        from engine.events.client import try_wake

        if not try_wake(ops.paths):
            _no_worker_notice()

    ops.after_enqueue = wake
    return ops


# Commands a running worker can serve (see ``engine.cli_worker``): they then start without opening the ledger.
_THROUGH_WORKER = {"submit", "list", "show", "retry", "cancel", "run-now", "delete", "stats", "trash"}


def _engine(args: argparse.Namespace) -> Any:
    """The running worker when one serves this data folder, else ``Operations`` in this process. ``submit
    upload_file`` stays here: the file it names is read, and staged, by the process that names it (as with
    ``upload``), relative to this process's working folder; so does a ``submit`` whose parameters are too large for
    one control-channel message (an email with a large body)."""
    if args.command == "submit":
        args.params = _parse_params(args.param, args.params_json)  # a bad one is refused before anything else
    if args.command in _THROUGH_WORKER and not (args.command == "submit" and args.job_type == "upload_file"):
        from engine.events.discovery import read_worker_info
        from engine.paths import Paths

        if read_worker_info(Paths()) is not None:  # else not even asyncio is imported
            from engine.cli_worker import MAX_ARGS_BYTES, WorkerEngine

            too_big = args.command == "submit" and len(json.dumps(args.params)) > MAX_ARGS_BYTES
            remote = None if too_big else WorkerEngine.connect(Paths())
            if remote is not None:
                return remote
    return _ops()


@functools.cache
def _no_worker_notice() -> None:
    """Once per command: a job created with no worker to take it is not lost, but nothing will run it yet."""
    print("jobdeck: no worker is running for this data folder; the job will run when one starts", file=sys.stderr)


def run(argv: Sequence[str]) -> int:
    """Run one command. Whatever goes wrong in the environment (a full disk, a damaged ledger, a folder this user
    cannot search, a port in use) ends in one line on stderr, never a traceback; only a bug keeps its traceback."""
    args = _parse(argv)
    paths: Paths | None = None
    try:
        from engine.paths import Paths, make_private

        paths = Paths()
        make_private(paths)
        status = _dispatch(args)
        sys.stdout.flush()  # here, not at exit, so that a reader who stopped early is seen below
        return status
    except ValidationError as exc:
        print(f"jobdeck: error: {as_typed(exc, args.command)}", file=sys.stderr)
        return 2
    except JobdeckError as exc:
        print(f"jobdeck: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _output_closed()
    except Exception as exc:
        from engine.failures import report

        return report(exc, paths)


# The engine's field names → the flags a user typed, for the commands whose options carry other names.
_FLAGS = {"scheduled_time": "--at", "max_retries": "--max-retries", "priority": "--priority", "job_type": "--type",
          "status": "--status", "search": "--search", "limit": "--limit", "key_prefix": "--key-prefix",
          "bucket": "--bucket", "conflict": "--conflict", "parameters": "--param", "since": "--since",
          "ids": "ID", "param": "--param", "params-json": "--params-json"}  # fmt: skip
_TYPED_COMMANDS = {"submit", "upload", "list", "retry", "cancel", "run-now", "delete", "trash", "uploads", "watch"}


def as_typed(exc: ValidationError, command: str | None) -> ValidationError:
    """The error named after the flag the user typed (``--at``, not ``scheduled_time``); `submit` takes its
    type as the positional TYPE."""
    if command not in _TYPED_COMMANDS or exc.field not in _FLAGS:
        return exc
    flag = "TYPE" if exc.field == "job_type" and command == "submit" else _FLAGS[exc.field]
    return ValidationError(flag, exc.message)


def _output_closed() -> int:
    """The reader of our output went away (``jobdeck list | head -1``): it chose to stop reading, so say nothing
    and end as a command killed by SIGPIPE would (128 + 13, what shells report for ``cat``). Standard output now
    points at the null device, or Python's own flush at exit would fail on it again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 128 + 13


def _dispatch(args: argparse.Namespace) -> int:
    from engine.paths import Paths

    cmd = args.command
    if cmd == "worker":
        from engine.worker.service import main as worker_main

        return worker_main(args.concurrency, args.port)
    if cmd == "watch":
        import asyncio

        from engine.watch import watch

        return asyncio.run(watch(Paths(), args.json, args.since))
    if cmd == "credentials":
        return _credentials(args.action, args.name)
    if cmd == "config":
        return _config(args.action, args.key, args.value)
    if cmd == "db":
        return _db(args.action, args.outfile)
    if cmd == "types":
        from engine.jobs import registry

        types = [t.describe() for _, t in sorted(registry.load().items())]
        if args.json:
            _print_json(types)
        else:
            for t in types:
                props = t["schema"].get("properties", {})
                required = set(t["schema"].get("required", []))
                print(f"{t['name']}: {t['label']} — {t['description']}")
                for name, spec in props.items():
                    if spec.get("readOnly"):
                        continue
                    flag = "required" if name in required else "optional"
                    print(f"    {name:<12} {flag:<8}  {spec.get('description', '')}")
        return 0

    ops = _engine(args)
    try:
        return _dispatch_ops(args, ops)
    finally:
        if getattr(ops, "through_worker", False):
            ops.close()


def _dispatch_ops(args: argparse.Namespace, ops: Any) -> int:
    cmd = args.command
    if cmd == "schedule":
        return cli_schedules.dispatch(args, ops)
    if cmd == "submit":
        params = args.params
        at = args.at
        if at not in (None, "") and getattr(ops, "through_worker", False):  # without an offset: our local time
            from engine.inputs import parse_time

            at = parse_time("scheduled_time", at, future=True).isoformat()
        since = _last_seq(ops) if args.wait else 0
        job = ops.create(
            job_type=args.job_type,
            parameters=params,
            priority=args.priority,
            max_retries=args.max_retries,
            scheduled_time=at,
        )
        if args.wait:
            return _wait(args, [job], since)
        _print_json(job) if args.json else print(f"created job {job['id']} ({job['status']})")
    elif cmd == "upload":
        paths, keys, prefix = _expand_uploads(ops, args.paths, args.key_prefix)
        since = _last_seq(ops) if args.wait else 0
        jobs = ops.upload(
            paths,
            keys=keys,
            bucket=args.bucket,
            key_prefix=prefix,
            conflict=args.conflict,
            in_place=args.in_place,
            priority=args.priority,
            scheduled_time=args.at,
        )
        if args.json and not args.wait:
            _print_json(jobs)
        elif not args.json:
            for job in jobs:
                _say(
                    f"created job {job['id']} ({job['status']}): {job['parameters']['path']} → "
                    f"s3://{job['parameters']['bucket']}/{job['parameters']['key']}"
                )
        if args.wait:
            return _wait(args, jobs, since, said=True)
    elif cmd == "uploads":
        _uploads_cleanup(ops, args.bucket, args.older_than, args.json)
    elif cmd == "list" and args.jsonl:
        _list_jsonl(ops, args)
    elif cmd == "list":
        page = ops.list(
            status=args.status,
            job_type=args.job_type,
            search=args.search,
            limit=args.limit or "50",
            summaries=not args.json,
        )
        if args.json:
            _print_json({"jobs": page["jobs"], "total": page["total"], "seq": page["seq"]})
        elif not page["jobs"]:
            print(
                "no jobs match"
                if (args.status or args.job_type or args.search)
                else "no jobs yet — create one with: jobdeck submit send_email --param recipient=…"
            )
        else:
            print(f"{'id':>6}  {'status':<9}  {'type':<12}  pr  try  {'when (UTC)':<19}  {'summary':<40}  result")
            for job in page["jobs"]:
                print(_job_line(job))
            if page["total"] > len(page["jobs"]):
                print(f"… {page['total'] - len(page['jobs'])} more (use --limit)")
    elif cmd == "show":
        job = ops.get(job_id=args.id)
        _print_json(job) if args.json else _print_job(job)
    elif cmd == "retry" and args.wait and not args.id:
        raise ValidationError("--wait", "follows one job: give its ID (jobdeck retry ID --wait)")
    elif cmd in ("retry", "cancel", "run-now", "delete") and args.status:
        _bulk(ops, cmd.replace("-", "_"), args)
    elif cmd == "retry":
        if args.all_failed:
            print(f"retrying {_jobs(ops.retry_all_failed()['count'])} that failed")
        else:
            since = _last_seq(ops) if args.wait else 0
            job = ops.retry(job_id=args.id)
            print(f"job {job['id']} is {job['status']} again")
            if args.wait:
                return _wait(args, [job], since, said=True)
    elif cmd in ("cancel", "run-now", "delete"):
        method = {"cancel": ops.cancel, "run-now": ops.run_now, "delete": ops.delete}[cmd]
        job = method(job_id=args.id)
        print(f"job {job['id']} {'deleted' if cmd == 'delete' else 'is ' + job['status']}", end="")
        print(f": {STOP_NOTE}" if cmd == "cancel" and job["status"] in STOPPABLE else "")
    elif cmd == "trash":
        _trash(ops, args)
    elif cmd == "stats":
        stats = ops.stats()
        if args.json:
            _print_json(stats)
        else:
            print(f"total: {stats['total']}")
            print("  " + "  ".join(f"{k}: {v}" for k, v in stats["by_status"].items()))
            rate = stats["success_rate"]
            print(f"success rate: {'—' if rate is None else f'{rate:.1%}'}")
            for label, key in (("mean duration", "mean_duration_s"), ("p95 duration", "p95_duration_s")):
                value = stats[key]
                print(f"{label}: {'—' if value is None else f'{value:.2f} s'}")
            print(f"finished in the last hour: {stats['finished_last_hour']} (failed: {stats['failed_last_hour']})")
    else:
        _parser().print_help()
    return 0


def _last_seq(ops: Any) -> int:
    """The ledger's newest event, read before a command changes its jobs: following from it misses nothing."""
    return int(ops.list(limit=1, count=False)["seq"])


def _wait(args: argparse.Namespace, jobs: list[dict[str, Any]], since: int, said: bool = False) -> int:
    """``--wait``: follow the jobs to their end (see ``engine.cli_wait``); ``--json`` prints them as they ended."""
    from engine.cli_wait import wait_for
    from engine.paths import Paths

    as_json = getattr(args, "json", False)
    if not as_json and not said:
        for job in jobs:
            print(f"created job {job['id']} ({job['status']})")
    sys.stdout.flush()
    status, follower = wait_for(Paths(), jobs, since, out=None if as_json else sys.stdout)
    if as_json:
        ended = list(follower.jobs.values())
        _print_json(ended if args.command == "upload" else ended[0])
    return status


JSONL_PAGE = 1_000  # jobs per read while streaming: each page is printed before the next is read


def _list_jsonl(ops: Any, args: argparse.Namespace) -> None:
    """Every job the filters match (or the newest ``--limit``), one JSON object a line, as the pages arrive; the
    first line is ``{"total", "seq"}``. Pages follow the ids down from the newest job at the first read, so jobs
    created or deleted meanwhile neither repeat nor shift the rest."""
    from engine.inputs import parse_int

    wanted = None if args.limit is None else parse_int("limit", args.limit, 1, 2**62, "a positive whole number")
    filters = {"status": args.status, "job_type": args.job_type, "search": args.search}
    page = ops.list(limit=min(JSONL_PAGE, wanted or JSONL_PAGE), **filters)
    print(json.dumps({"total": page["total"], "seq": page["seq"]}))
    sent = 0
    while page["jobs"]:
        lines = [inert_json(json.dumps(job, ensure_ascii=False)) for job in page["jobs"]]
        print("\n".join(lines), flush=True)
        sent += len(lines)
        remaining = JSONL_PAGE if wanted is None else min(JSONL_PAGE, wanted - sent)
        below = page["jobs"][-1]["id"] - 1
        if remaining <= 0 or below < 1 or len(page["jobs"]) < page["limit"]:
            break
        page = ops.list(limit=remaining, count=False, max_id=below, **filters)


def _bulk(ops: Any, action: str, args: argparse.Namespace) -> None:
    """An action on all jobs a filter matches: the count first, then (unless a dry run) what was done."""
    target = {"status": args.status, "job_type": args.job_type, "search": args.search}
    counted = ops.bulk(action=action, dry_run=True, **target)
    verb = action.replace("_", " ")
    print(f"{_jobs(counted['matched'])} match; {verb} applies to {counted['applicable']:,}")
    if args.dry_run or not counted["applicable"]:
        return
    newest = ops.list(limit=1, count=False)["max_id"]  # jobs created from here on are not touched
    report = ops.bulk(action=action, max_id=newest, **target)
    print(f"{verb}: {_jobs(report['done'])} done" + (f"; {report['note']}" if report.get("note") else ""))
    for error in report.get("errors", []):
        print(error, file=sys.stderr)


def _expand_uploads(ops: Any, named: Sequence[str], key_prefix: str | None) -> tuple[list[str], list[str], str]:
    """Folders expand as a drop on the window does; what inside them is not uploaded is listed on stderr. Links
    named directly resolve here, in this process; a file named directly that cannot be uploaded is an error."""
    from engine.upload_paths import DataGuard, expand

    settings = ops.settings
    prefix = settings.s3_key_prefix if key_prefix is None else key_prefix
    entries = expand(named, settings.max_upload_bytes, DataGuard(ops.paths))
    for entry in entries:
        if entry.problem and entry.in_folder:
            print(inert(f"jobdeck: skipped {entry.path}: {entry.problem}"), file=sys.stderr)  # a name from outside
    chosen = [e for e in entries if not (e.problem and e.in_folder)]
    if not chosen:
        raise ValidationError("path", f"no file to upload in {', '.join(named)} (what was skipped is listed above)")
    return [e.path for e in chosen], [prefix + e.key for e in chosen], prefix


def _trash(ops: Any, args: argparse.Namespace) -> None:
    if args.action == "list":
        page = ops.trash(limit=args.limit)
        for job in page["jobs"]:
            print(f"{_job_line(job)}  deleted {job['deleted_at'][:19]}")
        print(f"{_jobs(page['total'])} in the trash")
    elif args.action == "restore":
        print(f"restored {_jobs(ops.restore(ids=args.ids or None)['restored'])}")
    else:
        print(f"purged {_jobs(ops.purge_trash(ids=args.ids or None, everything=args.all)['purged'])}")


def _jobs(n: int) -> str:
    return f"{n:,} job" if n == 1 else f"{n:,} jobs"


def _uploads_cleanup(ops: Any, bucket: str | None, older_than: float, as_json: bool) -> None:
    report = ops.cleanup_uploads(bucket=bucket, older_than_hours=older_than)
    if as_json:
        _print_json(report)
        return
    for item in report["aborted"]:
        _say(f"aborted {item['upload_id'][:16]}…  started {(item['initiated'] or '?')[:19]}  {item['key']}")
    print(
        f"stale multipart uploads aborted in {report['bucket']}: {len(report['aborted'])}; "
        f"{report['kept']} kept (newer, or resumable by a job)"
    )


def _credentials(action: str, name: str | None) -> int:
    from engine.credentials.store import check_name, default_store, keyring_status

    store = default_store()
    if name:
        check_name(name)
    if action == "status":
        ok, text = keyring_status()
        print(("keyring: " if ok else "keyring ") + text)
        for cred in [name] if name else CREDENTIAL_NAMES:
            print(f"  {cred}: {'set' if ok and store.get(cred) else 'not set'}")
        return 0 if ok else 1
    if not name:
        raise ValidationError("name", f"give a credential name: {', '.join(CREDENTIAL_NAMES)}")
    if action == "delete":
        if store.get(name) is None:
            raise ValidationError(name, "is not set in the keyring: nothing to delete")
        store.delete(name)
        print(f"deleted {name}")
        return 0
    import getpass

    secret = getpass.getpass(f"{name}: ") if sys.stdin.isatty() else sys.stdin.read().rstrip("\r\n")
    store.set(name, secret)
    print(f"stored {name} in the keyring")
    return 0


def _db(action: str, outfile: str | None) -> int:
    """Read the ledger without opening it for work (no migration, no write): it may be the thing that is broken."""
    from engine.config import Paths, sqlite_file
    from engine.storage import integrity

    url = Paths().database_url()
    ledger = sqlite_file(url)
    if ledger is None:
        from sqlalchemy.engine import make_url

        where = make_url(url).render_as_string(hide_password=True)
        if action == "recover":
            raise JobdeckError(
                f"`db recover` reads a SQLite ledger; the ledger at {where} is PostgreSQL's: use pg_dump"
            )
        jobs, events = integrity.server_counts(url)
        print(f"the ledger at {where} answers: {jobs} jobs, {events} events (PostgreSQL checks its own pages)")
        return 0
    if action == "check":
        if not ledger.exists():
            raise JobdeckError(f"no ledger at {ledger} yet: nothing to check")
        integrity.check(ledger)
        jobs, events = integrity.counts(ledger)
        print(f"the ledger {ledger} is sound (quick_check ok): {jobs} jobs, {events} events")
        return 0
    if not outfile:
        raise ValidationError("OUTFILE", "give the new file to write, e.g. jobdeck db recover ~/jobdeck-recovered.db")
    out = Path(outfile).expanduser().resolve()
    saved = integrity.recover(ledger, out)
    print(
        f"saved {saved.jobs} jobs and {saved.events} events from {ledger} into {out} ({saved.method}"
        + (f"; {saved.unplaced} rows it could not place are in its lost_and_found table" if saved.unplaced else "")
        + f"); {ledger} is unchanged. To use the new file: stop the worker, move {ledger} aside, "
        f"and move {out} to {ledger}"
    )
    return 0


def _config(action: str, key: str | None, value: str | None) -> int:
    from engine.config import Paths, known_setting, load_settings, origins, parse_value, save_settings

    paths = Paths()
    if action == "show":
        if value is not None:
            raise ValidationError("KEY", f"show takes one setting at most; got {key!r} and {value!r}")
        shown = known_setting(key) if key is not None else None
        settings = load_settings(paths)
        for field, origin in origins(paths).items():
            if shown in (None, field):
                print(f"{field:<28} {json.dumps(getattr(settings, field))}  ({origin})")
        return 0
    if key is None or value is None:
        raise ValidationError("key", "usage: jobdeck config set KEY VALUE")
    settings = save_settings({key: parse_value(key, value)}, paths)
    print(f"{key} = {json.dumps(getattr(settings, key))}")
    if key in ("smtp_user", "smtp_tls", "smtp_allow_insecure_auth"):
        from engine.jobs.smtp import login_advice

        advice = login_advice(settings)
        if advice:
            print(advice, file=sys.stderr)
    return 0
