"""Work queues with client-go semantics, for controllers and agents.

`WorkQueue[T]` holds keys (usually "namespace/name"), not objects: an event
handler `add`s a key, a worker `get`s it, runs `sync(key)`, then calls `done`.
Invariants (a reader must not "simplify" these away):

* a key is handed to at most one worker at a time (it is *processing* until
  `done`);
* adding a key that is already queued does nothing (coalescing): ten events
  for one object before a worker gets to it mean one sync;
* adding a key while it is processing marks it *dirty*; `done` queues it
  again, so the change that arrived during the sync is not lost;
* after `shutdown`, `add` is ignored, `get` drains what is queued and then
  raises `ShutDown`.

`RateLimitingQueue[T]` adds per-key exponential backoff (`add_rate_limited`,
`forget`, `num_requeues`) and delayed adds (`add_after`). Delays are waited
out by the getters themselves on the injected `Clock` (no background task):
`get` moves due keys into the queue before looking at it.

Pure: no I/O. Callers decide what to sync and when to retry; this module
only orders keys.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections import deque
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar

from master.client.clock import Clock, RealClock

T = TypeVar("T", bound=Hashable)
K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)


class ShutDown(Exception):
    """The queue was shut down and holds nothing more to hand out."""


class WorkQueue(Generic[T]):
    """A coalescing FIFO of keys that never hands one key to two workers at once."""

    def __init__(self, *, name: str = "") -> None:
        self.name = name
        self._queue: deque[T] = deque()
        # Keys that need processing: everything in _queue, plus processing
        # keys that were re-added (they go back into _queue on done()).
        self._dirty: set[T] = set()
        self._processing: set[T] = set()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._shutting_down = False

    def __len__(self) -> int:
        """Keys waiting to be handed out (not those being processed)."""
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def add(self, key: T) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # done() will queue it again
        self._queue.append(key)
        self._wake_one()

    async def get(self) -> T:
        """The next key; blocks while the queue is empty. Call `done(key)` after."""
        while not self._ready_keys():
            if self._shutting_down:
                raise ShutDown(self.name)
            await self._wait_for_change()
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: T) -> None:
        """The worker finished `key`; re-queue it if it was added meanwhile."""
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake_one()

    def shutdown(self) -> None:
        """Stop accepting keys and wake every blocked getter."""
        self._shutting_down = True
        self._wake_all()

    def is_processing(self, key: T) -> bool:
        return key in self._processing

    # Hooks for RateLimitingQueue ------------------------------------------------

    def _ready_keys(self) -> bool:
        return bool(self._queue)

    async def _wait_for_change(self) -> None:
        future = self._new_getter()
        await self._await_getter(future)

    def _new_getter(self) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._getters.append(future)
        return future

    async def _await_getter(self, future: asyncio.Future[None]) -> None:
        try:
            await future
        except asyncio.CancelledError:
            # A getter woken for a key but cancelled before it ran must pass
            # the wake-up on, or the key would sit queued with idle workers.
            if future.done() and not future.cancelled():
                self._wake_one()
            raise
        finally:
            if future in self._getters:
                self._getters.remove(future)

    def _wake_one(self) -> None:
        while self._getters:
            future = self._getters.popleft()
            if not future.done():
                future.set_result(None)
                return

    def _wake_all(self) -> None:
        while self._getters:
            future = self._getters.popleft()
            if not future.done():
                future.set_result(None)


class RateLimiter(Protocol[K_contra]):
    """Decides how long a key waits before its next retry."""

    def when(self, key: K_contra) -> float:
        """Seconds to wait before retrying `key`; counts one more failure."""
        ...

    def forget(self, key: K_contra) -> None:
        """Reset `key`'s failure count (it succeeded)."""
        ...

    def num_requeues(self, key: K_contra) -> int:
        ...


class ItemExponentialRateLimiter(Generic[T]):
    """base * 2**failures, capped at max: 5 ms, 10 ms, 20 ms, ... 1000 s by default."""

    def __init__(self, *, base_delay_s: float = 0.005, max_delay_s: float = 1000.0) -> None:
        if base_delay_s <= 0 or max_delay_s < base_delay_s:
            raise ValueError("need 0 < base_delay_s <= max_delay_s")
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._failures: dict[T, int] = {}

    def when(self, key: T) -> float:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        # Cap the exponent before computing: 2**2000 does not fit a float.
        if failures >= 64:
            return self.max_delay_s
        return min(math.ldexp(self.base_delay_s, failures), self.max_delay_s)

    def forget(self, key: T) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: T) -> int:
        return self._failures.get(key, 0)


class RateLimitingQueue(WorkQueue[T]):
    """A WorkQueue with delayed adds and per-key backoff, timed by a Clock."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        rate_limiter: RateLimiter[T] | None = None,
        name: str = "",
    ) -> None:
        super().__init__(name=name)
        self.clock: Clock = clock or RealClock()
        self.rate_limiter: RateLimiter[T] = rate_limiter or ItemExponentialRateLimiter()
        # Keys waiting for their time: the earliest ready time per key, and a
        # heap of (ready_at, sequence, key) that may hold stale entries.
        self._waiting: dict[T, float] = {}
        self._heap: list[tuple[float, int, T]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        self._promote_due()
        return len(self._queue)

    def add_after(self, key: T, delay_s: float) -> None:
        """Add `key` once `delay_s` has passed; an earlier pending time wins."""
        if self._shutting_down:
            return
        if delay_s <= 0:
            self.add(key)
            return
        ready_at = self.clock.now() + delay_s
        if key in self._waiting and self._waiting[key] <= ready_at:
            return
        self._waiting[key] = ready_at
        heapq.heappush(self._heap, (ready_at, next(self._seq), key))
        # Sleeping getters computed their wake-up from the old earliest time.
        self._wake_all()

    def add_rate_limited(self, key: T) -> None:
        """Add `key` after its backoff: the usual answer to a failed sync."""
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: T) -> None:
        """Reset `key`'s backoff (its sync succeeded); does not dequeue it."""
        self.rate_limiter.forget(key)

    def num_requeues(self, key: T) -> int:
        return self.rate_limiter.num_requeues(key)

    def shutdown(self) -> None:
        self._waiting.clear()
        self._heap.clear()
        super().shutdown()

    def _ready_keys(self) -> bool:
        self._promote_due()
        return bool(self._queue)

    def _promote_due(self) -> None:
        now = self.clock.now()
        while self._heap and self._heap[0][0] <= now:
            ready_at, _, key = heapq.heappop(self._heap)
            if self._waiting.get(key) != ready_at:
                continue  # superseded by an earlier add_after
            del self._waiting[key]
            self.add(key)

    async def _wait_for_change(self) -> None:
        future = self._new_getter()
        if not self._heap:
            await self._await_getter(future)
            return
        # Wake at the earliest ready time or on any add, whichever is first.
        delay_s = self._heap[0][0] - self.clock.now()
        timer = asyncio.ensure_future(self.clock.sleep(delay_s))
        timer.add_done_callback(lambda _: None if future.done() else future.set_result(None))
        try:
            await self._await_getter(future)
        finally:
            timer.cancel()
