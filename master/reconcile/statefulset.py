"""The StatefulSet reconciler: ordinal pods NAME-0..N-1 with stable identities.

`plan_statefulset(sts, pods, now=...)` is a pure function of the StatefulSet,
the pods it controls and the time; it returns a `Plan`. The controller in
master/controllers/statefulset.py applies it.

Follows Kubernetes' defaultStatefulSetControl:
1. Replicas (ordinals start..start+replicas-1) in increasing order: a missing
   ordinal is created; a Failed/Succeeded pod is deleted (and recreated once
   gone). Under OrderedReady each must be Running and Ready (and available for
   minReadySeconds) before the next is touched; under Parallel none waits.
2. Condemned pods (ordinals outside the range) are deleted in decreasing
   order; OrderedReady deletes one at a time and waits until it is gone.
3. RollingUpdate replaces pods whose revision differs from the update
   revision, from the highest ordinal down to the partition, one at a time,
   each waiting for the previous to be Running and Ready. OnDelete leaves
   them alone; a deleted pod comes back at the update revision.

Simplifications (documented in the README): revisions are template hashes
(no ControllerRevision objects), so a pod recreated below the partition gets
the update revision, not the current one (the old template is not kept);
volumeClaimTemplates are carried on the StatefulSet but no PVC is made and
pods get no volumes for them; orphan pods are not adopted.

Invariant (property-tested): never two pods with one ordinal. A pod is
created only when no pod with its name exists, terminating ones included,
so a deleted pod is recreated only after it is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from master.reconcile.workloadpods import (
    REVISION_HASH_LABEL,
    WARNING,
    Plan,
    available_in_s,
    copy_message,
    is_ready,
    is_running_and_ready,
    is_terminal,
    is_terminating,
    pod_from_template,
    template_hash,
)
from protos.apps.v1 import apps_pb2
from protos.core.v1 import core_pb2

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def ordinal_of(sts_name: str, pod_name: str) -> int | None:
    prefix = f"{sts_name}-"
    if not pod_name.startswith(prefix):
        return None
    suffix = pod_name[len(prefix):]
    return int(suffix) if suffix.isascii() and suffix.isdigit() else None


def update_revision(sts: apps_pb2.StatefulSet) -> str:
    return f"{sts.metadata.name}-{template_hash(sts.spec.template)}"


def desired_replicas(sts: apps_pb2.StatefulSet) -> int:
    return sts.spec.replicas if sts.spec.HasField("replicas") else 1


def new_stateful_pod(sts: apps_pb2.StatefulSet, ordinal: int, revision: str) -> core_pb2.Pod:
    name = f"{sts.metadata.name}-{ordinal}"
    labels = {POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal), REVISION_HASH_LABEL: revision}
    pod = pod_from_template(sts.spec.template, sts, api_version="apps/v1", kind="StatefulSet",
                            name=name, labels=labels)
    pod.spec.hostname = name
    if sts.spec.service_name:
        pod.spec.subdomain = sts.spec.service_name
    return pod


def plan_statefulset(
    sts: apps_pb2.StatefulSet,
    pods: list[core_pb2.Pod],
    *,
    now: datetime,
) -> Plan:
    """Creates, deletes and status for one StatefulSet. `pods` are the ones it controls."""
    plan = Plan()
    revision = update_revision(sts)
    by_ordinal: dict[int, core_pb2.Pod] = {}
    for pod in pods:
        ordinal = ordinal_of(sts.metadata.name, pod.metadata.name)
        if ordinal is not None:
            by_ordinal[ordinal] = pod
    start = sts.spec.ordinals.start
    wanted = range(start, start + desired_replicas(sts))
    monotonic = sts.spec.pod_management_policy != "Parallel"
    min_ready = sts.spec.min_ready_seconds

    def healthy(pod: core_pb2.Pod) -> bool:
        if not is_running_and_ready(pod) or is_terminating(pod):
            return False
        wait = available_in_s(pod, min_ready, now)
        if wait is not None and wait > 0:
            plan.requeue(wait)
        return wait == 0.0

    plan.status = _status(sts, by_ordinal, wanted, revision, now)
    if _plan_replicas(sts, by_ordinal, wanted, revision, monotonic, healthy, plan):
        return plan
    condemned = sorted((o for o in by_ordinal if o not in wanted), reverse=True)
    for ordinal in condemned:
        pod = by_ordinal[ordinal]
        if is_terminating(pod):
            if monotonic:
                return plan
            continue
        plan.deletes.append(pod.metadata.name)
        if monotonic:
            return plan
    if condemned and monotonic:
        return plan
    _plan_rolling_update(sts, by_ordinal, wanted, revision, healthy, plan)
    return plan


def _plan_replicas(
    sts: apps_pb2.StatefulSet,
    by_ordinal: dict[int, core_pb2.Pod],
    wanted: range,
    revision: str,
    monotonic: bool,
    healthy: Callable[[core_pb2.Pod], bool],
    plan: Plan,
) -> bool:
    """Step 1; True when an OrderedReady set must wait before going further."""
    for ordinal in wanted:
        pod = by_ordinal.get(ordinal)
        if pod is None:
            plan.creates.append(new_stateful_pod(sts, ordinal, revision))
            if monotonic:
                return True
        elif is_terminal(pod) and not is_terminating(pod):
            plan.deletes.append(pod.metadata.name)
            plan.events.append((WARNING, "RecreatingFailedPod",
                                f"StatefulSet {sts.metadata.namespace}/{sts.metadata.name} is "
                                f"recreating failed Pod {pod.metadata.name}"))
            if monotonic:
                return True
        elif monotonic and not healthy(pod):
            return True
    return False


def _plan_rolling_update(
    sts: apps_pb2.StatefulSet,
    by_ordinal: dict[int, core_pb2.Pod],
    wanted: range,
    revision: str,
    healthy: Callable[[core_pb2.Pod], bool],
    plan: Plan,
) -> None:
    strategy = sts.spec.update_strategy
    if strategy.type not in ("", "RollingUpdate"):
        return
    partition = strategy.rolling_update.partition if strategy.rolling_update.HasField("partition") else 0
    for ordinal in reversed(wanted):
        if ordinal < partition:
            break
        pod = by_ordinal.get(ordinal)
        if pod is None or pod.metadata.name in plan.deletes:
            return
        if pod.metadata.labels.get(REVISION_HASH_LABEL) != revision and not is_terminating(pod):
            plan.deletes.append(pod.metadata.name)
            return
        if not healthy(pod):
            return


def _status(
    sts: apps_pb2.StatefulSet,
    by_ordinal: dict[int, core_pb2.Pod],
    wanted: range,
    revision: str,
    now: datetime,
) -> apps_pb2.StatefulSetStatus:
    status = copy_message(sts.status)
    current_revision = status.current_revision or revision
    replicas = ready = available = current = updated = 0
    for pod in by_ordinal.values():
        replicas += 1
        if is_terminating(pod):
            continue
        if is_ready(pod) and pod.status.phase == "Running":
            ready += 1
            if available_in_s(pod, sts.spec.min_ready_seconds, now) == 0.0:
                available += 1
        rev = pod.metadata.labels.get(REVISION_HASH_LABEL)
        current += rev == current_revision
        updated += rev == revision
    desired = len(wanted)
    if (current_revision != revision and updated == desired and replicas == desired
            and ready == desired):
        current_revision, current = revision, updated
    status.replicas = replicas
    status.ready_replicas = ready
    status.available_replicas = available
    status.current_replicas = current
    status.updated_replicas = updated
    status.current_revision = current_revision
    status.update_revision = revision
    status.observed_generation = sts.metadata.generation
    return status
