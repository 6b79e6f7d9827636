"""Watch semantics over REST and gRPC on the real etcd cluster (KUBECTL.md §1.6).

- resourceVersion "" or "0": synthetic ADDED for every existing object;
- from an RV: only later changes, in order, typed ADDED/MODIFIED/DELETED,
  whether they are replayed from the cache's history or arrive live;
- a label-selector watch turns an object that stops matching into DELETED
  and one that starts matching into ADDED;
- timeoutSeconds ends the stream;
- an RV older than the apiserver can serve: a 200 stream holding one ERROR
  event with a 410 Expired Status. The watch cache keeps its own history,
  so compacting etcd alone does not age an RV out of a running apiserver;
  what does is an apiserver (re)started after the compaction, whose cache
  begins at the current revision: that is what a client holding an old RV
  meets in practice, and what the test builds;
- a Table watch sends one-row Tables;
- a watcher that never reads does not hold up one that does;
- a client that goes away is unregistered from the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest
import pytest_asyncio

from master.apiserver.server import APIServer, APIServerConfig
from master.storage.interface import Store
from protos.api.v1 import objects_pb2, objects_pb2_grpc
from protos.core.v1 import core_pb2
from protos.resources import lookup
from tests.integration.harness import InProcessMaster, in_process_master

CM = "/api/v1/namespaces/default/configmaps"
MERGE = {"Content-Type": "application/merge-patch+json"}
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
CONFIGMAPS = lookup("", "configmaps")
READ_TIMEOUT_S = 30.0  # a guard against hangs, not a measured timing

Api = tuple[InProcessMaster, aiohttp.ClientSession]


@pytest_asyncio.fixture
async def api(etcd_cluster: Any) -> AsyncIterator[Api]:
    async with in_process_master(etcd_cluster.endpoints) as m, aiohttp.ClientSession(
        base_url=m.url, timeout=aiohttp.ClientTimeout(total=120)
    ) as session:
        yield m, session


async def create(s: aiohttp.ClientSession, name: str, *, labels: dict[str, str] | None = None,
                 data: dict[str, str] | None = None) -> dict[str, Any]:
    body = {"metadata": {"name": name, "labels": labels or {}}, "data": data or {}}
    async with s.post(CM, json=body) as r:
        assert r.status == 201, await r.text()
        return dict(await r.json())


async def patch(s: aiohttp.ClientSession, name: str, doc: dict[str, Any]) -> dict[str, Any]:
    async with s.patch(f"{CM}/{name}", data=json.dumps(doc), headers=MERGE) as r:
        assert r.status == 200, await r.text()
        return dict(await r.json())


async def delete(s: aiohttp.ClientSession, name: str) -> None:
    async with s.delete(f"{CM}/{name}") as r:
        assert r.status == 200, await r.text()


def rv_of(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["resourceVersion"])


async def open_watch(s: aiohttp.ClientSession, query: str, *, accept: str = "") -> aiohttp.ClientResponse:
    headers = {"Accept": accept} if accept else {}
    resp = await s.get(f"{CM}?watch=true&{query}", headers=headers)
    assert resp.status == 200, await resp.text()
    return resp


async def next_events(resp: aiohttp.ClientResponse, n: int) -> list[dict[str, Any]]:
    """The next n events of a watch stream (one JSON document per line)."""

    async def read() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while len(out) < n:
            line = await resp.content.readline()
            assert line, f"the stream ended after {len(out)} of {n} events: {out}"
            out.append(json.loads(line))
        return out

    return await asyncio.wait_for(read(), READ_TIMEOUT_S)


def summary(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"]["name"]) for e in events]


async def wait_for_watchers(m: InProcessMaster, count: int) -> None:
    cache = m.registry.caches[CONFIGMAPS]

    async def poll() -> None:
        while cache.watcher_count != count:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), READ_TIMEOUT_S)


@pytest.mark.parametrize("rv", ["", "0"])
async def test_watch_from_now_replays_existing_objects_as_added(api: Api, rv: str) -> None:
    _, s = api
    for name in ("r1", "r2", "r3"):
        await create(s, name, labels={"w": "replay"})
    await create(s, "other", labels={"w": "elsewhere"})
    resp = await open_watch(s, f"labelSelector=w%3Dreplay&resourceVersion={rv}&timeoutSeconds=30")
    async with resp:
        events = await next_events(resp, 3)
        assert sorted(summary(events)) == [("ADDED", "r1"), ("ADDED", "r2"), ("ADDED", "r3")]
        await create(s, "r4", labels={"w": "replay"})
        assert summary(await next_events(resp, 1)) == [("ADDED", "r4")]


async def test_watch_from_a_version_sends_only_later_changes_in_order(api: Api) -> None:
    _, s = api
    a = await create(s, "a", data={"v": "1"})
    await create(s, "before", data={"v": "1"})  # after a's RV: replayed as ADDED
    await patch(s, "a", {"data": {"v": "2"}})  # replayed from history as MODIFIED
    resp = await open_watch(s, f"resourceVersion={rv_of(a)}&timeoutSeconds=30")
    async with resp:
        await create(s, "b")
        await patch(s, "b", {"data": {"v": "3"}})
        await delete(s, "a")
        events = await next_events(resp, 5)
    assert summary(events) == [("ADDED", "before"), ("MODIFIED", "a"), ("ADDED", "b"),
                               ("MODIFIED", "b"), ("DELETED", "a")]
    versions = [int(rv_of(e["object"])) for e in events]
    assert versions == sorted(versions) and len(set(versions)) == 5 and versions[0] > int(rv_of(a))
    assert events[1]["object"]["data"] == {"v": "2"}


async def test_label_selector_watch_sees_objects_enter_and_leave(api: Api) -> None:
    _, s = api
    start = await create(s, "unrelated")
    resp = await open_watch(s, f"labelSelector=app%3Dsel&resourceVersion={rv_of(start)}&timeoutSeconds=30")
    async with resp:
        await create(s, "x", labels={"app": "sel"})
        await patch(s, "x", {"data": {"k": "v"}})
        await patch(s, "x", {"metadata": {"labels": {"app": "other"}}})
        await patch(s, "x", {"data": {"k": "unseen"}})  # not matching: nothing
        await patch(s, "x", {"metadata": {"labels": {"app": "sel"}}})
        await create(s, "y", labels={"app": "other"})  # never matches: nothing
        await delete(s, "x")
        events = await next_events(resp, 5)
    assert summary(events) == [("ADDED", "x"), ("MODIFIED", "x"), ("DELETED", "x"),
                               ("ADDED", "x"), ("DELETED", "x")]
    assert events[2]["object"]["metadata"]["labels"] == {"app": "other"}  # the object as it left
    assert events[3]["object"]["data"] == {"k": "unseen"}  # the object as it came back


async def test_timeout_seconds_closes_the_stream(api: Api) -> None:
    m, s = api
    resp = await open_watch(s, "timeoutSeconds=1")
    async with resp:
        rest = await asyncio.wait_for(resp.content.read(), READ_TIMEOUT_S)  # returns at EOF only
    assert rest == b""
    await wait_for_watchers(m, 0)


@contextlib.asynccontextmanager
async def apiserver_on(store: Store) -> AsyncIterator[str]:
    """A second apiserver on the same store (as after a restart); yields its URL."""
    server = APIServer(APIServerConfig("127.0.0.1", 0, 0), store)
    ready = asyncio.Event()
    task = asyncio.create_task(server.run(ready=ready))
    try:
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait([task, waiter], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if task.done():
            task.result()
        assert ready.is_set(), "second apiserver did not become ready"
        yield f"http://127.0.0.1:{server.rest_port}"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_too_old_resource_version_gets_an_expired_error_event(api: Api) -> None:
    m, s = api
    old = await create(s, "old")
    for i in range(5):
        await patch(s, "old", {"data": {"i": str(i)}})
    await m.store.compact(await m.store.current_revision())
    async with apiserver_on(m.store) as url, s.get(
        f"{url}{CM}?watch=true&resourceVersion={rv_of(old)}&timeoutSeconds=30"
    ) as resp:
        assert resp.status == 200
        body = await asyncio.wait_for(resp.content.read(), READ_TIMEOUT_S)
    lines = body.splitlines()
    assert len(lines) == 1, body
    event = json.loads(lines[0])
    assert event["type"] == "ERROR"
    status = event["object"]
    assert (status["kind"], status["status"], status["code"], status["reason"]) == ("Status", "Failure", 410, "Expired")
    assert status["message"]


async def test_table_watch_sends_one_row_tables(api: Api) -> None:
    _, s = api
    await create(s, "t1", data={"a": "b"})
    resp = await open_watch(s, "timeoutSeconds=30", accept=TABLE)
    async with resp:
        assert resp.headers["Content-Type"].startswith("application/json;as=Table")
        first = await next_events(resp, 1)
        await patch(s, "t1", {"data": {"c": "d"}})
        second = await next_events(resp, 1)
    for event, type_ in ((first[0], "ADDED"), (second[0], "MODIFIED")):
        table = event["object"]
        assert event["type"] == type_
        assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
        assert table["columnDefinitions"] and table["columnDefinitions"][0]["name"] == "Name"
        assert len(table["rows"]) == 1 and table["rows"][0]["cells"][0] == "t1"
        assert table["rows"][0]["object"]["metadata"]["name"] == "t1"


async def test_a_watcher_that_never_reads_does_not_block_one_that_does(api: Api) -> None:
    m, s = api
    count = 200
    filler = "x" * 48 * 1024  # 200 x 48 KiB: more than the socket buffers hold for the stalled client
    stalled = await open_watch(s, "labelSelector=load%3Dyes&timeoutSeconds=120")
    reading = await open_watch(s, "labelSelector=load%3Dyes&timeoutSeconds=120")
    try:
        await wait_for_watchers(m, 2)
        got: list[tuple[str, str]] = []

        async def read_all() -> None:
            while len(got) < count:
                got.extend(summary(await next_events(reading, 1)))

        reader = asyncio.create_task(read_all())
        for i in range(count):
            await create(s, f"load-{i:03d}", labels={"load": "yes"}, data={"filler": filler})
        await asyncio.wait_for(reader, READ_TIMEOUT_S)
        assert got == [("ADDED", f"load-{i:03d}") for i in range(count)]
        # The stalled watcher lost nothing either: its events waited for it.
        late = await next_events(stalled, count)
        assert summary(late) == got
    finally:
        stalled.close()
        reading.close()
    await wait_for_watchers(m, 0)


async def test_a_closed_connection_unregisters_the_watcher(api: Api) -> None:
    m, s = api
    resp = await open_watch(s, "timeoutSeconds=600")
    await wait_for_watchers(m, 1)
    resp.close()  # drops the connection without reading to the end
    await wait_for_watchers(m, 0)


async def grpc_events(target: str, *, rv: str, n: int, selector: str) -> list[tuple[str, str, int]]:
    """The first n (type, name, resourceVersion) of a gRPC watch on default/configmaps."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = objects_pb2_grpc.ObjectsStub(channel)
        ref = objects_pb2.ResourceRef(group="", resource="configmaps", namespace="default")
        call = stub.Watch(objects_pb2.WatchRequest(ref=ref, label_selector=selector, resource_version=rv,
                                                   timeout_seconds=30))
        out: list[tuple[str, str, int]] = []

        async def read() -> None:
            async for ev in call:
                assert ev.object.type_url.endswith("flotilla.core.v1.ConfigMap")
                cm = core_pb2.ConfigMap.FromString(ev.object.value)
                out.append((ev.type, cm.metadata.name, int(ev.resource_version)))
                if len(out) == n:
                    call.cancel()
                    return

        await asyncio.wait_for(read(), READ_TIMEOUT_S)
        return out


async def test_grpc_watch_has_the_same_replay_semantics(api: Api) -> None:
    m, s = api
    g1 = await create(s, "g1", labels={"w": "grpc"})
    await create(s, "g2", labels={"w": "grpc"})
    for rv in ("", "0"):
        events = await grpc_events(m.grpc_target, rv=rv, n=2, selector="w=grpc")
        assert sorted((t, name) for t, name, _ in events) == [("ADDED", "g1"), ("ADDED", "g2")]
    await patch(s, "g1", {"data": {"v": "2"}})
    await delete(s, "g2")
    events = await grpc_events(m.grpc_target, rv=rv_of(g1), n=3, selector="w=grpc")
    assert [(t, name) for t, name, _ in events] == [("ADDED", "g2"), ("MODIFIED", "g1"), ("DELETED", "g2")]
    versions = [v for _, _, v in events]
    assert versions == sorted(versions) and versions[0] > int(rv_of(g1))
