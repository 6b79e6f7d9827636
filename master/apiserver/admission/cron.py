"""Cron schedules and time zones as a CronJob's spec may hold them.

`schedule_errors` accepts what Kubernetes accepts (robfig/cron's standard
parser: five fields, ranges, steps, lists, month and weekday names, `?`,
and the @yearly/@annually/@monthly/@weekly/@daily/@midnight/@hourly
descriptors) and answers with that parser's wording; the parser is the one
the CronJob controller computes fire times with (master/reconcile/cron.py),
so what admission accepts is exactly what the controller runs.
`time_zone_errors` is Kubernetes' validateTimeZone.

Pure apart from reading the system's IANA time zone database (zoneinfo).
"""

from __future__ import annotations

import re
import zoneinfo

from master.reconcile.cron import CronError, parse

_TZ_PART = re.compile(r"^[A-Za-z.\-_0-9+]{1,14}$")


def schedule_errors(schedule: str) -> list[str]:
    try:
        parse(schedule)
    except CronError as exc:
        return [str(exc)]
    return []


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
