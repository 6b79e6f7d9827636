"""One scheduling decision: run every filter on every node, score the feasible ones, pick.

`compute_decision(pod, snapshot, profile, rng)` is pure: it returns a
`Decision` holding each node's verdict per filter, each score plugin's
normalised score per feasible node, the weighted totals, the chosen node
(ties broken by `rng`, which the caller seeds) and, when no node fits,
Kubernetes' aggregate message. Unlike Kubernetes, every filter runs on every
node (not only up to the first failure, and not on a sample of nodes), so
the explanation shows every reason; the aggregate message still counts only
the first failing filter per node, as Kubernetes does.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from master.scheduler.framework import Profile, Status
from master.scheduler.message import compute_fit_message
from master.scheduler.snapshot import PodInfo, Snapshot


@dataclass(frozen=True)
class NodeVerdict:
    node: str
    filters: Mapping[str, Status]  # every filter, in profile order
    scores: Mapping[str, int]  # normalised, by score plugin; empty when infeasible
    total: int  # sum of weight * score

    @property
    def feasible(self) -> bool:
        return all(s.ok for s in self.filters.values())

    def first_failure(self) -> Status | None:
        return next((s for s in self.filters.values() if not s.ok), None)


@dataclass(frozen=True)
class Decision:
    pod_key: str
    node: str | None
    verdicts: tuple[NodeVerdict, ...]
    filter_names: tuple[str, ...]
    score_weights: tuple[tuple[str, int], ...]
    message: str  # "" when scheduled

    @property
    def feasible(self) -> int:
        return sum(1 for v in self.verdicts if v.feasible)


def compute_decision(pod: PodInfo, snapshot: Snapshot, profile: Profile, rng: random.Random) -> Decision:
    states = [f.prepare(pod, snapshot) for f in profile.filters]
    filtered: list[tuple[str, dict[str, Status]]] = []
    for node in snapshot.nodes:
        filtered.append((node.name, {f.name: f.filter(st, pod, node)
                                     for f, st in zip(profile.filters, states, strict=True)}))
    feasible = [snapshot.by_name[n] for n, fs in filtered if all(s.ok for s in fs.values())]
    normalised: dict[str, dict[str, int]] = {n.name: {} for n in feasible}
    totals = {n.name: 0 for n in feasible}
    for scorer in profile.scorers:
        st = scorer.prepare(pod, snapshot, feasible)
        raw = {n.name: scorer.score(st, pod, n) for n in feasible}
        for name, value in scorer.normalize(st, raw).items():
            normalised[name][scorer.name] = value
            totals[name] += scorer.weight * value
    verdicts = tuple(NodeVerdict(n, fs, normalised.get(n, {}), totals.get(n, 0)) for n, fs in filtered)
    weights = tuple((s.name, s.weight) for s in profile.scorers)
    if not feasible:
        message = compute_fit_message(len(snapshot.nodes), [v.first_failure() for v in verdicts])
        return Decision(pod.key, None, verdicts, profile.filter_names, weights, message)
    best = max(totals.values())
    # Sorted names make the draw depend on the seed only, not on dict order.
    candidates = sorted(n for n, t in totals.items() if t == best)
    return Decision(pod.key, rng.choice(candidates), verdicts, profile.filter_names, weights, "")
