"""Cron schedules and time zones as a CronJob's spec may hold them.

`schedule_errors` accepts what Kubernetes accepts (robfig/cron's standard
parser: five fields, ranges, steps, lists, month and weekday names, `?`,
and the @yearly/@annually/@monthly/@weekly/@daily/@midnight/@hourly
descriptors) and answers with that parser's wording. `@every` and TZ= or
CRON_TZ= prefixes are refused: Kubernetes asks for spec.timeZone instead.
`parse_schedule` returns the allowed values per field for the CronJob
controller to compute run times from.

Pure apart from reading the system's IANA time zone database (zoneinfo).
"""

from __future__ import annotations

import re
import zoneinfo

_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_MONTHS = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_NAMES: tuple[dict[str, int], ...] = ({}, {}, {}, _MONTHS, _DAYS)
DESCRIPTORS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
_TZ_PART = re.compile(r"^[A-Za-z.\-_0-9+]{1,14}$")
TZ_IN_SCHEDULE_MSG = "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"


class CronError(ValueError):
    """The schedule does not parse; the message is robfig/cron's wording."""


def parse_schedule(schedule: str) -> tuple[frozenset[int], ...]:
    """The allowed minutes, hours, days of month, months and weekdays."""
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
    return tuple(_field(f, _BOUNDS[i], _NAMES[i]) for i, f in enumerate(fields))


def schedule_errors(schedule: str) -> list[str]:
    try:
        parse_schedule(schedule)
    except CronError as exc:
        return [str(exc)]
    return []


def _field(text: str, bounds: tuple[int, int], names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        start, end, step = _range(part, bounds, names)
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _range(expr: str, bounds: tuple[int, int], names: dict[str, int]) -> tuple[int, int, int]:
    lo, hi = bounds
    range_and_step = expr.split("/")
    low_high = range_and_step[0].split("-")
    if low_high[0] in ("*", "?"):
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
    return start, end, step


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


def time_zone_errors(tz: str) -> list[str]:
    """Kubernetes' validateTimeZone: an explicit IANA name the system knows."""
    if not tz:
        return ["timeZone must be nil or non-empty string"]
    if tz.lower() == "local":
        return ["timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"]
    for part in tz.split("/"):
        if part in (".", "..") or part.startswith("-") or not _TZ_PART.match(part):
            return [f"unknown time zone {tz}"]
    try:
        zoneinfo.ZoneInfo(tz)
    except (ValueError, OSError, zoneinfo.ZoneInfoNotFoundError):
        return [f"unknown time zone {tz}"]
    return []
