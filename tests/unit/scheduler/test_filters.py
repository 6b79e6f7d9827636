"""Table tests for every filter plugin: (nodes, placed pods, pod) -> verdict per node."""

from __future__ import annotations

from typing import Any

import pytest

from master.scheduler.framework import SKIP, SUCCESS, Code, FilterPlugin
from master.scheduler.plugins.inter_pod_affinity import InterPodAffinity
from master.scheduler.plugins.node_affinity import NodeAffinity
from master.scheduler.plugins.node_name import NodeName
from master.scheduler.plugins.node_ports import NodePorts
from master.scheduler.plugins.node_ready import NodeReady
from master.scheduler.plugins.node_resources_fit import NodeResourcesFit
from master.scheduler.plugins.node_unschedulable import NodeUnschedulable
from master.scheduler.plugins.pod_topology_spread import PodTopologySpread
from master.scheduler.plugins.taint_toleration import TaintToleration
from tests.unit.scheduler.builders import info, node, pod, snap

UNREACH = {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}
OK = "ok"


def run(plugin: FilterPlugin, nodes: list[Any], placed: list[Any], p: Any) -> dict[str, str]:
    s = snap(nodes, placed)
    pi = info(p)
    state = plugin.prepare(pi, s)
    out = {}
    for n in s.nodes:
        st = SUCCESS if state is SKIP else plugin.filter(state, pi, n)
        out[n.name] = OK if st.ok else "; ".join(st.reasons)
    return out


def sel(match: dict[str, str]) -> dict[str, Any]:
    return {"matchLabels": match}


CASES: list[tuple[str, FilterPlugin, list[Any], list[Any], Any, dict[str, str]]] = [
    # NodeUnschedulable
    ("cordoned", NodeUnschedulable(), [node("a", unschedulable=True), node("b")], [], pod("p"),
     {"a": "node(s) were unschedulable", "b": OK}),
    ("cordoned but tolerated", NodeUnschedulable(), [node("a", unschedulable=True)], [],
     pod("p", spec={"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                                     "effect": "NoSchedule"}]}), {"a": OK}),
    # NodeReady
    ("not ready, untainted", NodeReady(), [node("a", ready="False"), node("b", ready=""), node("c")],
     [], pod("p"), {"a": "node(s) were not ready", "b": "node(s) were not ready", "c": OK}),
    ("unknown and tainted: left to taints", NodeReady(), [node("a", ready="Unknown", taints=[UNREACH])],
     [], pod("p"), {"a": OK}),
    # NodeResourcesFit
    ("cpu", NodeResourcesFit(), [node("a", cpu="1"), node("b", cpu="2")], [pod("x", cpu="500m", node_name="a")],
     pod("p", cpu="600m"), {"a": "Insufficient cpu", "b": OK}),
    ("memory and cpu", NodeResourcesFit(), [node("a", cpu="1", memory="1Gi")], [],
     pod("p", cpu="2", memory="2Gi"), {"a": "Insufficient cpu; Insufficient memory"}),
    ("pod count", NodeResourcesFit(), [node("a", pods="1")], [pod("x", node_name="a")], pod("p"),
     {"a": "Too many pods"}),
    ("no requests fit a full node", NodeResourcesFit(), [node("a", cpu="1")], [pod("x", cpu="1", node_name="a")],
     pod("p"), {"a": OK}),
    ("init container counts", NodeResourcesFit(), [node("a", cpu="1")], [],
     pod("p", cpu="100m", spec={"initContainers": [{"name": "i", "image": "b", "resources": {"requests": {"cpu": "2"}}}]}),
     {"a": "Insufficient cpu"}),
    ("sidecar adds to containers", NodeResourcesFit(), [node("a", cpu="1")], [],
     pod("p", cpu="600m", spec={"initContainers": [{"name": "i", "image": "b", "restartPolicy": "Always",
                                                    "resources": {"requests": {"cpu": "500m"}}}]}),
     {"a": "Insufficient cpu"}),
    ("overhead", NodeResourcesFit(), [node("a", cpu="1")], [],
     pod("p", cpu="900m", spec={"overhead": {"cpu": "200m"}}), {"a": "Insufficient cpu"}),
    # NodePorts
    ("host port taken", NodePorts(), [node("a"), node("b")], [pod("x", host_port=8080, node_name="a")],
     pod("p", host_port=8080), {"a": "node(s) didn't have free ports for the requested pod ports", "b": OK}),
    ("other port free", NodePorts(), [node("a")], [pod("x", host_port=8080, node_name="a")],
     pod("p", host_port=8081), {"a": OK}),
    # NodeName
    ("node name", NodeName(), [node("a"), node("b")], [], pod("p", spec={"nodeName": "b"}),
     {"a": "node(s) didn't match the requested node name", "b": OK}),
    # NodeAffinity
    ("nodeSelector", NodeAffinity(), [node("a", labels={"disk": "ssd"}), node("b")], [],
     pod("p", spec={"nodeSelector": {"disk": "ssd"}}),
     {"a": OK, "b": "node(s) didn't match Pod's node affinity/selector"}),
]

_NA = "node(s) didn't match Pod's node affinity/selector"


def _req(*exprs: dict[str, Any], fields: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    term: dict[str, Any] = {"matchExpressions": list(exprs)}
    if fields:
        term["matchFields"] = fields
    return {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [term]}}}}


_ZONED = [node("a", labels={"zone": "z1", "gen": "3"}), node("b", labels={"zone": "z2", "gen": "5"}), node("c")]
for op, values, expect in [
    ("In", ["z1"], {"a": OK, "b": _NA, "c": _NA}),
    ("NotIn", ["z1"], {"a": _NA, "b": OK, "c": OK}),
    ("Exists", [], {"a": OK, "b": OK, "c": _NA}),
    ("DoesNotExist", [], {"a": _NA, "b": _NA, "c": OK}),
]:
    CASES.append((f"affinity {op}", NodeAffinity(), _ZONED, [],
                  pod("p", spec=_req({"key": "zone", "operator": op, "values": values})), expect))
CASES += [
    ("affinity Gt", NodeAffinity(), _ZONED, [], pod("p", spec=_req({"key": "gen", "operator": "Gt", "values": ["4"]})),
     {"a": _NA, "b": OK, "c": _NA}),
    ("affinity Lt", NodeAffinity(), _ZONED, [], pod("p", spec=_req({"key": "gen", "operator": "Lt", "values": ["4"]})),
     {"a": OK, "b": _NA, "c": _NA}),
    ("matchFields metadata.name", NodeAffinity(), _ZONED, [],
     pod("p", spec=_req(fields=[{"key": "metadata.name", "operator": "In", "values": ["c"]}])),
     {"a": _NA, "b": _NA, "c": OK}),
    # TaintToleration
    ("untolerated taint", TaintToleration(), [node("a", taints=[UNREACH]), node("b")], [], pod("p"),
     {"a": "node(s) had untolerated taint {node.kubernetes.io/unreachable: }", "b": OK}),
    ("control plane", TaintToleration(),
     [node("cp", taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])], [], pod("p"),
     {"cp": "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"}),
    ("NoExecute with value", TaintToleration(), [node("a", taints=[{"key": "k", "value": "v", "effect": "NoExecute"}])],
     [], pod("p"), {"a": "node(s) had untolerated taint {k: v}"}),
    ("tolerated Equal", TaintToleration(), [node("a", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}])],
     [], pod("p", spec={"tolerations": [{"key": "k", "operator": "Equal", "value": "v"}]}), {"a": OK}),
    ("wrong value", TaintToleration(), [node("a", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}])],
     [], pod("p", spec={"tolerations": [{"key": "k", "value": "w"}]}), {"a": "node(s) had untolerated taint {k: v}"}),
    ("tolerate everything", TaintToleration(), [node("a", taints=[UNREACH])], [],
     pod("p", spec={"tolerations": [{"operator": "Exists"}]}), {"a": OK}),
    ("PreferNoSchedule does not filter", TaintToleration(),
     [node("a", taints=[{"key": "k", "effect": "PreferNoSchedule"}])], [], pod("p"), {"a": OK}),
]

_HOSTS = [node("a", labels={"zone": "z1"}), node("b", labels={"zone": "z1"}), node("c", labels={"zone": "z2"}), node("d")]


def _pod_aff(kind: str, key: str, match: dict[str, str]) -> dict[str, Any]:
    return {"affinity": {kind: {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": sel(match), "topologyKey": key}]}}}


CASES += [
    ("anti-affinity by host", InterPodAffinity(), _HOSTS, [pod("x", labels={"app": "w"}, node_name="a")],
     pod("p", labels={"app": "w"}, spec=_pod_aff("podAntiAffinity", "kubernetes.io/hostname", {"app": "w"})),
     {"a": "node(s) didn't match pod anti-affinity rules", "b": OK, "c": OK, "d": OK}),
    ("anti-affinity by zone", InterPodAffinity(), _HOSTS, [pod("x", labels={"app": "w"}, node_name="a")],
     pod("p", spec=_pod_aff("podAntiAffinity", "zone", {"app": "w"})),
     {"a": "node(s) didn't match pod anti-affinity rules", "b": "node(s) didn't match pod anti-affinity rules",
      "c": OK, "d": OK}),
    ("anti-affinity other namespace ignored", InterPodAffinity(), _HOSTS,
     [pod("x", ns="other", labels={"app": "w"}, node_name="a")],
     pod("p", spec=_pod_aff("podAntiAffinity", "zone", {"app": "w"})), {"a": OK, "b": OK, "c": OK, "d": OK}),
    ("affinity by zone", InterPodAffinity(), _HOSTS, [pod("x", labels={"app": "db"}, node_name="c")],
     pod("p", spec=_pod_aff("podAffinity", "zone", {"app": "db"})),
     {"a": "node(s) didn't match pod affinity rules", "b": "node(s) didn't match pod affinity rules",
      "c": OK, "d": "node(s) didn't match pod affinity rules"}),
    ("affinity first of its group", InterPodAffinity(), _HOSTS, [],
     pod("p", labels={"app": "db"}, spec=_pod_aff("podAffinity", "zone", {"app": "db"})),
     {"a": OK, "b": OK, "c": OK, "d": "node(s) didn't match pod affinity rules"}),
    ("affinity needs one pod matching every term", InterPodAffinity(), _HOSTS,
     [pod("x", labels={"app": "db"}, node_name="a"), pod("y", labels={"tier": "hot"}, node_name="c")],
     pod("p", spec={"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
         {"labelSelector": sel({"app": "db"}), "topologyKey": "zone"},
         {"labelSelector": sel({"tier": "hot"}), "topologyKey": "zone"}]}}}),
     {"a": "node(s) didn't match pod affinity rules", "b": "node(s) didn't match pod affinity rules",
      "c": "node(s) didn't match pod affinity rules", "d": "node(s) didn't match pod affinity rules"}),
    ("affinity two terms, one pod", InterPodAffinity(), _HOSTS,
     [pod("x", labels={"app": "db", "tier": "hot"}, node_name="c")],
     pod("p", spec={"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
         {"labelSelector": sel({"app": "db"}), "topologyKey": "zone"},
         {"labelSelector": sel({"tier": "hot"}), "topologyKey": "kubernetes.io/hostname"}]}}}),
     {"a": "node(s) didn't match pod affinity rules", "b": "node(s) didn't match pod affinity rules",
      "c": OK, "d": "node(s) didn't match pod affinity rules"}),
    ("existing pod's anti-affinity", InterPodAffinity(), _HOSTS,
     [pod("x", node_name="c", spec=_pod_aff("podAntiAffinity", "zone", {"app": "w"}))],
     pod("p", labels={"app": "w"}),
     {"a": OK, "b": OK, "c": "node(s) didn't satisfy existing pods anti-affinity rules", "d": OK}),
]


def _spread(mode: str, skew: int = 1, key: str = "zone", **extra: Any) -> dict[str, Any]:
    return {"topologySpreadConstraints": [
        {"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": mode, "labelSelector": sel({"app": "w"}), **extra}]}


_TS = "node(s) didn't match pod topology spread constraints"
_TSM = "node(s) didn't match pod topology spread constraints (missing required label)"
CASES += [
    ("spread by zone", PodTopologySpread(), _HOSTS, [pod("x", labels={"app": "w"}, node_name="a")],
     pod("p", labels={"app": "w"}, spec=_spread("DoNotSchedule")),
     {"a": _TS, "b": _TS, "c": OK, "d": _TSM}),
    ("spread skew 2", PodTopologySpread(), _HOSTS, [pod("x", labels={"app": "w"}, node_name="a")],
     pod("p", labels={"app": "w"}, spec=_spread("DoNotSchedule", 2)),
     {"a": OK, "b": OK, "c": OK, "d": _TSM}),
    ("ScheduleAnyway does not filter", PodTopologySpread(), _HOSTS, [pod("x", labels={"app": "w"}, node_name="a")],
     pod("p", labels={"app": "w"}, spec=_spread("ScheduleAnyway")), {"a": OK, "b": OK, "c": OK, "d": OK}),
    ("minDomains makes min 0", PodTopologySpread(), _HOSTS[:2], [pod("x", labels={"app": "w"}, node_name="a")],
     pod("p", labels={"app": "w"}, spec=_spread("DoNotSchedule", minDomains=2)), {"a": _TS, "b": _TS}),
    ("node affinity limits domains", PodTopologySpread(), _HOSTS, [pod("x", labels={"app": "w"}, node_name="a")],
     pod("p", labels={"app": "w"}, spec={**_spread("DoNotSchedule"), "nodeSelector": {"zone": "z1"}}),
     {"a": OK, "b": OK, "c": OK, "d": _TSM}),  # c is NodeAffinity's to reject
]


@pytest.mark.parametrize(("plugin", "nodes", "placed", "p", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_filter(plugin: FilterPlugin, nodes: list[Any], placed: list[Any], p: Any, expected: dict[str, str]) -> None:
    assert run(plugin, nodes, placed, p) == expected


def test_codes_say_whether_preemption_could_help() -> None:
    s = snap([node("a", cpu="1", taints=[UNREACH])])
    pi = info(pod("p", cpu="2"))
    taints = TaintToleration()
    assert taints.filter(taints.prepare(pi, s), pi, s.nodes[0]).code is Code.UNRESOLVABLE
    assert NodeResourcesFit().filter(None, pi, s.nodes[0]).code is Code.UNSCHEDULABLE
