"""Table tests for the namespace, garbage collector and node lifecycle
reconcilers, DefaultTolerationSeconds and the DELETE finalizers."""

from __future__ import annotations

import datetime as _dt

import pytest

from master.apiserver.admission.tolerations import add_default_tolerations
from master.apiserver.registry import gc_finalizers
from master.reconcile import garbagecollector as gc
from master.reconcile import namespace as nsplan
from master.reconcile import nodelifecycle as nl
from protos.coordination.v1 import coordination_pb2
from protos.core.v1 import core_pb2
from protos.resources import lookup

T0 = _dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=_dt.UTC)


def at(seconds: float) -> _dt.datetime:
    return T0 + _dt.timedelta(seconds=seconds)


# --- namespace ---------------------------------------------------------------------------

Item = nsplan.ContentItem


@pytest.mark.parametrize(("items", "delete", "remaining", "finalizers"), [
    ([], [], {}, {}),
    ([Item("pods", "a"), Item("pods", "b", deleting=True), Item("configmaps", "c")],
     ["a", "c"], {"pods": 2, "configmaps": 1}, {}),
    ([Item("configmaps", "held", deleting=True, finalizers=("example.com/x",))],
     [], {"configmaps": 1}, {"example.com/x": 1}),
])
def test_plan_content(items: list[nsplan.ContentItem], delete: list[str], remaining: dict[str, int],
                      finalizers: dict[str, int]) -> None:
    plan = nsplan.plan_content(items)
    assert [i.name for i in plan.delete] == delete
    assert plan.remaining == remaining
    assert plan.finalizers == finalizers
    assert plan.empty == (not remaining)


@pytest.mark.parametrize(("items", "failures", "want"), [
    ([], [], {"NamespaceDeletionContentFailure": ("False", "ContentDeleted"),
              "NamespaceContentRemaining": ("False", "ContentRemoved"),
              "NamespaceFinalizersRemaining": ("False", "ContentHasNoFinalizers")}),
    ([Item("pods", "a", deleting=True), Item("pods", "b", deleting=True, finalizers=("f",))], ["pods a: boom"],
     {"NamespaceDeletionContentFailure": ("True", "ContentDeletionFailed"),
      "NamespaceContentRemaining": ("True", "SomeResourcesRemain"),
      "NamespaceFinalizersRemaining": ("True", "SomeFinalizersRemain")}),
])
def test_compute_conditions(items: list[nsplan.ContentItem], failures: list[str],
                            want: dict[str, tuple[str, str]]) -> None:
    conds = nsplan.compute_conditions(nsplan.plan_content(items), failures)
    assert [c.type for c in conds] == list(nsplan.CONDITION_ORDER)
    got = {c.type: (c.status, c.reason) for c in conds}
    assert {k: got[k] for k in want} == want
    assert got["NamespaceDeletionDiscoveryFailure"] == ("False", "ResourcesDiscovered")


def test_condition_messages_match_kubernetes() -> None:
    plan = nsplan.plan_content([Item("pods", "a", deleting=True), Item("pods", "b", deleting=True, finalizers=("f",))])
    by_type = {c.type: c.message for c in nsplan.compute_conditions(plan, [])}
    assert by_type["NamespaceContentRemaining"] == "Some resources are remaining: pods has 2 resource instances"
    assert by_type["NamespaceFinalizersRemaining"] == (
        "Some content in the namespace has finalizers remaining: f in 1 resource instances")


def test_merge_conditions_keeps_transition_time_when_status_holds() -> None:
    old = [nsplan.Condition("A", "True", "r", "m", at(0)), nsplan.Condition("B", "False", "r", "m", at(0))]
    new = [nsplan.Condition("A", "True", "r2", "m2"), nsplan.Condition("B", "True", "r", "m")]
    merged = nsplan.merge_conditions(old, new, now=at(10))
    assert [(c.type, c.reason, c.last_transition_time) for c in merged] == [("A", "r2", at(0)), ("B", "r", at(10))]


def test_without_finalizer() -> None:
    assert nsplan.without_finalizer(["kubernetes", "x"]) == ["x"]


# --- garbage collector ---------------------------------------------------------------------

A, S, W = gc.OwnerState.ABSENT, gc.OwnerState.SOLID, gc.OwnerState.WAITING


@pytest.mark.parametrize(("refs", "states", "deleting", "finalizers", "delete", "policy"), [
    ([gc.Ref("o1")], {"o1": S}, False, (), False, ""),
    ([gc.Ref("o1")], {}, False, (), True, "Background"),
    ([gc.Ref("o1"), gc.Ref("o2")], {"o1": S}, False, (), False, ""),  # one solid owner keeps it
    ([gc.Ref("o1"), gc.Ref("o2")], {"o1": A, "o2": A}, False, (), True, "Background"),
    ([gc.Ref("o1", block_owner_deletion=True)], {"o1": W}, False, (), True, "Foreground"),
    ([gc.Ref("o1")], {"o1": W}, False, (), True, "Background"),  # does not block: background
    ([gc.Ref("o1")], {}, False, ("orphan",), True, "Orphan"),
    ([gc.Ref("o1")], {}, True, (), False, ""),  # already being deleted
    ([], {}, False, (), False, ""),
])
def test_plan_dependent(refs: list[gc.Ref], states: dict[str, gc.OwnerState], deleting: bool,
                        finalizers: tuple[str, ...], delete: bool, policy: str) -> None:
    action = gc.plan_dependent(refs, states, deleting=deleting, finalizers=finalizers)
    assert (action.delete, action.policy) == (delete, policy)


def test_plan_dependent_names_absent_owners_to_verify() -> None:
    action = gc.plan_dependent([gc.Ref("b"), gc.Ref("a"), gc.Ref("w")], {"w": W}, deleting=False)
    assert action.verify == ("a", "b")


@pytest.mark.parametrize(("exists", "deleting", "finalizers", "state"), [
    (False, False, [], A), (True, False, [], S), (True, True, [], S),
    (True, True, ["foregroundDeletion"], W), (True, True, ["orphan"], S),
])
def test_owner_state(exists: bool, deleting: bool, finalizers: list[str], state: gc.OwnerState) -> None:
    assert gc.owner_state(exists, deleting=deleting, finalizers=finalizers) is state


D = gc.DependentView


@pytest.mark.parametrize(("finalizers", "deps", "orphan", "delete", "remove"), [
    # Orphan: drop the references first, the finalizer once none is left.
    (["orphan"], [D("b", False, True), D("a", True, False)], ["a", "b"], [], ""),
    (["orphan"], [], [], [], "orphan"),
    # Foreground: blocking dependents first, in the foreground; wait while they exist.
    (["foregroundDeletion"], [D("z", False, False), D("y", False, True), D("x", True, True)], [],
     [("y", "Foreground"), ("z", "Background")], ""),
    # Only non-blocking dependents left: they are deleted and the owner may go.
    (["foregroundDeletion"], [D("z", False, False)], [], [("z", "Background")], "foregroundDeletion"),
    (["foregroundDeletion"], [], [], [], "foregroundDeletion"),
    (["example.com/other"], [D("a", False, True)], [], [], ""),
])
def test_plan_owner(finalizers: list[str], deps: list[gc.DependentView], orphan: list[str],
                    delete: list[tuple[str, str]], remove: str) -> None:
    plan = gc.plan_owner(deleting=True, finalizers=finalizers, dependents=deps)
    assert (plan.orphan, plan.delete, plan.remove_finalizer) == (orphan, delete, remove)


def test_plan_owner_not_deleting_does_nothing() -> None:
    assert gc.plan_owner(deleting=False, finalizers=["orphan"], dependents=[D("a", False, True)]) == gc.OwnerPlan()


CM = lookup("", "configmaps")
NS = lookup("", "namespaces")


@pytest.mark.parametrize(("finalizers", "policy", "want"), [
    ([], "", []),
    ([], "Background", []),
    ([], "Orphan", ["orphan"]),
    ([], "Foreground", ["foregroundDeletion"]),
    (["orphan"], "", ["orphan"]),
    (["orphan"], "Foreground", ["foregroundDeletion"]),
    (["foregroundDeletion"], "Orphan", ["orphan"]),
    (["orphan", "x"], "Background", ["x"]),
    (["x"], "Foreground", ["x", "foregroundDeletion"]),
])
def test_gc_finalizers_from_propagation_policy(finalizers: list[str], policy: str, want: list[str]) -> None:
    assert CM is not None and NS is not None
    assert gc_finalizers(CM, finalizers, policy) == want
    assert gc_finalizers(NS, finalizers, policy) == finalizers


# --- node lifecycle -----------------------------------------------------------------------

def node(*, created: float = 0, ready: str | None = None, heartbeat: float | None = None,
         taints: list[tuple[str, str]] = ()) -> core_pb2.Node:  # type: ignore[assignment]
    n = core_pb2.Node()
    n.metadata.name = "n1"
    n.metadata.creation_timestamp.FromDatetime(at(created))
    if ready is not None:
        c = n.status.conditions.add(type="Ready", status=ready, reason="KubeletReady")
        c.last_heartbeat_time.FromDatetime(at(heartbeat if heartbeat is not None else created))
        c.last_transition_time.FromDatetime(at(created))
    for key, effect in taints:
        n.spec.taints.add(key=key, effect=effect)
    return n


def lease(renewed: float) -> coordination_pb2.Lease:
    lz = coordination_pb2.Lease()
    lz.spec.renew_time.FromDatetime(at(renewed))
    return lz


@pytest.mark.parametrize(("n", "lz", "now", "unknown", "recheck"), [
    (node(ready="True"), lease(100), 120, False, 20.0),  # lease fresh: look again at expiry
    (node(ready="True"), lease(100), 140, True, None),  # exactly expired
    (node(ready="True", heartbeat=130), lease(100), 150, False, 20.0),  # status newer than lease
    (node(ready="Unknown"), lease(0), 500, False, None),  # already Unknown: nothing
    (node(), None, 10, False, 30.0),  # never reported: grace from creation
    (node(), None, 41, True, None),
    (node(ready="False"), lease(0), 100, True, None),  # not-ready and silent: Unknown
])
def test_plan_node_health(n: core_pb2.Node, lz: coordination_pb2.Lease | None, now: float,
                          unknown: bool, recheck: float | None) -> None:
    plan = nl.plan_node_health(n, lz, now=at(now), grace_s=40)
    assert (plan.mark_unknown, plan.recheck_after_s) == (unknown, recheck)


def test_a_restarted_controller_gives_every_node_a_full_grace_period() -> None:
    stale = node(ready="True")
    plan = nl.plan_node_health(stale, lease(0), now=at(1000), grace_s=40, observed_since=at(990))
    assert (plan.mark_unknown, plan.recheck_after_s) == (False, 30.0)
    plan = nl.plan_node_health(stale, lease(0), now=at(1030), grace_s=40, observed_since=at(990))
    assert plan.mark_unknown


def test_mark_unknown_sets_every_kubelet_condition() -> None:
    n = node(ready="True")
    nl.mark_unknown(n, now=at(50))
    conds = {c.type: c for c in n.status.conditions}
    assert set(conds) == set(nl.KUBELET_CONDITIONS)
    for c in conds.values():
        assert (c.status, c.reason, c.message) == ("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
    assert conds["Ready"].last_transition_time.ToDatetime(tzinfo=_dt.UTC) == at(50)
    assert conds["Ready"].last_heartbeat_time.ToDatetime(tzinfo=_dt.UTC) == at(0)  # kept


U, NR = nl.UNREACHABLE, nl.NOT_READY


@pytest.mark.parametrize(("n", "want", "changed"), [
    (node(ready="True"), [], False),
    (node(ready="Unknown"), [(U, "NoSchedule"), (U, "NoExecute")], True),
    (node(ready="False"), [(NR, "NoSchedule"), (NR, "NoExecute")], True),
    (node(ready="True", taints=[("x", "NoSchedule"), (U, "NoExecute")]), [("x", "NoSchedule")], True),
    (node(ready="False", taints=[(U, "NoSchedule"), (U, "NoExecute")]),
     [(NR, "NoSchedule"), (NR, "NoExecute")], True),
    (node(ready="Unknown", taints=[(U, "NoSchedule"), (U, "NoExecute")]),
     [(U, "NoSchedule"), (U, "NoExecute")], False),
    (node(), [], False),
])
def test_plan_taints(n: core_pb2.Node, want: list[tuple[str, str]], changed: bool) -> None:
    plan = nl.plan_taints(n)
    assert (plan.taints, plan.changed) == (want, changed)


def test_apply_taints_stamps_new_no_execute_taints_and_keeps_old_ones() -> None:
    n = node(ready="Unknown", taints=[("x", "NoSchedule")])
    n.spec.taints[0].value = "v"
    nl.apply_taints(n, nl.plan_taints(n), now=at(5))
    assert [(t.key, t.value, t.effect, t.HasField("time_added")) for t in n.spec.taints] == [
        ("x", "v", "NoSchedule", False), (U, "", "NoSchedule", False), (U, "", "NoExecute", True)]
    assert n.spec.taints[2].time_added.ToDatetime(tzinfo=_dt.UTC) == at(5)


def taint(key: str, effect: str = "NoExecute", *, added: float = 0, value: str = "") -> core_pb2.Taint:
    t = core_pb2.Taint(key=key, effect=effect, value=value)
    t.time_added.FromDatetime(at(added))
    return t


def tol(key: str = "", op: str = "Exists", effect: str = "", seconds: int | None = None,
        value: str = "") -> core_pb2.Toleration:
    t = core_pb2.Toleration(key=key, operator=op, effect=effect, value=value)
    if seconds is not None:
        t.toleration_seconds = seconds
    return t


@pytest.mark.parametrize(("tolerations", "taints", "now", "want"), [
    ([], [], 0, None),
    ([], [taint(U, "NoSchedule")], 0, None),  # NoSchedule never evicts
    ([], [taint(U)], 0, 0.0),  # untolerated: now
    ([tol(U, effect="NoExecute", seconds=300)], [taint(U, added=0)], 100, 200.0),
    ([tol(U, effect="NoExecute", seconds=300)], [taint(U, added=0)], 400, 0.0),
    ([tol(U, effect="NoExecute")], [taint(U)], 10_000, None),  # forever
    ([tol(U, seconds=30), tol(U, seconds=10)], [taint(U)], 0, 10.0),  # smallest wins
    ([tol(op="Exists")], [taint(U), taint(NR)], 0, None),  # empty key Exists tolerates all
    ([tol(U, seconds=60)], [taint(U), taint(NR)], 0, 0.0),  # one taint untolerated
    ([tol("k", op="Equal", value="a", effect="NoExecute")], [taint("k", value="b")], 0, 0.0),
    ([tol("k", op="Equal", value="a", effect="NoExecute")], [taint("k", value="a")], 0, None),
    ([tol(U, effect="NoSchedule")], [taint(U)], 0, 0.0),  # wrong effect
    ([tol(U, seconds=-5)], [taint(U)], 0, 0.0),  # negative: at once
])
def test_plan_eviction(tolerations: list[core_pb2.Toleration], taints: list[core_pb2.Taint],
                       now: float, want: float | None) -> None:
    assert nl.plan_eviction(tolerations, taints, now=at(now)) == want


# --- DefaultTolerationSeconds ------------------------------------------------------------------

@pytest.mark.parametrize(("existing", "added"), [
    ([], [NR, U]),
    ([tol(U, effect="NoExecute", seconds=5)], [NR]),
    ([tol(NR)], [U]),  # empty effect counts
    ([tol()], []),  # empty key and effect tolerates both
    ([tol(U, effect="NoSchedule")], [NR, U]),  # another effect does not count
])
def test_default_tolerations(existing: list[core_pb2.Toleration], added: list[str]) -> None:
    p = core_pb2.Pod()
    for t in existing:
        p.spec.tolerations.add().CopyFrom(t)
    add_default_tolerations(p, 7)
    new = list(p.spec.tolerations)[len(existing):]
    assert [(t.key, t.operator, t.effect, t.toleration_seconds) for t in new] == [
        (k, "Exists", "NoExecute", 7) for k in added]
