"""Time as an injectable dependency: the `Clock` protocol, the real one and a fake.

Everything in master/client that waits (work-queue backoff and delayed adds,
informer resync and relist backoff, client read retries) asks a `Clock`, never
`time` or `asyncio.sleep` directly, so tests drive time by hand with
`FakeClock.advance()` and take milliseconds.

Pure: no I/O beyond asyncio itself. It must not import grpc or any adapter.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What a component may ask about time."""

    def now(self) -> float:
        """Monotonic seconds: only differences are meaningful."""
        ...

    def wall(self) -> datetime:
        """The wall-clock time, timezone-aware UTC (for timestamps on objects)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return after `seconds` of this clock's time (at once when <= 0)."""
        ...


class RealClock:
    """The process's clocks: `time.monotonic`, `datetime.now(UTC)`, `asyncio.sleep`."""

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


_DEFAULT_WALL_START = datetime(2024, 1, 1, tzinfo=UTC)


class FakeClock:
    """A clock that moves only when told to: `advance(seconds)`.

    Sleepers are woken in deadline order, ties in the order they started
    sleeping, so a test sees the same interleaving on every run. A sleeper
    whose deadline is passed by one `advance` observes `now()` at the end of
    that advance (time jumps; it does not tick through intermediate values).
    """

    def __init__(self, *, start: float = 0.0, wall_start: datetime = _DEFAULT_WALL_START) -> None:
        if wall_start.tzinfo is None:
            raise ValueError("wall_start must be timezone-aware")
        self._start = start
        self._now = start
        self._wall_start = wall_start
        self._seq = itertools.count()
        # (deadline, sequence, future): the sequence breaks ties and keeps
        # futures from ever being compared.
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._changed: asyncio.Event | None = None

    def now(self) -> float:
        return self._now

    def wall(self) -> datetime:
        return self._wall_start + timedelta(seconds=self._now - self._start)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            # Still yield once, as asyncio.sleep(0) does: a loop that sleeps 0
            # must not starve the event loop.
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), future))
        self._notify()
        await future

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has come."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():  # a cancelled sleeper is simply dropped
                future.set_result(None)
        self._notify()

    @property
    def sleepers(self) -> int:
        """How many tasks are sleeping on this clock right now."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def next_deadline(self) -> float | None:
        """The earliest deadline of a live sleeper, or None when nobody sleeps."""
        live = [d for d, _, f in self._sleepers if not f.done()]
        return min(live) if live else None

    async def wait_sleepers(self, count: int = 1) -> None:
        """Wait (without advancing time) until at least `count` tasks sleep.

        Tests use it to know a component has reached its timed wait before
        calling `advance`, instead of guessing how many loop turns it needs.
        """
        while self.sleepers < count:
            event = self._changed_event()
            event.clear()
            await event.wait()

    async def advance_to_next(self) -> float:
        """Wait for a sleeper, advance exactly to its deadline; return the step."""
        await self.wait_sleepers(1)
        deadline = self.next_deadline()
        assert deadline is not None
        step = max(0.0, deadline - self._now)
        self.advance(step)
        return step

    def _changed_event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
