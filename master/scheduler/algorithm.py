"""One scheduling decision: filter the nodes, score the feasible ones, pick.

`compute_decision(pod, snapshot, profile, rng, ...)` is pure: it returns a
`Decision` holding, for every node it evaluated, the filters the node failed
(with their reasons; every filter runs, not only up to the first failure,
so the explanation shows every reason), each score plugin's normalised
score per feasible node, the weighted totals, the chosen node (ties broken
by `rng`, which the caller seeds) and, when no node fits, Kubernetes'
aggregate message (which counts only the first failing filter per node, as
Kubernetes does).

Which nodes are evaluated follows Kubernetes' percentageOfNodesToScore:
filtering starts at `start` (the caller rotates it) and stops once
`nodes_to_find(total, percentage)` feasible nodes are found; with the
adaptive default that is every node up to 100 nodes. An unschedulable pod
has always been checked against every node. `percentage=100` evaluates all.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from master.scheduler.framework import SKIP, Code, Profile, Status
from master.scheduler.message import compute_fit_message
from master.scheduler.snapshot import NodeInfo, PodInfo, Snapshot

MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE = 5


def nodes_to_find(total: int, percentage: int = 0) -> int:
    """Kubernetes' numFeasibleNodesToFind (percentage 0 = adaptive: 50 - total/125, at least 5)."""
    if total < MIN_FEASIBLE_NODES_TO_FIND or percentage >= 100:
        return total
    if percentage <= 0:
        percentage = max(MIN_FEASIBLE_NODES_PERCENTAGE, 50 - total // 125)
    return min(total, max(MIN_FEASIBLE_NODES_TO_FIND, total * percentage // 100))


@dataclass(frozen=True, slots=True)
class NodeVerdict:
    node: str
    failed: tuple[tuple[str, Status], ...]  # (filter, status) for every filter it failed, in order
    scores: Mapping[str, int]  # normalised, by score plugin; empty when infeasible
    total: int  # sum of weight * score

    @property
    def feasible(self) -> bool:
        return not self.failed

    def first_failure(self) -> Status | None:
        return self.failed[0][1] if self.failed else None


@dataclass(frozen=True)
class Decision:
    pod_key: str
    node: str | None
    verdicts: tuple[NodeVerdict, ...]  # evaluated nodes, in name order
    nodes_total: int
    feasible: int
    filter_names: tuple[str, ...]
    score_weights: tuple[tuple[str, int], ...]
    message: str  # "" when scheduled


def _filter(pod: PodInfo, snapshot: Snapshot, profile: Profile, *, start: int,
            to_find: int) -> tuple[list[tuple[NodeInfo, tuple[tuple[str, Status], ...]]], list[NodeInfo]]:
    active = []
    for f in profile.filters:
        state = f.prepare(pod, snapshot)
        if state is not SKIP:
            active.append((f.name, f.filter, state))
    nodes = snapshot.nodes
    total = len(nodes)
    evaluated: list[tuple[NodeInfo, tuple[tuple[str, Status], ...]]] = []
    feasible: list[NodeInfo] = []
    success = Code.SUCCESS
    for i in range(total):
        node = nodes[(start + i) % total]
        failed = []
        for name, fn, state in active:
            status = fn(state, pod, node)
            if status.code is not success:
                failed.append((name, status))
        evaluated.append((node, tuple(failed)))
        if not failed:
            feasible.append(node)
            if len(feasible) >= to_find:
                break
    return evaluated, feasible


def compute_decision(pod: PodInfo, snapshot: Snapshot, profile: Profile, rng: random.Random, *,
                     start: int = 0, percentage: int = 0) -> Decision:
    total = len(snapshot.nodes)
    evaluated, feasible = _filter(pod, snapshot, profile, start=start,
                                  to_find=nodes_to_find(total, percentage))
    normalised: dict[str, dict[str, int]] = {n.name: {} for n in feasible}
    totals = {n.name: 0 for n in feasible}
    for scorer in profile.scorers:
        state = scorer.prepare(pod, snapshot, feasible) if feasible else SKIP
        if state is SKIP:
            for name in normalised:
                normalised[name][scorer.name] = 0
            continue
        raw = {n.name: scorer.score(state, pod, n) for n in feasible}
        for name, value in scorer.normalize(state, raw).items():
            normalised[name][scorer.name] = value
            totals[name] += scorer.weight * value
    evaluated.sort(key=lambda e: e[0].name)
    verdicts = tuple(NodeVerdict(n.name, failed, normalised.get(n.name, {}), totals.get(n.name, 0))
                     for n, failed in evaluated)
    weights = tuple((s.name, s.weight) for s in profile.scorers)
    if not feasible:
        message = compute_fit_message(total, [v.first_failure() for v in verdicts])
        return Decision(pod.key, None, verdicts, total, 0, profile.filter_names, weights, message)
    best = max(totals.values())
    # Sorted names make the draw depend on the seed only, not on dict order.
    candidates = sorted(n for n, t in totals.items() if t == best)
    return Decision(pod.key, rng.choice(candidates), verdicts, total, len(feasible),
                    profile.filter_names, weights, "")
