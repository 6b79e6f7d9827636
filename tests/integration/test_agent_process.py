"""The agent's composition (node_agent.main.run) against a real etcd and an
in-process master with the node API, on the fake runtime and fake network:
it registers, heartbeats, receives a pod bound to it through WatchPods, runs
it and reports Running through UpdatePodStatus; cancelling it (what SIGTERM
does) ends it cleanly."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from deploy.etcd_cluster import EtcdCluster
from master.client.client import Client
from node_agent.main import parse_args, run
from protos.coordination.v1 import coordination_pb2
from protos.core.v1 import core_pb2
from tests.integration.test_node_api import masters


async def _until(cond, timeout_s: float = 30.0) -> None:  # noqa: ANN001
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_agent_registers_runs_a_pod_and_reports_status(etcd_cluster: EtcdCluster, tmp_path: Path) -> None:
    async with masters(etcd_cluster.endpoints) as (m,):
        args = parse_args(["--master", m.target, "--node-name", "agent-a", "--advertise-address", "172.28.5.11",
                           "--runtime", "fake", "--state-dir", str(tmp_path / "state"), "--log-format", "text",
                           "--labels", "zone=z1", "--heartbeat-period-s", "0.5",
                           "--port", "0", "--read-only-port", "0"])
        agent = asyncio.create_task(run(args))
        client = await Client.connect(m.target)
        try:
            async def node_ready() -> bool:
                if agent.done():
                    agent.result()
                try:
                    node = await client.get(core_pb2.Node, "agent-a")
                except Exception:
                    return False
                return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)

            await _until(node_ready)
            node = await client.get(core_pb2.Node, "agent-a")
            assert node.spec.pod_cidr and node.metadata.labels["zone"] == "z1"
            assert node.status.node_info.container_runtime_version.startswith("fake")
            first = (await client.get(coordination_pb2.Lease, "agent-a", namespace="kube-node-lease")).spec.renew_time

            async def renewed() -> bool:
                lease = await client.get(coordination_pb2.Lease, "agent-a", namespace="kube-node-lease")
                return lease.spec.renew_time.ToNanoseconds() > first.ToNanoseconds()

            await _until(renewed)

            pod = core_pb2.Pod()
            pod.metadata.name, pod.metadata.namespace = "p1", "default"
            pod.spec.node_name = "agent-a"
            pod.spec.containers.add(name="c", image="flotilla/busybox:test", image_pull_policy="Never")
            await client.create(pod)

            async def running() -> bool:
                if agent.done():
                    agent.result()
                got = await client.get(core_pb2.Pod, "p1", namespace="default")
                return got.status.phase == "Running" and bool(got.status.pod_ip)

            await _until(running)

            # A missing ConfigMap (env and volume) fails that pod alone, with
            # CreateContainerConfigError and a message, through the real NodeClient.
            bad = core_pb2.Pod()
            bad.metadata.name, bad.metadata.namespace = "p2", "default"
            bad.spec.node_name = "agent-a"
            c = bad.spec.containers.add(name="c", image="flotilla/busybox:test", image_pull_policy="Never")
            c.env.add(name="X").value_from.config_map_key_ref.CopyFrom(
                core_pb2.ConfigMapKeySelector(name="absent", key="k"))
            await client.create(bad)

            async def config_error() -> bool:
                if agent.done():
                    agent.result()
                got = await client.get(core_pb2.Pod, "p2", namespace="default")
                return any(cs.state.waiting.reason == "CreateContainerConfigError"
                           and cs.state.waiting.message == 'configmap "absent" not found'
                           for cs in got.status.container_statuses)

            await _until(config_error)
            assert (await client.get(core_pb2.Pod, "p1", namespace="default")).status.phase == "Running"
        finally:
            agent.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await agent
            await client.close()
        assert agent.cancelled()
