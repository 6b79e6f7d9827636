"""Cron schedules: parsing and fire times, for the CronJob reconciler.

Owns the standard five-field syntax Kubernetes accepts (robfig/cron's
standard parser): minute hour day-of-month month day-of-week, each a list of
`*`, `?`, `N`, `N-M`, with `/step` (`N/step` means `N-max/step`), month names
JAN-DEC and weekday names SUN-SAT (case-insensitive), and the descriptors
@yearly @annually @monthly @weekly @daily @midnight @hourly.

The day rule is cron's: when both day-of-month and day-of-week are
restricted (neither starts with `*` or `?` unstepped), a day matches if
EITHER matches; otherwise both must.

Fire times are wall-clock minutes in a time zone (zoneinfo). Across DST: a
wall time that does not exist (skipped by a spring-forward jump) does not
fire that day; a wall time that happens twice (fall-back) fires once, at its
first occurrence.

Errors carry robfig/cron's wording, because the apiserver's admission
(master/apiserver/admission/cron.py) validates schedules with this same
parser and answers with its messages. `@every` and TZ= / CRON_TZ= prefixes
are refused: Kubernetes asks for spec.timeZone instead.

Pure: no I/O besides reading the system's time zone database.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_MONTHS = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_NAMES: tuple[dict[str, int], ...] = ({}, {}, {}, _MONTHS, _DAYS)
DESCRIPTORS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
TZ_IN_SCHEDULE_MSG = "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
_SEARCH_DAYS = 5 * 366 + 1  # a schedule that fires less often than this never fires ("30 2 *")


class CronError(ValueError):
    """The schedule or time zone is not valid."""


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]  # 0 = Sunday
    dom_star: bool
    dow_star: bool

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days_of_month
        dow = (day.isoweekday() % 7) in self.days_of_week
        if self.dom_star or self.dow_star:
            return dom and dow
        return dom or dow


def parse(schedule: str) -> Schedule:
    """Parse a five-field schedule or a descriptor; CronError when invalid."""
    spec = schedule.strip()
    if not spec:
        raise CronError("empty spec string")
    if spec.startswith(("TZ=", "CRON_TZ=")):
        raise CronError(TZ_IN_SCHEDULE_MSG)
    if spec.startswith("@"):
        if spec not in DESCRIPTORS:
            raise CronError(f"unrecognized descriptor: {spec}")
        spec = DESCRIPTORS[spec]
    fields = spec.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    parsed = [_field(text, _BOUNDS[i], _NAMES[i]) for i, text in enumerate(fields)]
    return Schedule(parsed[0][0], parsed[1][0], parsed[2][0], parsed[3][0], parsed[4][0],
                    dom_star=parsed[2][1], dow_star=parsed[4][1])


def zone(name: str | None) -> tzinfo:
    """The IANA zone `name`; None or "" is UTC (the controller's local time is UTC here)."""
    if not name:
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (ValueError, OSError, zoneinfo.ZoneInfoNotFoundError) as exc:
        raise CronError(f"unknown time zone {name}") from exc


def next_fire(schedule: Schedule, after: datetime, tz: tzinfo = UTC) -> datetime | None:
    """The first fire time strictly after `after` (aware), in UTC; None if never."""
    local_start = after.astimezone(tz).date()
    hours, minutes = sorted(schedule.hours), sorted(schedule.minutes)
    for offset in range(_SEARCH_DAYS):
        day = local_start + timedelta(days=offset)
        if not schedule.day_matches(day):
            continue
        for hour in hours:
            for minute in minutes:
                fire = _existing(day, hour, minute, tz)
                if fire is not None and fire > after:
                    return fire
    return None


def previous_fire(schedule: Schedule, at_or_before: datetime, tz: tzinfo = UTC) -> datetime | None:
    """The last fire time at or before `at_or_before` (aware), in UTC; None if none in 5 years."""
    local_start = at_or_before.astimezone(tz).date()
    hours, minutes = sorted(schedule.hours, reverse=True), sorted(schedule.minutes, reverse=True)
    for offset in range(_SEARCH_DAYS):
        day = local_start - timedelta(days=offset)
        if not schedule.day_matches(day):
            continue
        for hour in hours:
            for minute in minutes:
                fire = _existing(day, hour, minute, tz)
                if fire is not None and fire <= at_or_before:
                    return fire
    return None


def count_fires(schedule: Schedule, after: datetime, until: datetime, tz: tzinfo = UTC,
                *, limit: int = 101) -> int:
    """How many fire times lie in (after, until], counting at most `limit`."""
    count, t = 0, after
    while count < limit:
        nxt = next_fire(schedule, t, tz)
        if nxt is None or nxt > until:
            break
        count, t = count + 1, nxt
    return count


def _existing(day: date, hour: int, minute: int, tz: tzinfo) -> datetime | None:
    """The UTC instant of a local wall time (first occurrence), None inside a DST gap."""
    wall = datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)  # fold=0: first
    instant = wall.astimezone(UTC)
    back = instant.astimezone(tz)
    if (back.hour, back.minute, back.day) != (hour, minute, day.day):
        return None
    return instant


def _field(text: str, bounds: tuple[int, int], names: dict[str, int]) -> tuple[frozenset[int], bool]:
    values: set[int] = set()
    star = False
    for part in text.split(","):
        start, end, step, is_star = _range(part, bounds, names)
        values.update(range(start, end + 1, step))
        star = star or is_star
    return frozenset(values), star


def _range(expr: str, bounds: tuple[int, int], names: dict[str, int]) -> tuple[int, int, int, bool]:
    """(start, end, step, is an unstepped star) of one list element, checked as robfig/cron does."""
    lo, hi = bounds
    range_and_step = expr.split("/")
    low_high = range_and_step[0].split("-")
    star = low_high[0] in ("*", "?")
    if star:
        start, end = lo, hi
    else:
        start = _int_or_name(low_high[0], names)
        if len(low_high) == 1:
            end = start
        elif len(low_high) == 2:
            end = _int_or_name(low_high[1], names)
        else:
            raise CronError(f"too many hyphens: {expr}")
    step = 1
    if len(range_and_step) == 2:
        step = _int(range_and_step[1])
        if len(low_high) == 1:
            end = hi  # "N/step" means "N-max/step"
        if step > 1:
            star = False  # "*/2" restricts the field
    elif len(range_and_step) > 2:
        raise CronError(f"too many slashes: {expr}")
    if start < lo:
        raise CronError(f"beginning of range ({start}) below minimum ({lo}): {expr}")
    if end > hi:
        raise CronError(f"end of range ({end}) above maximum ({hi}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    return start, end, step, star


def _int_or_name(text: str, names: dict[str, int]) -> int:
    if text.lower() in names:
        return names[text.lower()]
    return _int(text)


def _int(text: str) -> int:
    body = text[1:] if text[:1] in "+-" else text
    if not (body.isascii() and body.isdigit()) or len(body) > 18:
        raise CronError(f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": invalid syntax')
    value = int(text)
    if value < 0:
        raise CronError(f"negative number ({value}) not allowed: {text}")
    return value
