"""The hollow-node harness itself: nodes register and heartbeat, pods run, exit and go.

Other integration tests lean on tests/integration/hollow.py; this keeps it honest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from master.client import Client, NotFound
from protos.coordination.v1 import coordination_pb2
from protos.core.v1 import core_pb2
from tests.integration.harness import in_process_master
from tests.integration.hollow import EXIT_CODE_ANNOTATION, READY_ANNOTATION, hollow_cluster


def _pod(name: str, **annotations: str) -> core_pb2.Pod:
    pod = core_pb2.Pod()
    pod.metadata.name = name
    pod.metadata.namespace = "default"
    pod.metadata.annotations.update(annotations)
    pod.spec.containers.add(name="app", image="busybox:stable")
    return pod


async def _until(fn: Callable[[], object], *, timeout_s: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        if await fn():  # type: ignore[misc]
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_hollow_nodes_run_pods(etcd_cluster) -> None:
    async with in_process_master(etcd_cluster.endpoints) as m, \
            await Client.connect(m.grpc_target) as client, \
            hollow_cluster(client, nodes=2, binder=True, renew_period_s=0.2) as hc:
        nodes, _ = await client.list(core_pb2.Node)
        assert sorted(n.metadata.name for n in nodes) == sorted(hc.nodes)
        assert all(any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)
                   for n in nodes)
        lease = await client.get(coordination_pb2.Lease, "hollow-0", namespace="kube-node-lease")
        assert lease.spec.holder_identity == "hollow-0"

        await client.create(_pod("web"))
        await client.create(_pod("job", **{EXIT_CODE_ANNOTATION: "0"}))
        await client.create(_pod("idle", **{READY_ANNOTATION: "false"}))

        async def phase(name: str) -> str:
            return (await client.get(core_pb2.Pod, name, namespace="default")).status.phase

        async def web_ready() -> bool:
            p = await client.get(core_pb2.Pod, "web", namespace="default")
            return p.status.phase == "Running" and p.status.pod_ip != "" and any(
                c.type == "Ready" and c.status == "True" for c in p.status.conditions)

        await _until(web_ready)

        async def job_succeeded() -> bool:
            return await phase("job") == "Succeeded"

        await _until(job_succeeded)

        async def idle_not_ready() -> bool:
            p = await client.get(core_pb2.Pod, "idle", namespace="default")
            return p.status.phase == "Running" and any(
                c.type == "Ready" and c.status == "False" for c in p.status.conditions)

        await _until(idle_not_ready)

        # Graceful deletion: the hollow agent finishes it.
        await client.delete(core_pb2.Pod, "web", namespace="default", grace_period_seconds=30)

        async def web_gone() -> bool:
            try:
                await client.get(core_pb2.Pod, "web", namespace="default")
                return False
            except NotFound:
                return True

        await _until(web_gone)

        # A stopped heartbeat leaves the lease unrenewed.
        hc.stop_heartbeat("hollow-1")
        before = (await client.get(coordination_pb2.Lease, "hollow-1", namespace="kube-node-lease")).spec.renew_time
        await asyncio.sleep(0.6)
        after = (await client.get(coordination_pb2.Lease, "hollow-1", namespace="kube-node-lease")).spec.renew_time
        assert before == after
        await hc.resume_heartbeat("hollow-1")
        resumed = (await client.get(coordination_pb2.Lease, "hollow-1", namespace="kube-node-lease")).spec.renew_time
        assert resumed.ToDatetime() > after.ToDatetime()
        for name in ("job", "idle"):
            await client.delete(core_pb2.Pod, name, namespace="default", grace_period_seconds=0)
