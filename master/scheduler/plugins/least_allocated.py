"""LeastAllocated (NodeResourcesFit's default scoring strategy): prefer emptier nodes.

Per resource: (allocatable - requested) * 100 / allocatable, with the pod
counted in and Kubernetes' non-zero defaults (100m cpu, 200Mi memory) for
containers that request nothing; cpu and memory weigh 1 each.
"""

from __future__ import annotations

from typing import Any

from master.scheduler.framework import MAX_NODE_SCORE, ScorePlugin
from master.scheduler.snapshot import NodeInfo, PodInfo


def _least(requested: int, allocatable: int) -> int:
    if allocatable <= 0 or requested > allocatable:
        return 0
    return (allocatable - requested) * MAX_NODE_SCORE // allocatable


def compute_least_allocated(pod: PodInfo, node: NodeInfo) -> int:
    used, extra, alloc = node.non_zero_requested, pod.non_zero_requests, node.allocatable
    cpu = _least(used.milli_cpu + extra.milli_cpu, alloc.milli_cpu)
    mem = _least(used.memory_bytes + extra.memory_bytes, alloc.memory_bytes)
    return (cpu + mem) // 2


class LeastAllocated(ScorePlugin):
    name = "NodeResourcesLeastAllocated"
    weight = 1

    def score(self, state: Any, pod: PodInfo, node: NodeInfo) -> int:
        return compute_least_allocated(pod, node)
