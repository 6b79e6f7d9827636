"""The node lifecycle controller: heartbeats -> Ready=Unknown -> taints ->
NoExecute evictions (Kubernetes' node lifecycle and taint eviction
controllers in one).

Informers: Nodes, Leases in kube-node-lease (a lease renewal enqueues its
node) and Pods (indexed by node name; a pod change enqueues its node).
`sync(node)`:

1. `plan_node_health` from the Lease's renewTime and the Ready condition:
   once `grace_period_s` has passed since the last heartbeat, every kubelet
   condition goes Unknown (NodeStatusUnknown) and a NodeNotReady event is
   recorded; otherwise the node is looked at again when the heartbeat
   expires. The agent side (whoever renews the lease) sets Ready back to
   True.
2. `plan_taints`: unreachable (Ready Unknown) or not-ready (Ready False),
   NoSchedule and NoExecute; both removed when Ready is True.
3. For every pod on the node with a NoExecute taint: `plan_eviction`; a pod
   that must go now is deleted (event TaintManagerEviction "Marking for
   deletion Pod NS/NAME"); otherwise the node is looked at again when the
   earliest toleration runs out.

Options (ControllerContext.option("nodelifecycle", ...)): grace_period_s
(40), lease_namespace ("kube-node-lease").
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, ClassVar

from master.client.errors import APIError, NotFound
from master.client.events import NORMAL
from master.controllers.base import Controller, ControllerContext
from master.reconcile import nodelifecycle as plan
from protos.coordination.v1 import coordination_pb2
from protos.core.v1 import core_pb2

_BY_NODE = "nodelifecycle-node"
# Event sources as Kubernetes names them (kubectl describe's From column).
NODE_COMPONENT = "node-controller"
EVICTION_COMPONENT = "taint-eviction-controller"


class NodeLifecycleController(Controller):
    name: ClassVar[str] = "nodelifecycle"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.grace_s = float(ctx.option(self.name, "grace_period_s", 40.0))
        self.lease_ns = str(ctx.option(self.name, "lease_namespace", "kube-node-lease"))
        self.nodes = ctx.informers.informer(core_pb2.Node)
        self.nodes.add_handler(**self.enqueue_handlers())
        self.leases = ctx.informers.informer(coordination_pb2.Lease, namespace=self.lease_ns)
        self.leases.add_handler(on_add=self._lease_changed,
                                on_update=lambda _o, n: self._lease_changed(n),
                                on_delete=self._lease_changed)
        self.first_seen: dict[str, _dt.datetime] = {}  # node name -> first sync (clock.wall)
        self.pods = ctx.informers.informer(core_pb2.Pod)
        self.pods.add_index(_BY_NODE, lambda p: [p.spec.node_name] if p.spec.node_name else [])
        self.pods.add_handler(on_add=self._pod_changed,
                              on_update=lambda _o, n: self._pod_changed(n))

    def _lease_changed(self, lease: Any) -> None:
        self.queue.add(lease.metadata.name)

    def _pod_changed(self, pod: Any) -> None:
        if pod.spec.node_name:
            self.queue.add(pod.spec.node_name)

    async def sync(self, key: str) -> None:
        node = self.nodes.get(key)
        if node is None:
            self.first_seen.pop(key, None)
            return
        now = self.clock.wall()
        since = self.first_seen.setdefault(key, now)
        lease = self.leases.get(f"{self.lease_ns}/{key}")
        health = plan.plan_node_health(node, lease, now=now, grace_s=self.grace_s,
                                       observed_since=since)
        if health.mark_unknown:
            node = await self._mark_unknown(node, now)
            if node is None:
                return
        elif health.recheck_after_s is not None:
            self.queue.add_after(key, health.recheck_after_s + 0.05)
        node = await self._sync_taints(node, now)
        if node is not None:
            await self._evict(node, now)

    async def _mark_unknown(self, node: Any, now: _dt.datetime) -> Any | None:
        new = core_pb2.Node()
        new.CopyFrom(node)
        plan.mark_unknown(new, now=now)
        try:
            updated = await self.client.update_status(new)
        except NotFound:
            return None
        self.recorder.event(updated, NORMAL, "NodeNotReady",
                            f"Node {updated.metadata.name} status is now: NodeNotReady",
                            component=NODE_COMPONENT)
        return updated

    async def _sync_taints(self, node: Any, now: _dt.datetime) -> Any | None:
        taints = plan.plan_taints(node)
        if not taints.changed:
            return node
        new = core_pb2.Node()
        new.CopyFrom(node)
        plan.apply_taints(new, taints, now=now)
        try:
            return await self.client.update(new)
        except NotFound:
            return None

    async def _evict(self, node: Any, now: _dt.datetime) -> None:
        if not any(t.effect == plan.NO_EXECUTE for t in node.spec.taints):
            return
        soonest: float | None = None
        for pod in self.pods.by_index(_BY_NODE, node.metadata.name):
            if pod.metadata.HasField("deletion_timestamp"):
                continue
            wait_s = plan.plan_eviction(list(pod.spec.tolerations), list(node.spec.taints), now=now)
            if wait_s is None:
                continue
            if wait_s > 0:
                soonest = wait_s if soonest is None else min(soonest, wait_s)
                continue
            self.recorder.event(pod, NORMAL, "TaintManagerEviction",
                                f"Marking for deletion Pod {pod.metadata.namespace}/{pod.metadata.name}",
                                component=EVICTION_COMPONENT)
            try:
                await self.client.delete(core_pb2.Pod, pod.metadata.name, namespace=pod.metadata.namespace,
                                         precondition_uid=pod.metadata.uid)
            except NotFound:
                continue
            except APIError as exc:
                if exc.code != 409:
                    raise
        if soonest is not None:
            self.queue.add_after(node.metadata.name, soonest + 0.05)
