"""The scheduling queue: active, backoff and unschedulable pods (Kubernetes' three queues).

Items are pod keys; the loop re-reads the pod from the informer when it pops
one, so the queue never holds stale objects.

* `add(key)`: a new or changed pending pod goes to active (ordered by
  priority, then first-seen time).
* `pop()` hands out one key and starts a scheduling cycle; the key is "in
  flight" until `done`, `add_unschedulable` or `add_backoff`. An `add` for
  an in-flight key only marks it changed.
* `add_unschedulable(key, cycle)`: no node fit. The pod parks in the
  unschedulable pool, unless the cluster changed (or the pod did) since its
  cycle started, in which case it goes to backoff at once: a change that
  came while it was being scheduled must not be missed.
* `move_all(reason)`: the cluster changed (node added or updated, pod
  deleted): every parked pod goes to backoff, or straight to active when
  its backoff is already over.
* `add_backoff(key)`: an error (a failed bind): retry after the backoff.
* Backoff per pod: `initial_backoff_s` * 2^(attempts-1), at most
  `max_backoff_s` (Kubernetes: 1 s and 10 s). A pod parked longer than
  `max_unschedulable_s` (5 min) is retried even without a cluster change.

All waiting is on the injected Clock, so tests drive it with FakeClock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from dataclasses import dataclass
from typing import Any

from master.client.clock import Clock, RealClock


class QueueClosed(Exception):
    """pop() after close()."""


@dataclass
class _Entry:
    key: str
    priority: int
    first_seen: float
    attempts: int = 0
    backoff_until: float = 0.0
    parked_at: float = 0.0


class SchedulingQueue:
    def __init__(
        self,
        *,
        clock: Clock | None = None,
        initial_backoff_s: float = 1.0,
        max_backoff_s: float = 10.0,
        max_unschedulable_s: float = 300.0,
    ) -> None:
        self.clock: Clock = clock or RealClock()
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_unschedulable_s = max_unschedulable_s
        self._entries: dict[str, _Entry] = {}
        self._seq = itertools.count()
        self._active: list[tuple[int, float, int, str]] = []
        self._active_keys: set[str] = set()
        self._backoff: dict[str, float] = {}  # key -> ready at
        self._unschedulable: set[str] = set()
        self._in_flight: set[str] = set()
        self._changed_in_flight: set[str] = set()
        self.cycle = 0
        self._move_cycle = -1
        self._wake = asyncio.Event()
        self._closed = False

    # Sizes (tests, metrics) -----------------------------------------------------------

    @property
    def active(self) -> int:
        return len(self._active_keys)

    @property
    def backoff(self) -> int:
        return len(self._backoff)

    @property
    def unschedulable(self) -> int:
        return len(self._unschedulable)

    def where(self, key: str) -> str:
        """"active", "backoff", "unschedulable", "in-flight" or "" (tests, explain)."""
        if key in self._active_keys:
            return "active"
        if key in self._backoff:
            return "backoff"
        if key in self._unschedulable:
            return "unschedulable"
        return "in-flight" if key in self._in_flight else ""

    # Producers -------------------------------------------------------------------------

    def add(self, key: str, *, priority: int = 0) -> None:
        """A pending pod was added or changed in a way that may make it fit."""
        if key in self._in_flight:
            self._changed_in_flight.add(key)
            return
        entry = self._entry(key, priority)
        entry.priority = priority
        if key in self._active_keys or key in self._backoff:
            return  # a changed pod still waits out its backoff
        if key in self._unschedulable:
            self._unschedulable.discard(key)
            if entry.backoff_until > self.clock.now():
                self._backoff[key] = entry.backoff_until
                self._wake.set()
                return
        self._to_active(entry)

    def delete(self, key: str) -> None:
        self._entries.pop(key, None)
        self._active_keys.discard(key)  # the heap entry is skipped lazily
        self._backoff.pop(key, None)
        self._unschedulable.discard(key)
        self._changed_in_flight.discard(key)

    def move_all(self, reason: str = "") -> None:
        """The cluster changed: parked pods get another try (after their backoff)."""
        self._move_cycle = self.cycle
        now = self.clock.now()
        for key in list(self._unschedulable):
            self._unschedulable.discard(key)
            entry = self._entries[key]
            if entry.backoff_until <= now:
                self._to_active(entry)
            else:
                self._backoff[key] = entry.backoff_until
        self._wake.set()

    # The loop's side --------------------------------------------------------------------

    async def pop(self) -> tuple[str, int]:
        """The next key and its scheduling cycle; waits on the Clock for backoffs."""
        while True:
            self.flush()
            while self._active:
                _, _, _, key = heapq.heappop(self._active)
                if key in self._active_keys:
                    self._active_keys.discard(key)
                    self._in_flight.add(key)
                    self._entries[key].attempts += 1
                    self.cycle += 1
                    return key, self.cycle
            if self._closed:
                raise QueueClosed()
            await self._wait(self._next_deadline())

    def done(self, key: str) -> None:
        """Scheduled (or gone): forget the pod."""
        self._in_flight.discard(key)
        self._changed_in_flight.discard(key)
        self._entries.pop(key, None)

    def add_unschedulable(self, key: str, cycle: int) -> None:
        entry = self._finish(key)
        if entry is None:
            return
        changed = key in self._changed_in_flight
        self._changed_in_flight.discard(key)
        if changed or self._move_cycle >= cycle:
            self._backoff[key] = entry.backoff_until
        else:
            entry.parked_at = self.clock.now()
            self._unschedulable.add(key)
        self._wake.set()

    def add_backoff(self, key: str) -> None:
        entry = self._finish(key)
        if entry is None:
            return
        self._changed_in_flight.discard(key)
        self._backoff[key] = entry.backoff_until
        self._wake.set()

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    def flush(self) -> None:
        """Move due backoffs to active, and pods parked too long to backoff/active."""
        now = self.clock.now()
        for key, ready_at in list(self._backoff.items()):
            if ready_at <= now:
                del self._backoff[key]
                self._to_active(self._entries[key])
        for key in list(self._unschedulable):
            entry = self._entries[key]
            if now - entry.parked_at >= self.max_unschedulable_s:
                self._unschedulable.discard(key)
                self._to_active(entry)

    # Internals ----------------------------------------------------------------------------

    def backoff_s(self, attempts: int) -> float:
        if attempts <= 0:
            return 0.0
        return min(self.initial_backoff_s * 2 ** min(attempts - 1, 30), self.max_backoff_s)

    def _finish(self, key: str) -> _Entry | None:
        self._in_flight.discard(key)
        entry = self._entries.get(key)
        if entry is not None:
            entry.backoff_until = self.clock.now() + self.backoff_s(entry.attempts)
        return entry

    def _entry(self, key: str, priority: int) -> _Entry:
        entry = self._entries.get(key)
        if entry is None:
            entry = _Entry(key, priority, self.clock.now())
            self._entries[key] = entry
        return entry

    def _to_active(self, entry: _Entry) -> None:
        self._active_keys.add(entry.key)
        heapq.heappush(self._active, (-entry.priority, entry.first_seen, next(self._seq), entry.key))
        self._wake.set()

    def _next_deadline(self) -> float | None:
        deadlines = list(self._backoff.values())
        deadlines += [self._entries[k].parked_at + self.max_unschedulable_s for k in self._unschedulable]
        return min(deadlines, default=None)

    async def _wait(self, deadline: float | None) -> None:
        self._wake.clear()
        waiter = asyncio.ensure_future(self._wake.wait())
        tasks: set[asyncio.Future[Any]] = {waiter}
        if deadline is not None:
            tasks.add(asyncio.ensure_future(self.clock.sleep(max(0.0, deadline - self.clock.now()))))
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
