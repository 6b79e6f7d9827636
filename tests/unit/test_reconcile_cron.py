"""Cron parsing and fire times (master/reconcile/cron.py): table tests."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from master.reconcile import cron


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(("schedule", "after", "tz", "expected"), [
    ("* * * * *", utc(2024, 1, 1, 0, 0, 30), None, utc(2024, 1, 1, 0, 1)),
    ("* * * * *", utc(2024, 1, 1, 0, 0), None, utc(2024, 1, 1, 0, 1)),  # strictly after
    ("*/15 * * * *", utc(2024, 1, 1, 0, 16), None, utc(2024, 1, 1, 0, 30)),
    ("5/20 * * * *", utc(2024, 1, 1, 0, 6), None, utc(2024, 1, 1, 0, 25)),  # N/step = N-max/step
    ("0 9-17/4 * * *", utc(2024, 1, 1, 10), None, utc(2024, 1, 1, 13)),
    ("0,30 12 * * *", utc(2024, 1, 1, 12, 10), None, utc(2024, 1, 1, 12, 30)),
    ("0 0 1 JAN *", utc(2024, 1, 2), None, utc(2025, 1, 1)),
    ("0 0 * * MON", utc(2024, 1, 1, 0, 0), None, utc(2024, 1, 8)),  # 2024-01-01 is a Monday
    ("0 0 * * mon-wed", utc(2024, 1, 3, 1), None, utc(2024, 1, 8)),
    ("@hourly", utc(2024, 1, 1, 5, 59), None, utc(2024, 1, 1, 6)),
    ("@daily", utc(2024, 1, 1, 5), None, utc(2024, 1, 2)),
    ("@midnight", utc(2024, 1, 1, 5), None, utc(2024, 1, 2)),
    ("@weekly", utc(2024, 1, 1, 5), None, utc(2024, 1, 7)),  # Sunday
    ("@monthly", utc(2024, 1, 15), None, utc(2024, 2, 1)),
    ("@yearly", utc(2024, 1, 15), None, utc(2025, 1, 1)),
    ("@annually", utc(2024, 1, 15), None, utc(2025, 1, 1)),
    ("0 0 29 2 *", utc(2024, 3, 1), None, utc(2028, 2, 29)),
    # day-of-month OR day-of-week when both are restricted: the 13th or any Friday
    ("0 0 13 * 5", utc(2024, 1, 1), None, utc(2024, 1, 5)),
    ("0 0 13 * 5", utc(2024, 1, 12, 1), None, utc(2024, 1, 13)),
    # AND when one of them is a star: Fridays only ...
    ("0 0 * * 5", utc(2024, 1, 6), None, utc(2024, 1, 12)),
    # ... and a stepped star restricts the field (so OR again): odd days or Sundays
    ("0 0 */2 * 0", utc(2024, 1, 1, 1), None, utc(2024, 1, 3)),
    ("0 0 ? * 0", utc(2024, 1, 1, 1), None, utc(2024, 1, 7)),
    # time zones
    ("0 9 * * *", utc(2024, 1, 1), "Europe/Berlin", utc(2024, 1, 1, 8)),
    ("0 9 * * *", utc(2024, 7, 1), "Europe/Berlin", utc(2024, 7, 1, 7)),
    # DST spring forward (US/Eastern 2024-03-10 02:00 -> 03:00): 02:30 does not exist that day
    ("30 2 * * *", utc(2024, 3, 9, 8), "America/New_York", utc(2024, 3, 11, 6, 30)),
    ("0 3 * * *", utc(2024, 3, 9, 9), "America/New_York", utc(2024, 3, 10, 7)),
    # DST fall back (2024-11-03 02:00 -> 01:00): 01:30 happens twice, fires once (the first)
    ("30 1 * * *", utc(2024, 11, 3, 4), "America/New_York", utc(2024, 11, 3, 5, 30)),
    ("30 1 * * *", utc(2024, 11, 3, 5, 30), "America/New_York", utc(2024, 11, 4, 6, 30)),
    ("0 0 30 2 *", utc(2024, 1, 1), None, None),  # never
])
def test_next_fire(schedule: str, after: datetime, tz: str | None, expected: datetime | None) -> None:
    zone = ZoneInfo(tz) if tz else UTC
    assert cron.next_fire(cron.parse(schedule), after, zone) == expected


@pytest.mark.parametrize(("schedule", "at", "expected"), [
    ("* * * * *", utc(2024, 1, 1, 0, 5, 30), utc(2024, 1, 1, 0, 5)),
    ("* * * * *", utc(2024, 1, 1, 0, 5), utc(2024, 1, 1, 0, 5)),  # at or before
    ("0 */6 * * *", utc(2024, 1, 1, 5), utc(2024, 1, 1)),
    ("0 18 * * *", utc(2024, 1, 1, 5), utc(2023, 12, 31, 18)),
    ("0 0 13 * 5", utc(2024, 1, 12, 12), utc(2024, 1, 12)),
])
def test_previous_fire(schedule: str, at: datetime, expected: datetime) -> None:
    assert cron.previous_fire(cron.parse(schedule), at) == expected


def test_count_fires_is_bounded() -> None:
    schedule = cron.parse("* * * * *")
    assert cron.count_fires(schedule, utc(2024, 1, 1), utc(2024, 1, 1, 0, 10)) == 10
    assert cron.count_fires(schedule, utc(2024, 1, 1), utc(2024, 1, 2), limit=101) == 101


@pytest.mark.parametrize("schedule", [
    "", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *",
    "* * * * 7", "5-1 * * * *", "*/0 * * * *", "a * * * *", "1-2-3 * * * *", "*/2/3 * * * *",
    "@every 5m", "@sometimes", "* * * FOO *", "-1 * * * *",
])
def test_invalid_schedules(schedule: str) -> None:
    with pytest.raises(cron.CronError):
        cron.parse(schedule)


def test_fields_parse_to_sets() -> None:
    s = cron.parse("0,15-17 */8 1 jan,JUL sun")
    assert s.minutes == {0, 15, 16, 17} and s.hours == {0, 8, 16}
    assert s.days_of_month == {1} and s.months == {1, 7} and s.days_of_week == {0}
    assert not s.dom_star and not s.dow_star
    assert cron.parse("* * * * *").dom_star


def test_zones() -> None:
    assert cron.zone(None) is UTC and cron.zone("") is UTC
    assert cron.zone("Asia/Tokyo") == ZoneInfo("Asia/Tokyo")
    with pytest.raises(cron.CronError):
        cron.zone("Mars/Olympus")
