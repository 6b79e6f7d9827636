"""NodeReady: a node whose Ready condition is not True takes no new pods.

Kubernetes leaves this to the taints the node lifecycle controller sets
(node.kubernetes.io/not-ready, node.kubernetes.io/unreachable); between the
moment a node stops being Ready and the moment it is tainted, this plugin
keeps pods off it. Once such a taint is present, TaintToleration judges the
node (so a pod tolerating it, like a DaemonSet pod, may still go there) and
this plugin passes. Reason: "node(s) were not ready" (Kubernetes' old
CheckNodeCondition wording).
"""

from __future__ import annotations

from typing import Any

from master.scheduler.framework import SUCCESS, FilterPlugin, Status
from master.scheduler.snapshot import NodeInfo, PodInfo

NOT_READY_TAINTS = frozenset({"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"})
REASON = "node(s) were not ready"


class NodeReady(FilterPlugin):
    name = "NodeReady"

    def filter(self, state: Any, pod: PodInfo, node: NodeInfo) -> Status:
        if node.ready == "True":
            return SUCCESS
        if any(t.key in NOT_READY_TAINTS for t in node.taints):
            return SUCCESS  # TaintToleration decides
        return Status.unresolvable(REASON)
