"""The scheduler against a real apiserver on real etcd, with hollow nodes.

One in-process master and three hollow nodes per test; the scheduler runs
in the test's event loop like any component; `flotctl explain` runs as a
subprocess against the master's REST port, so the explanation is shown to
travel through the cluster (Binding annotations, the pod's metadata), not
through memory.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest_asyncio

from master.client import Client
from master.kubeconfig import write_kubeconfig
from master.scheduler import Scheduler
from protos.coordination.v1 import coordination_pb2
from protos.core.v1 import core_pb2
from tests.integration.harness import InProcessMaster, eventually, in_process_master, running
from tests.integration.hollow import HollowCluster, hollow_cluster

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Env:
    master: InProcessMaster
    client: Client
    hc: HollowCluster
    scheduler: Scheduler
    kubeconfig: Path


@pytest_asyncio.fixture
async def env(etcd_cluster: Any, tmp_path: Path) -> AsyncIterator[Env]:
    async with in_process_master(etcd_cluster.endpoints) as m:
        client = await Client.connect(m.grpc_target)
        try:
            async with hollow_cluster(client, nodes=3, prefix=f"h{uuid.uuid4().hex[:4]}") as hc:
                scheduler = Scheduler(client, seed=1)
                async with running(lambda ready: scheduler.run(ready=ready), what="scheduler"):
                    kubeconfig = tmp_path / "kubeconfig"
                    write_kubeconfig(kubeconfig, m.url)
                    yield Env(m, client, hc, scheduler, kubeconfig)
        finally:
            await client.close()


def make_pod(name: str, *, cpu: str = "100m", owner_uid: str = "") -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.name = name
    p.metadata.namespace = "default"
    p.metadata.labels["app"] = "web"
    if owner_uid:
        ref = p.metadata.owner_references.add()
        ref.api_version, ref.kind, ref.name, ref.uid = "apps/v1", "ReplicaSet", "web", owner_uid
        ref.controller = True
    c = p.spec.containers.add()
    c.name, c.image = "app", "busybox"
    c.resources.requests["cpu"] = cpu
    c.resources.requests["memory"] = "64Mi"
    return p


def flotctl(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flotctl.main", "--kubeconfig", str(env.kubeconfig), *args],
                          capture_output=True, text=True, timeout=60, cwd=REPO)


async def events_for(client: Client, name: str) -> list[core_pb2.Event]:
    events, _ = await client.list(core_pb2.Event, namespace="default")
    return [e for e in events if e.involved_object.name == name]


async def test_replicas_spread_over_nodes_and_explain_shows_every_node(env: Env) -> None:
    names = [f"web-{uuid.uuid4().hex[:5]}" for _ in range(3)]
    for n in names:
        await env.client.create(make_pod(n, owner_uid="rs-uid-1"))

    async def bound() -> list[core_pb2.Pod] | None:
        pods = [await env.client.get(core_pb2.Pod, n, namespace="default") for n in names]
        return pods if all(p.spec.node_name for p in pods) else None

    pods = await eventually(bound, what="3 pods bound")
    assert {p.spec.node_name for p in pods} == set(env.hc.nodes)
    for p in pods:
        scheduled = [c for c in p.status.conditions if c.type == "PodScheduled"]
        assert scheduled and scheduled[0].status == "True"

    async def scheduled_event() -> bool:
        evs = await events_for(env.client, names[0])
        return any(e.reason == "Scheduled" for e in evs)

    await eventually(scheduled_event, what="Scheduled event")
    ev = next(e for e in await events_for(env.client, names[0]) if e.reason == "Scheduled")
    assert ev.type == "Normal"
    assert ev.message == f"Successfully assigned default/{names[0]} to {pods[0].spec.node_name}"

    out = await asyncio.to_thread(flotctl, env, "explain", f"pod/{names[2]}", "-n", "default")
    assert out.returncode == 0, out.stderr
    assert f"Scheduled on {pods[2].spec.node_name}" in out.stdout
    for node in env.hc.nodes:
        assert node in out.stdout
    assert "chosen" in out.stdout and "SelectorSpread" in out.stdout and "TOTAL" in out.stdout


async def test_unschedulable_pod_reports_every_node_then_fits_a_new_node(env: Env) -> None:
    tainted = sorted(env.hc.nodes)[0]
    node = await env.client.get(core_pb2.Node, tainted)
    node.spec.taints.add(key="node.kubernetes.io/unreachable", effect="NoSchedule")
    await env.client.update(node)
    name = f"big-{uuid.uuid4().hex[:5]}"
    await env.client.create(make_pod(name, cpu="6"))
    expected = ("0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, "
                "2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for "
                "scheduling, 2 No preemption victims found for incoming pod.")

    async def condition() -> core_pb2.PodCondition | None:
        p = await env.client.get(core_pb2.Pod, name, namespace="default")
        return next((c for c in p.status.conditions if c.type == "PodScheduled" and c.status == "False"), None)

    cond = await eventually(condition, what="PodScheduled=False")
    assert (cond.reason, cond.message) == ("Unschedulable", expected)

    async def failed_event() -> core_pb2.Event | None:
        return next((e for e in await events_for(env.client, name) if e.reason == "FailedScheduling"), None)

    ev = await eventually(failed_event, what="FailedScheduling event")
    assert (ev.type, ev.message) == ("Warning", expected)

    async def explained() -> bool:
        p = await env.client.get(core_pb2.Pod, name, namespace="default")
        return "scheduler.flotilla.dev/explanation" in p.metadata.annotations

    await eventually(explained, what="explanation annotation")
    out = await asyncio.to_thread(flotctl, env, "explain", f"pod/{name}")
    assert out.returncode == 0, out.stderr
    assert "Unschedulable" in out.stdout and expected in out.stdout
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.split()}
    assert "TaintToleration: node(s) had untolerated taint {node.kubernetes.io/unreachable: }" in lines[tainted]
    for other in set(env.hc.nodes) - {tainted}:
        assert "NodeResourcesFit: Insufficient cpu" in lines[other]

    # A node that fits appears: the parked pod is retried and bound there.
    env.hc.capacity = {"cpu": "8", "memory": "16Gi", "pods": "110"}
    big = await env.hc.add_node()

    async def bound() -> str:
        return (await env.client.get(core_pb2.Pod, name, namespace="default")).spec.node_name

    assert await eventually(bound, what="pod bound to the new node") == big.name
    out = await asyncio.to_thread(flotctl, env, "explain", name, "-o", "json")
    assert out.returncode == 0 and f'"node": "{big.name}"' in out.stdout


async def test_explain_errors(env: Env) -> None:
    out = await asyncio.to_thread(flotctl, env, "explain", "pod/nope")
    assert out.returncode == 1 and "Error from server (NotFound): " in out.stderr, out.stderr
    out = await asyncio.to_thread(flotctl, env, "explain", "deploy/x")
    assert out.returncode != 0 and "only pods" in out.stderr


async def test_runs_alone_as_a_process(etcd_cluster: Any) -> None:
    async with in_process_master(etcd_cluster.endpoints) as m:
        client = await Client.connect(m.grpc_target)
        proc = subprocess.Popen([sys.executable, "-m", "master.scheduler", "--master", m.grpc_target,
                                 "--seed", "3", "--leader-elect-identity", "solo-1"],
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            async with hollow_cluster(client, nodes=2, prefix=f"s{uuid.uuid4().hex[:4]}") as hc:
                name = f"solo-{uuid.uuid4().hex[:5]}"
                await client.create(make_pod(name))

                async def bound() -> core_pb2.Pod | None:
                    p = await client.get(core_pb2.Pod, name, namespace="default")
                    return p if p.spec.node_name else None

                p = await eventually(bound, what="pod bound by the scheduler process")
                assert p.spec.node_name in hc.nodes
                assert "scheduler.flotilla.dev/explanation" in p.metadata.annotations
                assert proc.poll() is None
                lease = await client.get(coordination_pb2.Lease, "flotilla-scheduler", namespace="kube-system")
                assert lease.spec.holder_identity == "solo-1"
            proc.terminate()  # SIGTERM: a clean stop gives the lease up for the next scheduler
            # waited for in a thread: the in-process master must go on answering (the release)
            assert await asyncio.to_thread(proc.wait, 20) == 0
            said = proc.stderr.read().decode()[-3000:] if proc.stderr else ""

            async def released() -> bool:
                lease = await client.get(coordination_pb2.Lease, "flotilla-scheduler", namespace="kube-system")
                return not lease.spec.holder_identity

            await eventually(released, what=f"the lease released (the scheduler said: {said})", timeout_s=10)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            await client.close()


async def test_rest_binding_copies_annotations_onto_the_pod(env: Env) -> None:
    import json
    import urllib.request

    name = f"manual-{uuid.uuid4().hex[:5]}"
    p = make_pod(name)
    p.spec.scheduler_name = "someone-else"  # the default scheduler leaves it alone
    await env.client.create(p)
    node = sorted(env.hc.nodes)[0]
    body = {"apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": name, "annotations": {"example.com/why": "by hand"}},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node}}

    def post() -> int:
        req = urllib.request.Request(f"{env.master.url}/api/v1/namespaces/default/pods/{name}/binding",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)

    assert await asyncio.to_thread(post) == 201
    bound = await env.client.get(core_pb2.Pod, name, namespace="default")
    assert bound.spec.node_name == node
    assert bound.metadata.annotations["example.com/why"] == "by hand"
    out = await asyncio.to_thread(flotctl, env, "explain", f"pod/{name}")
    assert out.returncode == 1 and f"bound to {node} without the scheduler" in out.stderr
