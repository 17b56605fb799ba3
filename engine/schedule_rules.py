"""A schedule's rule: checking it, its planned times in its time zone, and its text in plain language.

Cron expressions are evaluated by ``cronsim`` in the schedule's zone, so wall-clock times hold across DST: a daily
09:00 stays at 09:00 local time, a time the clock skips runs at the next valid minute, and a time the clock repeats
runs once. Intervals (``90s``, ``15m``, ``2h``, ``1d``) are elapsed time, counted from the schedule's start (or its
creation), so DST does not stretch or shrink them. Every function takes the time it computes from: the clock is
the caller's, which is what makes these testable across any DST change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cron_descriptor import ExpressionDescriptor, FormatError, Options
from cronsim import CronSim, CronSimError

from engine.errors import ValidationError

# The usual shorthands, as cron itself expands them (cronsim takes only the five fields).
ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
# A duration: a count and a unit, short or spelled out ("90s", "15 min", "2 hours"); "every hour" has no count.
_EVERY = re.compile(r"^\s*(\d+)?\s*(s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?)\s*$", re.IGNORECASE)
_UNITS = {"s": (1, "second"), "m": (60, "minute"), "h": (3600, "hour"), "d": (86400, "day")}
RULE_HINT = "a cron expression (0 9 * * 1-5), a shorthand (@daily) or an interval (every 15 min)"
EVERY_PREFIX = "every "
MAX_EVERY_S = 366 * 86400
_RANGE = f"from 1s to {MAX_EVERY_S // 86400}d"


@dataclass(frozen=True)
class Rule:
    """A checked rule. ``text`` is how it is stored and shown: the cron expression, or ``every 90s``."""

    text: str
    every_s: int | None = None

    @property
    def cron(self) -> str | None:
        return None if self.every_s is not None else ALIASES.get(self.text, self.text)


def parse_cron(expr: str) -> Rule:
    text = " ".join(str(expr).split())
    fields = ALIASES.get(text.lower(), text)
    if text.startswith("@") and text.lower() not in ALIASES:
        raise ValidationError("cron", f"unknown shorthand {text!r}; allowed: {', '.join(ALIASES)}")
    if len(fields.split()) != 5:
        raise ValidationError(
            "cron", f"{text!r} must have 5 fields (minute hour day-of-month month day-of-week), or be one of "
            f"{', '.join(ALIASES)}"
        )  # fmt: skip
    try:
        CronSim(fields, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise ValidationError("cron", f"{text!r}: {str(exc).lower()}") from None
    return Rule(text.lower() if text.startswith("@") else text)


def parse_every(value: str) -> Rule:
    match = _EVERY.match(str(value))
    if not match or (match.group(1) is None and not match.group(2)[1:]):  # a bare "m" is not "every minute"
        raise ValidationError("every", f"{value!r} is not a duration; use a number and a unit: 90s, 15m, 2h or 1d")
    count, unit = int(match.group(1) or 1), match.group(2)[0].lower()
    seconds = count * _UNITS[unit][0]
    if not 1 <= seconds <= MAX_EVERY_S:
        raise ValidationError("every", f"{value!r} must be {_RANGE}")
    return Rule(f"{EVERY_PREFIX}{count}{unit}", seconds)


def parse_rule(text: str) -> Rule:
    """One rule as a person types it in a single field: ``every 15 min``, ``every hour``, ``90s``, ``@daily`` or
    a cron expression. An error names the field ``rule`` and says what it was taken for."""
    raw = " ".join(str(text).split())
    if not raw:
        raise ValidationError("rule", f"a schedule needs a rule: {RULE_HINT}")
    lowered = raw.lower()
    if lowered.startswith("every") and (lowered == "every" or lowered[5] == " "):
        amount = raw[5:].strip()
    elif _EVERY.match(raw) and raw[0].isdigit():
        amount = raw
    else:
        try:
            return parse_cron(raw)
        except ValidationError as exc:
            if raw.startswith("@") or len(raw.split()) == 5:
                raise ValidationError("rule", exc.message) from None
            raise ValidationError(
                "rule", f"{raw!r} is neither 5 cron fields (minute hour day-of-month month day-of-week) nor an "
                f"interval; use {RULE_HINT}"
            ) from None  # fmt: skip
    try:
        return parse_every(amount)
    except ValidationError as exc:
        if exc.message.endswith(_RANGE):  # a duration, out of range
            raise ValidationError("rule", f"{raw!r}: the interval must be {_RANGE}") from None
        raise ValidationError(
            "rule", f"{raw!r} is not an interval; use a number and a unit: every 90s, every 15 min, every 2 hours "
            "or every 1d"
        ) from None  # fmt: skip


def load(text: str) -> Rule:
    """A stored rule (already checked when it was stored)."""
    return parse_every(text[len(EVERY_PREFIX) :]) if text.startswith(EVERY_PREFIX) else parse_cron(text)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError("tz", f"unknown time zone {name!r}; use a name such as Europe/Berlin or UTC") from None


def local_zone_name() -> str:
    """The user's zone by name (``Europe/Berlin``, not ``CET``), so a schedule follows that zone's DST rules."""
    try:
        import tzlocal

        name = tzlocal.get_localzone_name()
    except Exception:  # no zone configured on this machine
        name = None
    return name if name and _known(name) else "UTC"


def _known(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def describe(rule: Rule) -> str:
    """The rule in plain language: "At 09:00, Monday through Friday", "Every 15 minutes"."""
    if rule.every_s is not None:
        count, unit = int(rule.text[len(EVERY_PREFIX) : -1]), rule.text[-1]
        noun = _UNITS[unit][1]
        return f"Every {noun}" if count == 1 else f"Every {count} {noun}s"
    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    try:
        return str(ExpressionDescriptor(rule.cron, options).get_description())
    except FormatError:  # cronsim accepted it; say it as it is rather than fail
        return rule.text


def planned_times(
    rule: Rule,
    tz: str,
    after: datetime,
    count: int,
    *,
    anchor: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[datetime]:
    """Up to ``count`` planned times strictly after ``after`` (and not before ``start``, not after ``end``), in UTC.

    ``anchor`` is where an interval counts from: its start, or else when the schedule was made."""
    if start is not None and start > after:
        after = start - timedelta(microseconds=1)
    times: list[datetime] = []
    if rule.every_s is not None:
        step = timedelta(seconds=rule.every_s)
        base = start or anchor
        k = 0 if after < base else (after - base) // step + 1
        while len(times) < count:
            when = base + k * step
            if end is not None and when > end:
                break
            times.append(when.astimezone(UTC))
            k += 1
        return times
    it = CronSim(rule.cron or "", after.astimezone(zone(tz)))
    while len(times) < count:
        try:
            when = next(it).astimezone(UTC)
        except StopIteration:
            break
        if end is not None and when > end:
            break
        times.append(when)
    return times


def next_time(rule: Rule, tz: str, after: datetime, **bounds: datetime | None) -> datetime | None:
    found = planned_times(rule, tz, after, 1, **bounds)  # type: ignore[arg-type]
    return found[0] if found else None
