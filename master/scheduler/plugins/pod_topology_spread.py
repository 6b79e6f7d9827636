"""PodTopologySpread: topology spread constraints (DoNotSchedule filters, ScheduleAnyway scores).

For each constraint, the domains are the values of topologyKey on eligible
nodes (nodeAffinityPolicy Honor, the default: nodes the pod's nodeSelector
and required node affinity accept; nodeTaintsPolicy Honor: also only nodes
whose NoSchedule/NoExecute taints the pod tolerates — Ignore is the
default); the count of a domain is the number of pods in the pod's
namespace on its eligible nodes that the constraint's selector (plus
matchLabelKeys) matches. Filter: placing the pod on a node must keep
count(domain) + self - min(count over domains) <= maxSkew (min is 0 when
fewer than minDomains domains exist). Reasons (Kubernetes'):
"node(s) didn't match pod topology spread constraints" and, for a node
without the key, "... (missing required label)". Score: fewer matching pods
in the node's domains is better (reverse min-max); nodes without a key get 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from master.scheduler.framework import (
    MAX_NODE_SCORE,
    SKIP,
    SUCCESS,
    FilterPlugin,
    ScorePlugin,
    Status,
)
from master.scheduler.labels import match_label_selector
from master.scheduler.plugins.node_affinity import match_required
from master.scheduler.plugins.taint_toleration import NO_EXECUTE, NO_SCHEDULE, first_untolerated
from master.scheduler.snapshot import NodeInfo, PodInfo, Snapshot

REASON = "node(s) didn't match pod topology spread constraints"
MISSING = "node(s) didn't match pod topology spread constraints (missing required label)"
DO_NOT_SCHEDULE = "DoNotSchedule"
SCHEDULE_ANYWAY = "ScheduleAnyway"


@dataclass(frozen=True)
class Constraint:
    key: str
    max_skew: int
    counts: Mapping[str, int]
    min_count: int
    self_match: int


def _matches(c: Any, pod: PodInfo, other: PodInfo) -> bool:
    if other.namespace != pod.namespace or not c.HasField("label_selector"):
        return False
    if not match_label_selector(c.label_selector, other.labels):
        return False
    # matchLabelKeys: the pod's own values for those keys must match too.
    return all(other.labels.get(k) == pod.labels[k] for k in c.match_label_keys if k in pod.labels)


def _eligible(c: Any, pod: PodInfo, node: NodeInfo) -> bool:
    if c.topology_key not in node.labels:
        return False
    if c.node_affinity_policy != "Ignore" and not match_required(pod.pod.spec, node.labels, node.name):
        return False
    if c.node_taints_policy == "Honor" and first_untolerated(
            node.taints, pod.pod.spec.tolerations, (NO_SCHEDULE, NO_EXECUTE)) is not None:
        return False
    return True


def compute_constraints(pod: PodInfo, snapshot: Snapshot, mode: str) -> tuple[Constraint, ...]:
    out = []
    for c in pod.pod.spec.topology_spread_constraints:
        if (c.when_unsatisfiable or DO_NOT_SCHEDULE) != mode:
            continue
        counts: dict[str, int] = {}
        for node in snapshot.nodes:
            if not _eligible(c, pod, node):
                continue
            value = node.labels[c.topology_key]
            counts[value] = counts.get(value, 0) + sum(1 for p in node.pods if _matches(c, pod, p))
        min_count = min(counts.values(), default=0)
        if c.HasField("min_domains") and len(counts) < c.min_domains:
            min_count = 0
        self_match = 1 if _matches(c, pod, pod) else 0
        out.append(Constraint(c.topology_key, max(1, c.max_skew), counts, min_count, self_match))
    return tuple(out)


class PodTopologySpread(FilterPlugin):
    name = "PodTopologySpread"

    def prepare(self, pod: PodInfo, snapshot: Snapshot) -> Any:
        return compute_constraints(pod, snapshot, DO_NOT_SCHEDULE) or SKIP

    def filter(self, state: Any, pod: PodInfo, node: NodeInfo) -> Status:
        for c in state:
            if c.key not in node.labels:
                return Status.unresolvable(MISSING)
            skew = c.counts.get(node.labels[c.key], 0) + c.self_match - c.min_count
            if skew > c.max_skew:
                return Status.unschedulable(REASON)
        return SUCCESS


class PodTopologySpreadScore(ScorePlugin):
    name = "PodTopologySpread"
    weight = 2

    def prepare(self, pod: PodInfo, snapshot: Snapshot, feasible: Sequence[NodeInfo]) -> Any:
        return compute_constraints(pod, snapshot, SCHEDULE_ANYWAY) or SKIP

    def score(self, state: Any, pod: PodInfo, node: NodeInfo) -> int:
        if any(c.key not in node.labels for c in state):
            return -1  # marks "no score" for normalize
        return sum(c.counts.get(node.labels[c.key], 0) for c in state)

    def normalize(self, state: Any, scores: Mapping[str, int]) -> dict[str, int]:
        valid = [s for s in scores.values() if s >= 0]
        if not valid:
            return {n: 0 for n in scores}
        lo, hi = min(valid), max(valid)
        out = {}
        for n, s in scores.items():
            if s < 0:
                out[n] = 0
            elif hi == lo:
                out[n] = MAX_NODE_SCORE
            else:
                out[n] = MAX_NODE_SCORE * (hi - s) // (hi - lo)
        return out
