"""The endpoints controller against a real master: Endpoints follow pods.

Hollow nodes (tests/integration/hollow.py) bind the pods and mark them
Running and Ready; the `hollow.flotilla.dev/ready` annotation takes a pod out
of readiness and back; deleting a pod removes it; deleting the Service
removes its Endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest_asyncio

from master.client import Client
from master.client.errors import NotFound
from master.controllers.manager import ControllerManager
from protos.core.v1 import core_pb2
from tests.integration.harness import in_process_master
from tests.integration.hollow import READY_ANNOTATION, hollow_cluster

WAIT_S = 30.0


@pytest_asyncio.fixture
async def client(etcd_cluster: Any) -> AsyncIterator[Client]:
    async with in_process_master(etcd_cluster.endpoints) as m:
        async with await Client.connect(m.grpc_target) as c:
            cm = ControllerManager(c, enabled=["endpoints"])
            task = asyncio.create_task(cm.run())
            try:
                async with hollow_cluster(c, nodes=2, binder=True):
                    yield c
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def pod(name: str, *, ready: bool = True) -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.name, p.metadata.namespace = name, "default"
    p.metadata.labels["app"] = "web"
    p.metadata.annotations[READY_ANNOTATION] = "true" if ready else "false"
    c = p.spec.containers.add(name="app", image="busybox")
    c.ports.add(name="http", container_port=8080, protocol="TCP")
    return p


def web_service() -> core_pb2.Service:
    s = core_pb2.Service()
    s.metadata.name, s.metadata.namespace = "web", "default"
    s.spec.selector["app"] = "web"
    s.spec.ports.add(name="http", port=80).target_port.string_value = "http"
    return s


async def wait_endpoints(c: Client, pred: Callable[[Any], bool]) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    last = None
    while loop.time() < deadline:
        try:
            last = await c.get(core_pb2.Endpoints, "web", namespace="default")
            if pred(last):
                return last
        except NotFound:
            last = None
            if pred(None):
                return None
        await asyncio.sleep(0.05)
    raise AssertionError(f"endpoints never matched; last: {last}")


def ips(ep: Any, field: str = "addresses") -> list[str]:
    return sorted(a.ip for s in ep.subsets for a in getattr(s, field)) if ep else []


async def test_endpoints_follow_pod_readiness_and_deletion(client: Client) -> None:
    await client.create(web_service())
    for i in range(3):
        await client.create(pod(f"web-{i}"))
    ep = await wait_endpoints(client, lambda e: e is not None and len(ips(e)) == 3)
    assert [p.port for p in ep.subsets[0].ports] == [8080]  # named targetPort resolved
    addr = ep.subsets[0].addresses[0]
    assert addr.node_name and addr.target_ref.kind == "Pod" and addr.target_ref.name.startswith("web-")
    rv = ep.metadata.resource_version

    # web-1 fails readiness: it moves to notReadyAddresses, then comes back
    p1 = await client.get(core_pb2.Pod, "web-1", namespace="default")
    p1.metadata.annotations[READY_ANNOTATION] = "false"
    await client.update(p1)
    ep = await wait_endpoints(client, lambda e: len(ips(e)) == 2 and len(ips(e, "not_ready_addresses")) == 1)
    p1 = await client.get(core_pb2.Pod, "web-1", namespace="default")
    p1.metadata.annotations[READY_ANNOTATION] = "true"
    await client.update(p1)
    ep = await wait_endpoints(client, lambda e: len(ips(e)) == 3 and not ips(e, "not_ready_addresses"))
    assert ep.metadata.resource_version != rv

    # an unrelated change to a pod writes nothing
    rv = ep.metadata.resource_version
    p2 = await client.get(core_pb2.Pod, "web-2", namespace="default")
    p2.metadata.annotations["unrelated"] = "x"
    await client.update(p2)
    await asyncio.sleep(0.5)
    same = await client.get(core_pb2.Endpoints, "web", namespace="default")
    assert same.metadata.resource_version == rv

    # deletion: the pod leaves at once (deletionTimestamp), then the Service's Endpoints go
    await client.delete(core_pb2.Pod, "web-0", namespace="default")
    await wait_endpoints(client, lambda e: len(ips(e)) == 2)
    await client.delete(core_pb2.Service, "web", namespace="default")
    await wait_endpoints(client, lambda e: e is None)


async def test_leftover_endpoints_of_a_deleted_service_go_at_start(etcd_cluster: Any) -> None:
    async with in_process_master(etcd_cluster.endpoints) as m, await Client.connect(m.grpc_target) as c:
        # written while no controller runs: "left" has no Service, "manual" has one without a selector
        for name in ("left", "manual"):
            ep = core_pb2.Endpoints()
            ep.metadata.name, ep.metadata.namespace = name, "default"
            subset = ep.subsets.add()
            subset.addresses.add(ip="10.244.1.9")
            subset.ports.add(port=8080)
            await c.create(ep)
        manual = core_pb2.Service()
        manual.metadata.name, manual.metadata.namespace = "manual", "default"
        manual.spec.ports.add(port=80)
        await c.create(manual)
        cm = ControllerManager(c, enabled=["endpoints"])
        task = asyncio.create_task(cm.run())
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + WAIT_S
            while True:
                try:
                    await c.get(core_pb2.Endpoints, "left", namespace="default")
                except NotFound:
                    break
                assert loop.time() < deadline, "the leftover Endpoints were never deleted"
                await asyncio.sleep(0.05)
            kept = await c.get(core_pb2.Endpoints, "manual", namespace="default")
            assert [a.ip for a in kept.subsets[0].addresses] == ["10.244.1.9"]
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
