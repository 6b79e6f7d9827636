"""compute_decision, the aggregate message and the explanation document."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from master.reconcile.daemonset import new_daemon_pod
from master.scheduler.algorithm import compute_decision, nodes_to_find
from master.scheduler.explanation import render_explanation, same_explanation
from master.scheduler.framework import SKIP, Status
from master.scheduler.message import compute_fit_message
from master.scheduler.plugins import default_profile
from tests.unit.scheduler.builders import info, node, pod, snap
from tests.unit.workload_builders import daemonset

UNREACH = [{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
           {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]
AT = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


def decide(nodes, placed, p, seed=0):  # type: ignore[no-untyped-def]
    return compute_decision(info(p), snap(nodes, placed), default_profile(), random.Random(seed))


def test_kubernetes_example_message() -> None:
    d = decide([node("n1", ready="Unknown", taints=UNREACH), node("n2", cpu="1"), node("n3", cpu="1")], [],
               pod("p", cpu="2"))
    assert d.node is None
    assert d.message == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, "
        "2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for "
        "scheduling, 2 No preemption victims found for incoming pod.")


def test_daemon_pod_goes_to_its_node_only_if_it_fits() -> None:
    ds = daemonset()
    ds.spec.template.spec.containers[0].resources.requests["cpu"] = "2"
    nodes = [node("n1", cpu="4"), node("small", cpu="1"), node("n3", cpu="8")]
    assert decide(nodes, [], new_daemon_pod(ds, "n1", "rev")).node == "n1"  # not the emptier n3
    d = decide(nodes, [], new_daemon_pod(ds, "small", "rev"))
    assert d.node is None  # not forced onto its node: it stays Pending
    assert d.message == (
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, "
        "2 Preemption is not helpful for scheduling.")


@pytest.mark.parametrize(("failures", "expected"), [
    ([], "no nodes available to schedule pods"),
    ([Status.unresolvable("node(s) were unschedulable")] * 3,
     "0/3 nodes are available: 3 node(s) were unschedulable. preemption: 0/3 nodes are available: "
     "3 Preemption is not helpful for scheduling."),
    ([Status.unschedulable("Insufficient cpu", "Insufficient memory")] * 2,
     "0/2 nodes are available: 2 Insufficient cpu, 2 Insufficient memory. preemption: 0/2 nodes are "
     "available: 2 No preemption victims found for incoming pod."),
])
def test_fit_message(failures: list[Status], expected: str) -> None:
    assert compute_fit_message(len(failures), failures) == expected


def test_message_counts_first_failure_only_but_verdict_keeps_all() -> None:
    d = decide([node("n1", cpu="1", unschedulable=True)], [], pod("p", cpu="2"))
    assert "1 node(s) were unschedulable." in d.message
    assert "Insufficient cpu" not in d.message
    failed = {k for k, _ in d.verdicts[0].failed}
    assert failed == {"NodeUnschedulable", "NodeResourcesFit"}


def test_prefers_emptier_node_and_records_scores() -> None:
    d = decide([node("a"), node("b")], [pod("x", cpu="3", memory="6Gi", node_name="a")], pod("p", cpu="1"))
    assert d.node == "b"
    by = {v.node: v for v in d.verdicts}
    assert by["b"].total > by["a"].total
    assert set(by["b"].scores) == set(default_profile().score_names)


def test_tie_break_depends_on_seed_only() -> None:
    nodes = [node(f"n{i}") for i in range(8)]
    picks = {decide(nodes, [], pod("p"), seed=s).node for s in range(30)}
    assert len(picks) > 1
    assert decide(nodes, [], pod("p"), seed=7).node == decide(list(reversed(nodes)), [], pod("p"), seed=7).node


def test_explanation_is_bounded_and_complete() -> None:
    nodes = [node(f"n{i:03}", cpu="1") for i in range(200)] + [node("big", cpu="8")]
    d = decide(nodes, [], pod("p", cpu="2"))
    doc = json.loads(render_explanation(d, at=AT, max_rows=20))
    assert doc["result"] == "Scheduled" and doc["node"] == "big"
    assert doc["rows"][0]["node"] == "big" and doc["rows"][0]["failed"] == {}
    assert len(doc["rows"]) == 20
    assert doc["omitted"] == {"nodes": 181, "feasible": 0, "reasons": {"Insufficient cpu": 181},
                              "not_evaluated": 0}
    assert doc["nodes"] == 201 and doc["evaluated"] == 201 and doc["feasible"] == 1
    assert len(render_explanation(d, at=AT)) < 8000


def test_unschedulable_explanation_and_sameness() -> None:
    d = decide([node("n1", cpu="1")], [], pod("p", cpu="2"))
    a = render_explanation(d, at=AT)
    doc = json.loads(a)
    assert doc["result"] == "Unschedulable" and doc["node"] is None
    assert doc["rows"] == [{"node": "n1", "failed": {"NodeResourcesFit": "Insufficient cpu"}, "scores": [], "total": 0}]
    assert doc["message"] == d.message
    assert same_explanation(a, render_explanation(d, at=datetime(2027, 1, 1, tzinfo=UTC)))
    assert not same_explanation(a, "garbage")


# --- the safety property: never bound to a node that fails a filter ---------------------

_keys = st.sampled_from(["zone", "disk", "gen"])
_vals = st.sampled_from(["a", "b", "1", "5"])
_effects = st.sampled_from(["NoSchedule", "NoExecute", "PreferNoSchedule"])


@st.composite
def _node(draw: st.DrawFn, i: int) -> object:
    labels = draw(st.dictionaries(_keys, _vals, max_size=3))
    taints = [{"key": k, "value": v, "effect": e} for k, v, e in
              draw(st.lists(st.tuples(_keys, _vals, _effects), max_size=2, unique_by=lambda t: (t[0], t[2])))]
    return node(f"n{i}", cpu=draw(st.sampled_from(["1", "2", "4"])), memory=draw(st.sampled_from(["1Gi", "4Gi"])),
                pods=draw(st.sampled_from(["2", "110"])), labels=labels, taints=taints,
                unschedulable=draw(st.booleans()), ready=draw(st.sampled_from(["True", "True", "False"])))


@st.composite
def _spec(draw: st.DrawFn) -> dict:
    spec: dict = {}
    if draw(st.booleans()):
        spec["nodeSelector"] = draw(st.dictionaries(_keys, _vals, max_size=1))
    if draw(st.booleans()):
        op = draw(st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]))
        values = [draw(_vals)] if op not in ("Exists", "DoesNotExist") else []
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": draw(_keys), "operator": op, "values": values}]}]}}}
    if draw(st.booleans()):
        spec.setdefault("affinity", {})["podAntiAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "w"}}, "topologyKey": draw(_keys)}]}
    if draw(st.booleans()):
        spec["topologySpreadConstraints"] = [{"maxSkew": 1, "topologyKey": draw(_keys),
                                              "whenUnsatisfiable": "DoNotSchedule",
                                              "labelSelector": {"matchLabels": {"app": "w"}}}]
    spec["tolerations"] = [{"key": k, "operator": "Exists"} for k in draw(st.lists(_keys, max_size=2))]
    return spec


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_never_bound_to_a_node_that_fails_a_filter(data: st.DataObject) -> None:
    nodes = [data.draw(_node(i)) for i in range(data.draw(st.integers(0, 5)))]
    placed = []
    for j in range(data.draw(st.integers(0, 6))):
        if nodes:
            target = data.draw(st.sampled_from(nodes)).metadata.name
            placed.append(pod(f"x{j}", cpu=data.draw(st.sampled_from(["", "500m", "1"])), node_name=target,
                              labels=data.draw(st.sampled_from([{}, {"app": "w"}])), host_port=data.draw(
                                  st.sampled_from([0, 80]))))
    p = pod("p", cpu=data.draw(st.sampled_from(["", "500m", "2"])), labels={"app": "w"},
            host_port=data.draw(st.sampled_from([0, 80])), spec=data.draw(_spec()))
    d = decide(nodes, placed, p, seed=data.draw(st.integers(0, 3)))
    s = snap(nodes, placed)
    if d.node is None:
        assert d.message
        return
    # Re-check the chosen node with every filter from scratch.
    pi = info(p)
    for f in default_profile().filters:
        state = f.prepare(pi, s)
        if state is SKIP:
            continue
        status = f.filter(state, pi, s.by_name[d.node])
        assert status.ok, (f.name, status)


@pytest.mark.parametrize(("total", "percentage", "expected"), [
    (3, 0, 3), (99, 0, 99), (100, 0, 100), (1000, 0, 420), (5000, 0, 500), (50000, 0, 2500),
    (1000, 100, 1000), (1000, 10, 100), (1000, 30, 300),
])
def test_nodes_to_find(total: int, percentage: int, expected: int) -> None:
    assert nodes_to_find(total, percentage) == expected


def test_large_cluster_stops_at_enough_feasible_nodes_and_rotates() -> None:
    nodes = [node(f"n{i:04}") for i in range(1000)]
    s = snap(nodes)
    d = compute_decision(info(pod("p")), s, default_profile(), random.Random(0), start=990)
    assert len(d.verdicts) == 420 and d.feasible == 420 and d.nodes_total == 1000
    assert {v.node for v in d.verdicts} >= {"n0990", "n0999", "n0000", "n0409"}
    doc = json.loads(render_explanation(d, at=AT))
    assert doc["evaluated"] == 420 and doc["omitted"]["not_evaluated"] == 580
    full = compute_decision(info(pod("p")), s, default_profile(), random.Random(0), percentage=100)
    assert len(full.verdicts) == 1000
