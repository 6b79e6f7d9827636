"""The StatefulSet reconciler (master/reconcile/statefulset.py): table tests and a safety property."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from master.reconcile.statefulset import (
    POD_INDEX_LABEL,
    POD_NAME_LABEL,
    desired_replicas,
    plan_statefulset,
    update_revision,
)
from master.reconcile.workloadpods import REVISION_HASH_LABEL, is_running_and_ready
from protos.apps.v1 import apps_pb2
from protos.core.v1 import core_pb2
from tests.unit.workload_builders import NOW, created_names, owned_pod, statefulset

STS = statefulset()
REV = update_revision(STS)


def pod(ordinal: int, *, rev: str = REV, sts: apps_pb2.StatefulSet = STS, **kw: Any) -> core_pb2.Pod:
    return owned_pod(sts, f"web-{ordinal}", kind="StatefulSet", labels={REVISION_HASH_LABEL: rev}, **kw)


@pytest.mark.parametrize(("case", "sts", "pods", "creates", "deletes"), [
    ("first pod", STS, [], ["web-0"], []),
    ("next after Running and Ready", STS, [pod(0)], ["web-1"], []),
    ("waits for readiness", STS, [pod(0, ready=False)], [], []),
    ("waits for Running", STS, [pod(0, phase="Pending", ready=False)], [], []),
    ("fills a gap first", STS, [pod(0), pod(2)], ["web-1"], []),
    ("steady", STS, [pod(0), pod(1), pod(2)], [], []),
    ("parallel creates all", statefulset(policy="Parallel"), [], ["web-0", "web-1", "web-2"], []),
    ("parallel does not wait", statefulset(policy="Parallel"), [pod(0, ready=False)], ["web-1", "web-2"], []),
    ("scale down from the top, one at a time", statefulset(1), [pod(0), pod(1), pod(2)], [], ["web-2"]),
    ("scale down waits for the terminating pod", statefulset(1), [pod(0), pod(1), pod(2, terminating=True)],
     [], []),
    ("scale down waits until replicas are healthy", statefulset(1), [pod(0, ready=False), pod(1)], [], []),
    ("parallel scale down deletes all", statefulset(1, policy="Parallel"), [pod(0), pod(1), pod(2)],
     [], ["web-2", "web-1"]),
    ("failed pod deleted, not recreated yet", STS, [pod(0, phase="Failed", ready=False)], [], ["web-0"]),
    ("a deleted pod is recreated only once gone", STS, [pod(0, terminating=True)], [], []),
    ("rolling update from the top", STS, [pod(0, rev="old"), pod(1, rev="old"), pod(2, rev="old")],
     [], ["web-2"]),
    ("rolling update waits for the updated pod", STS, [pod(0, rev="old"), pod(1, rev="old"), pod(2, ready=False)],
     [], []),
    ("rolling update continues down", STS, [pod(0, rev="old"), pod(1, rev="old"), pod(2)], [], ["web-1"]),
    ("partition stops it", statefulset(partition=2), [pod(0, rev="old"), pod(1, rev="old"), pod(2)], [], []),
    ("OnDelete leaves old pods", statefulset(strategy="OnDelete"), [pod(0, rev="old"), pod(1), pod(2)], [], []),
])
def test_plan_statefulset(case: str, sts: apps_pb2.StatefulSet, pods: list[core_pb2.Pod],
                          creates: list[str], deletes: list[str]) -> None:
    plan = plan_statefulset(sts, pods, now=NOW)
    assert created_names(plan) == creates, case
    assert plan.deletes == deletes, case


def test_pod_identity() -> None:
    (p,) = plan_statefulset(STS, [pod(0)], now=NOW).creates
    assert p.metadata.name == "web-1" and p.spec.hostname == "web-1" and p.spec.subdomain == "nginx"
    assert p.metadata.labels[POD_NAME_LABEL] == "web-1" and p.metadata.labels[POD_INDEX_LABEL] == "1"
    assert p.metadata.labels[REVISION_HASH_LABEL] == REV and REV.startswith("web-")
    ref = p.metadata.owner_references[0]
    assert (ref.kind, ref.name, ref.controller, ref.block_owner_deletion) == ("StatefulSet", "web", True, True)


def test_ordinals_start() -> None:
    sts = statefulset(2)
    sts.spec.ordinals.start = 5
    assert created_names(plan_statefulset(sts, [], now=NOW)) == ["web-5"]
    assert plan_statefulset(sts, [pod(5, sts=sts), pod(6, sts=sts), pod(0, sts=sts)], now=NOW).deletes == ["web-0"]


def test_status() -> None:
    sts = statefulset()
    sts.status.current_revision = "web-old"
    sts.metadata.generation = 3
    s = plan_statefulset(sts, [pod(0, rev="web-old"), pod(1), pod(2, ready=False)], now=NOW).status
    assert (s.replicas, s.ready_replicas, s.available_replicas, s.current_replicas, s.updated_replicas,
            s.current_revision, s.update_revision, s.observed_generation) == (3, 2, 2, 1, 2, "web-old", REV, 3)
    # every pod updated and ready: the update revision becomes current
    s = plan_statefulset(sts, [pod(0), pod(1), pod(2)], now=NOW).status
    assert s.current_revision == REV and s.current_replicas == 3


# --- property: never two pods with one ordinal -----------------------------------------------

class Cluster:
    """A model of the pods of one StatefulSet that plans act on (names are unique by construction)."""

    def __init__(self) -> None:
        self.pods: dict[str, core_pb2.Pod] = {}

    def apply(self, sts: apps_pb2.StatefulSet, plan: Any) -> None:
        ordered = sts.spec.pod_management_policy != "Parallel"
        if ordered:
            assert len(plan.creates) + len(plan.deletes) <= 1 or all(
                n in self.pods and self.pods[n].status.phase == "Failed" for n in plan.deletes)
        for name in plan.deletes:
            p = self.pods[name]
            assert not p.metadata.HasField("deletion_timestamp")
            ordinal = int(name.rsplit("-", 1)[1])
            if ordered and ordinal >= desired_replicas(sts):  # scale down: from the top, after the rest is gone
                assert ordinal == max(self.ordinals())
            p.metadata.deletion_timestamp.GetCurrentTime()
        for new in plan.creates:
            name = new.metadata.name
            assert name not in self.pods, f"{name} created while a pod with its ordinal exists"
            if ordered:
                ordinal = int(name.rsplit("-", 1)[1])
                for lower in range(ordinal):
                    assert is_running_and_ready(self.pods[f"web-{lower}"])
            self.pods[name] = new

    def ordinals(self) -> list[int]:
        return [int(n.rsplit("-", 1)[1]) for n in self.pods]


actions = st.lists(st.one_of(
    st.tuples(st.just("scale"), st.integers(0, 5)),
    st.tuples(st.just("delete"), st.integers(0, 5)),
    st.tuples(st.just("gone"), st.integers(0, 5)),
    st.tuples(st.just("ready"), st.integers(0, 5)),
    st.tuples(st.just("fail"), st.integers(0, 5)),
    st.tuples(st.just("image"), st.integers(0, 2)),
    st.tuples(st.just("sync"), st.just(0)),
), max_size=60)


@settings(max_examples=150, deadline=None)
@given(actions=actions, policy=st.sampled_from(["OrderedReady", "Parallel"]))
def test_never_two_pods_with_one_ordinal(actions: list[tuple[str, int]], policy: str) -> None:
    sts = statefulset(3, policy=policy)
    cluster = Cluster()
    for action, arg in actions:
        name = f"web-{arg}"
        p = cluster.pods.get(name)
        if action == "scale":
            sts.spec.replicas = arg
        elif action == "image":
            sts.spec.template.spec.containers[0].image = f"nginx:{arg}"
        elif action == "delete" and p is not None:
            p.metadata.deletion_timestamp.GetCurrentTime()
        elif action == "gone" and p is not None and p.metadata.HasField("deletion_timestamp"):
            del cluster.pods[name]
        elif action == "ready" and p is not None and p.status.phase == "Pending":
            p.status.phase = "Running"
            p.status.conditions.add(type="Ready", status="True")
        elif action == "fail" and p is not None:
            p.status.phase = "Failed"
        elif action == "sync":
            cluster.apply(sts, plan_statefulset(sts, list(cluster.pods.values()), now=NOW))
        for new in cluster.pods.values():
            if not new.status.phase:
                new.status.phase = "Pending"
        assert len(cluster.ordinals()) == len(set(cluster.ordinals()))
