"""NodeUnschedulable: a cordoned node (spec.unschedulable) takes no new pods.

Unless the pod tolerates node.kubernetes.io/unschedulable:NoSchedule, as
Kubernetes allows (DaemonSet pods do). Reason: "node(s) were unschedulable".
"""

from __future__ import annotations

from typing import Any

from master.scheduler.framework import SUCCESS, FilterPlugin, Status
from master.scheduler.plugins.taint_toleration import tolerates
from master.scheduler.snapshot import NodeInfo, PodInfo

TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
REASON = "node(s) were unschedulable"


class _Taint:
    key = TAINT_UNSCHEDULABLE
    value = ""
    effect = "NoSchedule"


class NodeUnschedulable(FilterPlugin):
    name = "NodeUnschedulable"

    def filter(self, state: Any, pod: PodInfo, node: NodeInfo) -> Status:
        if not node.unschedulable:
            return SUCCESS  # first: the common case reads one attribute
        if any(tolerates(t, _Taint) for t in pod.pod.spec.tolerations):
            return SUCCESS
        return Status.unresolvable(REASON)
