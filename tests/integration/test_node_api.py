"""The node API through gRPC against a real etcd and in-process masters:
Register (Node, CIDR, refusals, concurrency across two masters), Heartbeat
(Lease, Ready), WatchPods (initial list, SYNCED, changes, resume, 410) and
the node-restricted pod writes."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from deploy.etcd_cluster import EtcdCluster
from master.apiserver.server import APIServer, APIServerConfig
from master.client.errors import APIError
from master.nodeapi.service import NodeAPIConfig, add_to_server
from master.storage.etcd import EtcdStore
from master.storage.prefixed import PrefixedStore
from node_agent.apiclient import NodeClient
from protos.coordination.v1 import coordination_pb2
from protos.core.v1 import core_pb2
from protos.node.v1 import node_pb2


@dataclass
class Master:
    server: APIServer

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.grpc_port}"


@contextlib.asynccontextmanager
async def masters(endpoints: list[str], count: int = 1, *,
                  config: NodeAPIConfig | None = None) -> AsyncIterator[list[Master]]:
    """`count` apiservers with the node API over the same etcd prefix (several masters)."""
    etcd = await EtcdStore.open(endpoints)
    prefix = f"/test-nodeapi-{uuid.uuid4().hex[:10]}"
    tasks: list[asyncio.Task[None]] = []
    out: list[Master] = []
    config = config or NodeAPIConfig(heartbeat_period_s=1, lease_duration_s=7)
    try:
        for _ in range(count):
            server = APIServer(APIServerConfig("127.0.0.1", 0, 0), PrefixedStore(etcd, prefix),
                               grpc_services=[lambda s, r: add_to_server(s, r, config)])
            ready = asyncio.Event()
            tasks.append(asyncio.create_task(server.run(ready=ready)))
            await asyncio.wait_for(ready.wait(), 30)
            out.append(Master(server))
        yield out
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await etcd.close()


def _register(name: str, address: str, **kw: object) -> node_pb2.RegisterRequest:
    return node_pb2.RegisterRequest(
        node_name=name, hostname=name, advertise_address=address,
        capacity={"cpu": "4", "memory": "8Gi", "pods": "110"}, labels={"lab": "t"},
        os_image="Debian GNU/Linux 12", kernel_version="6.18", container_runtime_version="docker://20.10",
        kubelet_port=10250, **kw)  # type: ignore[arg-type]


def _pod(name: str, node: str = "") -> core_pb2.Pod:
    pod = core_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace = name, "default"
    pod.spec.containers.add(name="c", image="busybox")
    if node:
        pod.spec.node_name = node
    return pod


async def test_register_heartbeat_and_refusals(etcd_cluster: EtcdCluster) -> None:
    async with masters(etcd_cluster.endpoints) as (m,):
        a = await NodeClient.connect(m.target, node_name="node-a")
        b = await NodeClient.connect(m.target, node_name="node-b")
        anon = await NodeClient.connect(m.target, node_name="")
        try:
            resp = await a.register(_register("node-a", "172.28.0.11"))
            net = ipaddress.ip_network(resp.pod_cidr)
            assert net.prefixlen == 24 and net.subnet_of(ipaddress.ip_network("10.244.0.0/16"))
            assert resp.cluster_cidr == "10.244.0.0/16" and resp.heartbeat_period_seconds == 1
            node = await a.client.get(core_pb2.Node, "node-a")
            assert node.spec.pod_cidr == resp.pod_cidr and list(node.spec.pod_cidrs) == [resp.pod_cidr]
            assert {(x.type, x.address) for x in node.status.addresses} == {
                ("InternalIP", "172.28.0.11"), ("Hostname", "node-a")}
            assert node.status.capacity["pods"] == "110" and node.status.allocatable["cpu"] == "4"
            assert node.status.node_info.kernel_version == "6.18"
            assert node.status.daemon_endpoints.kubelet_endpoint.port == 10250
            assert node.metadata.labels["lab"] == "t" and node.metadata.labels["kubernetes.io/hostname"] == "node-a"
            ready = [c for c in node.status.conditions if c.type == "Ready"]
            assert ready and ready[0].status == "True" and ready[0].reason == "KubeletReady"
            lease = await a.client.get(coordination_pb2.Lease, "node-a", namespace="kube-node-lease")
            assert lease.spec.holder_identity == "node-a" and lease.spec.lease_duration_seconds == 7

            # Re-registration keeps the CIDR (and may change the address).
            again = await a.register(_register("node-a", "172.28.0.21"))
            assert again.pod_cidr == resp.pod_cidr

            # Refusals say what to do, and change nothing.
            cases = [
                (b, _register("node-b", "127.0.0.1"), "INVALID_ARGUMENT", "loopback"),
                (b, _register("node-b", "not-an-ip"), "INVALID_ARGUMENT", "--advertise-address"),
                (b, _register("node-b", "10.0.2.15"), "FAILED_PRECONDITION", "Vagrant"),
                (b, _register("node-b", "172.28.0.21"), "ALREADY_EXISTS", "node-a"),
                (b, _register("node-x", "172.28.0.12"), "INVALID_ARGUMENT", "differs"),
                (anon, _register("", "172.28.0.12"), "UNAUTHENTICATED", "flotilla-node-name"),
            ]
            for cl, req, code, text in cases:
                with pytest.raises(APIError) as info:
                    await cl.register(req)
                assert info.value.grpc_code == code, (req.advertise_address, info.value)
                assert text in info.value.message
            with pytest.raises(APIError):
                await b.client.get(core_pb2.Node, "node-b")
            forced = await b.register(_register("node-b", "10.0.2.15", force_address=True))
            assert forced.pod_cidr != resp.pod_cidr

            # Heartbeat: renews the lease; sets Ready=True again when someone marked it Unknown.
            before = (await a.client.get(coordination_pb2.Lease, "node-a", namespace="kube-node-lease")).spec.renew_time
            node = await a.client.get(core_pb2.Node, "node-a")
            for c in node.status.conditions:
                if c.type == "Ready":
                    c.status, c.reason = "Unknown", "NodeStatusUnknown"
            await a.client.update_status(node)
            await asyncio.sleep(0.01)
            await a.heartbeat()
            lease = await a.client.get(coordination_pb2.Lease, "node-a", namespace="kube-node-lease")
            assert lease.spec.renew_time.ToNanoseconds() > before.ToNanoseconds()
            node = await a.client.get(core_pb2.Node, "node-a")
            assert [c.status for c in node.status.conditions if c.type == "Ready"] == ["True"]

            ghost = await NodeClient.connect(m.target, node_name="ghost")
            try:
                with pytest.raises(APIError) as info:
                    await ghost.heartbeat()
                assert info.value.grpc_code == "FAILED_PRECONDITION" and "Register" in info.value.message
            finally:
                await ghost.close()
        finally:
            for c in (a, b, anon):
                await c.close()


async def test_concurrent_registrations_get_distinct_cidrs(etcd_cluster: EtcdCluster) -> None:
    async with masters(etcd_cluster.endpoints, count=2) as ms:
        clients = [await NodeClient.connect(ms[i % 2].target, node_name=f"n{i}") for i in range(12)]
        try:
            got = await asyncio.gather(*(c.register(_register(f"n{i}", f"172.28.1.{10 + i}"))
                                         for i, c in enumerate(clients)))
            cidrs = [r.pod_cidr for r in got]
            assert len(set(cidrs)) == 12
            again = await asyncio.gather(*(c.register(_register(f"n{i}", f"172.28.1.{10 + i}"))
                                           for i, c in enumerate(clients)))
            assert [r.pod_cidr for r in again] == cidrs
            nodes, _ = await clients[0].client.list(core_pb2.Node)
            assert sorted(n.spec.pod_cidr for n in nodes) == sorted(cidrs)
        finally:
            for c in clients:
                await c.close()


async def test_a_deleted_node_gets_its_cidr_back_when_its_agent_registers_again(etcd_cluster: EtcdCluster) -> None:
    config = NodeAPIConfig(heartbeat_period_s=1, lease_duration_s=7, stale_reservation_s=1.0)
    async with masters(etcd_cluster.endpoints, config=config) as (m,):
        a, b, c = [await NodeClient.connect(m.target, node_name=f"node-{x}") for x in "abc"]
        try:
            first = await a.register(_register("node-a", "172.28.2.11"))
            await asyncio.sleep(1.2)  # its reservation is now older than stale_reservation_s
            await a.client.delete(core_pb2.Node, "node-a")  # kubectl delete node, its agent still running
            with pytest.raises(APIError) as info:
                await a.heartbeat()
            assert info.value.grpc_code == "FAILED_PRECONDITION"
            other = await b.register(_register("node-b", "172.28.2.12"))  # a registration meanwhile
            assert other.pod_cidr != first.pod_cidr
            again = await a.register(_register("node-a", "172.28.2.11"))  # what the agent does next
            assert again.pod_cidr == first.pod_cidr
            # deleted for good: freed by a registration stale_reservation_s after one first saw it missing
            await a.client.delete(core_pb2.Node, "node-a")
            await b.register(_register("node-b", "172.28.2.12"))
            await asyncio.sleep(1.2)
            took = await c.register(_register("node-c", "172.28.2.11"))  # its address is free again too
            assert took.pod_cidr == first.pod_cidr
        finally:
            for cl in (a, b, c):
                await cl.close()


async def test_a_status_write_for_a_replaced_pod_is_not_found_and_changes_nothing(etcd_cluster: EtcdCluster) -> None:
    async with masters(etcd_cluster.endpoints) as (m,):
        a = await NodeClient.connect(m.target, node_name="node-a")
        try:
            await a.register(_register("node-a", "172.28.3.11"))
            old = await a.client.create(_pod("reborn", node="node-a"))
            await a.client.delete(core_pb2.Pod, "reborn", namespace="default", grace_period_seconds=0)
            new = await a.client.create(_pod("reborn", node="node-a"))
            assert new.metadata.uid != old.metadata.uid
            old.status.phase = "Failed"
            assert await a.update_pod_status(old) is None  # the agent's pod is gone: nothing to retry
            assert (await a.client.get(core_pb2.Pod, "reborn", namespace="default")).status.phase != "Failed"
            new.status.phase = "Running"
            assert (await a.update_pod_status(new)).status.phase == "Running"  # type: ignore[union-attr]
        finally:
            await a.close()


async def test_a_refused_registration_still_starts_the_clock_on_a_deleted_nodes_address(etcd_cluster: EtcdCluster) -> None:
    # A host reinstalled under a new name, same address: refused until the old Node is
    # deleted and its record has been seen missing for stale_reservation_s, even when
    # nothing but the refused retries ever looks at the record.
    config = NodeAPIConfig(heartbeat_period_s=1, lease_duration_s=7, stale_reservation_s=1.0)
    async with masters(etcd_cluster.endpoints, config=config) as (m,):
        old, new = [await NodeClient.connect(m.target, node_name=n) for n in ("old-name", "new-name")]
        try:
            first = await old.register(_register("old-name", "172.28.4.11"))
            await old.client.delete(core_pb2.Node, "old-name")
            with pytest.raises(APIError) as info:
                await new.register(_register("new-name", "172.28.4.11"))
            assert info.value.grpc_code == "ALREADY_EXISTS" and "old-name" in info.value.message
            await asyncio.sleep(1.2)
            took = await new.register(_register("new-name", "172.28.4.11"))
            assert took.pod_cidr == first.pod_cidr
        finally:
            for cl in (old, new):
                await cl.close()


async def _next(stream: AsyncIterator[node_pb2.PodEvent]) -> node_pb2.PodEvent:
    return await asyncio.wait_for(stream.__anext__(), 10)


async def test_watch_pods_and_pod_writes(etcd_cluster: EtcdCluster) -> None:
    async with masters(etcd_cluster.endpoints) as (m,):
        a = await NodeClient.connect(m.target, node_name="node-a")
        b = await NodeClient.connect(m.target, node_name="node-b")
        try:
            await a.register(_register("node-a", "172.28.0.11"))
            await b.register(_register("node-b", "172.28.0.12"))
            await a.client.create(_pod("mine", "node-a"))
            await a.client.create(_pod("theirs", "node-b"))
            await a.client.create(_pod("unbound"))

            stream = a.watch_pods()
            first = await _next(stream)
            assert (first.type, first.pod.metadata.name) == ("ADDED", "mine")
            synced = await _next(stream)
            assert synced.type == "SYNCED" and synced.resource_version

            await a.client.bind("default", "unbound", node_name="node-a")
            ev = await _next(stream)
            assert (ev.type, ev.pod.metadata.name, ev.pod.spec.node_name) == ("ADDED", "unbound", "node-a")
            last_rv = ev.resource_version

            # Status: own pod yes, another node's pod no.
            mine = await a.client.get(core_pb2.Pod, "mine", namespace="default")
            mine.status.phase = "Running"
            mine.status.pod_ip = "10.244.0.5"
            written = await a.update_pod_status(mine)
            assert written.status.phase == "Running"
            ev = await _next(stream)
            assert (ev.type, ev.pod.status.phase) == ("MODIFIED", "Running")
            theirs = await a.client.get(core_pb2.Pod, "theirs", namespace="default")
            theirs.status.phase = "Failed"
            with pytest.raises(APIError) as info:
                await a.update_pod_status(theirs)
            assert info.value.grpc_code == "PERMISSION_DENIED" and "node-b" in info.value.message
            assert (await a.client.get(core_pb2.Pod, "theirs", namespace="default")).status.phase != "Failed"
            with pytest.raises(APIError) as info:
                await a.delete_pod(theirs)
            assert info.value.grpc_code == "PERMISSION_DENIED"

            # Resume from a resourceVersion: only what came after it.
            resumed = a.watch_pods(last_rv)
            ev = await _next(resumed)
            assert (ev.type, ev.pod.metadata.name, ev.pod.status.phase) == ("MODIFIED", "mine", "Running")

            # The agent's final delete (grace 0, uid precondition) removes it.
            stale = core_pb2.Pod()
            stale.CopyFrom(mine)
            stale.metadata.uid = str(uuid.uuid4())
            # A stale uid (a new pod of that name) is refused by the precondition;
            # NodeClient takes that as "not mine to delete" and the pod stays.
            await a.delete_pod(stale)
            assert (await a.client.get(core_pb2.Pod, "mine", namespace="default")).metadata.uid == mine.metadata.uid
            await a.delete_pod(mine)
            ev = await _next(stream)
            assert (ev.type, ev.pod.metadata.name) == ("DELETED", "mine")

            # A version the cache no longer has: ERROR 410, the agent relists.
            gone = a.watch_pods("2")
            ev = await _next(gone)
            assert (ev.type, ev.code) == ("ERROR", 410)
            await stream.aclose()  # type: ignore[attr-defined]
            await resumed.aclose()  # type: ignore[attr-defined]
        finally:
            await a.close()
            await b.close()
