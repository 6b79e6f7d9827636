"""TaintToleration: NoSchedule/NoExecute taints filter, PreferNoSchedule scores.

Filter reason (Kubernetes'): "node(s) had untolerated taint {key: value}"
for the first taint the pod does not tolerate. Score: fewer intolerable
PreferNoSchedule taints is better (reverse-normalised count). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from master.scheduler.framework import SUCCESS, FilterPlugin, ScorePlugin, Status, normalize_by_max
from master.scheduler.snapshot import NodeInfo, PodInfo, Snapshot

NO_SCHEDULE = "NoSchedule"
NO_EXECUTE = "NoExecute"
PREFER_NO_SCHEDULE = "PreferNoSchedule"


def tolerates(toleration: Any, taint: Any) -> bool:
    """Kubernetes' Toleration.ToleratesTaint."""
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key != taint.key and not (toleration.key == "" and toleration.operator == "Exists"):
        return False
    if toleration.operator == "Exists":
        return True
    if toleration.operator in ("", "Equal"):
        return toleration.value == taint.value
    return False


def first_untolerated(taints: Iterable[Any], tolerations: Sequence[Any], effects: tuple[str, ...]) -> Any:
    for taint in taints:
        if taint.effect in effects and not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


class TaintToleration(FilterPlugin):
    name = "TaintToleration"

    def prepare(self, pod: PodInfo, snapshot: Snapshot) -> Any:
        return list(pod.pod.spec.tolerations)

    def filter(self, state: Any, pod: PodInfo, node: NodeInfo) -> Status:
        if not node.taints:
            return SUCCESS
        taint = first_untolerated(node.taints, state, (NO_SCHEDULE, NO_EXECUTE))
        if taint is None:
            return SUCCESS
        return Status.unresolvable(f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}")


class TaintTolerationScore(ScorePlugin):
    name = "TaintToleration"
    weight = 3

    def prepare(self, pod: PodInfo, snapshot: Snapshot, feasible: Sequence[NodeInfo]) -> Any:
        # Only PreferNoSchedule tolerations (or effect-less ones) count here.
        return [t for t in pod.pod.spec.tolerations if t.effect in ("", PREFER_NO_SCHEDULE)]

    def score(self, state: Any, pod: PodInfo, node: NodeInfo) -> int:
        if not node.taints:
            return 0
        return sum(1 for taint in node.taints if taint.effect == PREFER_NO_SCHEDULE
                   and not any(tolerates(t, taint) for t in state))

    def normalize(self, state: Any, scores: Mapping[str, int]) -> dict[str, int]:
        return normalize_by_max(scores, reverse=True)
