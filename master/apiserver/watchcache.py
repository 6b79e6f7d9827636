"""The watch cache: one etcd watch per resource, fanned out to every client.

For each resource the apiserver keeps a `WatchCache`: the current state of
every object (as shared, immutable `StoredObject`s), a bounded history of
recent events, and the set of client watchers (REST and gRPC). One etcd
watch per resource feeds it; LIST and WATCH are answered from it.

Semantics (KUBECTL.md §1.6, Kubernetes' watch cache):
* watch with resourceVersion "" or "0": synthetic ADDED for the current
  state, then every change;
* watch from N: every change after N, replayed from history when N is
  older than the cache's revision; N older than the history holds -> 410
  Gone (`TooOld`), and the client re-lists;
* selectors are applied per watcher on the old and new object: an object
  that starts matching arrives as ADDED, one that stops as DELETED;
* a watcher whose queue grows past its limit is closed (the client
  resumes from the last version it saw), so a slow client never stalls the
  fan-out nor grows memory without bound.

Consistent LIST (resourceVersion ""): the cache answers only once it is
known to hold etcd's state at a revision at least as new as a fresh read:
either its watch has reached etcd's current revision (one cheap read, no
keys), or, for a prefix with no recent writes, a keys-only read of the
prefix shows the same keys at the same mod_revisions (`wait_consistent`).

This module does not know HTTP or gRPC, and does not write to etcd.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from master.apiserver.objects import StoredObject
from master.apiserver.resources import ResourceInfo
from master.storage import errors as store_errors
from master.storage.interface import EventType, Store

log = logging.getLogger(__name__)

ADDED, MODIFIED, DELETED, BOOKMARK, ERROR = "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"


class TooOld(Exception):
    """The requested resourceVersion is older than the history: 410 Gone."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


class NotReady(Exception):
    """The cache has not finished its first list (503)."""


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

    def __init__(self, cache: WatchCache, flt: Filter, *, after_rv: int, limit: int) -> None:
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
            self._key_prefix = cache.info.etcd_prefix() + (flt.namespace + "/" if flt.namespace else "")
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


class _Group:
    """Sink watchers with the same namespace-only filter, caught up with the
    cache: each event is matched, queued and encoded once for all of them."""

    __slots__ = ("prefix", "members", "pending", "_cache")

    def __init__(self, cache: WatchCache, prefix: str) -> None:
        self._cache = cache
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


DecodeFn = Callable[[str, bytes, int], StoredObject]


class WatchCache:
    def __init__(
        self,
        store: Store,
        info: ResourceInfo,
        *,
        decode: DecodeFn,
        history_size: int = 10_000,
        watcher_limit: int = 10_000,
    ) -> None:
        self.store = store
        self.info = info
        self._decode = decode
        self._objects: dict[str, StoredObject] = {}
        self._history: deque[CacheEvent] = deque(maxlen=history_size)
        self._history_rvs: deque[int] = deque(maxlen=history_size)
        self._watchers: set[CacheWatcher] = set()
        # Watchers matched one by one (every watcher not in a group).
        self._solo: set[CacheWatcher] = set()
        self._groups: dict[str, _Group] = {}
        self._watcher_limit = watcher_limit
        self.rv = 0  # every event up to here is applied
        self._oldest_rv = 0  # events after this are all in the history
        self._ready = asyncio.Event()
        self._rv_waiters: list[tuple[int, asyncio.Future[None]]] = []
        # Objects this process just wrote, keyed (key, rv): the watch reuses
        # them (and their already-encoded JSON) instead of decoding again.
        self._written: dict[tuple[str, int], StoredObject] = {}
        # Watchers with queued events not yet handed over, and the pending flush.
        self._dirty: dict[CacheWatcher | _Group, None] = {}
        self._flush_handle: asyncio.Handle | None = None
        # Keys in order, for LIST; None after a key is added or removed.
        self._sorted_keys: list[str] | None = None

    # --- feeding -----------------------------------------------------------

    async def run(self) -> None:
        """List, then follow the etcd watch; re-list when history is compacted."""
        prefix = self.info.etcd_prefix()
        backoff_s = 0.2
        while True:
            try:
                kvs, rev = await self.store.list(prefix)
                self._replace([self._decode(kv.key, kv.value, kv.mod_revision) for kv in kvs], rev)
                backoff_s = 0.2
                async for ev in self.store.watch(prefix, start_revision=rev + 1):
                    self._apply_store_event(ev)
            except store_errors.Compacted:
                log.warning("watch cache %s: history compacted, re-listing", self.info.resource)
            except store_errors.StoreError as exc:
                if not exc.retryable:
                    raise
                # etcd lost quorum or every member is unreachable: keep serving
                # what we have (consistent reads fail meanwhile) and re-list
                # once it is back.
                log.warning("watch cache %s: %s; re-listing in %.1fs", self.info.resource, exc, backoff_s)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 5.0)

    def _replace(self, objs: list[StoredObject], rev: int) -> None:
        # A (re)list breaks continuity: watchers resume from their last version
        # and get 410 if it is gone, as with the real apiserver.
        for w in list(self._watchers):
            w.stop()
        self._objects = {o.key: o for o in objs}
        self._sorted_keys = None
        self._history.clear()
        self._history_rvs.clear()
        self.rv = rev
        self._oldest_rv = rev
        self._ready.set()
        self._notify_progress()

    def _apply_store_event(self, ev: Any) -> None:
        if ev.revision <= self.rv:
            return
        prev = self._objects.get(ev.key)
        if ev.type is EventType.PUT:
            obj = self._written.pop((ev.key, ev.revision), None)
            if obj is None:
                obj = self._decode(ev.key, ev.value, ev.revision)
            self._objects[ev.key] = obj
            if prev is None:
                self._sorted_keys = None
            self._emit(CacheEvent(MODIFIED if prev is not None else ADDED, obj, prev, ev.revision))
        else:
            if self._objects.pop(ev.key, None) is not None:
                self._sorted_keys = None
            last = prev if prev is not None else self._decode(ev.key, ev.value, ev.revision)
            self._emit(CacheEvent(DELETED, last.with_rv(ev.revision), prev, ev.revision))

    def _emit(self, ev: CacheEvent) -> None:
        if len(self._history) == self._history.maxlen and self._history:
            self._oldest_rv = self._history[0].rv
        self._history.append(ev)
        self._history_rvs.append(ev.rv)
        self.rv = ev.rv
        for w in list(self._solo):
            w.deliver(ev)
        if self._groups:
            key = ev.obj.key
            for g in self._groups.values():
                if key.startswith(g.prefix):
                    g.pending.append((ev.type, ev.obj))
                    self._mark_dirty(g)
        self._notify_progress()

    def _join_group(self, w: CacheWatcher, prefix: str) -> None:
        g = self._groups.get(prefix)
        if g is None:
            g = self._groups[prefix] = _Group(self, prefix)
        g.members[w] = None
        w._group = g
        w._joined_rv = self.rv
        self._solo.discard(w)

    def _leave_group(self, w: CacheWatcher) -> None:
        g = w._group
        if g is None:
            return
        w._group = None
        g.members.pop(w, None)
        if not g.members and self._groups.get(g.prefix) is g:
            del self._groups[g.prefix]
        if not w.closed:
            self._solo.add(w)

    def _forget(self, w: CacheWatcher) -> None:
        self._leave_group(w)
        self._watchers.discard(w)
        self._solo.discard(w)

    def _mark_dirty(self, w: CacheWatcher | _Group) -> None:
        self._dirty[w] = None
        if self._flush_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): hand over now
            self._flush()
            return
        delay = min(MAX_BATCH_DELAY_S, len(self._watchers) * PER_WATCHER_DELAY_S)
        if delay <= PER_WATCHER_DELAY_S:
            self._flush_handle = loop.call_soon(self._flush)
        else:
            self._flush_handle = loop.call_later(delay, self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        dirty, self._dirty = self._dirty, {}
        for w in dirty:
            w.flush()

    def _notify_progress(self) -> None:
        if not self._rv_waiters:
            return
        waiting = []
        for rv, fut in self._rv_waiters:
            if rv <= self.rv:
                if not fut.done():
                    fut.set_result(None)
            elif not fut.done():
                waiting.append((rv, fut))
        self._rv_waiters = waiting

    def remember_write(self, obj: StoredObject) -> None:
        """Called by the registry after a successful write of `obj`."""
        if obj.rv > self.rv:
            self._written[(obj.key, obj.rv)] = obj
            if len(self._written) > 10_000:  # never grows without bound
                self._written.pop(next(iter(self._written)))

    # --- reading -------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def wait_rv(self, rv: int, *, timeout_s: float) -> bool:
        """Wait until the cache has applied every event up to rv."""
        if self.rv >= rv:
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._rv_waiters.append((rv, fut))
        try:
            await asyncio.wait_for(fut, timeout_s)
            return True
        except TimeoutError:
            return False

    async def wait_consistent(self, *, timeout_s: float = 3.0) -> int:
        """A revision R >= etcd's current one at which the cache state is exact.

        Returns the revision to report as the LIST's resourceVersion.
        """
        # Cheap first: etcd's current revision (no keys read). A cache whose
        # watch has reached it is exact as it stands.
        current = await self.store.current_revision()
        if self.rv >= current:
            return self.rv
        revs, current = await self.store.list_revisions(self.info.etcd_prefix())
        if self.rv >= current:
            return self.rv
        if self._same_state(revs):
            return current
        if await self.wait_rv(current, timeout_s=timeout_s):
            return self.rv
        raise TimeoutError(f"watch cache for {self.info.resource} is behind etcd")

    def _same_state(self, revs: dict[str, int]) -> bool:
        if len(revs) != len(self._objects):
            return False
        objs = self._objects
        for key, rev in revs.items():
            o = objs.get(key)
            if o is None or o.rv != rev:
                return False
        return True

    def get(self, key: str) -> StoredObject | None:
        return self._objects.get(key)

    def list(self, flt: Filter) -> list[StoredObject]:
        """Matching objects sorted by key (namespace, then name)."""
        if flt.name and flt.namespace:
            o = self._objects.get(self.info.key(flt.namespace, flt.name))
            return [o] if o is not None and flt.matches(o) else []
        prefix = self.info.etcd_prefix() + (flt.namespace + "/" if flt.namespace else "")
        keys = self._sorted_keys
        if keys is None:
            keys = self._sorted_keys = sorted(self._objects)
        objs = self._objects
        if flt.namespace:
            # The namespace's keys are one run of the sorted list.
            start = bisect.bisect_left(keys, prefix)
            end = bisect.bisect_left(keys, prefix[:-1] + chr(ord(prefix[-1]) + 1), lo=start)
            keys = keys[start:end]
        trivial = not flt.name and (flt.labels is None or flt.labels.empty) and (flt.fields is None or flt.fields.empty)
        if trivial:
            return [objs[k] for k in keys]
        return [o for o in (objs[k] for k in keys) if flt.matches(o)]

    def __len__(self) -> int:
        return len(self._objects)

    def watch(self, flt: Filter, *, resource_version: int | None) -> CacheWatcher:
        """A new watcher; resource_version None (or 0) replays the current state."""
        if not self.ready:
            raise NotReady(self.info.resource)
        if resource_version is None or resource_version == 0:
            w = CacheWatcher(self, flt, after_rv=self.rv, limit=self._watcher_limit)
            for obj in self.list(flt):
                w.push(ADDED, obj)
        elif resource_version >= self.rv:
            w = CacheWatcher(self, flt, after_rv=resource_version, limit=self._watcher_limit)
        else:
            if resource_version < self._oldest_rv:
                raise TooOld(resource_version, self._oldest_rv)
            w = CacheWatcher(self, flt, after_rv=resource_version, limit=self._watcher_limit)
            start = bisect.bisect_right(self._history_rvs, resource_version)
            for i in range(start, len(self._history)):
                w.deliver(self._history[i])
        if not w.closed:
            self._watchers.add(w)
            self._solo.add(w)
        return w

    @property
    def watcher_count(self) -> int:
        return len(self._watchers)

    def stop_watchers(self) -> None:
        for w in list(self._watchers):
            w.stop()


class WatchCaches:
    """Every resource's cache, run together in one TaskGroup."""

    def __init__(self, store: Store, infos: Iterable[ResourceInfo], *, decode_for: Callable[[ResourceInfo], DecodeFn]) -> None:
        self._caches = {(i.group, i.resource): WatchCache(store, i, decode=decode_for(i)) for i in infos}

    def __getitem__(self, info: ResourceInfo) -> WatchCache:
        return self._caches[(info.group, info.resource)]

    def all(self) -> list[WatchCache]:
        return list(self._caches.values())

    async def run(self, *, ready: asyncio.Event | None = None) -> None:
        async with asyncio.TaskGroup() as tg:
            for c in self._caches.values():
                tg.create_task(c.run(), name=f"watchcache-{c.info.resource}")
            if ready is not None:
                for c in self._caches.values():
                    await c.wait_ready()
                ready.set()
