"""The workload controllers' executor (master/controllers/workloadbase.py) over a fake API.

A small in-memory API stands in for the Client: objects by kind, create /
delete / update_status, and list+watch feeding the shared informers. Its
watch can be held back to play a lagging informer, which is what the
expectations exist for.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

from master.client.clock import FakeClock
from master.client.errors import AlreadyExists, NotFound
from master.client.events import EventRecorder
from master.client.informer import ADDED, DELETED, MODIFIED, InformerFactory, WatchEvent
from master.controllers.base import ControllerContext
from master.controllers.daemonset import DaemonSetController
from master.controllers.statefulset import StatefulSetController
from master.reconcile.daemonset import target_node
from protos.apps.v1 import apps_pb2
from protos.core.v1 import core_pb2
from tests.unit.workload_builders import daemonset, node, statefulset


class FakeAPI:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.watchers: dict[str, list[asyncio.Queue[WatchEvent[Any]]]] = {}
        self.held: set[str] = set()  # kinds whose watch events are held back
        self._backlog: list[tuple[str, WatchEvent[Any]]] = []
        self.rv = itertools.count(1)
        self.calls: list[tuple[str, str]] = []
        self._names = itertools.count()

    @staticmethod
    def kind(cls: type[Any]) -> str:
        return str(cls.DESCRIPTOR.full_name)

    def _key(self, obj: Any) -> str:
        return f"{obj.metadata.namespace}/{obj.metadata.name}"

    def _emit(self, kind: str, type_: str, obj: Any) -> None:
        event = WatchEvent(type_, _copy(obj), obj.metadata.resource_version)
        if kind in self.held:
            self._backlog.append((kind, event))
            return
        for q in self.watchers.get(kind, []):
            q.put_nowait(event)

    def release(self) -> None:
        self.held = set()
        backlog, self._backlog = self._backlog, []
        for kind, event in backlog:
            for q in self.watchers.get(kind, []):
                q.put_nowait(event)

    def put(self, obj: Any) -> Any:
        kind = self.kind(type(obj))
        obj = _copy(obj)
        if not obj.metadata.name:
            obj.metadata.name = f"{obj.metadata.generate_name}{next(self._names):05d}"
        if not obj.metadata.uid:
            obj.metadata.uid = f"uid-{obj.metadata.name}"
        obj.metadata.resource_version = str(next(self.rv))
        store = self.objects.setdefault(kind, {})
        type_ = MODIFIED if self._key(obj) in store else ADDED
        store[self._key(obj)] = obj
        self._emit(kind, type_, obj)
        return _copy(obj)

    # --- what the controllers call -----------------------------------------------------

    async def create(self, obj: Any) -> Any:
        if obj.metadata.name and self._key(obj) in self.objects.get(self.kind(type(obj)), {}):
            raise AlreadyExists("exists")
        made = self.put(obj)
        self.calls.append(("create", made.metadata.name))
        return made

    async def delete(self, cls: type[Any], name: str, *, namespace: str = "", **_: Any) -> None:
        store = self.objects.get(self.kind(cls), {})
        obj = store.pop(f"{namespace}/{name}", None)
        if obj is None:
            raise NotFound("gone")
        self.calls.append(("delete", name))
        obj.metadata.resource_version = str(next(self.rv))
        self._emit(self.kind(cls), DELETED, obj)

    async def update_status(self, obj: Any) -> Any:
        self.calls.append(("status", obj.metadata.name))
        return self.put(obj)

    async def update(self, obj: Any) -> Any:
        return self.put(obj)

    def lister_watcher(self, cls: type[Any], **_: Any) -> Any:
        api = self

        class LW:
            async def list(self) -> tuple[list[Any], str]:
                return [_copy(o) for o in api.objects.get(api.kind(cls), {}).values()], str(next(api.rv))

            def watch(self, resource_version: str) -> AsyncIterator[WatchEvent[Any]]:
                queue: asyncio.Queue[WatchEvent[Any]] = asyncio.Queue()
                api.watchers.setdefault(api.kind(cls), []).append(queue)
                return _stream(queue)

        return LW()


async def _stream(queue: asyncio.Queue[WatchEvent[Any]]) -> AsyncIterator[WatchEvent[Any]]:
    while True:
        yield await queue.get()


def _copy(obj: Any) -> Any:
    new = type(obj)()
    new.CopyFrom(obj)
    return new


@contextlib.asynccontextmanager
async def running(api: FakeAPI, controller_cls: type[Any]) -> AsyncIterator[Any]:
    clock = FakeClock()
    factory = InformerFactory(api.lister_watcher, clock=clock)
    ctx = ControllerContext(api, factory, EventRecorder(api, "test", clock=clock), clock)  # type: ignore[arg-type]
    controller = controller_cls(ctx)
    ready = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        informers = tg.create_task(factory.run(ready=ready))
        await ready.wait()
        workers = tg.create_task(controller.run())
        try:
            yield controller
        finally:
            workers.cancel()
            informers.cancel()


async def settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


def pods(api: FakeAPI) -> list[core_pb2.Pod]:
    return list(api.objects.get(FakeAPI.kind(core_pb2.Pod), {}).values())


async def test_lagging_informer_does_not_double_create() -> None:
    api = FakeAPI()
    for name in ("n1", "n2"):
        api.put(node(name))
    async with running(api, DaemonSetController) as controller:
        api.held = {FakeAPI.kind(core_pb2.Pod)}  # the controller will not see its pods for a while
        api.put(daemonset())
        await settle()
        assert len(pods(api)) == 2
        for _ in range(3):  # syncs that still see no pods ...
            controller.queue.add("ns/ds")
            await settle()
        assert len(pods(api)) == 2  # ... create none again
        api.release()
        await settle()
        api.put(node("n3"))
        await settle()
        assert sorted(target_node(p) for p in pods(api)) == ["n1", "n2", "n3"]


async def test_status_written_only_when_changed() -> None:
    api = FakeAPI()
    api.put(node("n1"))
    async with running(api, DaemonSetController) as controller:
        api.put(daemonset())
        await settle()
        status_writes = sum(1 for c in api.calls if c[0] == "status")
        for _ in range(3):
            controller.queue.add("ns/ds")
            await settle()
        assert sum(1 for c in api.calls if c[0] == "status") == status_writes
        ds = api.objects[FakeAPI.kind(apps_pb2.DaemonSet)]["ns/ds"]
        assert ds.status.desired_number_scheduled == 1 and ds.status.current_number_scheduled == 1


async def test_statefulset_waits_for_each_pod() -> None:
    api = FakeAPI()
    async with running(api, StatefulSetController):
        api.put(statefulset(2))
        await settle()
        assert [p.metadata.name for p in pods(api)] == ["web-0"]
        web0 = _copy(pods(api)[0])
        web0.status.phase = "Running"
        web0.status.conditions.add(type="Ready", status="True")
        api.put(web0)
        await settle()
        assert sorted(p.metadata.name for p in pods(api)) == ["web-0", "web-1"]


async def test_owner_being_deleted_is_left_alone() -> None:
    api = FakeAPI()
    api.put(node("n1"))
    async with running(api, DaemonSetController):
        ds = daemonset()
        ds.metadata.deletion_timestamp.GetCurrentTime()
        api.put(ds)
        await settle()
        assert pods(api) == [] and api.calls == []
