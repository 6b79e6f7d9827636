"""The watch cache's batched fan-out: groups, sinks, refusal, ordering, bounds.

Runs a WatchCache on the MemoryStore; sinks are plain functions that record
what they were given (or refuse), as the REST face's socket writer would.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import pytest

from master.apiserver.objects import decode_from_store, encode_for_store
from master.apiserver.registry import resource_info
from master.apiserver.watchcache import HISTORY_MIN, CacheWatcher, Filter, TooOld, WatchCache
from master.apiserver.watchfanout import follow
from master.storage import MemoryStore
from protos.core.v1 import core_pb2

CM = resource_info("", "configmaps")


def cm_bytes(name: str, value: str, namespace: str = "default") -> bytes:
    msg = core_pb2.ConfigMap()
    msg.metadata.name, msg.metadata.namespace = name, namespace
    msg.data["v"] = value
    return encode_for_store(msg)


class Recorder:
    """A sink: records (names, values) per call; refuses while `refusing`."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.calls = 0
        self.refusing = False

    def __call__(self, lines: bytes, rv: int) -> bool:
        if self.refusing:
            return False
        self.calls += 1
        for line in lines.splitlines():
            ev = json.loads(line)
            self.events.append((ev["type"], ev["object"]["metadata"]["name"], ev["object"]["data"]["v"]))
            assert int(ev["object"]["metadata"]["resourceVersion"]) <= rv
        return True


@pytest.fixture
async def cache() -> AsyncIterator[tuple[MemoryStore, WatchCache]]:
    store = MemoryStore()
    c = WatchCache(store, CM, decode=lambda k, v, rv: decode_from_store(CM, k, v, rv))
    task = asyncio.create_task(c.run())
    await c.wait_ready()
    try:
        yield store, c
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def settle(c: WatchCache, rv: int) -> None:
    assert await c.wait_rv(rv, timeout_s=5)
    for _ in range(3):  # the flush runs on a later loop turn (or after the window)
        await asyncio.sleep(0.06)


async def write(store: MemoryStore, name: str, value: str, namespace: str = "default") -> int:
    key = CM.key(namespace, name)
    kv = await store.get(key)
    if kv is None:
        return await store.create(key, cm_bytes(name, value, namespace))
    return await store.update(key, cm_bytes(name, value, namespace), expected_revision=kv.mod_revision)


def watcher(c: WatchCache, sink: Callable[[bytes, int], bool] | None, *, namespace: str = "default",
            rv: int | None = None) -> CacheWatcher:
    w = c.watch(Filter(namespace=namespace), resource_version=rv)
    if sink is not None:
        w.attach_sink(sink)
    return w


async def test_group_members_get_every_event_in_order_in_few_writes(cache: tuple[MemoryStore, WatchCache]) -> None:
    store, c = cache
    sinks = [Recorder() for _ in range(20)]
    ws = [watcher(c, s) for s in sinks]
    assert len(c._groups) == 1 and not c._solo
    rv = 0
    for i in range(50):
        rv = await write(store, f"cm-{i % 5}", str(i))
    await settle(c, rv)
    want = [("ADDED" if i < 5 else "MODIFIED", f"cm-{i % 5}", str(i)) for i in range(50)]
    for s in sinks:
        assert s.events == want
    for w in ws:
        w.stop()
    assert c.watcher_count == 0 and not c._groups


async def test_other_namespaces_stay_out_of_a_group(cache: tuple[MemoryStore, WatchCache]) -> None:
    store, c = cache
    here, everywhere = Recorder(), Recorder()
    watcher(c, here)
    watcher(c, everywhere, namespace="")
    await write(store, "a", "1")
    rv = await write(store, "b", "2", namespace="other")
    await settle(c, rv)
    assert [e[1] for e in here.events] == ["a"]
    assert [e[1] for e in everywhere.events] == ["a", "b"]


async def test_a_refusing_sink_leaves_the_group_and_its_reader_gets_the_rest_in_order(
        cache: tuple[MemoryStore, WatchCache]) -> None:
    store, c = cache
    fast, slow = Recorder(), Recorder()
    watcher(c, fast)
    w_slow = watcher(c, slow)
    rv = await write(store, "a", "0")
    await settle(c, rv)
    slow.refusing = True
    for i in range(1, 6):
        rv = await write(store, "a", str(i))
    await settle(c, rv)
    assert w_slow._group is None and w_slow in c._solo
    got = [(t, o.name, o.msg.data["v"]) for t, o in w_slow.drain()]
    assert slow.events + got == fast.events == [("ADDED", "a", "0")] + [("MODIFIED", "a", str(i)) for i in range(1, 6)]
    # Back to writing through the sink, one by one.
    slow.refusing = False
    rv = await write(store, "a", "6")
    await settle(c, rv)
    assert slow.events[-1] == fast.events[-1] == ("MODIFIED", "a", "6")


async def test_a_watcher_joining_a_busy_group_sees_each_event_once(cache: tuple[MemoryStore, WatchCache]) -> None:
    store, c = cache
    first = Recorder()
    watcher(c, first)
    await write(store, "a", "1")
    # Joins before the flush of "a": it gets "a" once, as a replayed ADDED.
    late = Recorder()
    watcher(c, late, rv=None)
    rv = await write(store, "a", "2")
    await settle(c, rv)
    assert first.events == [("ADDED", "a", "1"), ("MODIFIED", "a", "2")]
    assert late.events == [("ADDED", "a", "1"), ("MODIFIED", "a", "2")]


async def test_a_reader_without_sink_is_woken_once_per_batch(cache: tuple[MemoryStore, WatchCache]) -> None:
    store, c = cache
    w = watcher(c, None)
    rv = 0
    for i in range(10):
        rv = await write(store, "a", str(i))
    assert await c.wait_rv(rv, timeout_s=5)
    first = await asyncio.wait_for(w.next(), 5)
    assert first is not None and first[0] == "ADDED"
    assert [o.msg.data["v"] for _, o in w.drain()] == [str(i) for i in range(1, 10)]


async def test_a_stalled_sink_watcher_is_closed_past_its_limit(cache: tuple[MemoryStore, WatchCache]) -> None:
    store, c = cache
    c._watcher_limit = 5
    stuck = Recorder()
    stuck.refusing = True
    w = watcher(c, stuck)
    rv = 0
    for i in range(10):
        rv = await write(store, f"cm-{i}", "x")
        await asyncio.sleep(0)
    await settle(c, rv)
    assert w.closed and w.overflowed and c.watcher_count == 0
    assert await asyncio.wait_for(w.next(), 5) is None


async def test_replaying_more_objects_than_the_limit_does_not_close_the_watcher(
        cache: tuple[MemoryStore, WatchCache]) -> None:
    store, c = cache
    c._watcher_limit = 5
    rv = 0
    for i in range(12):
        rv = await write(store, f"cm-{i:02d}", "x")
    assert await c.wait_rv(rv, timeout_s=5)
    w = watcher(c, None)
    assert not w.closed
    assert [o.name for _, o in w.drain()] == [f"cm-{i:02d}" for i in range(12)]


async def test_a_replaced_version_keeps_only_what_replays_read(cache: tuple[MemoryStore, WatchCache]) -> None:
    store, c = cache
    first = await write(store, "cm-0", "a")
    await settle(c, first)
    old = c.get(CM.key("default", "cm-0"))
    assert old is not None
    old.to_json(), old.fields()  # as a GET and a selector watcher leave it
    await write(store, "cm-0", "b")
    _, deleted = await store.delete(CM.key("default", "cm-0"), expected_revision=None)
    await settle(c, deleted)
    assert old._dict is None and old._json is None and old._fields is not None
    # A watcher resuming before the first write replays all three events, rebuilt exactly.
    sink = Recorder()
    w = watcher(c, sink, rv=first - 1)
    await settle(c, c.rv)
    assert sink.events == [("ADDED", "cm-0", "a"), ("MODIFIED", "cm-0", "b"), ("DELETED", "cm-0", "b")]
    assert json.loads(old.to_json())["data"] == {"v": "a"}
    w.stop()


async def test_history_keeps_the_fresh_window_and_at_least_its_minimum() -> None:
    now = [1000.0]
    store = MemoryStore()
    c = WatchCache(store, CM, decode=lambda k, v, rv: decode_from_store(CM, k, v, rv), history_size=1000,
                   history_fresh_s=75.0, clock=lambda: now[0])
    task = asyncio.create_task(c.run())
    try:
        await c.wait_ready()
        first = await write(store, "cm-0", "0")
        rvs = [first] + [await write(store, f"cm-{i % 7}", str(i)) for i in range(1, 300)]
        await settle(c, rvs[-1])
        now[0] += 74.0  # still fresh: nothing goes, though past the minimum
        rvs.append(await write(store, "cm-0", "fresh"))
        await settle(c, rvs[-1])
        sink = Recorder()
        w = watcher(c, sink, rv=first - 1)
        await settle(c, rvs[-1])
        assert len(sink.events) == 301
        w.stop()

        now[0] += 2.0  # the first 300 are stale now: the next event trims to the last HISTORY_MIN
        rvs.append(await write(store, "cm-0", "later"))
        await settle(c, rvs[-1])
        kept, dropped = rvs[-HISTORY_MIN:], rvs[-HISTORY_MIN - 1]
        with pytest.raises(TooOld):
            c.watch(Filter(namespace="default"), resource_version=dropped - 1)
        sink = Recorder()
        w = watcher(c, sink, rv=dropped)  # every event after the newest dropped one is held
        await settle(c, rvs[-1])
        assert len(sink.events) == len(kept) and sink.events[-1] == ("MODIFIED", "cm-0", "later")
        w.stop()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_follow_streams_events_and_bookmarks_only_an_empty_queue(cache: tuple[MemoryStore, WatchCache]) -> None:
    store, c = cache
    w = c.watch(Filter(namespace="default"), resource_version=None)  # no sink: the gRPC faces' kind
    got: list[object] = []

    async def reader() -> None:
        async for item in follow(w, bookmark_every_s=0.05):
            got.append(item if isinstance(item, int) else (item[0], item[1].name, item[1].rv))

    task = asyncio.create_task(reader())
    try:
        rv = await write(store, "cm-0", "a")
        for _ in range(100):
            if any(isinstance(g, int) for g in got):
                break
            await asyncio.sleep(0.01)
        first_bookmark = next(g for g in got if isinstance(g, int))
        assert got[0] == ("ADDED", "cm-0", rv) and first_bookmark == c.rv == rv

        # An event pushed but not yet flushed is sent before any bookmark that covers it.
        c._flush_handle = asyncio.get_running_loop().call_later(3600, lambda: None)  # hold the flush
        later = await write(store, "cm-1", "b")
        await c.wait_rv(later, timeout_s=5)
        await asyncio.sleep(0.2)  # several bookmark periods pass with cm-1 queued
        seen = got[got.index(first_bookmark):]
        assert ("ADDED", "cm-1", later) in seen, seen
        at = seen.index(("ADDED", "cm-1", later))
        assert all(g < later for g in seen[:at] if isinstance(g, int)), seen
    finally:
        w.stop()
        await asyncio.wait_for(task, 5)
    assert w.bookmark_rv() is None  # closed
