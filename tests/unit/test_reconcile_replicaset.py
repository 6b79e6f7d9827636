"""master.reconcile.replicaset: claims, replica diffs, deletion ranking, status, slow start."""

from __future__ import annotations

import pytest

from master.reconcile import replicaset as rs
from protos.apps.v1 import apps_pb2
from protos.core.v1 import core_pb2
from protos.meta.v1 import meta_pb2

NOW = 1_000_000.0


def owner(*, uid: str = "rs-uid", deleting: bool = False, replicas: int = 3) -> apps_pb2.ReplicaSet:
    o = apps_pb2.ReplicaSet()
    o.metadata.name, o.metadata.namespace, o.metadata.uid = "web", "default", uid
    o.spec.replicas = replicas
    o.spec.selector.match_labels["app"] = "web"
    o.spec.template.metadata.labels["app"] = "web"
    o.spec.template.spec.containers.add(name="main", image="nginx")
    if deleting:
        o.metadata.deletion_timestamp.seconds = 1
    return o


def pod(name: str, *, labels: dict[str, str] | None = None, owner_uid: str | None = None,
        node: str = "", phase: str = "Running", ready: bool | None = True, ready_since: float = NOW - 100,
        created: float = NOW - 1000, restarts: int = 0, deleting: bool = False, cost: int | None = None,
        owner_kind: str = "ReplicaSet") -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.name, p.metadata.namespace = name, "default"
    p.metadata.uid = f"uid-{name}"
    p.metadata.labels.update({"app": "web"} if labels is None else labels)
    p.metadata.creation_timestamp.seconds = int(created)
    if owner_uid is not None:
        p.metadata.owner_references.add(kind=owner_kind, name="web", uid=owner_uid, controller=True)
    if deleting:
        p.metadata.deletion_timestamp.seconds = 1
    if cost is not None:
        p.metadata.annotations[rs.POD_DELETION_COST] = str(cost)
    p.spec.node_name = node
    p.status.phase = phase
    if ready is not None:
        c = p.status.conditions.add(type="Ready", status="True" if ready else "False")
        c.last_transition_time.seconds = int(ready_since)
    p.status.container_statuses.add(name="main", restart_count=restarts)
    return p


def names(objs: list) -> list[str]:  # noqa: ANN001
    return [o.metadata.name for o in objs]


# selector ------------------------------------------------------------------------

def expr(key: str, op: str, *values: str) -> meta_pb2.LabelSelector:
    sel = meta_pb2.LabelSelector()
    sel.match_expressions.add(key=key, operator=op, values=list(values))
    return sel


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    (meta_pb2.LabelSelector(match_labels={"a": "1"}), {"a": "1", "b": "2"}, True),
    (meta_pb2.LabelSelector(match_labels={"a": "1"}), {"a": "2"}, False),
    (expr("a", "In", "1", "2"), {"a": "2"}, True),
    (expr("a", "In", "1"), {}, False),
    (expr("a", "NotIn", "1"), {}, True),
    (expr("a", "NotIn", "1"), {"a": "1"}, False),
    (expr("a", "Exists"), {"a": ""}, True),
    (expr("a", "DoesNotExist"), {"a": ""}, False),
    (meta_pb2.LabelSelector(), {"x": "y"}, True),
])
def test_selector_matches(selector: meta_pb2.LabelSelector, labels: dict[str, str], expected: bool) -> None:
    assert rs.selector_matches(selector, labels) is expected


# claims --------------------------------------------------------------------------

def test_claims_own_adopt_release_and_ignore() -> None:
    o = owner()
    pods = [
        pod("mine", owner_uid="rs-uid"),
        pod("orphan"),
        pod("stray", labels={"app": "other"}, owner_uid="rs-uid"),
        pod("someone-elses", owner_uid="other-uid"),
        pod("unrelated-orphan", labels={"app": "other"}),
        pod("dying-orphan", deleting=True),
    ]
    claims = rs.plan_claims(o, pods, o.spec.selector)
    assert names(claims.owned) == ["mine"]
    assert names(claims.adopt) == ["orphan"]
    assert names(claims.release) == ["stray"]


def test_deleting_owner_adopts_nothing_and_releases_nothing() -> None:
    o = owner(deleting=True)
    claims = rs.plan_claims(o, [pod("orphan"), pod("stray", labels={}, owner_uid="rs-uid")], o.spec.selector)
    assert claims.adopt == [] and claims.release == []


def test_empty_selector_adopts_nothing() -> None:
    o = owner()
    claims = rs.plan_claims(o, [pod("orphan")], meta_pb2.LabelSelector())
    assert claims.adopt == []


# replicas ------------------------------------------------------------------------

@pytest.mark.parametrize(("desired", "active", "creates", "deletes"), [
    (3, 0, 3, 0),
    (3, 3, 0, 0),
    (3, 5, 0, 2),
    (0, 2, 0, 2),
    (1000, 0, 500, 0),  # burst limit
])
def test_plan_replicas(desired: int, active: int, creates: int, deletes: int) -> None:
    plan = rs.plan_replicas(desired, [pod(f"p{i}") for i in range(active)])
    assert plan.create == creates and len(plan.delete) == deletes


@pytest.mark.parametrize(("count", "batches"), [
    (0, []), (1, [1]), (3, [1, 2]), (10, [1, 2, 4, 3]), (500, [1, 2, 4, 8, 16, 32, 64, 128, 245]),
])
def test_slow_start_batches(count: int, batches: list[int]) -> None:
    assert rs.slow_start_batches(count) == batches


# deletion ranking (each row: the first pod is deleted before the second) ------------

@pytest.mark.parametrize(("first", "second", "why"), [
    (pod("a", node=""), pod("b", node="n1"), "unscheduled before scheduled"),
    (pod("a", node="n1", phase="Pending", ready=None), pod("b", node="n1", phase="Running"), "pending before running"),
    (pod("a", node="n1", phase="Unknown", ready=None), pod("b", node="n1", phase="Running"), "unknown before running"),
    (pod("a", node="n1", ready=False), pod("b", node="n1", ready=True), "not ready before ready"),
    (pod("a", node="n1", cost=-5), pod("b", node="n1", cost=10), "lower deletion cost first"),
    (pod("a", node="n1", ready_since=NOW - 10), pod("b", node="n1", ready_since=NOW - 500), "ready for less time"),
    (pod("a", node="n1", restarts=5), pod("b", node="n1", restarts=0), "more restarts first"),
    (pod("a", node="n1", created=NOW - 10), pod("b", node="n1", created=NOW - 999), "newer first"),
])
def test_deletion_rank(first: core_pb2.Pod, second: core_pb2.Pod, why: str) -> None:
    assert names(rs.rank_pods_for_deletion([second, first])) == ["a", "b"], why
    assert names(rs.rank_pods_for_deletion([first, second])) == ["a", "b"], why


def test_doubled_up_nodes_lose_pods_first() -> None:
    pods = [pod("alone", node="n1"), pod("crowd1", node="n2", created=NOW - 5000),
            pod("crowd2", node="n2", created=NOW - 5000)]
    assert names(rs.rank_pods_for_deletion(pods))[0] in ("crowd1", "crowd2")
    assert names(rs.rank_pods_for_deletion(pods))[2] == "alone"


# status --------------------------------------------------------------------------

def test_status_counts_ready_available_and_fully_labeled() -> None:
    pods = [
        pod("a", ready_since=NOW - 100),                        # available
        pod("b", ready_since=NOW - 5),                          # ready, not yet available (minReady 30)
        pod("c", ready=False),
        pod("d", labels={"app": "web"}, ready=None, phase="Pending"),
    ]
    pods[3].metadata.labels.clear()  # selector matched through ownership; template labels missing
    counts = rs.compute_status(pods, {"app": "web"}, min_ready_seconds=30, now=NOW)
    assert counts == rs.ReplicaCounts(replicas=4, fully_labeled_replicas=3, ready_replicas=2,
                                      available_replicas=1)
    assert rs.seconds_until_available(pods, 30, NOW) == pytest.approx(25)
    assert rs.seconds_until_available(pods, 0, NOW) is None


@pytest.mark.parametrize(("p", "active"), [
    (pod("a", phase="Running"), True),
    (pod("a", phase="Pending"), True),
    (pod("a", phase="Succeeded"), False),
    (pod("a", phase="Failed"), False),
    (pod("a", deleting=True), False),
])
def test_active(p: core_pb2.Pod, active: bool) -> None:
    assert rs.is_pod_active(p) is active


def test_render_pod_uses_generate_name_and_controller_ref() -> None:
    o = owner()
    p = rs.render_pod(o, o.spec.template, api_version="apps/v1", kind="ReplicaSet")
    assert p.metadata.generate_name == "web-" and p.metadata.name == ""
    ref = p.metadata.owner_references[0]
    assert (ref.kind, ref.name, ref.uid, ref.controller, ref.block_owner_deletion) == (
        "ReplicaSet", "web", "rs-uid", True, True)
    assert p.spec.containers[0].image == "nginx" and p.metadata.labels["app"] == "web"
