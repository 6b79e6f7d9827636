"""master.client.informer and store: list, watch, relist diffs, resync, indices.

A fake ListerWatcher stands in for the apiserver; each watch is a queue the
test feeds. `await lw.drain()` returns once the informer has applied every
event sent (the stream's consumer has asked for the next one).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from master.client.clock import FakeClock
from master.client.errors import APIError, Gone, Unavailable
from master.client.informer import (
    ADDED,
    BOOKMARK,
    DELETED,
    MODIFIED,
    Informer,
    InformerFactory,
    WatchEvent,
)
from master.client.store import Store, object_key, split_key
from protos.meta.v1 import meta_pb2

Obj = meta_pb2.Scale  # any message with ObjectMeta metadata will do


def obj(name: str, rv: str, *, ns: str = "default", replicas: int = 0, **labels: str) -> Obj:
    out = Obj()
    out.metadata.name = name
    out.metadata.namespace = ns
    out.metadata.resource_version = rv
    out.metadata.labels.update(labels)
    out.spec.replicas = replicas
    return out


_END = object()


class FakeLW:
    """Scripted lists; one feedable queue per watch."""

    def __init__(self, items: list[Obj], rv: str) -> None:
        self.items, self.rv = items, rv
        self.list_errors: list[APIError] = []
        self.list_calls = 0
        self.watch_rvs: list[str] = []
        self._streams: list[asyncio.Queue[Any]] = []
        self._changed = asyncio.Event()

    async def list(self) -> tuple[list[Obj], str]:
        self.list_calls += 1
        if self.list_errors:
            raise self.list_errors.pop(0)
        return list(self.items), self.rv

    def watch(self, resource_version: str) -> AsyncIterator[WatchEvent[Obj]]:
        self.watch_rvs.append(resource_version)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._streams.append(queue)
        self._changed.set()
        return self._stream(queue)

    async def _stream(self, queue: asyncio.Queue[Any]) -> AsyncIterator[WatchEvent[Obj]]:
        while True:
            item = await queue.get()
            try:
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
            finally:
                queue.task_done()

    async def wait_watches(self, count: int) -> None:
        while len(self.watch_rvs) < count:
            self._changed.clear()
            await self._changed.wait()

    def send(self, *items: Any) -> None:
        for item in items:
            self._streams[-1].put_nowait(item)

    async def drain(self) -> None:
        await self._streams[-1].join()


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []
        self.pairs: list[tuple[Obj, Obj]] = []

    def on_add(self, o: Obj) -> None:
        self.events.append(("add", object_key(o), o.metadata.resource_version))

    def on_update(self, old: Obj, new: Obj) -> None:
        self.pairs.append((old, new))
        self.events.append(
            ("update", object_key(new), old.metadata.resource_version, new.metadata.resource_version)
        )

    def on_delete(self, o: Obj) -> None:
        self.events.append(("delete", object_key(o), o.metadata.resource_version))

    def attach(self, informer: Informer[Obj]) -> None:
        informer.add_handler(on_add=self.on_add, on_update=self.on_update, on_delete=self.on_delete)


async def started(
    lw: FakeLW, *, clock: FakeClock | None = None, resync_period_s: float = 0.0
) -> tuple[Informer[Obj], Recorder, asyncio.Task[None]]:
    informer: Informer[Obj] = Informer(
        lw, clock=clock or FakeClock(), resync_period_s=resync_period_s, name="test"
    )
    rec = Recorder()
    rec.attach(informer)
    task = asyncio.create_task(informer.run())
    await lw.wait_watches(1)
    return informer, rec, task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_initial_list_adds_everything_then_syncs_and_watches_from_its_rv() -> None:
    lw = FakeLW([obj("b", "3"), obj("a", "2"), obj("n1", "1", ns="")], "10")
    informer: Informer[Obj] = Informer(lw, clock=FakeClock())
    rec = Recorder()
    rec.attach(informer)
    ready = asyncio.Event()
    assert not informer.has_synced
    task = asyncio.create_task(informer.run(ready=ready))
    await ready.wait()
    await informer.wait_synced()
    assert informer.has_synced
    assert sorted(rec.events) == [("add", "default/a", "2"), ("add", "default/b", "3"), ("add", "n1", "1")]
    assert informer.keys() == ["default/a", "default/b", "n1"]
    got = informer.get("default/a")
    assert got is not None and got.metadata.resource_version == "2"
    assert informer.get("default/zz") is None
    await lw.wait_watches(1)
    assert lw.watch_rvs == ["10"]
    assert informer.resource_version == "10"
    await stop(task)


async def test_watch_events_update_the_store_then_call_handlers() -> None:
    lw = FakeLW([obj("a", "1")], "1")
    informer, rec, task = await started(lw)
    rec.events.clear()
    lw.send(
        WatchEvent(ADDED, obj("b", "2"), "2"),
        WatchEvent(MODIFIED, obj("a", "3", replicas=5), "3"),
        WatchEvent(ADDED, obj("b", "4"), "4"),  # ADDED for a known key is an update
        WatchEvent(MODIFIED, obj("c", "5"), "5"),  # MODIFIED for an unknown key is an add
        WatchEvent(DELETED, obj("b", "6"), "6"),
        WatchEvent(DELETED, obj("ghost", "7"), "7"),  # never seen: no handler call
        WatchEvent(BOOKMARK, Obj(), "8"),
    )
    await lw.drain()
    assert rec.events == [
        ("add", "default/b", "2"),
        ("update", "default/a", "1", "3"),
        ("update", "default/b", "2", "4"),
        ("add", "default/c", "5"),
        ("delete", "default/b", "6"),
    ]
    assert informer.keys() == ["default/a", "default/c"]
    a = informer.get("default/a")
    assert a is not None and a.spec.replicas == 5
    assert informer.resource_version == "8"
    await stop(task)


async def test_gone_relists_and_emits_exactly_the_missed_differences() -> None:
    lw = FakeLW([obj("a", "1"), obj("b", "1"), obj("c", "1")], "1")
    informer, rec, task = await started(lw)
    rec.events.clear()
    # While the watch was too old: a deleted, b changed, d created, c untouched.
    lw.items, lw.rv = [obj("b", "5"), obj("c", "1"), obj("d", "6")], "7"
    lw.send(Gone("too old resource version: 1 (7)"))
    await lw.wait_watches(2)
    assert lw.list_calls == 2
    assert rec.events == [
        ("delete", "default/a", "1"),
        ("update", "default/b", "1", "5"),
        ("add", "default/d", "6"),
    ]
    assert informer.keys() == ["default/b", "default/c", "default/d"]
    assert lw.watch_rvs == ["1", "7"]
    await stop(task)


async def test_a_stream_broken_after_events_resumes_at_once_from_the_last_rv() -> None:
    lw = FakeLW([obj("a", "1")], "1")
    informer, rec, task = await started(lw)
    lw.send(WatchEvent(MODIFIED, obj("a", "4"), "4"), Unavailable("connection reset"))
    await lw.wait_watches(2)
    assert lw.watch_rvs == ["1", "4"]
    assert lw.list_calls == 1  # resumed, not relisted
    lw.send(WatchEvent(ADDED, obj("z", "5"), "5"))
    await lw.drain()
    assert informer.keys() == ["default/a", "default/z"]
    await stop(task)


async def test_a_watch_that_fails_at_once_backs_off_on_the_clock_then_resumes() -> None:
    clock = FakeClock()
    lw = FakeLW([obj("a", "1")], "1")
    informer, rec, task = await started(lw, clock=clock)
    lw.send(Unavailable("apiserver down"))
    await clock.wait_sleepers(1)
    assert len(lw.watch_rvs) == 1  # waiting, not spinning
    assert await clock.advance_to_next() == pytest.approx(0.8)
    await lw.wait_watches(2)
    lw.send(Unavailable("still down"))
    await clock.wait_sleepers(1)
    assert await clock.advance_to_next() == pytest.approx(1.6)  # doubled
    await lw.wait_watches(3)
    assert lw.watch_rvs == ["1", "1", "1"]
    assert lw.list_calls == 1
    await stop(task)


async def test_a_cleanly_ended_watch_resumes_from_the_last_rv() -> None:
    clock = FakeClock()
    lw = FakeLW([], "1")
    informer, rec, task = await started(lw, clock=clock)
    lw.send(WatchEvent(ADDED, obj("a", "2"), "2"), _END)  # server timeout after an event
    await lw.wait_watches(2)
    assert lw.watch_rvs == ["1", "2"]
    lw.send(_END)  # ends at once with nothing: treated as a failure, backs off
    await clock.wait_sleepers(1)
    clock.advance(1)
    await lw.wait_watches(3)
    assert lw.list_calls == 1
    await stop(task)


async def test_list_failures_back_off_and_ready_waits_for_a_successful_list() -> None:
    clock = FakeClock()
    lw = FakeLW([obj("a", "1")], "1")
    lw.list_errors = [Unavailable("down"), Unavailable("down")]
    informer: Informer[Obj] = Informer(lw, clock=clock)
    ready = asyncio.Event()
    task = asyncio.create_task(informer.run(ready=ready))
    steps = [await clock.advance_to_next(), await clock.advance_to_next()]
    assert steps == pytest.approx([0.8, 1.6])
    await ready.wait()
    assert lw.list_calls == 3
    assert informer.keys() == ["default/a"]
    await stop(task)


async def test_resync_replays_every_cached_object_as_an_update_to_itself() -> None:
    clock = FakeClock()
    lw = FakeLW([obj("a", "1"), obj("b", "1")], "1")
    informer, rec, task = await started(lw, clock=clock, resync_period_s=30)
    rec.events.clear()
    await clock.wait_sleepers(1)
    clock.advance(30)
    await clock.wait_sleepers(1)  # resync done, sleeping for the next one
    assert rec.events == [("update", "default/a", "1", "1"), ("update", "default/b", "1", "1")]
    assert all(old is new for old, new in rec.pairs)
    await stop(task)


async def test_a_late_handler_is_told_about_everything_cached() -> None:
    lw = FakeLW([obj("a", "1"), obj("b", "2")], "2")
    informer, _, task = await started(lw)
    late = Recorder()
    late.attach(informer)
    assert late.events == [("add", "default/a", "1"), ("add", "default/b", "2")]
    await stop(task)


async def test_indices_follow_changes() -> None:
    lw = FakeLW([obj("a", "1", node="n1"), obj("b", "1", node="n2")], "1")
    informer, _, task = await started(lw)
    informer.add_index("node", lambda o: [o.metadata.labels["node"]] if "node" in o.metadata.labels else [])
    assert [o.metadata.name for o in informer.by_index("node", "n1")] == ["a"]
    lw.send(
        WatchEvent(MODIFIED, obj("a", "2", node="n2"), "2"),
        WatchEvent(ADDED, obj("c", "3"), "3"),
    )
    await lw.drain()
    assert informer.by_index("node", "n1") == []
    assert [o.metadata.name for o in informer.by_index("node", "n2")] == ["a", "b"]
    assert [o.metadata.name for o in informer.list()] == ["a", "b", "c"]
    await stop(task)


async def test_run_twice_is_an_error_and_handler_errors_escape_run() -> None:
    lw = FakeLW([obj("a", "1")], "1")
    informer, _, task = await started(lw)
    with pytest.raises(RuntimeError):
        await informer.run()

    def boom(o: Obj) -> None:
        raise KeyError("handler bug")

    informer.add_handler(on_delete=boom)
    lw.send(WatchEvent(DELETED, obj("a", "2"), "2"))
    with pytest.raises(ExceptionGroup) as caught:
        await task
    assert caught.group_contains(KeyError)


async def test_factory_shares_informers_and_starts_late_ones() -> None:
    lws: list[FakeLW] = []

    def lister_watcher_for(cls: type[Any], *, namespace: str, label_selector: str,
                           field_selector: str) -> FakeLW:
        lw = FakeLW([obj(f"{namespace or 'all'}-{len(lws)}", "1")], "1")
        lws.append(lw)
        return lw

    factory = InformerFactory(lister_watcher_for, clock=FakeClock())
    first = factory.informer(Obj)
    assert factory.informer(Obj) is first
    scoped = factory.informer(Obj, namespace="kube-system")
    assert scoped is not first
    ready = asyncio.Event()
    task = asyncio.create_task(factory.run(ready=ready))
    await ready.wait()
    assert first.has_synced and scoped.has_synced
    late = factory.informer(Obj, field_selector="spec.nodeName=n1")
    await late.wait_synced()
    await factory.wait_synced()
    assert len(factory.informers()) == 3 and len(lws) == 3
    await stop(task)


# Store -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [("default/web", ("default", "web")), ("node-1", ("", "node-1"))],
)
def test_split_key_inverts_object_key(key: str, expected: tuple[str, str]) -> None:
    assert split_key(key) == expected
    ns, name = expected
    assert object_key(obj(name, "1", ns=ns)) == key


def by_label(label: str) -> Callable[[Obj], list[str]]:
    return lambda o: [o.metadata.labels[label]] if label in o.metadata.labels else []


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["put", "remove"]), st.sampled_from("abcde"),
                  st.sampled_from(["", "x", "y"])),
        max_size=40,
    )
)
def test_store_index_always_matches_a_full_scan(ops: list[tuple[str, str, str]]) -> None:
    store: Store[Obj] = Store()
    store.add_index("zone", by_label("zone"))
    for op, name, zone in ops:
        if op == "put":
            item = obj(name, "1", zone=zone) if zone else obj(name, "1")
            store.put(f"default/{name}", item)
        else:
            store.remove(f"default/{name}")
        for value in ["x", "y"]:
            scan = [o for o in store.list() if o.metadata.labels.get("zone") == value]
            assert store.by_index("zone", value) == scan
    store.add_index("zone2", by_label("zone"))  # built over existing objects too
    assert store.by_index("zone2", "x") == store.by_index("zone", "x")
    with pytest.raises(ValueError):
        store.add_index("zone", by_label("zone"))
