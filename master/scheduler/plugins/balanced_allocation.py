"""BalancedAllocation: prefer nodes whose cpu and memory fractions stay close.

Score = (1 - standard deviation of the requested fractions) * 100, with the
pod counted in and fractions capped at 1 (Kubernetes' NodeResourcesBalancedAllocation).
"""

from __future__ import annotations

from typing import Any

from master.scheduler.framework import MAX_NODE_SCORE, ScorePlugin
from master.scheduler.snapshot import NodeInfo, PodInfo


def _fraction(requested: int, allocatable: int) -> float:
    return 1.0 if allocatable <= 0 else min(1.0, requested / allocatable)


def compute_balanced(pod: PodInfo, node: NodeInfo) -> int:
    used, extra, alloc = node.non_zero_requested, pod.non_zero_requests, node.allocatable
    cpu = _fraction(used.milli_cpu + extra.milli_cpu, alloc.milli_cpu)
    mem = _fraction(used.memory_bytes + extra.memory_bytes, alloc.memory_bytes)
    std = abs(cpu - mem) / 2  # the standard deviation of two values
    return int((1 - std) * MAX_NODE_SCORE)


class BalancedAllocation(ScorePlugin):
    name = "NodeResourcesBalancedAllocation"
    weight = 1

    def score(self, state: Any, pod: PodInfo, node: NodeInfo) -> int:
        return compute_balanced(pod, node)
