"""master/reconcile/workloadpods.without_owner: releasing an object from one owner."""

from __future__ import annotations

from master.reconcile.workloadpods import without_owner
from protos.core.v1 import core_pb2


def test_without_owner_drops_only_that_reference_and_copies() -> None:
    pod = core_pb2.Pod()
    for uid in "abc":
        pod.metadata.owner_references.add(uid=uid, name=f"n{uid}", kind="ReplicaSet")
    released = without_owner(pod, "b")
    assert released is not None
    assert [(r.uid, r.name) for r in released.metadata.owner_references] == [("a", "na"), ("c", "nc")]
    assert len(pod.metadata.owner_references) == 3  # the (shared, cached) original is untouched
    assert without_owner(pod, "zzz") is None
