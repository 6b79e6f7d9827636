"""NodeAffinity: spec.nodeSelector and required node affinity filter; preferred scores.

Filter: every nodeSelector label must match and, when required node
affinity is given, one of its terms must match (matchExpressions with In,
NotIn, Exists, DoesNotExist, Gt, Lt; matchFields on metadata.name). Reason:
"node(s) didn't match Pod's node affinity/selector". Score: the sum of the
weights of the preferred terms a node matches, normalised by the maximum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from master.scheduler.framework import (
    SKIP,
    SUCCESS,
    FilterPlugin,
    ScorePlugin,
    Status,
    normalize_by_max,
)
from master.scheduler.labels import match_node_selector, match_node_selector_term
from master.scheduler.snapshot import NodeInfo, PodInfo, Snapshot

REASON = "node(s) didn't match Pod's node affinity/selector"


def match_required(pod_spec: Any, labels: Mapping[str, str], node_name: str) -> bool:
    """nodeSelector and required node affinity (PodTopologySpread reuses this)."""
    for k, v in pod_spec.node_selector.items():
        if labels.get(k) != v:
            return False
    na = pod_spec.affinity.node_affinity
    if na.HasField("required_during_scheduling_ignored_during_execution"):
        return match_node_selector(na.required_during_scheduling_ignored_during_execution,
                                   labels, node_name)
    return True


class NodeAffinity(FilterPlugin):
    name = "NodeAffinity"

    def prepare(self, pod: PodInfo, snapshot: Snapshot) -> Any:
        spec = pod.pod.spec
        if spec.node_selector or spec.affinity.node_affinity.HasField(
                "required_during_scheduling_ignored_during_execution"):
            return None
        return SKIP

    def filter(self, state: Any, pod: PodInfo, node: NodeInfo) -> Status:
        if match_required(pod.pod.spec, node.labels, node.name):
            return SUCCESS
        return Status.unresolvable(REASON)


class NodeAffinityScore(ScorePlugin):
    name = "NodeAffinity"
    weight = 2

    def prepare(self, pod: PodInfo, snapshot: Snapshot, feasible: Sequence[NodeInfo]) -> Any:
        terms = pod.pod.spec.affinity.node_affinity.preferred_during_scheduling_ignored_during_execution
        return list(terms) or SKIP

    def score(self, state: Any, pod: PodInfo, node: NodeInfo) -> int:
        return sum(t.weight for t in state
                   if match_node_selector_term(t.preference, node.labels, node.name))

    def normalize(self, state: Any, scores: Mapping[str, int]) -> dict[str, int]:
        return normalize_by_max(scores)
