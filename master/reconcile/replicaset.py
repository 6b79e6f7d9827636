"""What a ReplicaSet (or ReplicationController) should do next: a pure plan.

Owns the decisions of Kubernetes' ReplicaSet controller, as functions of
(the set's spec, every pod in its namespace, `now`):
* which pods the set owns: pods whose controller ownerReference names the
  set's uid and that match its selector; matching orphans are adopted,
  owned pods that no longer match are released (`plan_claims`);
* how many pods to create or which to delete (`plan_replicas`), ranking
  the victims the way Kubernetes' ActivePodsWithRanks does;
* the status the set should report (`compute_status`), including
  availableReplicas after minReadySeconds;
* the slow-start batch sizes for creating many pods at once.

Must not do I/O: the executor in master/controllers/replicaset.py reads the
informers, keeps the expectations and writes through the Client. Objects
passed in are never mutated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from master.reconcile.workloadpods import controller_of as controller_ref
from master.reconcile.workloadpods import is_ready as is_pod_ready
from master.reconcile.workloadpods import owner_reference
from master.reconcile.workloadpods import selector_matches as _selector_matches
from protos.core.v1 import core_pb2
from protos.meta.v1 import meta_pb2

# Kubernetes' burstReplicas: at most this many creates or deletes per sync.
BURST_REPLICAS = 500
# Kubernetes' SlowStartInitialBatchSize.
SLOW_START_INITIAL_BATCH = 1
POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"

_PHASE_RANK = {"Pending": 0, "": 0, "Unknown": 1, "Running": 2}


# Labels and owners ---------------------------------------------------------------


def selector_matches(selector: meta_pb2.LabelSelector | None, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics; an empty (or absent) selector matches everything."""
    return True if selector is None else _selector_matches(selector, labels)


def selector_is_empty(selector: meta_pb2.LabelSelector) -> bool:
    return not selector.match_labels and not selector.match_expressions


@dataclass(frozen=True)
class Claims:
    """Which objects an owner keeps, adopts and releases."""

    owned: list[Any] = field(default_factory=list)    # already ours and matching
    adopt: list[Any] = field(default_factory=list)    # orphans that match
    release: list[Any] = field(default_factory=list)  # ours that no longer match


def plan_claims(
    owner: Any,
    candidates: Iterable[Any],
    selector: meta_pb2.LabelSelector,
) -> Claims:
    """Kubernetes' ClaimPods / ClaimReplicaSets as a plan.

    A deleting owner adopts nothing (it would block its own deletion) but
    still lets go of what no longer matches; a deleting object is never
    adopted. An empty selector claims nothing new (Kubernetes refuses to
    adopt with one: it would take every pod in the namespace).
    """
    claims = Claims()
    owner_deleting = owner.metadata.HasField("deletion_timestamp")
    for obj in candidates:
        ref = controller_ref(obj)
        matches = not selector_is_empty(selector) and selector_matches(selector, obj.metadata.labels)
        if ref is not None:
            if ref.uid != owner.metadata.uid:
                continue
            if matches:
                claims.owned.append(obj)
            elif not owner_deleting:
                claims.release.append(obj)
            continue
        if matches and not owner_deleting and not obj.metadata.HasField("deletion_timestamp"):
            claims.adopt.append(obj)
    return claims


# Pod facts -----------------------------------------------------------------------


def is_pod_active(pod: core_pb2.Pod) -> bool:
    return (pod.status.phase not in ("Succeeded", "Failed")
            and not pod.metadata.HasField("deletion_timestamp"))


def _ready_condition(pod: core_pb2.Pod) -> Any:
    for cond in pod.status.conditions:
        if cond.type == "Ready":
            return cond
    return None


def _seconds(ts: Any) -> float:
    return float(ts.seconds) + ts.nanos / 1e9


def ready_since(pod: core_pb2.Pod) -> float | None:
    """When the pod last became Ready (None when it is not Ready)."""
    cond = _ready_condition(pod)
    if cond is None or cond.status != "True":
        return None
    return _seconds(cond.last_transition_time) if cond.HasField("last_transition_time") else 0.0


def is_pod_available(pod: core_pb2.Pod, min_ready_seconds: int, now: float) -> bool:
    """Ready for at least minReadySeconds (Kubernetes' IsPodAvailable)."""
    since = ready_since(pod)
    if since is None:
        return False
    return min_ready_seconds == 0 or since + min_ready_seconds <= now


def seconds_until_available(pods: Iterable[core_pb2.Pod], min_ready_seconds: int, now: float) -> float | None:
    """How long until the next ready pod turns available (None: nothing to wait for)."""
    waits = [since + min_ready_seconds - now for p in pods
             if (since := ready_since(p)) is not None and since + min_ready_seconds > now]
    return min(waits) if waits and min_ready_seconds > 0 else None


# Which pods to delete first -------------------------------------------------------


def _deletion_cost(pod: core_pb2.Pod) -> int:
    try:
        return int(pod.metadata.annotations.get(POD_DELETION_COST, "0"))
    except ValueError:
        return 0


def _restarts(pod: core_pb2.Pod) -> int:
    return max((cs.restart_count for cs in pod.status.container_statuses), default=0)


def deletion_rank_key(pod: core_pb2.Pod, *, colocated: int) -> tuple[Any, ...]:
    """Sort key: pods that sort first are deleted first.

    Kubernetes' ActivePodsWithRanks order: unscheduled < scheduled; Pending <
    Unknown < Running; not ready < ready; lower pod-deletion-cost first; more
    pods of the same owner on its node first; ready for less time first;
    more restarts first; newer first.
    """
    since = ready_since(pod)
    created = _seconds(pod.metadata.creation_timestamp) if pod.metadata.HasField("creation_timestamp") else 0.0
    return (
        1 if pod.spec.node_name else 0,
        _PHASE_RANK.get(pod.status.phase, 1),
        1 if is_pod_ready(pod) else 0,
        _deletion_cost(pod),
        -colocated,
        -(since or 0.0) if since is not None else float("-inf"),
        -_restarts(pod),
        -created,
        pod.metadata.name,
    )


def rank_pods_for_deletion(pods: Sequence[core_pb2.Pod]) -> list[core_pb2.Pod]:
    """`pods` ordered so that the first are the ones to delete."""
    per_node: dict[str, int] = {}
    for p in pods:
        if p.spec.node_name:
            per_node[p.spec.node_name] = per_node.get(p.spec.node_name, 0) + 1
    return sorted(pods, key=lambda p: deletion_rank_key(p, colocated=per_node.get(p.spec.node_name, 0)))


# The plan ------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaPlan:
    create: int = 0                                   # pods to create (<= BURST_REPLICAS)
    delete: list[core_pb2.Pod] = field(default_factory=list)


def plan_replicas(desired: int, active: Sequence[core_pb2.Pod], *, burst: int = BURST_REPLICAS) -> ReplicaPlan:
    """Create the missing pods or delete the surplus, at most `burst` per sync."""
    diff = len(active) - desired
    if diff < 0:
        return ReplicaPlan(create=min(-diff, burst))
    if diff > 0:
        return ReplicaPlan(delete=rank_pods_for_deletion(active)[: min(diff, burst)])
    return ReplicaPlan()


def slow_start_batches(count: int, *, initial: int = SLOW_START_INITIAL_BATCH) -> list[int]:
    """Batch sizes 1, 2, 4, ... summing to `count` (Kubernetes' slowStartBatch).

    The executor stops at the first batch with a failure, so a quota or a
    broken template costs one failed call, not hundreds.
    """
    batches: list[int] = []
    size, left = initial, count
    while left > 0:
        batches.append(min(size, left))
        left -= batches[-1]
        size *= 2
    return batches


@dataclass(frozen=True)
class ReplicaCounts:
    replicas: int
    fully_labeled_replicas: int
    ready_replicas: int
    available_replicas: int


def compute_status(
    active: Sequence[core_pb2.Pod],
    template_labels: Mapping[str, str],
    *,
    min_ready_seconds: int,
    now: float,
) -> ReplicaCounts:
    """The counts a ReplicaSet / ReplicationController reports for its active pods."""
    def fully_labeled(p: core_pb2.Pod) -> bool:
        return all(p.metadata.labels.get(k) == v for k, v in template_labels.items())
    return ReplicaCounts(
        replicas=len(active),
        fully_labeled_replicas=sum(1 for p in active if fully_labeled(p)),
        ready_replicas=sum(1 for p in active if is_pod_ready(p)),
        available_replicas=sum(1 for p in active if is_pod_available(p, min_ready_seconds, now)),
    )


def render_pod(
    owner: Any,
    template: core_pb2.PodTemplateSpec,
    *,
    api_version: str,
    kind: str,
) -> core_pb2.Pod:
    """A new pod from the template: generateName `<owner>-`, the controller ref."""
    pod = core_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.CopyFrom(template.metadata)
    pod.metadata.name = ""
    pod.metadata.namespace = owner.metadata.namespace
    pod.metadata.generate_name = f"{owner.metadata.name}-"
    pod.metadata.ClearField("owner_references")
    pod.metadata.owner_references.append(owner_reference(owner, api_version=api_version, kind=kind))
    pod.spec.CopyFrom(template.spec)
    return pod
