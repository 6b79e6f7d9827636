"""Pod facts the workload reconcilers share (DaemonSet, StatefulSet, Job, CronJob).

Owns: label-selector matching on protobuf LabelSelectors, owner references,
the template hash, pod-from-template construction, pod readiness /
availability / terminal tests, IntOrString scaling, and the `Plan` shape the
workload reconcilers return.

Pure: no I/O, no clock (callers pass `now`). It never mutates its inputs:
pods and owners come from informers and are shared. The controllers in
master/controllers apply plans; this module only decides.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from google.protobuf.message import Message

from protos.core.v1 import core_pb2
from protos.meta.v1 import meta_pb2

NORMAL = "Normal"
WARNING = "Warning"

# Kubernetes' label for the template revision a pod was made from.
REVISION_HASH_LABEL = "controller-revision-hash"


@dataclass
class Plan:
    """What a workload reconciler wants done; the controller applies it in this order.

    `creates` are full objects (metadata.name or generate_name set); `deletes`
    are names; `force_deletes` are names deleted with grace 0 (pods on a node
    that no longer exists: no agent is left to stop them); `status` is the whole new status (None: unchanged); `events`
    are (type, reason, message) for the owner; `requeue_after_s` asks for
    another look even if nothing changes (deadlines, minReadySeconds).
    """

    creates: list[Any] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    force_deletes: list[str] = field(default_factory=list)
    status: Any | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)
    requeue_after_s: float | None = None

    def requeue(self, seconds: float) -> None:
        seconds = max(seconds, 0.001)
        if self.requeue_after_s is None or seconds < self.requeue_after_s:
            self.requeue_after_s = seconds


# --- selectors -------------------------------------------------------------------------

def selector_matches(selector: meta_pb2.LabelSelector, labels: Any) -> bool:
    """metav1.LabelSelectorAsSelector semantics; an empty selector matches everything."""
    for key, value in selector.match_labels.items():
        if labels.get(key) != value:
            return False
    return all(requirement_matches(r.key, r.operator, list(r.values), labels) for r in selector.match_expressions)


def requirement_matches(key: str, operator: str, values: list[str], labels: Any) -> bool:
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt"):  # node selector operators
        if not present or len(values) != 1:
            return False
        try:
            have, bound = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return have > bound if operator == "Gt" else have < bound
    return False


# --- ownership ---------------------------------------------------------------------------

def owner_reference(owner: Any, *, api_version: str, kind: str) -> meta_pb2.OwnerReference:
    """A controller reference that blocks the owner's foreground deletion."""
    return meta_pb2.OwnerReference(
        api_version=api_version, kind=kind, name=owner.metadata.name, uid=owner.metadata.uid,
        controller=True, block_owner_deletion=True,
    )


def controller_of(obj: Any) -> meta_pb2.OwnerReference | None:
    for ref in obj.metadata.owner_references:
        if ref.HasField("controller") and ref.controller:
            return ref
    return None


def is_controlled_by(obj: Any, owner: Any) -> bool:
    ref = controller_of(obj)
    return ref is not None and ref.uid == owner.metadata.uid


# --- templates ----------------------------------------------------------------------------

_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' SafeEncodeString alphabet


def template_hash(template: core_pb2.PodTemplateSpec, *, salt: str = "") -> str:
    """A short, stable, label-safe hash of a pod template.

    Stands in for a ControllerRevision (not a served kind here): equal
    templates give equal hashes in every process (deterministic
    serialization), a changed template gives a new one.
    """
    digest = hashlib.sha256(template.SerializeToString(deterministic=True) + salt.encode()).digest()
    number = int.from_bytes(digest[:8], "big")
    chars = []
    for _ in range(10):
        number, rem = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[rem])
    return "".join(chars)


def pod_from_template(
    template: core_pb2.PodTemplateSpec,
    owner: Any,
    *,
    api_version: str,
    kind: str,
    name: str = "",
    generate_name: str = "",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> core_pb2.Pod:
    """A new Pod from `template`, owned by `owner`, in the owner's namespace."""
    pod = core_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.namespace = owner.metadata.namespace
    if name:
        pod.metadata.name = name
    else:
        pod.metadata.generate_name = generate_name
    pod.metadata.labels.update(template.metadata.labels)
    pod.metadata.labels.update(labels or {})
    pod.metadata.annotations.update(template.metadata.annotations)
    pod.metadata.annotations.update(annotations or {})
    pod.metadata.finalizers.extend(template.metadata.finalizers)
    pod.metadata.owner_references.append(owner_reference(owner, api_version=api_version, kind=kind))
    pod.spec.CopyFrom(template.spec)
    return pod


# --- pod state ------------------------------------------------------------------------------

def is_terminating(pod: Any) -> bool:
    return pod.metadata.HasField("deletion_timestamp")


def is_terminal(pod: Any) -> bool:
    return pod.status.phase in ("Succeeded", "Failed")


def is_active(pod: Any) -> bool:
    """Neither finished nor being deleted (Kubernetes' controller.IsPodActive)."""
    return not is_terminal(pod) and not is_terminating(pod)


def _ready_condition(pod: Any) -> core_pb2.PodCondition | None:
    for cond in pod.status.conditions:
        if cond.type == "Ready":
            return cond
    return None


def is_ready(pod: Any) -> bool:
    cond = _ready_condition(pod)
    return cond is not None and cond.status == "True"


def is_running_and_ready(pod: Any) -> bool:
    return pod.status.phase == "Running" and is_ready(pod)


def available_in_s(pod: Any, min_ready_seconds: int, now: datetime) -> float | None:
    """0 when available now, seconds to wait when ready but not long enough, None when not ready."""
    if not is_ready(pod):
        return None
    if min_ready_seconds <= 0:
        return 0.0
    cond = _ready_condition(pod)
    assert cond is not None
    if not cond.HasField("last_transition_time"):
        return 0.0
    since = cond.last_transition_time.ToDatetime().replace(tzinfo=now.tzinfo)
    return max(0.0, min_ready_seconds - (now - since).total_seconds())


def is_available(pod: Any, min_ready_seconds: int, now: datetime) -> bool:
    return available_in_s(pod, min_ready_seconds, now) == 0.0


def restart_count(pod: Any) -> int:
    return sum(cs.restart_count for cs in pod.status.container_statuses)


# --- numbers --------------------------------------------------------------------------------

def scaled_value(value: Any, total: int, *, round_up: bool, default: int) -> int:
    """intstr.GetScaledValueFromIntOrPercent for a google.protobuf.Value."""
    kind = value.WhichOneof("kind") if value is not None else None
    if kind == "number_value":
        return int(value.number_value)
    if kind == "string_value" and value.string_value.endswith("%"):
        try:
            percent = int(value.string_value[:-1])
        except ValueError:
            return default
        exact = percent * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    if kind == "string_value":
        try:
            return int(value.string_value)
        except ValueError:
            return default
    return default


def copy_message(msg: Message) -> Any:
    """A private copy of a (shared) message."""
    new = type(msg)()
    new.CopyFrom(msg)
    return new


def without_owner(obj: Message, owner_uid: str) -> Any | None:
    """A copy of `obj` without its owner reference to `owner_uid` (releasing it
    from that owner); None when it has none."""
    kept = [r for r in obj.metadata.owner_references if r.uid != owner_uid]  # type: ignore[attr-defined]
    if len(kept) == len(obj.metadata.owner_references):  # type: ignore[attr-defined]
        return None
    new = copy_message(obj)
    del new.metadata.owner_references[:]
    new.metadata.owner_references.extend(kept)
    return new
