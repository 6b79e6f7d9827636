"""Watch fan-out: the client side of the watch cache.

A `CacheWatcher` is one client watch (REST or gRPC): its filter, a bounded
queue, and how events leave it. Events reach clients in batches, when the
cache flushes (at most once per window, which grows with the number of
watchers): through a sink when one is attached (the REST face writes each
batch to the socket as one chunk, and no task wakes per event), else by
waking the reader (`next()`/`wait()`, the gRPC face and Table watches).

Sink watchers with a namespace-only filter, caught up with the cache, form
a `_Group` per key prefix: each event is matched, queued and encoded once
for all of them, and every member gets the same bytes. A member whose sink
refuses (its client stopped reading) leaves the group and queues its
events itself, bounded: past `limit` events it is closed (`overflowed`),
and the client resumes from the last version it saw.

The watch cache (watchcache.py) owns the state, the history and the flush
schedule; this module owns per-watcher matching and delivery. No I/O here:
sinks belong to the faces.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from master.apiserver.objects import StoredObject

ADDED, MODIFIED, DELETED, BOOKMARK, ERROR = "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"
# A watch that asked for bookmarks gets one after this long without events.
BOOKMARK_EVERY_S = 60.0



class Hub(Protocol):
    """What a watcher needs from its cache (watchcache.WatchCache)."""

    rv: int

    def prefix(self) -> str: ...

    def _mark_dirty(self, w: CacheWatcher | _Group) -> None: ...

    def _join_group(self, w: CacheWatcher, prefix: str) -> None: ...

    def _leave_group(self, w: CacheWatcher) -> None: ...

    def _forget(self, w: CacheWatcher) -> None: ...


class Selector(Protocol):
    @property
    def empty(self) -> bool: ...

    def matches(self, values: Any) -> bool: ...


@dataclass(frozen=True, slots=True)
class CacheEvent:
    type: str  # ADDED, MODIFIED, DELETED
    obj: StoredObject  # for DELETED: the last state, stamped with the deleting revision
    prev: StoredObject | None
    rv: int


@dataclass(frozen=True, slots=True)
class Filter:
    namespace: str = ""  # "" = every namespace
    name: str = ""  # from a metadata.name= field selector: the fast path
    labels: Selector | None = None
    fields: Selector | None = None

    def matches(self, obj: StoredObject) -> bool:
        if self.namespace and obj.namespace != self.namespace:
            return False
        if self.name and obj.name != self.name:
            return False
        if self.labels is not None and not self.labels.empty:
            if not self.labels.matches(obj.labels):
                return False
        if self.fields is not None and not self.fields.empty:
            if not self.fields.matches(obj.fields()):
                return False
        return True


Batch = list[tuple[str, StoredObject]]
# A sink takes a flushed batch as the JSON watch lines (`StoredObject.
# watch_line`) and the last event's resourceVersion, and writes it at once
# (True), or refuses because its client is not keeping up (False): the
# events then stay queued and the watcher's reader is woken to write them
# with backpressure.
LineSink = Callable[[bytes, int], bool]
# Fan-out batching: events are handed to watchers at most once per window,
# which grows with the number of watchers (one wake and one write per
# watcher per window, however many events the window holds). One watcher:
# no delay; 1,000 watchers: 40 ms.
PER_WATCHER_DELAY_S = 0.00004
MAX_BATCH_DELAY_S = 0.04


def _lines(batch: Batch) -> bytes:
    return b"".join([o.watch_line(t) for t, o in batch])


class CacheWatcher:
    """One client's view of a cache: a bounded queue of (type, object).

    Events reach the client in batches, at the cache's flush: through the
    sink when one is attached (the REST face writes straight to the
    socket: no task wakes per event), else by waking `next()`/`wait()`.
    A watcher with a sink and a namespace-only filter joins its cache's
    group for that key prefix: the group matches and encodes each batch
    once for all its members.
    """

    def __init__(self, cache: Hub, flt: Filter, *, after_rv: int, limit: int) -> None:
        self._cache = cache
        self._filter = flt
        self._after_rv = after_rv
        self._limit = limit
        self._queue: deque[tuple[str, StoredObject]] = deque()
        self._wakeup = asyncio.Event()
        self._sink: LineSink | None = None
        # A filter on the namespace alone (the common watch) is decided by
        # the key, and an event keeps its type.
        self._key_prefix: str | None = None
        if not flt.name and (flt.labels is None or flt.labels.empty) and (flt.fields is None or flt.fields.empty):
            self._key_prefix = cache.prefix() + (flt.namespace + "/" if flt.namespace else "")
        self._group: _Group | None = None
        self._joined_rv = 0  # events up to here reached us before we joined the group
        self.closed = False
        self.overflowed = False

    def attach_sink(self, sink: LineSink) -> None:
        """From now on, flushes write through `sink`."""
        if self.closed:
            return
        self._sink = sink
        if self._key_prefix is not None and self._after_rv <= self._cache.rv and self._group is None:
            self._cache._join_group(self, self._key_prefix)

    def push(self, type_: str, obj: StoredObject) -> None:
        if self.closed:
            return
        self._queue.append((type_, obj))
        if len(self._queue) > self._limit:
            # Invariant: a slow watcher costs at most `limit` events of memory.
            self.overflowed = True
            self._queue.clear()
            self.stop()
            return
        self._cache._mark_dirty(self)

    def deliver(self, ev: CacheEvent) -> None:
        if ev.rv <= self._after_rv or self.closed:
            return
        prefix = self._key_prefix
        if prefix is not None:
            if ev.obj.key.startswith(prefix):
                self.push(ev.type, ev.obj)
            return
        f = self._filter
        now = f.matches(ev.obj)
        if ev.type == ADDED:
            if now:
                self.push(ADDED, ev.obj)
        elif ev.type == DELETED:
            if now:
                self.push(DELETED, ev.obj)
        else:
            before = ev.prev is not None and f.matches(ev.prev)
            if now and before:
                self.push(MODIFIED, ev.obj)
            elif now:
                self.push(ADDED, ev.obj)
            elif before:
                self.push(DELETED, ev.obj)

    def flush(self) -> None:
        """Hand what is queued to the sink, or wake the reader."""
        if self.closed or not self._queue:
            return
        sink = self._sink
        if sink is not None and sink(_lines(list(self._queue)), self._queue[-1][1].rv):
            self._queue.clear()
            return
        self._wakeup.set()

    def take_group_batch(self, batch: Batch, data: bytes) -> None:
        """A group flush: `data` is `batch` encoded, shared by every member."""
        if self.closed:
            return
        if self._queue:  # our own events (from before we joined) go first
            self.flush()
        if batch[0][1].rv <= self._joined_rv:  # joined after part of this batch
            batch = [e for e in batch if e[1].rv > self._joined_rv]
            if not batch:
                return
            data = _lines(batch)
        sink = self._sink
        if not self._queue and sink is not None and sink(data, batch[-1][1].rv):
            return
        # Behind: leave the group; the events queue up here (bounded).
        self._cache._leave_group(self)
        for type_, obj in batch:
            self.push(type_, obj)
        self._wakeup.set()

    async def next(self) -> tuple[str, StoredObject] | None:
        """The next event, or None once the watcher is closed and drained."""
        if not await self.wait():
            return None
        return self._queue.popleft()

    async def wait(self) -> bool:
        """Until events are queued (True) or the watcher is closed and drained (False)."""
        while not self._queue:
            if self.closed:
                return False
            self._wakeup.clear()
            await self._wakeup.wait()
        return True

    def bookmark_rv(self) -> int | None:
        """For a watcher without a sink: a revision every change up to which has
        reached the reader (the cache's, when nothing is queued), else None."""
        if self._sink is not None or self._queue or self.closed:
            return None
        return self._cache.rv

    def drain(self) -> list[tuple[str, StoredObject]]:
        """Every queued event without waiting (fan-out writers batch them)."""
        out = list(self._queue)
        self._queue.clear()
        return out

    def stop(self) -> None:
        if not self.closed:
            self.closed = True
            self._sink = None
            self._cache._forget(self)
            self._wakeup.set()


async def follow(watcher: CacheWatcher, *, deadline: float | None = None,
                 bookmark_every_s: float | None = None) -> AsyncIterator[tuple[str, StoredObject] | int]:
    """A sink-less watcher's events in order until it closes or `deadline` (loop
    time) passes; with bookmark_every_s, also a revision (an int: a bookmark)
    after each spell that long without events. The gRPC faces stream this."""
    loop = asyncio.get_running_loop()
    while True:
        wait_s = bookmark_every_s
        if deadline is not None:
            left = deadline - loop.time()
            if left <= 0:
                return
            wait_s = left if wait_s is None else min(wait_s, left)
        if wait_s is None:
            event = await watcher.next()
        else:
            try:
                event = await asyncio.wait_for(watcher.next(), wait_s)
            except TimeoutError:
                # Events pushed but not yet flushed are still queued: send
                # those first, a bookmark only from an empty queue.
                rv = watcher.bookmark_rv()
                if rv is not None and bookmark_every_s is not None and (deadline is None or loop.time() < deadline):
                    yield rv
                for queued in watcher.drain():
                    yield queued
                continue
        if event is None:
            return
        yield event
        for queued in watcher.drain():
            yield queued


class _Group:
    """Sink watchers with the same namespace-only filter, caught up with the
    cache: each event is matched, queued and encoded once for all of them."""

    __slots__ = ("prefix", "members", "pending")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.members: dict[CacheWatcher, None] = {}
        self.pending: Batch = []

    def flush(self) -> None:
        batch, self.pending = self.pending, []
        if not batch:
            return
        data = _lines(batch)
        for w in list(self.members):
            w.take_group_batch(batch, data)

