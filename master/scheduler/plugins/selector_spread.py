"""SelectorSpread: spread the pods of one owner (ReplicaSet, StatefulSet, ...) over nodes.

Kubernetes' SelectorSpread counted pods matched by the selectors of the
pod's Services and controllers; Flotilla counts pods with the same
controller ownerReference (uid) in the same namespace, which is what those
selectors select for pods made by a controller. Fewer siblings on a node is
better (reverse-normalised count); a pod without an owner scores 0 everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from master.scheduler.framework import ScorePlugin, normalize_by_max
from master.scheduler.snapshot import NodeInfo, PodInfo, Snapshot


def count_siblings(pod: PodInfo, node: NodeInfo) -> int:
    return sum(1 for p in node.pods if p.owner_uid == pod.owner_uid and p.namespace == pod.namespace
               and p.key != pod.key)


class SelectorSpread(ScorePlugin):
    name = "SelectorSpread"
    weight = 1

    def prepare(self, pod: PodInfo, snapshot: Snapshot, feasible: Sequence[NodeInfo]) -> Any:
        return bool(pod.owner_uid)

    def score(self, state: Any, pod: PodInfo, node: NodeInfo) -> int:
        return count_siblings(pod, node) if state else 0

    def normalize(self, state: Any, scores: Mapping[str, int]) -> dict[str, int]:
        if not state:
            return {n: 0 for n in scores}
        return normalize_by_max(scores, reverse=True)
