"""The DaemonSet reconciler (master/reconcile/daemonset.py): table tests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from master.reconcile.daemonset import (
    DAEMON_TOLERATIONS,
    node_should_run,
    plan_daemonset,
    target_node,
)
from master.reconcile.workloadpods import REVISION_HASH_LABEL, template_hash
from protos.core.v1 import core_pb2
from tests.unit.workload_builders import NOW, daemonset, node, owned_pod

DS = daemonset()
REV = template_hash(DS.spec.template)
OLD = "oldrev"


def pod(name: str, node_name: str, *, rev: str = REV, **kw: Any) -> core_pb2.Pod:
    return owned_pod(DS, name, kind="DaemonSet", node_name=node_name,
                     labels={REVISION_HASH_LABEL: rev}, **kw)


def pending(name: str, node_name: str, *, rev: str = REV, **kw: Any) -> core_pb2.Pod:
    """A daemon pod for `node_name` the scheduler has not bound yet (as new_daemon_pod makes it)."""
    p = owned_pod(DS, name, kind="DaemonSet", phase="Pending", ready=False,
                  labels={REVISION_HASH_LABEL: rev}, **kw)
    _pin(p.spec, node_name)
    return p


def _pin(spec: core_pb2.PodSpec, *values: str, key: str = "metadata.name", operator: str = "In") -> None:
    term = spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms.add()
    term.match_fields.add(key=key, operator=operator, values=list(values))


def created_nodes(plan: Any) -> list[str]:
    return sorted(target_node(p) for p in plan.creates)


THREE = [node("n1"), node("n2"), node("n3")]


@pytest.mark.parametrize(("case", "nodes", "pods", "creates", "deletes"), [
    ("one pod per node", THREE, [], ["n1", "n2", "n3"], []),
    ("steady state", THREE, [pod("a", "n1"), pod("b", "n2"), pod("c", "n3")], [], []),
    ("a node joins", THREE, [pod("a", "n1"), pod("b", "n2")], ["n3"], []),
    ("a node leaves", THREE[:2], [pod("a", "n1"), pod("b", "n2"), pod("c", "n3")], [], []),
    ("duplicate on a node", THREE, [pod("a", "n1"), pod("a2", "n1"), pod("b", "n2"), pod("c", "n3")],
     [], ["a2"]),
    ("failed pod is replaced", THREE[:1], [pod("a", "n1", phase="Failed")], ["n1"], ["a"]),
    ("no new pod while the old one terminates", THREE[:1], [pod("a", "n1", terminating=True)], [], []),
    ("untolerated NoSchedule taint", [node("n1", taints=[("dedicated", "NoSchedule")])], [], [], []),
    ("NoSchedule taint keeps a running pod", [node("n1", taints=[("dedicated", "NoSchedule")])],
     [pod("a", "n1")], [], []),
    ("NoExecute taint evicts", [node("n1", taints=[("dedicated", "NoExecute")])], [pod("a", "n1")],
     [], ["a"]),
    ("daemon tolerations: unreachable, unschedulable, pressure",
     [node("n1", taints=[("node.kubernetes.io/unreachable", "NoExecute"),
                         ("node.kubernetes.io/unschedulable", "NoSchedule"),
                         ("node.kubernetes.io/disk-pressure", "NoSchedule")])], [], ["n1"], []),
])
def test_plan_daemonset(case: str, nodes: list[core_pb2.Node], pods: list[core_pb2.Pod],
                        creates: list[str], deletes: list[str]) -> None:
    plan = plan_daemonset(DS, nodes, pods, now=NOW)
    assert created_nodes(plan) == creates, case
    assert sorted(plan.deletes) == deletes, case


def _spec(build: Any) -> core_pb2.Pod:
    p = core_pb2.Pod()
    build(p.spec)
    return p


def _bound_elsewhere(spec: core_pb2.PodSpec) -> None:
    _pin(spec, "n2")
    spec.node_name = "n1"


def _with_expression_first(spec: core_pb2.PodSpec) -> None:
    required = spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    required.node_selector_terms.add().match_expressions.add(key="zone", operator="In", values=["a"])
    _pin(spec, "n2")


@pytest.mark.parametrize(("case", "pod_", "want"), [
    ("bound: spec.nodeName", _spec(lambda s: setattr(s, "node_name", "n1")), "n1"),
    ("bound wins over the affinity", _spec(_bound_elsewhere), "n1"),
    ("unbound: matchFields metadata.name In [node]", _spec(lambda s: _pin(s, "n1")), "n1"),
    ("the term need not be the first", _spec(_with_expression_first), "n2"),
    ("no affinity", core_pb2.Pod(), ""),
    ("required affinity without terms",
     _spec(lambda s: s.affinity.node_affinity.required_during_scheduling_ignored_during_execution.SetInParent()), ""),
    ("two values are not one node", _spec(lambda s: _pin(s, "n1", "n2")), ""),
    ("no value", _spec(lambda s: _pin(s)), ""),
    ("NotIn names no node", _spec(lambda s: _pin(s, "n1", operator="NotIn")), ""),
    ("another field", _spec(lambda s: _pin(s, "n1", key="metadata.uid")), ""),
])
def test_target_node(case: str, pod_: core_pb2.Pod, want: str) -> None:
    assert target_node(pod_) == want, case


@pytest.mark.parametrize(("case", "nodes", "pods", "creates", "deletes"), [
    ("a pending pod is not duplicated", THREE, [pod("a", "n1"), pending("b", "n2"), pod("c", "n3")], [], []),
    ("pending everywhere", THREE, [pending("a", "n1"), pending("b", "n2"), pending("c", "n3")], [], []),
    ("a pending duplicate goes", THREE[:1], [pod("a", "n1"), pending("a2", "n1")], [], ["a2"]),
    ("only the node without a pod gets one", THREE, [pending("a", "n1")], ["n2", "n3"], []),
    ("a pending pod of the old revision is replaced", THREE[:1], [pending("a", "n1", rev=OLD)], [], ["a"]),
    ("no new pod while a pending one terminates", THREE[:1], [pending("a", "n1", terminating=True)], [], []),
    ("a pending pod on a node that no longer matches goes",
     [node("n1", taints=[("dedicated", "NoExecute")])], [pending("a", "n1")], [], ["a"]),
])
def test_pending_pods_count_on_their_node(case: str, nodes: list[core_pb2.Node], pods: list[core_pb2.Pod],
                                          creates: list[str], deletes: list[str]) -> None:
    plan = plan_daemonset(DS, nodes, pods, now=NOW)
    assert created_nodes(plan) == creates, case
    assert sorted(plan.deletes) == deletes and plan.force_deletes == [], case


def test_pending_pods_status() -> None:
    s = plan_daemonset(DS, THREE, [pod("a", "n1"), pending("b", "n2"), pending("c", "n3", rev=OLD)], now=NOW).status
    assert (s.desired_number_scheduled, s.current_number_scheduled, s.number_ready, s.number_available,
            s.updated_number_scheduled, s.number_misscheduled, s.number_unavailable) == (3, 3, 1, 1, 2, 0, 2)


def test_pod_without_a_node_is_left_alone() -> None:
    stray = owned_pod(DS, "s", kind="DaemonSet", phase="Pending", labels={REVISION_HASH_LABEL: REV})
    plan = plan_daemonset(DS, THREE[:1], [stray], now=NOW)
    assert created_nodes(plan) == ["n1"] and plan.deletes == [] and plan.force_deletes == []


def test_pods_on_a_node_that_left_are_force_deleted() -> None:
    pods = [pod("a", "n1"), pod("c", "gone"), pod("d", "gone", terminating=True), pending("e", "gone")]
    plan = plan_daemonset(DS, THREE[:1], pods, now=NOW)
    assert plan.force_deletes == ["c", "d", "e"] and plan.deletes == []
    assert plan.status.desired_number_scheduled == 1 and plan.status.number_misscheduled == 0


def test_node_selector_and_affinity() -> None:
    ds = daemonset()
    ds.spec.template.spec.node_selector["disk"] = "ssd"
    term = (ds.spec.template.spec.affinity.node_affinity
            .required_during_scheduling_ignored_during_execution.node_selector_terms.add())
    term.match_expressions.add(key="zone", operator="In", values=["a", "b"])
    nodes = [node("n1", labels={"disk": "ssd", "zone": "a"}), node("n2", labels={"disk": "ssd", "zone": "c"}),
             node("n3", labels={"zone": "a"})]
    ours = owned_pod(ds, "p2", kind="DaemonSet", node_name="n2",
                     labels={REVISION_HASH_LABEL: template_hash(ds.spec.template)})
    plan = plan_daemonset(ds, nodes, [ours], now=NOW)
    assert created_nodes(plan) == ["n1"]
    assert plan.deletes == ["p2"]  # labels changed: the node no longer matches
    assert plan.status.number_misscheduled == 1 and plan.status.desired_number_scheduled == 1


def test_match_fields_and_gt() -> None:
    spec = core_pb2.PodSpec()
    term = spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms.add()
    term.match_fields.add(key="metadata.name", operator="In", values=["n2"])
    term.match_expressions.add(key="cores", operator="Gt", values=["2"])
    assert node_should_run(spec, node("n2", labels={"cores": "4"})) == (True, True)
    assert node_should_run(spec, node("n2", labels={"cores": "2"}))[0] is False
    assert node_should_run(spec, node("n1", labels={"cores": "4"}))[0] is False


def test_created_pod_shape() -> None:
    ds = daemonset()
    ds.spec.template.spec.node_selector["disk"] = "ssd"
    required = ds.spec.template.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    required.node_selector_terms.add().match_expressions.add(key="zone", operator="In", values=["a"])
    required.node_selector_terms.add().match_expressions.add(key="zone", operator="In", values=["b"])
    plan = plan_daemonset(ds, [node("n1", labels={"disk": "ssd", "zone": "a"})], [], now=NOW)
    (p,) = plan.creates
    assert p.metadata.generate_name == "ds-" and p.spec.node_name == ""  # the scheduler binds it
    assert dict(p.spec.node_selector) == {"disk": "ssd"}  # kept: the node matches it anyway
    assert target_node(p) == "n1"
    rev = template_hash(ds.spec.template)
    assert p.metadata.labels[REVISION_HASH_LABEL] == rev and p.metadata.labels["app"] == "x"
    ref = p.metadata.owner_references[0]
    assert (ref.kind, ref.uid, ref.controller, ref.block_owner_deletion) == ("DaemonSet", "ds-uid", True, True)
    # Kubernetes' ReplaceDaemonSetPodNodeNameNodeAffinity: the template's terms give way to one.
    terms = p.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms
    assert len(terms) == 1 and not terms[0].match_expressions
    assert [(f.key, f.operator, list(f.values)) for f in terms[0].match_fields] == [("metadata.name", "In", ["n1"])]
    have = {(t.key, t.effect) for t in p.spec.tolerations if t.operator == "Exists"}
    assert set(DAEMON_TOLERATIONS) <= have


def test_rolling_update_max_unavailable() -> None:
    nodes = [node(f"n{i}") for i in range(4)]
    pods = [pod(f"p{i}", f"n{i}", rev=OLD) for i in range(4)]
    ds = daemonset(max_unavailable=2)
    plan = plan_daemonset(ds, nodes, pods, now=NOW)
    assert plan.deletes == ["p0", "p1"] and plan.creates == []
    # one node already down (no pod): only one more may go
    plan = plan_daemonset(ds, nodes, pods[1:] + [pod("t0", "n0", rev=OLD, terminating=True)], now=NOW)
    assert plan.deletes == ["p1"]
    # an unavailable old pod is replaced without using the budget
    pods[3] = pod("p3", "n3", rev=OLD, ready=False)
    plan = plan_daemonset(daemonset(max_unavailable=1), nodes, pods, now=NOW)
    assert plan.deletes == ["p3"]


def test_rolling_update_percent() -> None:
    nodes = [node(f"n{i}") for i in range(10)]
    pods = [pod(f"p{i}", f"n{i}", rev=OLD) for i in range(10)]
    plan = plan_daemonset(daemonset(max_unavailable="25%"), nodes, pods, now=NOW)
    assert len(plan.deletes) == 3  # 2.5 rounds up


def test_rolling_update_surge() -> None:
    nodes = [node("n0"), node("n1")]
    ds = daemonset(max_unavailable=0, max_surge=1)
    old = [pod("p0", "n0", rev=OLD), pod("p1", "n1", rev=OLD)]
    plan = plan_daemonset(ds, nodes, old, now=NOW)
    assert created_nodes(plan) == ["n0"] and plan.deletes == []
    # new pod on n0 not ready yet: wait, surge budget spent
    surging = old + [pod("q0", "n0", ready=False)]
    plan = plan_daemonset(ds, nodes, surging, now=NOW)
    assert plan.creates == [] and plan.deletes == []
    # new pod available: the old one goes; n0 still counts as surging until it is gone
    ready = old + [pod("q0", "n0")]
    plan = plan_daemonset(ds, nodes, ready, now=NOW)
    assert plan.deletes == ["p0"] and plan.creates == []
    # then the next node surges
    plan = plan_daemonset(ds, nodes, [pod("q0", "n0"), old[1]], now=NOW)
    assert created_nodes(plan) == ["n1"] and plan.deletes == []
    # its new pod not bound yet: it surges already, the old pod stays, nothing more is created
    plan = plan_daemonset(ds, nodes, [pod("q0", "n0"), old[1], pending("q1", "n1")], now=NOW)
    assert plan.creates == [] and plan.deletes == []


def test_on_delete_leaves_old_pods() -> None:
    plan = plan_daemonset(daemonset(strategy="OnDelete"), [node("n1")], [pod("a", "n1", rev=OLD)], now=NOW)
    assert plan.creates == [] and plan.deletes == []
    assert plan.status.updated_number_scheduled == 0


def test_status() -> None:
    ds = daemonset(generation=4)
    ds.spec.min_ready_seconds = 30
    nodes = [node("n1"), node("n2"), node("n3"), node("tainted", taints=[("x", "NoSchedule")])]
    pods = [pod("a", "n1"), pod("b", "n2", ready=False), pod("c", "n3", rev=OLD, ready_since=NOW - timedelta(seconds=10)),
            pod("d", "tainted")]
    s = plan_daemonset(ds, nodes, pods, now=NOW).status
    assert (s.desired_number_scheduled, s.current_number_scheduled, s.number_ready,
            s.number_available, s.updated_number_scheduled, s.number_misscheduled,
            s.number_unavailable, s.observed_generation) == (3, 3, 2, 1, 2, 1, 2, 4)


def test_min_ready_requeues() -> None:
    ds = daemonset()
    ds.spec.min_ready_seconds = 30
    plan = plan_daemonset(ds, [node("n1")], [pod("a", "n1", ready_since=NOW - timedelta(seconds=10))], now=NOW)
    assert plan.requeue_after_s == pytest.approx(20)


# --- property: a rolling update stays within maxUnavailable / maxSurge -------------------------

ds_actions = st.lists(st.one_of(
    st.tuples(st.just("sync"), st.just(0)),
    st.tuples(st.just("gone"), st.integers(0, 5)),
    st.tuples(st.just("ready"), st.integers(0, 5)),
    st.tuples(st.just("image"), st.integers(0, 2)),
), max_size=60)


@settings(max_examples=150, deadline=None)
@given(actions=ds_actions, surge=st.booleans(), budget=st.integers(1, 3))
def test_rolling_update_bounds(actions: list[tuple[str, int]], surge: bool, budget: int) -> None:
    ds = daemonset(max_unavailable=0 if surge else budget, max_surge=budget if surge else 0)
    nodes = [node(f"n{i}") for i in range(6)]
    rev = template_hash(ds.spec.template)
    live: dict[str, core_pb2.Pod] = {f"p{i}": pod(f"p{i}", f"n{i}", rev=rev) for i in range(6)}
    counter = iter(range(10_000))
    for action, arg in actions:
        on_node = [p for p in live.values() if target_node(p) == f"n{arg}"]
        if action == "image":
            ds.spec.template.spec.containers[0].image = f"nginx:{arg + 2}"
        elif action == "gone":
            for p in on_node:
                if p.metadata.HasField("deletion_timestamp"):
                    del live[p.metadata.name]
        elif action == "ready":
            for p in on_node:
                if not p.status.conditions[0].status == "True":
                    p.status.conditions[0].status = "True"
        else:
            unavailable_before = _unavailable(live, nodes)
            plan = plan_daemonset(ds, nodes, list(live.values()), now=NOW)
            deleted_available = 0
            for name in plan.deletes:
                p = live[name]
                deleted_available += p.status.conditions[0].status == "True"
                p.metadata.deletion_timestamp.CopyFrom(p.metadata.creation_timestamp)
            for new in plan.creates:
                new.metadata.name = f"new{next(counter)}"
                new.status.phase = "Running"
                new.status.conditions.add(type="Ready", status="False")
                live[new.metadata.name] = new
            if not surge and deleted_available:
                assert _unavailable(live, nodes) <= max(budget, unavailable_before)
            if surge:
                assert deleted_available == 0 or _unavailable(live, nodes) <= unavailable_before
            surging = sum(1 for n in nodes if len(_live_on(live, n.metadata.name)) > 1)
            assert surging <= (budget if surge else 0) or not plan.creates


def _live_on(live: dict[str, core_pb2.Pod], node_name: str) -> list[core_pb2.Pod]:
    return [p for p in live.values() if target_node(p) == node_name
            and not p.metadata.HasField("deletion_timestamp")]


def _unavailable(live: dict[str, core_pb2.Pod], nodes: list[core_pb2.Node]) -> int:
    return sum(1 for n in nodes
               if not any(p.status.conditions[0].status == "True" for p in _live_on(live, n.metadata.name)))
