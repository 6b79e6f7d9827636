"""master.client.clock: FakeClock moves only on advance and wakes sleepers in order."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from master.client.clock import Clock, FakeClock, RealClock


async def test_fake_clock_starts_where_told_and_moves_only_on_advance() -> None:
    wall = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
    clock = FakeClock(start=100.0, wall_start=wall)
    assert clock.now() == 100.0
    assert clock.wall() == wall
    clock.advance(2.5)
    assert clock.now() == 102.5
    assert clock.wall() == wall + timedelta(seconds=2.5)


def test_fake_clock_rejects_going_backwards_and_naive_wall_time() -> None:
    with pytest.raises(ValueError):
        FakeClock().advance(-1)
    with pytest.raises(ValueError):
        FakeClock(wall_start=datetime(2030, 1, 1))


async def test_sleepers_wake_in_deadline_order_ties_in_start_order() -> None:
    clock = FakeClock()
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    tasks = [
        asyncio.create_task(sleeper(name, seconds))
        for name, seconds in [("c", 3), ("a", 1), ("b1", 2), ("b2", 2), ("late", 10)]
    ]
    await clock.wait_sleepers(5)
    clock.advance(5)
    await asyncio.gather(*tasks[:4])
    assert woke == ["a", "b1", "b2", "c"]
    assert clock.sleepers == 1
    assert clock.next_deadline() == 10
    clock.advance(5)
    await tasks[4]
    assert woke[-1] == "late"
    assert clock.sleepers == 0
    assert clock.next_deadline() is None


async def test_partial_advance_wakes_only_due_sleepers() -> None:
    clock = FakeClock()
    task = asyncio.create_task(clock.sleep(10))
    await clock.wait_sleepers(1)
    clock.advance(9.999)
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance(0.001)
    await task


async def test_cancelled_sleeper_is_dropped() -> None:
    clock = FakeClock()
    task = asyncio.create_task(clock.sleep(1))
    await clock.wait_sleepers(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.sleepers == 0
    clock.advance(2)  # must not try to wake the cancelled future


async def test_sleep_of_zero_or_less_returns_without_advancing() -> None:
    clock = FakeClock()
    await clock.sleep(0)
    await clock.sleep(-3)
    assert clock.now() == 0
    assert clock.sleepers == 0


async def test_advance_to_next_jumps_exactly_to_the_earliest_deadline() -> None:
    clock = FakeClock()
    task = asyncio.create_task(clock.sleep(7))
    assert await clock.advance_to_next() == 7
    await task
    assert clock.now() == 7


async def test_real_clock_is_monotonic_and_utc() -> None:
    clock: Clock = RealClock()
    first = clock.now()
    await clock.sleep(0)
    assert clock.now() >= first
    assert clock.wall().tzinfo is UTC


def test_both_clocks_satisfy_the_protocol() -> None:
    clocks: list[Clock] = [RealClock(), FakeClock()]
    assert all(isinstance(c.now(), float) for c in clocks)
