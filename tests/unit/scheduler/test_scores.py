"""Table tests for every score plugin: normalised 0-100 scores per node."""

from __future__ import annotations

from typing import Any

import pytest

from master.scheduler.framework import SKIP, ScorePlugin, normalize_by_max, normalize_min_max
from master.scheduler.plugins.balanced_allocation import BalancedAllocation
from master.scheduler.plugins.inter_pod_affinity import InterPodAffinityScore
from master.scheduler.plugins.least_allocated import LeastAllocated
from master.scheduler.plugins.node_affinity import NodeAffinityScore
from master.scheduler.plugins.pod_topology_spread import PodTopologySpreadScore
from master.scheduler.plugins.selector_spread import SelectorSpread
from master.scheduler.plugins.taint_toleration import TaintTolerationScore
from tests.unit.scheduler.builders import info, node, pod, snap


def run(plugin: ScorePlugin, nodes: list[Any], placed: list[Any], p: Any) -> dict[str, int]:
    s = snap(nodes, placed)
    pi = info(p)
    state = plugin.prepare(pi, s, s.nodes)
    if state is SKIP:
        return {n.name: 0 for n in s.nodes}
    raw = {n.name: plugin.score(state, pi, n) for n in s.nodes}
    return plugin.normalize(state, raw)


def _pref_aff(kind: str, weight: int, key: str = "zone") -> dict[str, Any]:
    return {"affinity": {kind: {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": weight, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "db"}},
                                               "topologyKey": key}}]}}}


_Z = [node("a", labels={"zone": "z1"}), node("b", labels={"zone": "z2"}), node("c", labels={"zone": "z3"})]
_DB = [pod("db", labels={"app": "db"}, node_name="a")]

CASES: list[tuple[str, ScorePlugin, list[Any], list[Any], Any, dict[str, int]]] = [
    # LeastAllocated: (4000-1000)/4000 = 75 cpu, (8Gi-1Gi)/8Gi = 87 memory -> 81
    ("least allocated", LeastAllocated(), [node("a"), node("b")], [pod("x", cpu="2", memory="4Gi", node_name="b")],
     pod("p", cpu="1", memory="1Gi"), {"a": 81, "b": 31}),
    ("least allocated defaults for no requests", LeastAllocated(), [node("a", cpu="1", memory="1Gi")], [],
     pod("p"), {"a": 85}),  # cpu (1000-100)/1000=90, memory (1024-200)/1024=80
    ("least allocated over capacity is 0", LeastAllocated(), [node("a", cpu="1", memory="1Gi")], [],
     pod("p", cpu="2", memory="2Gi"), {"a": 0}),
    # Balanced: a: cpu 1/4=.25, mem 1/8=.125 -> 93; b: cpu 3/4=.75, mem 2/8=.25 -> 75
    ("balanced", BalancedAllocation(), [node("a"), node("b")], [pod("x", cpu="2", node_name="b", memory="1Gi")],
     pod("p", cpu="1", memory="1Gi"), {"a": 93, "b": 75}),
    ("selector spread", SelectorSpread(), [node("a"), node("b"), node("c")],
     [pod("x", owner="rs", node_name="a"), pod("y", owner="rs", node_name="a"), pod("z", owner="rs", node_name="b"),
      pod("o", owner="other", node_name="c")],
     pod("p", owner="rs"), {"a": 0, "b": 50, "c": 100}),
    ("selector spread without owner", SelectorSpread(), [node("a"), node("b")],
     [pod("x", owner="rs", node_name="a")], pod("p"), {"a": 0, "b": 0}),
    ("preferred node affinity", NodeAffinityScore(), _Z, [], pod("p", spec={"affinity": {"nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}},
            {"weight": 30, "preference": {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["z3"]}]}},
        ]}}}), {"a": 100, "b": 75, "c": 0}),
    ("preferred pod affinity", InterPodAffinityScore(), _Z, _DB, pod("p", spec=_pref_aff("podAffinity", 5)),
     {"a": 100, "b": 0, "c": 0}),
    ("preferred pod anti-affinity", InterPodAffinityScore(), _Z, _DB, pod("p", spec=_pref_aff("podAntiAffinity", 5)),
     {"a": 0, "b": 100, "c": 100}),
    ("existing pod's required affinity attracts", InterPodAffinityScore(), _Z,
     [pod("x", node_name="b", spec={"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
         {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}]}}})],
     pod("p", labels={"app": "db"}), {"a": 0, "b": 100, "c": 0}),
    ("no affinity: all zero", InterPodAffinityScore(), _Z, _DB, pod("p"), {"a": 0, "b": 0, "c": 0}),
    ("taint preference", TaintTolerationScore(),
     [node("a"), node("b", taints=[{"key": "k", "effect": "PreferNoSchedule"}]),
      node("c", taints=[{"key": "k", "effect": "PreferNoSchedule"}, {"key": "j", "effect": "PreferNoSchedule"}])],
     [], pod("p"), {"a": 100, "b": 50, "c": 0}),
    ("tolerated preference", TaintTolerationScore(), [node("a"), node("b", taints=[{"key": "k", "effect": "PreferNoSchedule"}])],
     [], pod("p", spec={"tolerations": [{"key": "k", "operator": "Exists"}]}), {"a": 100, "b": 100}),
    ("spread anyway", PodTopologySpreadScore(), [*_Z, node("d")],
     [pod("x", labels={"app": "w"}, node_name="a"), pod("y", labels={"app": "w"}, node_name="a"),
      pod("z", labels={"app": "w"}, node_name="b")],
     pod("p", labels={"app": "w"}, spec={"topologySpreadConstraints": [
         {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway",
          "labelSelector": {"matchLabels": {"app": "w"}}}]}),
     {"a": 0, "b": 50, "c": 100, "d": 0}),
]


@pytest.mark.parametrize(("plugin", "nodes", "placed", "p", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_score(plugin: ScorePlugin, nodes: list[Any], placed: list[Any], p: Any, expected: dict[str, int]) -> None:
    scores = run(plugin, nodes, placed, p)
    assert scores == expected
    assert all(0 <= v <= 100 for v in scores.values())


@pytest.mark.parametrize(("raw", "reverse", "expected"), [
    ({"a": 0, "b": 0}, False, {"a": 0, "b": 0}),
    ({"a": 0, "b": 0}, True, {"a": 100, "b": 100}),
    ({"a": 1, "b": 4}, False, {"a": 25, "b": 100}),
    ({"a": 1, "b": 4}, True, {"a": 75, "b": 0}),
])
def test_normalize_by_max(raw: dict[str, int], reverse: bool, expected: dict[str, int]) -> None:
    assert normalize_by_max(raw, reverse=reverse) == expected


def test_normalize_min_max() -> None:
    assert normalize_min_max({"a": -5, "b": 0, "c": 5}) == {"a": 0, "b": 50, "c": 100}
    assert normalize_min_max({"a": 3, "b": 3}) == {"a": 0, "b": 0}
