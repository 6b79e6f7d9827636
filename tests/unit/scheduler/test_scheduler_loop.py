"""The Scheduler's loop against an in-memory cluster and a FakeClock.

FakeCluster is the smallest stand-in for the apiserver the Scheduler needs:
per-kind lists and watches for the informers, bind (optionally failing),
update and update_status. Events go to a list instead of the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from master.client.clock import FakeClock
from master.client.errors import Unavailable
from master.client.informer import ADDED, DELETED, MODIFIED, WatchEvent
from master.scheduler.explanation import ANNOTATION
from master.scheduler.scheduler import Scheduler
from protos.core.v1 import core_pb2
from tests.unit.scheduler.builders import node, pod


class FakeLW:
    def __init__(self, cluster: FakeCluster, cls: type) -> None:
        self.cluster, self.cls = cluster, cls

    async def list(self) -> tuple[list[Any], str]:
        return [_copy(o) for o in self.cluster.objects[self.cls].values()], str(self.cluster.rv)

    def watch(self, resource_version: str) -> AsyncIterator[WatchEvent[Any]]:
        queue: asyncio.Queue[WatchEvent[Any]] = asyncio.Queue()
        self.cluster.watchers[self.cls].append(queue)
        return self._stream(queue)

    async def _stream(self, queue: asyncio.Queue[WatchEvent[Any]]) -> AsyncIterator[WatchEvent[Any]]:
        while True:
            yield await queue.get()


def _copy(obj: Any) -> Any:
    out = type(obj)()
    out.CopyFrom(obj)
    return out


def _key(obj: Any) -> str:
    m = obj.metadata
    return f"{m.namespace}/{m.name}" if m.namespace else m.name


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    def event(self, obj: Any, type_: str, reason: str, message: str) -> None:
        self.events.append((obj.metadata.name, type_, reason, message))

    async def run(self) -> None:
        await asyncio.Event().wait()


class FakeCluster:
    def __init__(self) -> None:
        self.objects: dict[type, dict[str, Any]] = {core_pb2.Pod: {}, core_pb2.Node: {}}
        self.watchers: dict[type, list[asyncio.Queue[WatchEvent[Any]]]] = {core_pb2.Pod: [], core_pb2.Node: []}
        self.rv = 1
        self.bind_failures = 0
        self.binds: list[tuple[str, str]] = []

    def lister_watcher(self, cls: type, **_: Any) -> FakeLW:
        return FakeLW(self, cls)

    def put(self, obj: Any) -> Any:
        self.rv += 1
        obj = _copy(obj)
        obj.metadata.resource_version = str(self.rv)
        kind = type(obj)
        event = MODIFIED if _key(obj) in self.objects[kind] else ADDED
        self.objects[kind][_key(obj)] = obj
        for q in self.watchers[kind]:
            q.put_nowait(WatchEvent(event, _copy(obj), str(self.rv)))
        return _copy(obj)

    def remove(self, obj: Any) -> None:
        self.rv += 1
        gone = self.objects[type(obj)].pop(_key(obj))
        for q in self.watchers[type(obj)]:
            q.put_nowait(WatchEvent(DELETED, _copy(gone), str(self.rv)))

    async def bind(self, namespace: str, name: str, *, node_name: str, annotations: dict[str, str]) -> None:
        if self.bind_failures:
            self.bind_failures -= 1
            raise Unavailable("etcd is having a moment")
        p = _copy(self.objects[core_pb2.Pod][f"{namespace}/{name}"])
        p.spec.node_name = node_name
        p.metadata.annotations.update(annotations)
        self.binds.append((name, node_name))
        self.put(p)

    async def update(self, obj: Any) -> Any:
        current = self.objects[type(obj)][_key(obj)]
        new = _copy(obj)
        new.status.CopyFrom(current.status)
        return self.put(new)

    async def update_status(self, obj: Any) -> Any:
        new = _copy(self.objects[type(obj)][_key(obj)])
        new.status.CopyFrom(obj.status)
        return self.put(new)


async def settle(rounds: int = 50) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def running(cluster: FakeCluster, clock: FakeClock) -> AsyncIterator[tuple[Scheduler, FakeRecorder]]:
    recorder = FakeRecorder()
    s = Scheduler(cluster, clock=clock, seed=1, recorder=recorder)  # type: ignore[arg-type]
    ready = asyncio.Event()
    task = asyncio.create_task(s.run(ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 5)
        yield s, recorder
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_bind_failure_forgets_the_assumption_and_retries_after_backoff() -> None:
    cluster, clock = FakeCluster(), FakeClock()
    cluster.put(node("n1"))
    cluster.bind_failures = 1
    cluster.put(pod("p", cpu="1"))
    async with running(cluster, clock) as (s, recorder):
        await settle()
        assert cluster.binds == [] and not s.cache.is_assumed("default/p")
        assert s.queue.where("default/p") == "backoff"
        clock.advance(1.0)  # the first backoff
        await settle()
        assert cluster.binds == [("p", "n1")]
        bound = cluster.objects[core_pb2.Pod]["default/p"]
        assert json.loads(bound.metadata.annotations[ANNOTATION])["node"] == "n1"
        assert ("p", "Normal", "Scheduled", "Successfully assigned default/p to n1") in recorder.events


async def test_unschedulable_then_a_node_arrives() -> None:
    cluster, clock = FakeCluster(), FakeClock()
    cluster.put(node("small", cpu="1"))
    cluster.put(pod("p", cpu="2"))
    async with running(cluster, clock) as (s, recorder):
        await settle()
        p = cluster.objects[core_pb2.Pod]["default/p"]
        cond = next(c for c in p.status.conditions if c.type == "PodScheduled")
        message = ("0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: "
                   "1 No preemption victims found for incoming pod.")
        assert (cond.status, cond.reason, cond.message) == ("False", "Unschedulable", message)
        assert json.loads(p.metadata.annotations[ANNOTATION])["result"] == "Unschedulable"
        assert ("p", "Warning", "FailedScheduling", message) in recorder.events
        assert s.queue.where("default/p") == "unschedulable"
        writes = cluster.rv
        clock.advance(30)
        await settle()
        assert cluster.rv == writes  # parked: no retry, no rewrite without a change
        cluster.put(node("big", cpu="8"))
        await settle()
        assert cluster.binds == [("p", "big")]


async def test_pods_being_deleted_or_for_other_schedulers_are_left_alone() -> None:
    cluster, clock = FakeCluster(), FakeClock()
    cluster.put(node("n1"))
    leaving = pod("leaving")
    leaving.metadata.deletion_timestamp.GetCurrentTime()
    cluster.put(leaving)
    other = pod("other", spec={"schedulerName": "my-scheduler"})
    cluster.put(other)
    gated = cluster.put(pod("gated", spec={"schedulingGates": [{"name": "wait"}]}))
    async with running(cluster, clock) as (s, _):
        cluster.put(pod("mine"))
        await settle()
        assert cluster.binds == [("mine", "n1")]
        assert s.queue.active == s.queue.backoff == s.queue.unschedulable == 0
        del gated.spec.scheduling_gates[:]  # the gate is lifted: now it is scheduled
        cluster.put(gated)
        await settle()
        assert cluster.binds == [("mine", "n1"), ("gated", "n1")]


async def test_assumed_pods_count_before_the_informer_confirms() -> None:
    cluster, clock = FakeCluster(), FakeClock()
    cluster.put(node("a", cpu="1"))
    cluster.put(node("b", cpu="1"))
    for name in ("p1", "p2"):
        cluster.put(pod(name, cpu="800m"))
    async with running(cluster, clock):
        await settle()
        assert sorted(n for _, n in cluster.binds) == ["a", "b"]


async def test_a_deleted_pod_frees_room_for_a_parked_one() -> None:
    cluster, clock = FakeCluster(), FakeClock()
    cluster.put(node("n1", cpu="1"))
    old = cluster.put(pod("old", cpu="1", node_name="n1"))
    cluster.put(pod("new", cpu="1"))
    async with running(cluster, clock) as (s, _):
        await settle()
        assert s.queue.where("default/new") == "unschedulable"
        clock.advance(1)  # past its backoff, so the move goes straight to active
        cluster.remove(old)
        await settle()
        assert cluster.binds == [("new", "n1")]


async def test_shared_informers_run_by_their_owner() -> None:
    from master.client.informer import InformerFactory

    cluster, clock = FakeCluster(), FakeClock()
    cluster.put(node("n1"))
    cluster.put(pod("p"))
    factory = InformerFactory(cluster.lister_watcher, clock=clock)  # type: ignore[arg-type]
    s = Scheduler(cluster, clock=clock, seed=1, recorder=FakeRecorder(), informers=factory)  # type: ignore[arg-type]
    assert len(factory.informers()) == 2  # asked for, not run: the owner runs them
    ready = asyncio.Event()
    task = asyncio.create_task(s.run(ready=ready))
    owner = asyncio.create_task(factory.run())  # the ControllerManager's job in flotilla-master
    try:
        await asyncio.wait_for(ready.wait(), 5)
        await settle()
        assert cluster.binds == [("p", "n1")]
    finally:
        for t in (task, owner):
            t.cancel()
        await asyncio.gather(task, owner, return_exceptions=True)
