"""Informers: a local, always-current cache of one kind, and change notifications.

An `Informer[T]` lists a kind once, then watches from the list's
resourceVersion, applying every event to its `Store` and then telling its
handlers (`on_add(obj)`, `on_update(old, new)`, `on_delete(obj)`). Handlers
are plain callables that only enqueue keys into a work queue (STYLE); the
worker later reads the object back from the informer.

Keeping the cache right is the whole job:
* a watch that ends normally (server timeout) resumes from the last
  resourceVersion seen; one that breaks (Unavailable, ...) resumes too,
  after a backoff when it broke before delivering anything;
* 410 Gone (the resourceVersion was compacted away) relists, and the relist
  is diffed against the cache so handlers see every change they missed:
  adds, updates (resourceVersion changed) and deletes (vanished keys);
* a resync every `resync_period_s` replays `on_update(obj, obj)` for every
  cached object, so a controller that dropped a key gets another chance.

Objects in the cache are shared by every handler and every reader and are
NEVER mutated (DESIGN 1): copy one (`new = type(obj)(); new.CopyFrom(obj)`)
before changing it. Handlers must not raise; an exception escapes `run()`
and, by the component rules, takes the process down.

`InformerFactory` keeps one informer per (kind, namespace, selectors) per
process, so several controllers share one list+watch.

Pure: no I/O of its own. It talks to a `ListerWatcher` (the Client provides
one per class; tests pass a fake) and waits on a `Clock`.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import math
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, cast

from master.client.clock import Clock, RealClock
from master.client.errors import APIError, Gone
from master.client.store import IndexFunc, Store, object_key, resource_version_of

log = logging.getLogger(__name__)

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

ADDED, MODIFIED, DELETED, BOOKMARK, ERROR = "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"


@dataclass(frozen=True, slots=True)
class WatchEvent(Generic[T_co]):
    """One change: type is ADDED, MODIFIED, DELETED or BOOKMARK."""

    type: str
    object: T_co
    resource_version: str


class ListerWatcher(Protocol[T_co]):
    """Where an informer gets its objects from (a Client, or a test's fake)."""

    async def list(self) -> tuple[Sequence[T_co], str]:
        """Every object, and the resourceVersion the list is consistent with."""
        ...

    def watch(self, resource_version: str) -> AsyncIterator[WatchEvent[T_co]]:
        """Changes after `resource_version`; raises Gone when it is too old."""
        ...


@dataclass(frozen=True)
class _Handler(Generic[T]):
    on_add: Callable[[T], None] | None
    on_update: Callable[[T, T], None] | None
    on_delete: Callable[[T], None] | None


class Informer(Generic[T]):
    """A shared informer for one kind; run it with `await informer.run(ready=...)`."""

    def __init__(
        self,
        lister_watcher: ListerWatcher[T],
        *,
        clock: Clock | None = None,
        resync_period_s: float = 0.0,
        backoff_base_s: float = 0.8,
        backoff_max_s: float = 30.0,
        min_watch_s: float = 1.0,
        name: str = "",
    ) -> None:
        self.name = name
        self.clock: Clock = clock or RealClock()
        self.resync_period_s = resync_period_s
        self._lw = lister_watcher
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        # A watch that ends cleanly sooner than this with no events is treated
        # as a failure, so a misbehaving server cannot make us spin.
        self._min_watch_s = min_watch_s
        self._store: Store[T] = Store()
        self._handlers: list[_Handler[T]] = []
        self._synced = asyncio.Event()
        self._resource_version = ""
        self._started = False

    # Reading the cache ---------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    @property
    def resource_version(self) -> str:
        """The last resourceVersion applied to the cache ("" before the first list)."""
        return self._resource_version

    def get(self, key: str) -> T | None:
        """The cached object for `namespace/name` (or `name`); do not mutate it."""
        return self._store.get(key)

    def list(self) -> builtins.list[T]:
        """Every cached object, ordered by key; do not mutate them."""
        return self._store.list()

    def keys(self) -> builtins.list[str]:
        return self._store.keys()

    def add_index(self, name: str, fn: IndexFunc[T]) -> None:
        """Index objects by the strings `fn(obj)` returns (e.g. node name)."""
        self._store.add_index(name, fn)

    def by_index(self, name: str, value: str) -> builtins.list[T]:
        return self._store.by_index(name, value)

    def add_handler(
        self,
        *,
        on_add: Callable[[T], None] | None = None,
        on_update: Callable[[T, T], None] | None = None,
        on_delete: Callable[[T], None] | None = None,
    ) -> None:
        """Register callbacks; a late handler first gets on_add for every cached object."""
        handler = _Handler(on_add, on_update, on_delete)
        self._handlers.append(handler)
        if handler.on_add is not None:
            for obj in self._store.list():
                handler.on_add(obj)

    # Running ----------------------------------------------------------------------

    async def run(self, *, ready: asyncio.Event | None = None) -> None:
        """List, watch and resync until cancelled; set `ready` once synced."""
        if self._started:
            raise RuntimeError(f"informer {self.name!r} is already running")
        self._started = True
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._reflect(ready))
            if self.resync_period_s > 0:
                tg.create_task(self._resync_loop())

    async def _reflect(self, ready: asyncio.Event | None) -> None:
        need_list = True
        failures = 0
        while True:
            if need_list:
                if not await self._try_list():
                    failures += 1
                    await self._backoff(failures)
                    continue
                need_list, failures = False, 0
                self._synced.set()
                if ready is not None:
                    ready.set()
            outcome = await self._watch_once()
            if outcome == "gone":
                need_list = True  # relist at once: nothing to wait for
            elif outcome == "failed":
                failures += 1
                await self._backoff(failures)
            else:
                failures = 0

    async def _try_list(self) -> bool:
        try:
            items, resource_version = await self._lw.list()
        except APIError as exc:
            log.warning("informer %s: list failed: %s", self.name, exc)
            return False
        self._replace(items, resource_version)
        return True

    async def _watch_once(self) -> str:
        """Watch from the last resourceVersion: "gone", "failed" or "ok"."""
        started = self.clock.now()
        events = 0
        stream = self._lw.watch(self._resource_version)
        try:
            async for event in stream:
                self._apply(event)
                events += 1
        except Gone as exc:
            log.info("informer %s: %s; relisting", self.name, exc)
            return "gone"
        except APIError as exc:
            log.warning("informer %s: watch broke after %d events: %s", self.name, events, exc)
            return "ok" if events else "failed"
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        too_short = self.clock.now() - started < self._min_watch_s
        return "failed" if events == 0 and too_short else "ok"

    async def _backoff(self, failures: int) -> None:
        delay_s = min(math.ldexp(self._backoff_base_s, min(failures - 1, 32)), self._backoff_max_s)
        await self.clock.sleep(delay_s)

    async def _resync_loop(self) -> None:
        while True:
            await self.clock.sleep(self.resync_period_s)
            if self.has_synced:
                for obj in self._store.list():
                    self._notify_update(obj, obj)

    # Applying changes: store first, then handlers --------------------------------

    def _replace(self, items: Iterable[T], resource_version: str) -> None:
        fresh = {object_key(obj): obj for obj in items}
        for key in self._store.keys():
            if key not in fresh:
                gone = self._store.remove(key)
                if gone is not None:
                    self._notify_delete(gone)
        for key, obj in fresh.items():
            old = self._store.get(key)
            if old is None:
                self._store.put(key, obj)
                self._notify_add(obj)
            elif resource_version_of(old) != resource_version_of(obj):
                self._store.put(key, obj)
                self._notify_update(old, obj)
            # Same resourceVersion: same object; keep the cached one.
        self._resource_version = resource_version

    def _apply(self, event: WatchEvent[T]) -> None:
        if event.type in (ADDED, MODIFIED):
            key = object_key(event.object)
            old = self._store.put(key, event.object)
            if old is None:
                self._notify_add(event.object)
            else:
                self._notify_update(old, event.object)
        elif event.type == DELETED:
            if self._store.remove(object_key(event.object)) is not None:
                self._notify_delete(event.object)
        elif event.type != BOOKMARK:
            log.warning("informer %s: ignoring watch event of type %r", self.name, event.type)
            return
        self._resource_version = event.resource_version or resource_version_of(event.object)

    def _notify_add(self, obj: T) -> None:
        for handler in builtins.list(self._handlers):
            if handler.on_add is not None:
                handler.on_add(obj)

    def _notify_update(self, old: T, new: T) -> None:
        for handler in builtins.list(self._handlers):
            if handler.on_update is not None:
                handler.on_update(old, new)

    def _notify_delete(self, obj: T) -> None:
        for handler in builtins.list(self._handlers):
            if handler.on_delete is not None:
                handler.on_delete(obj)


M = TypeVar("M")


class ListerWatcherFactory(Protocol):
    """Makes the ListerWatcher for a class: `Client.lister_watcher` is one."""

    def __call__(
        self, cls: type[M], *, namespace: str, label_selector: str, field_selector: str
    ) -> ListerWatcher[M]: ...


class InformerFactory:
    """One informer per (kind, namespace, selectors) per process, run together."""

    def __init__(
        self,
        lister_watcher_for: ListerWatcherFactory,
        *,
        clock: Clock | None = None,
        resync_period_s: float = 0.0,
    ) -> None:
        self._lister_watcher_for = lister_watcher_for
        self.clock: Clock = clock or RealClock()
        self.resync_period_s = resync_period_s
        self._informers: dict[tuple[str, str, str, str], Informer[Any]] = {}
        self._task_group: asyncio.TaskGroup | None = None

    def informer(
        self, cls: type[M], *, namespace: str = "", label_selector: str = "", field_selector: str = ""
    ) -> Informer[M]:
        """The shared informer; asked for while `run` is going, it starts at once."""
        full_name: str = cast(Any, cls).DESCRIPTOR.full_name
        key = (full_name, namespace, label_selector, field_selector)
        if key not in self._informers:
            lw = self._lister_watcher_for(
                cls, namespace=namespace, label_selector=label_selector,
                field_selector=field_selector,
            )
            informer: Informer[M] = Informer(
                lw, clock=self.clock, resync_period_s=self.resync_period_s, name=full_name
            )
            self._informers[key] = informer
            if self._task_group is not None:
                self._task_group.create_task(informer.run())
        return cast(Informer[M], self._informers[key])

    def informers(self) -> builtins.list[Informer[Any]]:
        return builtins.list(self._informers.values())

    async def wait_synced(self) -> None:
        """Wait until every informer asked for so far has synced."""
        for informer in self.informers():
            await informer.wait_synced()

    async def run(self, *, ready: asyncio.Event | None = None) -> None:
        """Run every informer until cancelled; set `ready` when all have synced."""
        if self._task_group is not None:
            raise RuntimeError("informer factory is already running")
        try:
            async with asyncio.TaskGroup() as tg:
                self._task_group = tg
                for informer in self.informers():
                    tg.create_task(informer.run())
                if ready is not None:
                    tg.create_task(self._signal_ready(ready))
        finally:
            self._task_group = None

    async def _signal_ready(self, ready: asyncio.Event) -> None:
        await self.wait_synced()
        ready.set()
