"""The DaemonSet controller: applies `plan_daemonset` for every DaemonSet.

Watches DaemonSets, Pods (a pod change enqueues its controlling DaemonSet)
and Nodes: a node joining, leaving, or changing labels, taints or
schedulability enqueues every DaemonSet. The decisions live in
master/reconcile/daemonset.py; this module only reads informers and applies
the plan through workloadbase.OwnerController.
"""

from __future__ import annotations

from typing import Any

from master.controllers.base import ControllerContext
from master.controllers.workloadbase import OwnerController
from master.reconcile.daemonset import plan_daemonset
from master.reconcile.workloadpods import Plan
from protos.apps.v1 import apps_pb2
from protos.core.v1 import core_pb2


def _placement_facts(node: core_pb2.Node) -> tuple[Any, ...]:
    return (dict(node.metadata.labels),
            [t.SerializeToString(deterministic=True) for t in node.spec.taints],
            node.spec.unschedulable)


class DaemonSetController(OwnerController):
    name = "daemonset"
    owner_cls = apps_pb2.DaemonSet
    child_cls = core_pb2.Pod
    owner_kind = "DaemonSet"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.nodes = ctx.informers.informer(core_pb2.Node)
        self.nodes.add_handler(
            on_add=lambda _n: self._enqueue_all(),
            on_update=lambda old, new: (self._enqueue_all()
                                        if _placement_facts(old) != _placement_facts(new) else None),
            on_delete=lambda _n: self._enqueue_all(),
        )

    def _enqueue_all(self) -> None:
        for key in self.owners.keys():
            self.queue.add(key)

    def plan(self, owner: Any, children: list[Any]) -> Plan:
        return plan_daemonset(owner, self.nodes.list(), children, now=self.clock.wall())
