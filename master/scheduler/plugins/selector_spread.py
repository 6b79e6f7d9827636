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

from master.scheduler.framework import SKIP, ScorePlugin, normalize_by_max
from master.scheduler.snapshot import NodeInfo, PodInfo, Snapshot


def count_siblings(pod: PodInfo, node: NodeInfo) -> int:
    # Owner uids are unique cluster-wide, so the namespace needs no check.
    return node.owner_counts.get(pod.owner_uid, 0)


class SelectorSpread(ScorePlugin):
    name = "SelectorSpread"
    weight = 1

    def prepare(self, pod: PodInfo, snapshot: Snapshot, feasible: Sequence[NodeInfo]) -> Any:
        return None if pod.owner_uid else SKIP

    def score(self, state: Any, pod: PodInfo, node: NodeInfo) -> int:
        return count_siblings(pod, node)

    def normalize(self, state: Any, scores: Mapping[str, int]) -> dict[str, int]:
        return normalize_by_max(scores, reverse=True)
