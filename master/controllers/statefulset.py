"""The StatefulSet controller: applies `plan_statefulset` for every StatefulSet.

Watches StatefulSets and Pods (a pod change enqueues its controlling
StatefulSet). Decisions live in master/reconcile/statefulset.py; Events use
Kubernetes' StatefulSet wording ("create Pod web-0 in StatefulSet web
successful").
"""

from __future__ import annotations

from typing import Any

from master.controllers.workloadbase import OwnerController
from master.reconcile.statefulset import plan_statefulset
from master.reconcile.workloadpods import Plan
from protos.apps.v1 import apps_pb2
from protos.core.v1 import core_pb2


class StatefulSetController(OwnerController):
    name = "statefulset"
    owner_cls = apps_pb2.StatefulSet
    child_cls = core_pb2.Pod
    owner_kind = "StatefulSet"

    def plan(self, owner: Any, children: list[Any]) -> Plan:
        return plan_statefulset(owner, children, now=self.clock.wall())

    def create_message(self, owner: Any, name: str) -> str:
        return f"create Pod {name} in StatefulSet {owner.metadata.name} successful"

    def delete_message(self, owner: Any, name: str) -> str:
        return f"delete Pod {name} in StatefulSet {owner.metadata.name} successful"
