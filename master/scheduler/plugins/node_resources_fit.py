"""NodeResourcesFit: the pod's requests fit in allocatable minus what is requested.

Checks the pod count for every pod ("Too many pods") and cpu / memory for
the resources the pod requests ("Insufficient cpu", "Insufficient memory");
every shortfall is a reason, as in Kubernetes. Requests are the effective
ones (resources.compute_pod_requests: init containers, sidecars, overhead).
"""

from __future__ import annotations

from typing import Any

from master.scheduler.framework import SUCCESS, FilterPlugin, Status
from master.scheduler.snapshot import NodeInfo, PodInfo


def compute_insufficient(pod: PodInfo, node: NodeInfo) -> list[str]:
    reasons = []
    free = node.free
    if len(node.pods) + 1 > node.allocatable.pods:
        reasons.append("Too many pods")
    r = pod.requests
    if r.milli_cpu > 0 and r.milli_cpu > free.milli_cpu:
        reasons.append("Insufficient cpu")
    if r.memory_bytes > 0 and r.memory_bytes > free.memory_bytes:
        reasons.append("Insufficient memory")
    return reasons


class NodeResourcesFit(FilterPlugin):
    name = "NodeResourcesFit"

    def filter(self, state: Any, pod: PodInfo, node: NodeInfo) -> Status:
        free, r = node.free, pod.requests
        if free.pods >= 1 and r.milli_cpu <= free.milli_cpu and r.memory_bytes <= free.memory_bytes:
            return SUCCESS  # the common case, without building a list
        reasons = compute_insufficient(pod, node)
        return Status.unschedulable(*reasons) if reasons else SUCCESS
