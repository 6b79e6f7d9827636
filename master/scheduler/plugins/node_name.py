"""NodeName: a pod naming a node in spec.nodeName fits only that node.

The scheduler never sees pods with spec.nodeName set (they are bound
already); the filter is here for completeness and for `explain`.
Reason: "node(s) didn't match the requested node name".
"""

from __future__ import annotations

from typing import Any

from master.scheduler.framework import SKIP, SUCCESS, FilterPlugin, Status
from master.scheduler.snapshot import NodeInfo, PodInfo, Snapshot

REASON = "node(s) didn't match the requested node name"


class NodeName(FilterPlugin):
    name = "NodeName"

    def prepare(self, pod: PodInfo, snapshot: Snapshot) -> Any:
        return None if pod.pod.spec.node_name else SKIP

    def filter(self, state: Any, pod: PodInfo, node: NodeInfo) -> Status:
        wanted = pod.pod.spec.node_name
        if not wanted or wanted == node.name:
            return SUCCESS
        return Status.unresolvable(REASON)
