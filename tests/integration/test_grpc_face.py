"""The gRPC face through the typed client, against a real master on etcd.

The same admission, storage and watch cache as REST: what is created over
gRPC is visible over REST and the other way round, errors arrive as the
client's typed exceptions, and the pods/binding subresource works.
"""

from __future__ import annotations

import asyncio
import gc

import aiohttp
import pytest

from master.client import Client
from master.client import errors as cerr
from protos.core.v1 import core_pb2
from tests.integration.harness import in_process_master


def _pod(name: str, *, labels: dict[str, str] | None = None) -> core_pb2.Pod:
    pod = core_pb2.Pod()
    pod.metadata.name = name
    pod.metadata.namespace = "default"
    pod.metadata.labels.update(labels or {})
    c = pod.spec.containers.add()
    c.name = "app"
    c.image = "busybox:stable"
    return pod


async def test_crud_bind_and_errors(etcd_cluster) -> None:
    async with in_process_master(etcd_cluster.endpoints) as m, await Client.connect(m.grpc_target) as client:
        created = await client.create(_pod("g1", labels={"app": "g"}))
        assert created.metadata.uid and created.metadata.resource_version
        assert created.status.phase == "Pending"

        got = await client.get(core_pb2.Pod, "g1", namespace="default")
        assert got.metadata.uid == created.metadata.uid

        # Visible over REST too: one registry behind both faces.
        async with aiohttp.ClientSession() as s, s.get(m.url + "/api/v1/namespaces/default/pods/g1") as r:
            assert r.status == 200
            assert (await r.json())["metadata"]["uid"] == created.metadata.uid

        items, rv = await client.list(core_pb2.Pod, namespace="default", label_selector="app=g")
        assert [p.metadata.name for p in items] == ["g1"] and int(rv) >= int(created.metadata.resource_version)

        got.metadata.labels["extra"] = "yes"
        updated = await client.update(got)
        assert updated.metadata.labels["extra"] == "yes"

        with pytest.raises(cerr.Conflict):
            await client.update(got)  # stale resourceVersion

        updated.status.phase = "Running"
        st = await client.update_status(updated)
        assert st.status.phase == "Running"

        await client.bind("default", "g1", node_name="node-a")
        bound = await client.get(core_pb2.Pod, "g1", namespace="default")
        assert bound.spec.node_name == "node-a"
        assert any(c.type == "PodScheduled" and c.status == "True" for c in bound.status.conditions)
        with pytest.raises(cerr.Conflict):
            await client.bind("default", "g1", node_name="node-b")

        with pytest.raises(cerr.AlreadyExists):
            await client.create(_pod("g1"))
        with pytest.raises(cerr.NotFound):
            await client.get(core_pb2.Pod, "nope", namespace="default")
        bad = _pod("Bad_Name")
        with pytest.raises(cerr.Invalid) as info:
            await client.create(bad)
        assert info.value.code == 422 and "metadata.name" in info.value.message

        # A bound pod is deleted gracefully, then removed with grace 0.
        lingering = await client.delete(core_pb2.Pod, "g1", namespace="default")
        assert lingering is not None and lingering.metadata.HasField("deletion_timestamp")
        await client.delete(core_pb2.Pod, "g1", namespace="default", grace_period_seconds=0)
        with pytest.raises(cerr.NotFound):
            await client.get(core_pb2.Pod, "g1", namespace="default")


async def test_watch_replays_then_follows(etcd_cluster) -> None:
    async with in_process_master(etcd_cluster.endpoints) as m, await Client.connect(m.grpc_target) as client:
        await client.create(_pod("w1"))
        seen: list[tuple[str, str]] = []

        async def follow() -> None:
            async for ev in client.watch(core_pb2.Pod, namespace="default", timeout_seconds=10):
                seen.append((ev.type, ev.object.metadata.name))
                if ev.type == "DELETED":
                    return

        task = asyncio.create_task(follow())
        await asyncio.sleep(0.2)
        await client.create(_pod("w2"))
        await client.delete(core_pb2.Pod, "w2", namespace="default")
        await asyncio.wait_for(task, 10)
        assert seen == [("ADDED", "w1"), ("ADDED", "w2"), ("DELETED", "w2")]


async def test_a_failed_call_leaves_no_garbage_cycles_behind(etcd_cluster) -> None:
    """An error answer must not strand a cycle (raised error, traceback, grpc call state) for
    the cyclic collector: a master answering Conflicts all day grew by hundreds of MiB that way.
    Failed calls may leave no more garbage than successful ones (grpc's own few objects)."""
    async with in_process_master(etcd_cluster.endpoints) as m, await Client.connect(m.grpc_target) as client:
        await client.create(_pod("present"))

        async def garbage_after(call: object, n: int = 100) -> int:
            gc.collect()
            gc.disable()
            try:
                for _ in range(n):
                    try:
                        await call()  # type: ignore[operator]
                    except (cerr.NotFound, cerr.Conflict):
                        pass
                return gc.collect()
            finally:
                gc.enable()

        ok = await garbage_after(lambda: client.get(core_pb2.Pod, "present", namespace="default"))
        failed = await garbage_after(lambda: client.get(core_pb2.Pod, "absent", namespace="default"))
        assert failed <= ok + 200, (ok, failed)  # abort() left ~25 objects per call: 2,500 here
        stale = await client.get(core_pb2.Pod, "present", namespace="default")
        await client.update(stale)  # stale is stale now: every update below is a Conflict
        conflicts = await garbage_after(lambda: client.update(stale))
        assert conflicts <= ok + 200, (ok, conflicts)
