"""Namespace deletion and ResourceQuota against a real apiserver on the real
etcd cluster, with the namespace and quota controllers running in-process."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from master.client import Client, NotFound
from master.client.errors import APIError, Forbidden
from protos.apps.v1 import apps_pb2
from protos.coordination.v1 import coordination_pb2
from protos.core.v1 import core_pb2
from tests.integration.harness import eventually
from tests.integration.hollow import hollow_cluster
from tests.integration.lifecycle import controlled_master


def pod(name: str, *, node: str = "", cpu: str = "", memory: str = "") -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.name = name
    ctr = p.spec.containers.add(name="c", image="busybox")
    if cpu:
        ctr.resources.requests["cpu"] = cpu
    if memory:
        ctr.resources.requests["memory"] = memory
    if node:
        p.spec.node_name = node
    return p


def in_ns(obj: Any, ns: str) -> Any:
    obj.metadata.namespace = ns
    return obj


async def make_namespace(client: Client, *, finalizers: list[str] | None = None) -> str:
    ns = core_pb2.Namespace()
    ns.metadata.name = f"lc-{uuid.uuid4().hex[:8]}"
    ns.metadata.finalizers.extend(finalizers or [])
    await client.create(ns)
    return ns.metadata.name


# --- namespace deletion --------------------------------------------------------------

async def test_deleting_a_namespace_removes_all_it_held_then_the_namespace(etcd_cluster: Any) -> None:
    async with controlled_master(etcd_cluster.endpoints, controllers=["namespace"],
                                 options={"namespace": {"deletion_delay_s": 0.2, "recheck_s": 0.2}}) as c, \
            hollow_cluster(c.client, nodes=1) as hc:
        client = c.client
        # A metadata finalizer keeps the namespace after its content is gone,
        # so the conditions the controller wrote can be read.
        name = await make_namespace(client, finalizers=["example.com/hold"])
        node = next(iter(hc.nodes))
        cm = in_ns(core_pb2.ConfigMap(), name)
        cm.metadata.name = "cm"
        secret = in_ns(core_pb2.Secret(), name)
        secret.metadata.name = "s"
        lease = in_ns(coordination_pb2.Lease(), name)
        lease.metadata.name = "l"
        deploy = in_ns(apps_pb2.Deployment(), name)
        deploy.metadata.name = "d"
        deploy.spec.selector.match_labels["app"] = "d"
        deploy.spec.template.metadata.labels["app"] = "d"
        deploy.spec.template.spec.containers.add(name="c", image="busybox")
        for obj in (cm, secret, lease, deploy, in_ns(pod("on-node", node=node), name),
                    in_ns(pod("nowhere", node="no-such-node"), name), in_ns(pod("pending"), name)):
            await client.create(obj)

        answer = await client.delete(core_pb2.Namespace, name)
        assert answer is not None and answer.status.phase == "Terminating"
        assert answer.metadata.HasField("deletion_timestamp")

        # Creating in a Terminating namespace is refused, as Kubernetes does.
        late = in_ns(core_pb2.ConfigMap(), name)
        late.metadata.name = "late"
        with pytest.raises(Forbidden) as refused:
            await client.create(late)
        assert str(refused.value) == (f"unable to create new content in namespace {name} "
                                      "because it is being terminated")

        async def emptied() -> core_pb2.Namespace | None:
            ns = await client.get(core_pb2.Namespace, name)
            return ns if not ns.spec.finalizers else None

        ns = await eventually(emptied, what="namespace content removed")
        for cls in (core_pb2.ConfigMap, core_pb2.Secret, core_pb2.Pod, apps_pb2.Deployment,
                    coordination_pb2.Lease):
            items, _ = await client.list(cls, namespace=name)
            assert items == [], (cls.DESCRIPTOR.name, [i.metadata.name for i in items])
        conditions = {cnd.type: (cnd.status, cnd.reason) for cnd in ns.status.conditions}
        assert conditions == {
            "NamespaceDeletionDiscoveryFailure": ("False", "ResourcesDiscovered"),
            "NamespaceDeletionGroupVersionParsingFailure": ("False", "ParsedGroupVersions"),
            "NamespaceDeletionContentFailure": ("False", "ContentDeleted"),
            "NamespaceContentRemaining": ("False", "ContentRemoved"),
            "NamespaceFinalizersRemaining": ("False", "ContentHasNoFinalizers"),
        }
        assert ns.status.phase == "Terminating"

        # Releasing the metadata finalizer lets the namespace go.
        del ns.metadata.finalizers[:]
        await client.update(ns)

        async def gone() -> bool:
            try:
                await client.get(core_pb2.Namespace, name)
            except NotFound:
                return True
            return False

        await eventually(gone, what="namespace gone")


# --- ResourceQuota ---------------------------------------------------------------------

def quota(name: str, ns: str, **hard: str) -> core_pb2.ResourceQuota:
    q = in_ns(core_pb2.ResourceQuota(), ns)
    q.metadata.name = name
    for k, v in hard.items():
        q.spec.hard[k.replace("_", ".")] = v
    return q


async def wait_used(client: Client, ns: str, name: str, want: dict[str, str]) -> core_pb2.ResourceQuota:
    async def check() -> core_pb2.ResourceQuota | None:
        q = await client.get(core_pb2.ResourceQuota, name, namespace=ns)
        ok = dict(q.status.hard) == dict(q.spec.hard) and dict(q.status.used) == want
        return q if ok else None

    return await eventually(check, what=f"quota {name} used={want}")


async def test_quota_rejects_the_pod_that_exceeds_it_with_kubernetes_message(etcd_cluster: Any) -> None:
    async with controlled_master(etcd_cluster.endpoints, controllers=["resourcequota"],
                                 options={"resourcequota": {"resync_s": 1}}) as c:
        client = c.client
        ns = await make_namespace(client)
        await client.create(quota("compute", ns, requests_cpu="2", pods="10"))
        await wait_used(client, ns, "compute", {"requests.cpu": "0", "pods": "0"})

        await client.create(in_ns(pod("first", cpu="1"), ns))
        with pytest.raises(Forbidden) as refused:
            await client.create(in_ns(pod("second", cpu="2"), ns))
        assert str(refused.value) == ('pods "second" is forbidden: exceeded quota: compute, '
                                      "requested: requests.cpu=2, used: requests.cpu=1, "
                                      "limited: requests.cpu=2")
        # The same refusal over REST, as kubectl shows it.
        manifest = json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "second"},
                               "spec": {"containers": [{"name": "c", "image": "busybox",
                                                        "resources": {"requests": {"cpu": "2"}}}]}})
        res = await c.kubectl("create", "-n", ns, "-f", "-", stdin=manifest)
        assert res.returncode == 1
        assert ('Error from server (Forbidden): error when creating "STDIN": pods "second" is forbidden: '
                "exceeded quota: compute, requested: requests.cpu=2, used: requests.cpu=1, "
                "limited: requests.cpu=2") in res.stderr, res.stderr
        with pytest.raises(Forbidden) as unspecified:
            await client.create(in_ns(pod("bare"), ns))
        assert str(unspecified.value) == ('pods "bare" is forbidden: failed quota: compute: '
                                          "must specify requests.cpu for: c")
        await client.create(in_ns(pod("half", cpu="500m"), ns))
        await wait_used(client, ns, "compute", {"requests.cpu": "1500m", "pods": "2"})

        # A terminal pod stops counting; then the big one fits.
        first = await client.get(core_pb2.Pod, "first", namespace=ns)
        first.status.phase = "Succeeded"
        await client.update_status(first)
        await wait_used(client, ns, "compute", {"requests.cpu": "500m", "pods": "1"})
        await client.create(in_ns(pod("third", cpu="1500m"), ns))

        # Object counts by name: a second configmap is one too many.
        await client.create(quota("objects", ns, configmaps="1"))
        cm = in_ns(core_pb2.ConfigMap(), ns)
        cm.metadata.name = "one"
        await client.create(cm)
        cm2 = in_ns(core_pb2.ConfigMap(), ns)
        cm2.metadata.name = "two"
        with pytest.raises(Forbidden) as counted:
            await client.create(cm2)
        assert str(counted.value) == ('configmaps "two" is forbidden: exceeded quota: objects, '
                                      "requested: configmaps=1, used: configmaps=1, limited: configmaps=1")


async def test_quota_holds_under_concurrent_creates(etcd_cluster: Any) -> None:
    async with controlled_master(etcd_cluster.endpoints, controllers=["resourcequota"],
                                 options={"resourcequota": {"resync_s": 0.2}}) as c:
        client = c.client
        ns = await make_namespace(client)
        await client.create(quota("pods", ns, pods="3"))
        await wait_used(client, ns, "pods", {"pods": "0"})

        async def create(i: int) -> bool:
            try:
                await client.create(in_ns(pod(f"p{i}"), ns))
            except Forbidden:
                return False
            return True

        # Two rounds: the controller rewrites status.used between them.
        results = await asyncio.gather(*(create(i) for i in range(12)))
        assert sum(results) == 3
        results = await asyncio.gather(*(create(i) for i in range(12, 20)))
        assert sum(results) == 0
        items, _ = await client.list(core_pb2.Pod, namespace=ns)
        assert len(items) == 3
        await wait_used(client, ns, "pods", {"pods": "3"})


async def test_a_quota_update_that_is_not_status_is_kept_by_the_controller(etcd_cluster: Any) -> None:
    """status.hard follows spec.hard when the quota is raised."""
    async with controlled_master(etcd_cluster.endpoints, controllers=["resourcequota"]) as c:
        client = c.client
        ns = await make_namespace(client)
        await client.create(quota("q", ns, pods="1"))
        await wait_used(client, ns, "q", {"pods": "0"})
        current = await client.get(core_pb2.ResourceQuota, "q", namespace=ns)
        current.spec.hard["pods"] = "5"
        try:
            await client.update(current)
        except APIError as exc:  # pragma: no cover - explains a failure
            raise AssertionError(str(exc)) from exc
        await wait_used(client, ns, "q", {"pods": "0"})
