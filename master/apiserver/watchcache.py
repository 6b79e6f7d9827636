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
* the history keeps what Kubernetes' watch cache keeps: the events of the
  last 75 s (its eventFreshDuration), at least the last 100 events however
  old, at most `history_size`. A disconnected client that comes back
  within that window resumes; memory follows the rate of change, not the
  hours a busy resource has been changing;
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

Delivery to clients (per-watcher matching, batching, sinks, shared
groups) is watchfanout.py's; this module schedules the flushes: at most
one per window, the window growing with the number of watchers.

This module does not know HTTP or gRPC, and does not write to etcd.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from master.apiserver.objects import StoredObject
from master.apiserver.watchfanout import (  # noqa: F401 (re-exported: the cache's public types)
    ADDED,
    BOOKMARK,
    DELETED,
    ERROR,
    MAX_BATCH_DELAY_S,
    MODIFIED,
    PER_WATCHER_DELAY_S,
    CacheEvent,
    CacheWatcher,
    Filter,
    LineSink,
    Selector,
    _Group,
)
from master.storage import errors as store_errors
from master.storage.interface import EventType, Store
from protos.resources import ResourceInfo

log = logging.getLogger(__name__)

# Kubernetes' watch cache keeps events this recent (eventFreshDuration) ...
HISTORY_FRESH_S = 75.0
# ... and never fewer than this many, however old (its lower bound capacity).
HISTORY_MIN = 100


class TooOld(Exception):
    """The requested resourceVersion is older than the history: 410 Gone."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


class NotReady(Exception):
    """The cache has not finished its first list (503)."""


DecodeFn = Callable[[str, bytes, int], StoredObject]


class WatchCache:
    def __init__(
        self,
        store: Store,
        info: ResourceInfo,
        *,
        decode: DecodeFn,
        history_size: int = 10_000,
        history_fresh_s: float = HISTORY_FRESH_S,
        watcher_limit: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.info = info
        self._decode = decode
        self._objects: dict[str, StoredObject] = {}
        self._history: deque[CacheEvent] = deque(maxlen=history_size)
        self._history_rvs: deque[int] = deque(maxlen=history_size)
        self._history_times: deque[float] = deque(maxlen=history_size)  # clock() at each event
        self._history_fresh_s = history_fresh_s
        self._clock = clock
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
        # The revision of this process's last write of this resource (create,
        # update or delete) by namespace: a reader that must see its own
        # writes waits for it.
        self._written_rvs: dict[str, int] = {}
        # Watchers with queued events not yet handed over, and the pending flush.
        self._dirty: dict[CacheWatcher | _Group, None] = {}
        self._flush_handle: asyncio.Handle | None = None
        # Keys in order, for LIST; None after a key is added or removed.
        self._sorted_keys: list[str] | None = None

    def prefix(self) -> str:
        return self.info.etcd_prefix()

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
        self._history_times.clear()
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
        if prev is not None:
            prev.superseded()  # history only from now on: keep it small

    def _emit(self, ev: CacheEvent) -> None:
        if len(self._history) == self._history.maxlen and self._history:
            self._oldest_rv = self._history[0].rv
        now = self._clock()
        self._history.append(ev)
        self._history_rvs.append(ev.rv)
        self._history_times.append(now)
        self._drop_stale_history(now)
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

    def _drop_stale_history(self, now: float) -> None:
        """Forget events older than the fresh window, keeping the last HISTORY_MIN."""
        stale_before = now - self._history_fresh_s
        history, rvs, times = self._history, self._history_rvs, self._history_times
        while len(history) > HISTORY_MIN and times[0] < stale_before:
            self._oldest_rv = history.popleft().rv  # every event after it is still held
            rvs.popleft()
            times.popleft()

    def _join_group(self, w: CacheWatcher, prefix: str) -> None:
        g = self._groups.get(prefix)
        if g is None:
            g = self._groups[prefix] = _Group(prefix)
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

    def remember_write(self, obj: StoredObject, *, status_only: bool = False) -> None:
        """Called by the registry after a successful write of `obj`; a write
        of status alone does not count as this process's write for
        `written_rv` (quota admission charges quotas through /status and
        tracks those versions itself)."""
        if not status_only:
            self.note_write(obj.namespace, obj.rv)
        if obj.rv > self.rv:
            self._written[(obj.key, obj.rv)] = obj
            if len(self._written) > 10_000:  # never grows without bound
                self._written.pop(next(iter(self._written)))

    def note_write(self, namespace: str, rv: int) -> None:
        """This process wrote (or deleted) an object of this resource at rv."""
        if rv > self._written_rvs.get(namespace, 0):
            self._written_rvs[namespace] = rv

    def written_rv(self, namespace: str) -> int:
        """The revision of this process's last write in `namespace` (0: none)."""
        return self._written_rvs.get(namespace, 0)

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
            current = self.list(flt)
            # The replay of the current state does not count against the
            # queue's bound: only falling behind the changes does.
            w = CacheWatcher(self, flt, after_rv=self.rv, limit=self._watcher_limit + len(current))
            for obj in current:
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
