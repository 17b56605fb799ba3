"""`jobdeck watch`: the live event stream, one readable line per event, resuming after worker restarts."""

from __future__ import annotations

import json
import sys
from typing import Any

from engine.errors import WorkerNotRunning
from engine.events import schema
from engine.events.client import EventStream, call
from engine.events.discovery import read_worker_info
from engine.inert import inert
from engine.paths import Paths


def format_event(event: dict[str, Any]) -> str | None:
    """One line; an error or link from outside is shown inert (see ``engine.inert``)."""
    line = _event_line(event)
    return inert(line) if line is not None else None


def _event_line(event: dict[str, Any]) -> str | None:
    kind = event.get("type")
    if kind in (schema.JOB_CREATED, schema.JOB_UPDATED, schema.JOB_DELETED):
        job = event["job"]
        kind_text = event.get("event", "")
        text = f"#{event['seq']:<7} {event['at'][11:19]}  job {job['id']:<6} {kind_text:<16} {job['status']}"
        if job.get("error") and job["status"] in ("failed", "retrying"):
            text += f"  — {job['error']}"
        if job["status"] == "retrying" and job.get("next_attempt_at"):
            text += f"  (next attempt {job['next_attempt_at'][11:19]})"
        if job["status"] == "succeeded" and job.get("result") and job["result"].get("file_url"):
            text += f"  → {job['result']['file_url']}"
        return text
    if kind == schema.JOB_PROGRESS:
        p = event["progress"]
        total = p.get("total")
        pct = f"{100 * p['done'] / total:5.1f}%" if total else f"{p['done']} B"
        rate = f"  {p['rate'] / 1e6:.1f} MB/s" if p.get("rate") else ""
        return f"{'':8} {event['at'][11:19]}  job {event['job_id']:<6} progress         {pct}{rate}"
    if kind == schema.SCHEDULE_UPDATED:
        s = event["schedule"]
        state = "paused" if s["paused"] else f"next {(s['next_run_at'] or 'none')[:19]}"
        return (
            f"#{event['seq']:<7} {event['at'][11:19]}  schedule {s['id']:<3} {event['event']:<16} {state}  {s['name']}"
        )
    if kind == schema.WORKER_STATUS:
        w = event["worker"]
        return f"{'':8} {event['at'][11:19]}  worker pid {w['pid']} {w['state']}, running {len(w['running'])}"
    return None


async def current_seq(paths: Paths) -> int:
    """Where "from now on" starts; read once, so events committed while no worker runs are not skipped later. A
    running worker is asked (as ``list`` would be), so that watching starts without opening the ledger."""
    if read_worker_info(paths) is not None:
        try:
            return int((await call("list", paths, timeout=10.0, limit=1, count=False))["seq"])
        except (WorkerNotRunning, TimeoutError):
            pass  # gone meanwhile: the ledger tells
    from engine.storage.repository import Ledger

    ledger = Ledger(paths.database_url())
    try:
        return ledger.last_seq()
    finally:
        ledger.close()


async def watch(paths: Paths, as_json: bool, since: int | None) -> int:
    """Print events after ``since`` (default: from now on) until interrupted; a ``since`` the server refuses ends
    it with the server's reason (``ValidationError``, exit status 2)."""
    last = await current_seq(paths)
    start = last if since is None else since
    if since is not None and since > last:  # not an error: a script may resume from a seq not yet reached
        print(f"[waiting for events after {since}; the ledger's last event so far is {last}]", file=sys.stderr)
    stream = EventStream(paths, start, on_state=lambda s: print(f"[{s}]", file=sys.stderr, flush=True))
    try:
        async for event in stream.events():
            if as_json:  # every message as the server sent it (docs/events.md), replay.done included
                print(json.dumps(event), flush=True)  # JSON escapes as ASCII
                continue
            line = format_event(event)
            if line:
                print(line, flush=True)
    finally:
        await stream.close()
    return 0
