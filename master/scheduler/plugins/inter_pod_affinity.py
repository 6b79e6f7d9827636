"""InterPodAffinity: required pod affinity / anti-affinity filter, preferred scores.

Any topologyKey: a "domain" is (topologyKey, the node's value for it). The
filter rejects a node when (Kubernetes' three checks and reasons)
  * an existing pod's required anti-affinity matches this pod and the node
    is in that pod's domain: "node(s) didn't satisfy existing pods anti-affinity rules";
  * the node lacks a required affinity term's key, or, for some term, no
    pod that matches *every* term sits in the node's domain for that term:
    "node(s) didn't match pod affinity rules" — except when no such pod
    exists anywhere and the pod matches its own terms (the first pod of a
    group must be placeable), as Kubernetes allows;
  * a required anti-affinity term has a matching pod in the node's domain:
    "node(s) didn't match pod anti-affinity rules".
Score: preferred terms of the pod (+weight / -weight per matching pod in
the domain), existing pods' preferred terms that match this pod, and their
required affinity at weight 1 (hardPodAffinityWeight); min-max normalised.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from master.scheduler.framework import (
    SKIP,
    SUCCESS,
    FilterPlugin,
    ScorePlugin,
    Status,
    normalize_min_max,
)
from master.scheduler.snapshot import AffinityTerm, NodeInfo, PodInfo, Snapshot

EXISTING_ANTI = "node(s) didn't satisfy existing pods anti-affinity rules"
AFFINITY = "node(s) didn't match pod affinity rules"
ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
HARD_POD_AFFINITY_WEIGHT = 1

Domain = tuple[str, str]


@dataclass(frozen=True)
class FilterState:
    existing_anti: frozenset[Domain]
    affinity_domains: frozenset[Domain]  # where pods matching every affinity term are
    anti_domains: tuple[frozenset[str], ...]  # per required anti-affinity term
    affinity_bypass: bool  # no such pod anywhere and the pod matches its own terms


def _domains_of(term: AffinityTerm, snapshot: Snapshot) -> frozenset[str]:
    values = set()
    for node, p in snapshot.all_pods():
        if term.topology_key in node.labels and term.matches(p):
            values.add(node.labels[term.topology_key])
    return frozenset(values)


def compute_filter_state(pod: PodInfo, snapshot: Snapshot) -> FilterState:
    existing = set()
    for node, p in snapshot.affinity_pods:
        for term in p.required_anti_affinity:
            if term.topology_key in node.labels and term.matches(pod):
                existing.add((term.topology_key, node.labels[term.topology_key]))
    aff: set[Domain] = set()
    if pod.required_affinity:
        for node, p in snapshot.all_pods():
            if all(t.matches(p) for t in pod.required_affinity):
                for t in pod.required_affinity:
                    if t.topology_key in node.labels:
                        aff.add((t.topology_key, node.labels[t.topology_key]))
    anti = tuple(_domains_of(t, snapshot) for t in pod.required_anti_affinity)
    bypass = not aff and all(t.matches(pod) for t in pod.required_affinity)
    return FilterState(frozenset(existing), frozenset(aff), anti, bypass)


class InterPodAffinity(FilterPlugin):
    name = "InterPodAffinity"

    def prepare(self, pod: PodInfo, snapshot: Snapshot) -> Any:
        state = compute_filter_state(pod, snapshot)
        if not (state.existing_anti or pod.required_affinity or pod.required_anti_affinity):
            return SKIP
        return state

    def filter(self, state: Any, pod: PodInfo, node: NodeInfo) -> Status:
        st: FilterState = state
        for key, value in st.existing_anti:
            if node.labels.get(key) == value:
                return Status.unschedulable(EXISTING_ANTI)
        for term in pod.required_affinity:
            here = node.labels.get(term.topology_key)
            if here is None:
                return Status.unresolvable(AFFINITY)
            if (term.topology_key, here) not in st.affinity_domains and not st.affinity_bypass:
                return Status.unresolvable(AFFINITY)
        for term, domains in zip(pod.required_anti_affinity, st.anti_domains, strict=True):
            if node.labels.get(term.topology_key, None) in domains:
                return Status.unschedulable(ANTI_AFFINITY)
        return SUCCESS


def compute_domain_scores(pod: PodInfo, snapshot: Snapshot) -> Counter[Domain]:
    scores: Counter[Domain] = Counter()

    def add(term: AffinityTerm, node: NodeInfo, weight: int) -> None:
        if term.topology_key in node.labels:
            scores[(term.topology_key, node.labels[term.topology_key])] += weight

    if pod.preferred_affinity or pod.preferred_anti_affinity:
        for node, p in snapshot.all_pods():
            for t in pod.preferred_affinity:
                if t.matches(p):
                    add(t, node, t.weight)
            for t in pod.preferred_anti_affinity:
                if t.matches(p):
                    add(t, node, -t.weight)
    for node, p in snapshot.affinity_pods:
        for t in p.required_affinity:
            if t.matches(pod):
                add(t, node, HARD_POD_AFFINITY_WEIGHT)
        for t in p.preferred_affinity:
            if t.matches(pod):
                add(t, node, t.weight)
        for t in p.preferred_anti_affinity:
            if t.matches(pod):
                add(t, node, -t.weight)
    return scores


class InterPodAffinityScore(ScorePlugin):
    name = "InterPodAffinity"
    weight = 2

    def prepare(self, pod: PodInfo, snapshot: Snapshot, feasible: Sequence[NodeInfo]) -> Any:
        return compute_domain_scores(pod, snapshot) or SKIP

    def score(self, state: Any, pod: PodInfo, node: NodeInfo) -> int:
        return sum(s for (key, value), s in state.items() if node.labels.get(key) == value)

    def normalize(self, state: Any, scores: Mapping[str, int]) -> dict[str, int]:
        return normalize_min_max(scores)
