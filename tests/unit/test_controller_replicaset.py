"""The ReplicaSet controller's executor against a fake API whose informers never catch up.

The informers list once and then hear nothing, the worst case of a slow
watch: the controller must still not create a second batch (expectations),
must create in slow-start batches, delete the ranked victims, and report a
failed create as a ReplicaFailure condition.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from master.client.clock import FakeClock
from master.client.errors import Forbidden
from master.client.events import EventRecorder
from master.client.informer import InformerFactory, WatchEvent
from master.controllers.base import ControllerContext
from master.controllers.replicaset import ReplicaSetController
from protos.apps.v1 import apps_pb2
from protos.core.v1 import core_pb2


class FakeAPI:
    def __init__(self, objects: list[Any]) -> None:
        self.objects = objects
        self.created: list[core_pb2.Pod] = []
        self.deleted: list[str] = []
        self.statuses: list[Any] = []
        self.fail_creates: Exception | None = None
        self.batches: list[int] = []
        self._in_flight = 0

    def lister_watcher(self, cls: type, **_: Any) -> Any:
        api = self

        class LW:
            async def list(self) -> tuple[list[Any], str]:
                return [o for o in api.objects if isinstance(o, cls)], "1"

            async def watch(self, resource_version: str) -> AsyncIterator[WatchEvent[Any]]:
                await asyncio.Event().wait()  # never delivers anything
                yield WatchEvent("ADDED", None, "")

        return LW()

    async def create(self, obj: Any) -> Any:
        if self.fail_creates is not None:
            raise self.fail_creates
        out = type(obj)()
        out.CopyFrom(obj)
        out.metadata.name = obj.metadata.generate_name + f"{len(self.created):05d}"
        self.created.append(out)
        return out

    async def update(self, obj: Any) -> Any:
        return obj

    async def update_status(self, obj: Any) -> Any:
        self.statuses.append(obj.status)
        return obj

    async def delete(self, cls: type, name: str, **_: Any) -> None:
        self.deleted.append(name)


def replicaset(replicas: int) -> apps_pb2.ReplicaSet:
    rs = apps_pb2.ReplicaSet()
    rs.metadata.name, rs.metadata.namespace, rs.metadata.uid = "web", "default", "rs-uid"
    rs.metadata.generation = 2
    rs.spec.replicas = replicas
    rs.spec.selector.match_labels["app"] = "web"
    rs.spec.template.metadata.labels["app"] = "web"
    rs.spec.template.spec.containers.add(name="main", image="nginx")
    return rs


def owned_pod(name: str, *, node: str = "n1", ready: bool = True) -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.name, p.metadata.namespace, p.metadata.uid = name, "default", f"uid-{name}"
    p.metadata.labels["app"] = "web"
    p.metadata.owner_references.add(kind="ReplicaSet", name="web", uid="rs-uid", controller=True)
    p.spec.node_name = node
    p.status.phase = "Running"
    p.status.conditions.add(type="Ready", status="True" if ready else "False")
    return p


@contextlib.asynccontextmanager
async def controller(api: FakeAPI) -> AsyncIterator[ReplicaSetController]:
    clock = FakeClock()
    factory = InformerFactory(api.lister_watcher, clock=clock)
    ctx = ControllerContext(api, factory, EventRecorder(api, "test", clock=clock), clock)  # type: ignore[arg-type]
    c = ReplicaSetController(ctx)
    ready = asyncio.Event()
    task = asyncio.create_task(factory.run(ready=ready))
    await ready.wait()
    try:
        yield c
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_creates_in_slow_start_batches_once_despite_a_silent_informer() -> None:
    api = FakeAPI([replicaset(7)])
    async with controller(api) as c:
        await c.sync("default/web")
        assert len(api.created) == 7
        assert all(p.metadata.generate_name == "web-" and p.metadata.owner_references[0].uid == "rs-uid"
                   for p in api.created)
        await c.sync("default/web")
        await c.sync("default/web")
        assert len(api.created) == 7, "expectations hold back a second batch"
        assert api.statuses[-1].replicas == 0 and api.statuses[-1].observed_generation == 2


async def test_failed_create_becomes_replica_failure_and_is_retried() -> None:
    api = FakeAPI([replicaset(2)])
    api.fail_creates = Forbidden('pods "web-x" is forbidden: exceeded quota: q')
    async with controller(api) as c:
        with pytest.raises(Forbidden):
            await c.sync("default/web")
        cond = api.statuses[-1].conditions[0]
        assert (cond.type, cond.status, cond.reason) == ("ReplicaFailure", "True", "FailedCreate")
        assert "exceeded quota" in cond.message
        assert api.created == []
        # The failed creates were never going to be observed: the next sync tries again.
        api.fail_creates = None
        await c.sync("default/web")
        assert len(api.created) == 2
        assert not any(c.type == "ReplicaFailure" for c in api.statuses[-1].conditions)


async def test_deletes_the_ranked_surplus() -> None:
    pods = [owned_pod("a"), owned_pod("b", ready=False), owned_pod("c", node=""), owned_pod("d"),
            owned_pod("e", node="n2")]
    api = FakeAPI([replicaset(2), *pods])
    async with controller(api) as c:
        await c.sync("default/web")
        assert api.deleted[:2] == ["c", "b"], "unscheduled, then not ready"
        assert len(api.deleted) == 3 and api.deleted[2] in ("a", "d"), "then the doubled-up node"
        status = api.statuses[-1]
        assert (status.replicas, status.ready_replicas, status.fully_labeled_replicas) == (5, 4, 5)
