"""Two `flotilla-master` processes on one cluster: one leads, the other takes over.

Both serve the API; only the holder of the Lease kube-system/flotilla-controller-manager
runs the controllers. A Deployment rollout is held half-way (its new pods are
not Ready, via the hollow nodes' annotation), the leader is killed with
SIGKILL, and the survivor must take the lease within 15 s and finish the
rollout. Hollow nodes and the test's client talk to the survivor only.

The masters run with a 10 s lease (renew deadline 6 s, retry 1 s) so the
handover bound has room on a loaded machine; the defaults (15 s / 10 s /
2 s) are the same code with other numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import uuid
from pathlib import Path

from deploy.etcd_cluster import EtcdCluster
from master.client import Client
from master.client.errors import Conflict, NotFound
from protos.apps.v1 import apps_pb2
from protos.coordination.v1 import coordination_pb2
from protos.core.v1 import core_pb2
from tests.integration.harness import master_process
from tests.integration.hollow import READY_ANNOTATION, hollow_cluster

ELECTION = ("--leader-elect-lease-duration", "10", "--leader-elect-renew-deadline", "6",
            "--leader-elect-retry-period", "1")


async def lease_holder(client: Client) -> tuple[str, int]:
    try:
        lease = await client.get(coordination_pb2.Lease, "flotilla-controller-manager", namespace="kube-system")
    except NotFound:
        return "", 0
    return lease.spec.holder_identity, lease.spec.lease_transitions


def deployment(ns: str) -> apps_pb2.Deployment:
    d = apps_pb2.Deployment(api_version="apps/v1", kind="Deployment")
    d.metadata.name, d.metadata.namespace = "web", ns
    d.spec.replicas = 4
    d.spec.selector.match_labels["app"] = "web"
    d.spec.strategy.type = "RollingUpdate"
    d.spec.strategy.rolling_update.max_surge.number_value = 1
    d.spec.strategy.rolling_update.max_unavailable.number_value = 0
    d.spec.template.metadata.labels["app"] = "web"
    d.spec.template.spec.containers.add(name="main", image="nginx:1.25")
    return d


async def rolled_out(client: Client, ns: str, image: str) -> bool:
    d = await client.get(apps_pb2.Deployment, "web", namespace=ns)
    s = d.status
    return (d.spec.template.spec.containers[0].image == image and s.observed_generation >= d.metadata.generation
            and s.updated_replicas == s.replicas == s.available_replicas == 4)


async def wait_until(what: str, check, timeout_s: float = 60) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def make_ready(client: Client, ns: str) -> None:
    """Flip every held pod to Ready, over and over (new ones keep arriving)."""
    while True:
        pods, _ = await client.list(core_pb2.Pod, namespace=ns)
        for p in pods:
            if p.metadata.annotations.get(READY_ANNOTATION) == "false":
                p.metadata.annotations[READY_ANNOTATION] = "true"
                with contextlib.suppress(Conflict, NotFound):
                    await client.update(p)
        await asyncio.sleep(0.3)


async def test_killing_the_leader_hands_over_and_the_rollout_completes(etcd_cluster: EtcdCluster) -> None:
    prefix = f"/test-{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory(prefix="flotilla-ha-") as tmp, \
            master_process(etcd_cluster.endpoints, Path(tmp), prefix=prefix, name="m1",
                           extra_args=("--leader-elect-identity", "m1", *ELECTION)) as m1, \
            master_process(etcd_cluster.endpoints, Path(tmp), prefix=prefix, name="m2",
                           extra_args=("--leader-elect-identity", "m2", *ELECTION)) as m2:
        async with await Client.connect(m1.grpc_target) as c1:
            await wait_until("a leader", lambda: _has_holder(c1))
            leader_id, transitions = await lease_holder(c1)
        leader, survivor = (m1, m2) if leader_id == "m1" else (m2, m1)
        survivor_id = "m2" if leader_id == "m1" else "m1"

        async with await Client.connect(survivor.grpc_target) as client, \
                hollow_cluster(client, nodes=3, binder=False):
            ns = f"ha-{uuid.uuid4().hex[:8]}"
            namespace = core_pb2.Namespace(api_version="v1", kind="Namespace")
            namespace.metadata.name = ns
            await client.create(namespace)
            await client.create(deployment(ns))
            await wait_until("the first rollout", lambda: rolled_out(client, ns, "nginx:1.25"))

            # Start a rollout whose new pods stay unready: it stops after one surge pod.
            d = await client.get(apps_pb2.Deployment, "web", namespace=ns)
            d.spec.template.spec.containers[0].image = "nginx:1.26"
            d.spec.template.metadata.annotations[READY_ANNOTATION] = "false"
            await client.update(d)
            await wait_until("a held surge pod", lambda: _held_pods(client, ns))
            assert not await rolled_out(client, ns, "nginx:1.26")

            leader.proc.kill()  # SIGKILL: no release, the lease must expire
            killed_at = time.monotonic()
            leader.proc.wait(timeout=10)
            await wait_until("the survivor to lead", lambda: _holder_is(client, survivor_id), timeout_s=30)
            handover_s = time.monotonic() - killed_at
            assert handover_s < 15, f"handover took {handover_s:.1f}s"
            holder, after = await lease_holder(client)
            assert holder == survivor_id and after == transitions + 1

            flipper = asyncio.create_task(make_ready(client, ns))
            try:
                await wait_until("the rollout to finish under the new leader",
                                 lambda: rolled_out(client, ns, "nginx:1.26"), timeout_s=60)
            finally:
                flipper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flipper
            print(f"leader handover after SIGKILL: {handover_s:.1f}s")


async def _has_holder(client: Client) -> bool:
    return bool((await lease_holder(client))[0])


async def _holder_is(client: Client, identity: str) -> bool:
    return (await lease_holder(client))[0] == identity


async def _held_pods(client: Client, ns: str) -> bool:
    pods, _ = await client.list(core_pb2.Pod, namespace=ns)
    return any(p.metadata.annotations.get(READY_ANNOTATION) == "false" and p.status.phase == "Running"
               for p in pods)
