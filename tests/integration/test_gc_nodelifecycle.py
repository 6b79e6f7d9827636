"""Cascading deletion with kubectl (background, foreground, orphan) and node
failure handling (Ready=Unknown, taints, NoExecute eviction, recovery),
against a real apiserver on the real etcd cluster with the garbage
collector and node lifecycle controllers in-process; hollow nodes play the
agents."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

from master.client import Client, NotFound
from master.scheduler import Scheduler
from protos.apps.v1 import apps_pb2
from protos.core.v1 import core_pb2
from tests.integration.harness import eventually
from tests.integration.hollow import hollow_cluster
from tests.integration.lifecycle import Controlled, controlled_master


def configmap(name: str, ns: str, *owners: core_pb2.ConfigMap, block: bool = True) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap()
    cm.metadata.name = name
    cm.metadata.namespace = ns
    for o in owners:
        cm.metadata.owner_references.add(api_version="v1", kind="ConfigMap", name=o.metadata.name,
                                         uid=o.metadata.uid, block_owner_deletion=block)
    return cm


async def exists(client: Client, name: str, ns: str) -> core_pb2.ConfigMap | None:
    try:
        return await client.get(core_pb2.ConfigMap, name, namespace=ns)
    except NotFound:
        return None


async def family(c: Controlled, ns: str) -> tuple[core_pb2.ConfigMap, ...]:
    """owner <- mid <- leaf (blocking references), and owner <- loose (not blocking)."""
    client = c.client
    owner = await client.create(configmap("owner", ns))
    mid = await client.create(configmap("mid", ns, owner))
    leaf = await client.create(configmap("leaf", ns, mid))
    loose = await client.create(configmap("loose", ns, owner, block=False))
    return owner, mid, leaf, loose


async def test_cascading_delete_with_kubectl_in_all_three_modes(etcd_cluster: Any) -> None:
    async with controlled_master(etcd_cluster.endpoints, controllers=["garbagecollector"],
                                 options={"garbagecollector": {"recheck_s": 0.2}}) as c:
        client = c.client
        ns = f"gc-{uuid.uuid4().hex[:8]}"
        ns_obj = core_pb2.Namespace()
        ns_obj.metadata.name = ns
        await client.create(ns_obj)

        # Background (kubectl's default): the owner goes at once, dependents after.
        await family(c, ns)
        res = await c.kubectl("delete", "configmap", "owner", "-n", ns)
        assert res.returncode == 0, res.stderr
        assert 'configmap "owner" deleted' in res.stdout
        for name in ("mid", "leaf", "loose"):
            await eventually(lambda n=name: _gone(client, n, ns), what=f"{name} collected")

        # Foreground: kubectl waits for the owner, which goes only after its
        # blocking dependents (and theirs) are gone.
        await family(c, ns)
        res = await c.kubectl("delete", "configmap", "owner", "-n", ns, "--cascade=foreground")
        assert res.returncode == 0, res.stderr
        assert await exists(client, "owner", ns) is None
        assert await exists(client, "mid", ns) is None
        assert await exists(client, "leaf", ns) is None
        await eventually(lambda: _gone(client, "loose", ns), what="loose collected")

        # Orphan: the owner goes, dependents stay without the reference.
        _, mid, _, _ = await family(c, ns)
        res = await c.kubectl("delete", "configmap", "owner", "-n", ns, "--cascade=orphan")
        assert res.returncode == 0, res.stderr
        assert await exists(client, "owner", ns) is None
        for name in ("mid", "loose"):
            kept = await exists(client, name, ns)
            assert kept is not None and list(kept.metadata.owner_references) == [], name
        leaf = await exists(client, "leaf", ns)
        assert leaf is not None and [r.uid for r in leaf.metadata.owner_references] == [mid.metadata.uid]


async def test_delete_puts_the_finalizers_its_propagation_policy_asks_for(etcd_cluster: Any) -> None:
    """No garbage collector runs here: the apiserver's part alone."""
    async with controlled_master(etcd_cluster.endpoints, controllers=[]) as c:
        client = c.client
        for policy, want in (("Foreground", ["foregroundDeletion"]), ("Orphan", ["orphan"])):
            name = f"{policy.lower()}-{uuid.uuid4().hex[:6]}"
            await client.create(configmap(name, "default"))
            held = await client.delete(core_pb2.ConfigMap, name, namespace="default",
                                       propagation_policy=policy)
            assert held is not None and list(held.metadata.finalizers) == want
            assert held.metadata.HasField("deletion_timestamp")
            # A later Background delete drops the GC finalizer, and the object goes.
            await client.delete(core_pb2.ConfigMap, name, namespace="default",
                                propagation_policy="Background")
            assert await exists(client, name, "default") is None
        name = f"background-{uuid.uuid4().hex[:6]}"
        await client.create(configmap(name, "default"))
        await client.delete(core_pb2.ConfigMap, name, namespace="default", propagation_policy="Background")
        assert await exists(client, name, "default") is None


async def test_foreground_delete_of_a_replicaset_waits_for_its_pods(etcd_cluster: Any) -> None:
    """Pods on a (hollow) node: each goes through its grace period and the
    agent's grace-0 delete while it carries foregroundDeletion, then goes."""
    async with controlled_master(etcd_cluster.endpoints, controllers=["garbagecollector"],
                                 options={"garbagecollector": {"recheck_s": 0.2}}) as c, \
            hollow_cluster(c.client, nodes=1, prefix=f"gc{uuid.uuid4().hex[:4]}") as hc:
        client = c.client
        name = f"rs-{uuid.uuid4().hex[:6]}"
        rs = apps_pb2.ReplicaSet()
        rs.metadata.name, rs.metadata.namespace = name, "default"
        rs.spec.selector.match_labels["app"] = name
        rs.spec.template.metadata.labels["app"] = name
        rs.spec.template.spec.containers.add(name="c", image="busybox")
        rs = await client.create(rs)
        pods = []
        for i in range(2):
            p = core_pb2.Pod()
            p.metadata.name, p.metadata.namespace = f"{name}-{i}", "default"
            p.metadata.labels["app"] = name
            p.metadata.owner_references.add(api_version="apps/v1", kind="ReplicaSet", name=name,
                                            uid=rs.metadata.uid, controller=True,
                                            block_owner_deletion=True)
            p.spec.node_name = next(iter(hc.nodes))
            p.spec.containers.add(name="c", image="busybox")
            pods.append(await client.create(p))
        res = await c.kubectl("delete", "replicaset", name, "-n", "default", "--cascade=foreground")
        assert res.returncode == 0, res.stderr
        for p in pods:
            try:
                await client.get(core_pb2.Pod, p.metadata.name, namespace="default")
            except NotFound:
                continue
            raise AssertionError(f"{p.metadata.name} outlived its foreground-deleted owner")


async def _gone(client: Client, name: str, ns: str) -> bool:
    return await exists(client, name, ns) is None


async def test_a_dependent_whose_owner_never_existed_is_collected_but_a_live_owner_keeps_it(
        etcd_cluster: Any) -> None:
    async with controlled_master(etcd_cluster.endpoints, controllers=["garbagecollector"]) as c:
        client = c.client
        owner = await client.create(configmap("alive", "default"))
        kept = await client.create(configmap(f"kept-{uuid.uuid4().hex[:6]}", "default", owner))
        ghost = core_pb2.ConfigMap()
        ghost.metadata.name, ghost.metadata.uid = "ghost", str(uuid.uuid4())
        orphaned = await client.create(configmap(f"orphan-{uuid.uuid4().hex[:6]}", "default", ghost))
        await eventually(lambda: _gone(client, orphaned.metadata.name, "default"), what="collected")
        assert await exists(client, kept.metadata.name, "default") is not None
        await client.delete(core_pb2.ConfigMap, "alive", namespace="default")
        await eventually(lambda: _gone(client, kept.metadata.name, "default"), what="kept collected")


# --- node lifecycle ----------------------------------------------------------------------

def bound_pod(name: str, node: str, *tolerations: core_pb2.Toleration) -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.name = name
    p.metadata.namespace = "default"
    p.spec.node_name = node
    p.spec.containers.add(name="c", image="busybox")
    for t in tolerations:
        p.spec.tolerations.add().CopyFrom(t)
    return p


def ready(node: core_pb2.Node) -> tuple[str, str]:
    for cnd in node.status.conditions:
        if cnd.type == "Ready":
            return cnd.status, cnd.reason
    return "", ""


async def test_a_node_that_stops_heartbeating_is_tainted_and_its_pods_evicted(etcd_cluster: Any) -> None:
    async with controlled_master(etcd_cluster.endpoints, controllers=["nodelifecycle"],
                                 options={"nodelifecycle": {"grace_period_s": 2}},
                                 default_toleration_seconds=2) as c, \
            hollow_cluster(c.client, nodes=2, renew_period_s=0.3, prefix=f"nl{uuid.uuid4().hex[:4]}") as hc:
        client = c.client
        dead, alive = sorted(hc.nodes)
        forever = core_pb2.Toleration(key="node.kubernetes.io/unreachable", operator="Exists",
                                      effect="NoExecute")
        evicted = await client.create(bound_pod(f"evicted-{uuid.uuid4().hex[:6]}", dead))
        stays = await client.create(bound_pod(f"stays-{uuid.uuid4().hex[:6]}", dead, forever))
        other = await client.create(bound_pod(f"other-{uuid.uuid4().hex[:6]}", alive))
        # DefaultTolerationSeconds gave the plain pod both tolerations, 2 s each.
        assert sorted((t.key, t.toleration_seconds) for t in evicted.spec.tolerations) == [
            ("node.kubernetes.io/not-ready", 2), ("node.kubernetes.io/unreachable", 2)]

        hc.stop_heartbeat(dead)
        stopped = _dt.datetime.now(_dt.UTC)

        async def unreachable() -> core_pb2.Node | None:
            node = await client.get(core_pb2.Node, dead)
            keys = {(t.key, t.effect) for t in node.spec.taints}
            want = {("node.kubernetes.io/unreachable", "NoSchedule"),
                    ("node.kubernetes.io/unreachable", "NoExecute")}
            return node if ready(node) == ("Unknown", "NodeStatusUnknown") and want <= keys else None

        node = await eventually(unreachable, what="node Unknown and tainted")
        cond = next(x for x in node.status.conditions if x.type == "Ready")
        assert cond.message == "Kubelet stopped posting node status."

        async def pod_gone(name: str) -> bool:
            try:
                await client.get(core_pb2.Pod, name, namespace="default")
            except NotFound:
                return True
            return False

        await eventually(lambda: pod_gone(evicted.metadata.name), what="pod evicted")
        # Not before its toleration ran out (grace 2 s + tolerationSeconds 2 s).
        assert (_dt.datetime.now(_dt.UTC) - stopped).total_seconds() >= 2
        assert not await pod_gone(stays.metadata.name)
        assert not await pod_gone(other.metadata.name)
        alive_node = await client.get(core_pb2.Node, alive)
        assert ready(alive_node)[0] == "True" and not list(alive_node.spec.taints)

        async def events() -> set[tuple[str, str]]:
            items, _ = await client.list(core_pb2.Event, namespace="default")
            return {(e.reason, e.message) for e in items}

        want_events = {("NodeNotReady", f"Node {dead} status is now: NodeNotReady"),
                       ("TaintManagerEviction", f"Marking for deletion Pod default/{evicted.metadata.name}")}
        await eventually(lambda: _superset(events, want_events), what="events recorded")
        res = await c.kubectl("describe", "node", dead)
        assert res.returncode == 0, res.stderr
        assert "NodeNotReady" in res.stdout and "node.kubernetes.io/unreachable:NoExecute" in res.stdout
        assert "node-controller" in res.stdout  # the From column, as Kubernetes names the source

        # The heartbeat returns: Ready again, taints gone.
        await hc.resume_heartbeat(dead)

        async def recovered() -> bool:
            n = await client.get(core_pb2.Node, dead)
            return ready(n)[0] == "True" and not list(n.spec.taints)

        await eventually(recovered, what="node recovered")
        assert not await pod_gone(stays.metadata.name)


async def _superset(fetch: Any, want: set[tuple[str, str]]) -> bool:
    return want <= await fetch()


async def test_pods_of_a_node_that_stops_heartbeating_are_recreated_elsewhere(etcd_cluster: Any) -> None:
    """Node lifecycle evicts, the ReplicaSet controller replaces, the real
    scheduler places the new pods on live nodes (the dead one is Unknown and
    tainted unreachable, so its filters keep pods off it)."""
    async with controlled_master(etcd_cluster.endpoints, controllers=["nodelifecycle", "replicaset"],
                                 options={"nodelifecycle": {"grace_period_s": 2}},
                                 default_toleration_seconds=1) as c, \
            hollow_cluster(c.client, nodes=3, renew_period_s=0.3,
                           prefix=f"re{uuid.uuid4().hex[:4]}") as hc, \
            running_scheduler(c.client):
        client = c.client
        app = f"web-{uuid.uuid4().hex[:6]}"
        rs = apps_pb2.ReplicaSet()
        rs.metadata.name, rs.metadata.namespace = app, "default"
        rs.spec.replicas = 6
        rs.spec.selector.match_labels["app"] = app
        rs.spec.template.metadata.labels["app"] = app
        rs.spec.template.spec.containers.add(name="c", image="busybox")
        await client.create(rs)

        async def running() -> list[core_pb2.Pod]:
            pods, _ = await client.list(core_pb2.Pod, namespace="default", label_selector=f"app={app}")
            live = [p for p in pods if p.status.phase == "Running" and not p.metadata.HasField("deletion_timestamp")]
            return live if len(live) == 6 else []

        before = await eventually(running, what="6 pods running")
        dead = sorted(hc.nodes)[0]
        lost = {p.metadata.name for p in before if p.spec.node_name == dead}
        assert lost, "the scheduler spread no pod onto the first node"
        hc.stop_heartbeat(dead)

        async def moved() -> list[core_pb2.Pod]:
            pods = await running()
            if pods and all(p.spec.node_name != dead for p in pods):
                return pods
            return []

        after = await eventually(moved, timeout_s=60, what="pods recreated on live nodes")
        assert not lost & {p.metadata.name for p in after}


@contextlib.asynccontextmanager
async def running_scheduler(client: Client) -> AsyncIterator[Scheduler]:
    scheduler = Scheduler(client, seed=7)
    ready = asyncio.Event()
    task = asyncio.create_task(scheduler.run(ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        yield scheduler
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_deleting_a_deployment_takes_its_replicasets_and_pods(etcd_cluster: Any) -> None:
    """The whole chain with the workload controllers running: kubectl's
    default (background) and foreground deletes of a Deployment."""
    async with controlled_master(etcd_cluster.endpoints,
                                 controllers=["garbagecollector", "deployment", "replicaset"],
                                 options={"garbagecollector": {"recheck_s": 0.2}}) as c, \
            hollow_cluster(c.client, nodes=2, binder=True, prefix=f"dp{uuid.uuid4().hex[:4]}"):
        client = c.client
        for cascade in ("background", "foreground"):
            app = f"{cascade[:4]}-{uuid.uuid4().hex[:6]}"
            d = apps_pb2.Deployment()
            d.metadata.name, d.metadata.namespace = app, "default"
            d.spec.replicas = 3
            d.spec.selector.match_labels["app"] = app
            d.spec.template.metadata.labels["app"] = app
            d.spec.template.spec.containers.add(name="c", image="busybox")
            await client.create(d)

            async def pods(app: str = app) -> list[core_pb2.Pod]:
                items, _ = await client.list(core_pb2.Pod, namespace="default", label_selector=f"app={app}")
                return items

            await eventually(lambda: _count(pods, 3), what=f"{app}: 3 pods")
            sets, _ = await client.list(apps_pb2.ReplicaSet, namespace="default", label_selector=f"app={app}")
            assert len(sets) == 1
            res = await c.kubectl("delete", "deployment", app, f"--cascade={cascade}")
            assert res.returncode == 0, res.stderr

            async def cleaned(app: str = app) -> bool:
                sets, _ = await client.list(apps_pb2.ReplicaSet, namespace="default",
                                            label_selector=f"app={app}")
                return not sets and not await pods(app)

            await eventually(cleaned, what=f"{app}: replicasets and pods collected")


async def _count(fetch: Any, n: int) -> bool:
    return len(await fetch()) == n
