"""Deployment facts and bookkeeping: surge arithmetic, template hashes, revisions, status.

Owns the pure parts of Kubernetes' deployment controller that are not a
rollout step (those are in deployment_rollout.py):
* maxSurge / maxUnavailable from counts or percentages (surge rounds up,
  unavailable rounds down, never both zero) — `resolve_fenceposts`;
* the pod-template-hash of a template and template equality ignoring it;
* which ReplicaSet is the new one, revisions, revision-history and the
  desired-replicas / max-replicas annotations kubectl and the controller read;
* the ReplicaSet to create for a new template (`render_new_replicaset`);
* which old ReplicaSets revisionHistoryLimit lets go (`plan_cleanup`);
* the status and the Available / Progressing conditions (`compute_status`).

Must not do I/O; the executor is master/controllers/deployment.py. Inputs
are never mutated; functions return new messages.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from master.reconcile.replicaset import owner_reference
from protos.apps.v1 import apps_pb2
from protos.core.v1 import core_pb2

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
HASH_LABEL = "pod-template-hash"
ROLLING, RECREATE = "RollingUpdate", "Recreate"

# Condition types, reasons and messages as Kubernetes writes them.
AVAILABLE, PROGRESSING = "Available", "Progressing"
MIN_AVAILABLE, MIN_UNAVAILABLE = "MinimumReplicasAvailable", "MinimumReplicasUnavailable"
NEW_RS_CREATED, FOUND_NEW_RS = "NewReplicaSetCreated", "FoundNewReplicaSet"
RS_UPDATED, NEW_RS_AVAILABLE = "ReplicaSetUpdated", "NewReplicaSetAvailable"
TIMED_OUT, PAUSED, RESUMED = "ProgressDeadlineExceeded", "DeploymentPaused", "DeploymentResumed"

# Annotations a Deployment has that its ReplicaSets must not copy.
_NOT_COPIED = ("kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY,
               DESIRED_REPLICAS, MAX_REPLICAS)
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


# Arithmetic ----------------------------------------------------------------------


def scaled_value(value: struct_pb2.Value | None, total: int, *, round_up: bool) -> int:
    """An IntOrString against `total` (Kubernetes' GetScaledValueFromIntOrPercent)."""
    if value is None:
        return 0
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        return int(value.number_value)
    if kind == "string_value":
        text = value.string_value.strip()
        pct = int(text[:-1]) if text.endswith("%") else int(text)
        exact = pct * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return 0


def resolve_fenceposts(max_surge: struct_pb2.Value | None, max_unavailable: struct_pb2.Value | None,
                       desired: int) -> tuple[int, int]:
    """(surge, unavailable) for `desired` replicas; never both zero."""
    surge = scaled_value(max_surge, desired, round_up=True)
    unavailable = scaled_value(max_unavailable, desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def replicas_of(obj: Any) -> int:
    return int(obj.spec.replicas) if obj.spec.HasField("replicas") else 1


def _rolling_params(d: apps_pb2.Deployment) -> tuple[Any, Any]:
    ru = d.spec.strategy.rolling_update
    surge = ru.max_surge if ru.HasField("max_surge") else struct_pb2.Value(string_value="25%")
    unav = ru.max_unavailable if ru.HasField("max_unavailable") else struct_pb2.Value(string_value="25%")
    return surge, unav


def is_rolling(d: apps_pb2.Deployment) -> bool:
    return d.spec.strategy.type in ("", ROLLING)


def max_surge(d: apps_pb2.Deployment) -> int:
    if not is_rolling(d):
        return 0
    return resolve_fenceposts(*_rolling_params(d), replicas_of(d))[0]


def max_unavailable(d: apps_pb2.Deployment) -> int:
    replicas = replicas_of(d)
    if not is_rolling(d) or replicas == 0:
        return 0
    return min(resolve_fenceposts(*_rolling_params(d), replicas)[1], replicas)


def go_round(x: float) -> int:
    """Go's math.Round: halves away from zero (Python's round() goes to even)."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


# Templates and hashes --------------------------------------------------------------


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in ({}, [])}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def canonical_template(template: core_pb2.PodTemplateSpec) -> str:
    """The template as canonical JSON, without pod-template-hash and without empty objects.

    `resources: {}` and no resources are the same template in Kubernetes (Go
    structs, not pointers), but not the same protobuf message: a template sent
    back by `kubectl rollout undo` must compare equal to the one it came from.
    """
    as_dict = json_format.MessageToDict(template)
    labels = as_dict.get("metadata", {}).get("labels", {})
    labels.pop(HASH_LABEL, None)
    return json.dumps(_prune(as_dict), sort_keys=True, separators=(",", ":"))


def templates_equal(a: core_pb2.PodTemplateSpec, b: core_pb2.PodTemplateSpec) -> bool:
    """Equal once pod-template-hash is removed (Kubernetes' EqualIgnoreHash)."""
    return canonical_template(a) == canonical_template(b)


def compute_hash(template: core_pb2.PodTemplateSpec, collision_count: int = 0) -> str:
    """FNV-1a (32 bit) of the template and the collision count, in Kubernetes' safe alphabet."""
    data = canonical_template(template).encode()
    if collision_count:
        data += collision_count.to_bytes(4, "little")
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHABET[b % len(_SAFE_ALPHABET)] for b in str(h).encode())


# ReplicaSets of a deployment --------------------------------------------------------


def revision_of(obj: Any) -> int:
    try:
        return int(obj.metadata.annotations.get(REVISION, "0"))
    except ValueError:
        return 0


def _created(obj: Any) -> tuple[int, int, str]:
    ts = obj.metadata.creation_timestamp
    return (ts.seconds, ts.nanos, obj.metadata.name)


def find_new_replicaset(d: apps_pb2.Deployment, rss: Sequence[apps_pb2.ReplicaSet]) -> apps_pb2.ReplicaSet | None:
    """The oldest ReplicaSet whose template is the deployment's (ignoring the hash)."""
    matching = [rs for rs in rss if templates_equal(rs.spec.template, d.spec.template)]
    return min(matching, key=_created) if matching else None


def old_replicasets(rss: Sequence[apps_pb2.ReplicaSet], new: apps_pb2.ReplicaSet | None) -> list[apps_pb2.ReplicaSet]:
    return [rs for rs in rss if new is None or rs.metadata.uid != new.metadata.uid]


def next_revision(old: Iterable[apps_pb2.ReplicaSet]) -> int:
    return max((revision_of(rs) for rs in old), default=0) + 1


def plan_revision_annotations(rs: apps_pb2.ReplicaSet, new_revision: int) -> dict[str, str]:
    """A reused ReplicaSet's revision moves up; its old one joins revision-history."""
    annotations = dict(rs.metadata.annotations)
    current = revision_of(rs)
    if current >= new_revision:
        return annotations
    if current > 0:
        history = [h for h in annotations.get(REVISION_HISTORY, "").split(",") if h]
        annotations[REVISION_HISTORY] = ",".join([*history, str(current)])
    annotations[REVISION] = str(new_revision)
    return annotations


def replica_annotations(d: apps_pb2.Deployment) -> dict[str, str]:
    return {DESIRED_REPLICAS: str(replicas_of(d)), MAX_REPLICAS: str(replicas_of(d) + max_surge(d))}


def render_new_replicaset(
    d: apps_pb2.Deployment, *, revision: int, replicas: int, collision_count: int = 0
) -> apps_pb2.ReplicaSet:
    """The ReplicaSet for the deployment's current template, named `<deploy>-<hash>`."""
    h = compute_hash(d.spec.template, collision_count)
    rs = apps_pb2.ReplicaSet(api_version="apps/v1", kind="ReplicaSet")
    rs.metadata.name = f"{d.metadata.name}-{h}"
    rs.metadata.namespace = d.metadata.namespace
    rs.metadata.labels.update(d.spec.template.metadata.labels)
    rs.metadata.labels[HASH_LABEL] = h
    for k, v in d.metadata.annotations.items():
        if k not in _NOT_COPIED:
            rs.metadata.annotations[k] = v
    rs.metadata.annotations.update(replica_annotations(d))
    rs.metadata.annotations[REVISION] = str(revision)
    rs.metadata.owner_references.append(owner_reference(d, api_version="apps/v1", kind="Deployment"))
    rs.spec.replicas = replicas
    rs.spec.min_ready_seconds = d.spec.min_ready_seconds
    rs.spec.selector.CopyFrom(d.spec.selector)
    rs.spec.selector.match_labels[HASH_LABEL] = h
    rs.spec.template.CopyFrom(d.spec.template)
    rs.spec.template.metadata.labels[HASH_LABEL] = h
    return rs


def plan_cleanup(d: apps_pb2.Deployment, old: Sequence[apps_pb2.ReplicaSet]) -> list[apps_pb2.ReplicaSet]:
    """Old, scaled-down ReplicaSets beyond revisionHistoryLimit, oldest revision first."""
    if not d.spec.HasField("revision_history_limit"):
        return []
    alive = [rs for rs in old if not rs.metadata.HasField("deletion_timestamp")]
    surplus = len(alive) - d.spec.revision_history_limit
    if surplus <= 0:
        return []
    victims: list[apps_pb2.ReplicaSet] = []
    for rs in sorted(alive, key=lambda r: (revision_of(r), _created(r))):
        if len(victims) >= surplus:
            break
        if rs.status.replicas or replicas_of(rs) or rs.metadata.generation > rs.status.observed_generation:
            continue
        victims.append(rs)
    return victims


# Status and conditions ----------------------------------------------------------------


def _ts(now: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(now * 1e9))
    return ts


def get_condition(status: apps_pb2.DeploymentStatus, type_: str) -> apps_pb2.DeploymentCondition | None:
    for c in status.conditions:
        if c.type == type_:
            return c
    return None


def set_condition(status: apps_pb2.DeploymentStatus, type_: str, value: str, reason: str, message: str,
                  *, now: float) -> None:
    """Kubernetes' SetDeploymentCondition: same status and reason is no change;
    the transition time moves only when the status does. Works on `status` in place
    (callers pass their own copy)."""
    cond = get_condition(status, type_)
    if cond is not None and cond.status == value and cond.reason == reason:
        return
    new = apps_pb2.DeploymentCondition(type=type_, status=value, reason=reason, message=message,
                                       last_update_time=_ts(now), last_transition_time=_ts(now))
    if cond is not None and cond.status == value:
        new.last_transition_time.CopyFrom(cond.last_transition_time)
    kept = [c for c in status.conditions if c.type != type_]
    del status.conditions[:]
    status.conditions.extend([*kept, new])


def compute_counts(d: apps_pb2.Deployment, all_rss: Sequence[apps_pb2.ReplicaSet],
                   new: apps_pb2.ReplicaSet | None, *, now: float) -> apps_pb2.DeploymentStatus:
    """Kubernetes' calculateStatus: counts, observedGeneration and Available."""
    status = apps_pb2.DeploymentStatus()
    status.CopyFrom(d.status)
    available = sum(rs.status.available_replicas for rs in all_rss)
    status.observed_generation = d.metadata.generation
    status.replicas = sum(rs.status.replicas for rs in all_rss)
    status.updated_replicas = new.status.replicas if new is not None else 0
    status.ready_replicas = sum(rs.status.ready_replicas for rs in all_rss)
    status.available_replicas = available
    # Kubernetes counts against what the sets are asked to run (surge included),
    # not spec.replicas: a surge pod that is not available yet is unavailable.
    status.unavailable_replicas = max(sum(replicas_of(rs) for rs in all_rss) - available, 0)
    if available >= replicas_of(d) - max_unavailable(d):
        set_condition(status, AVAILABLE, "True", MIN_AVAILABLE, "Deployment has minimum availability.", now=now)
    else:
        set_condition(status, AVAILABLE, "False", MIN_UNAVAILABLE,
                      "Deployment does not have minimum availability.", now=now)
    return status


def is_complete(d: apps_pb2.Deployment, status: apps_pb2.DeploymentStatus) -> bool:
    n = replicas_of(d)
    return (status.updated_replicas == n and status.replicas == n and status.available_replicas == n
            and status.observed_generation >= d.metadata.generation)


def is_progressing(old: apps_pb2.DeploymentStatus, new: apps_pb2.DeploymentStatus) -> bool:
    return (new.updated_replicas > old.updated_replicas
            or (new.replicas - new.updated_replicas) < (old.replicas - old.updated_replicas)
            or new.ready_replicas > old.ready_replicas
            or new.available_replicas > old.available_replicas)


def deadline_left_s(d: apps_pb2.Deployment, status: apps_pb2.DeploymentStatus, *, now: float) -> float | None:
    """Seconds until progressDeadlineSeconds passes (None: no deadline applies)."""
    cond = get_condition(status, PROGRESSING)
    if not d.spec.HasField("progress_deadline_seconds") or cond is None:
        return None
    if cond.reason in (NEW_RS_AVAILABLE, TIMED_OUT) or d.spec.paused:
        return None
    since = cond.last_update_time.seconds + cond.last_update_time.nanos / 1e9
    return since + d.spec.progress_deadline_seconds - now


def compute_status(d: apps_pb2.Deployment, all_rss: Sequence[apps_pb2.ReplicaSet],
                   new: apps_pb2.ReplicaSet | None, *, now: float,
                   rollout: bool = True) -> apps_pb2.DeploymentStatus:
    """The status after a sync; with `rollout`, Progressing is kept too (syncRolloutStatus)."""
    status = compute_counts(d, all_rss, new, now=now)
    if not rollout or not d.spec.HasField("progress_deadline_seconds") or d.spec.paused:
        return status
    cond = get_condition(status, PROGRESSING)
    if cond is not None and cond.reason == NEW_RS_AVAILABLE and status.replicas == status.updated_replicas:
        return status
    subject = f'ReplicaSet "{new.metadata.name}"' if new is not None else f'Deployment "{d.metadata.name}"'
    if is_complete(d, status):
        set_condition(status, PROGRESSING, "True", NEW_RS_AVAILABLE, f"{subject} has successfully progressed.",
                      now=now)
    elif is_progressing(d.status, status):
        refresh_progressing(status, f"{subject} is progressing.", now=now)
    elif (left := deadline_left_s(d, status, now=now)) is not None and left < 0:
        set_condition(status, PROGRESSING, "False", TIMED_OUT, f"{subject} has timed out progressing.", now=now)
    return status


def refresh_progressing(status: apps_pb2.DeploymentStatus, message: str, *, now: float) -> None:
    """Progressing=True ReplicaSetUpdated with a fresh lastUpdateTime: the deadline runs from it."""
    prior = get_condition(status, PROGRESSING)
    new = apps_pb2.DeploymentCondition(type=PROGRESSING, status="True", reason=RS_UPDATED, message=message,
                                       last_update_time=_ts(now), last_transition_time=_ts(now))
    if prior is not None and prior.status == "True":
        new.last_transition_time.CopyFrom(prior.last_transition_time)
    kept = [c for c in status.conditions if c.type != PROGRESSING]
    del status.conditions[:]
    status.conditions.extend([*kept, new])


def plan_paused_condition(d: apps_pb2.Deployment, *, now: float) -> apps_pb2.DeploymentStatus | None:
    """Progressing=Unknown DeploymentPaused / DeploymentResumed when `spec.paused` flips."""
    if not d.spec.HasField("progress_deadline_seconds"):
        return None
    cond = get_condition(d.status, PROGRESSING)
    paused_now = cond is not None and cond.reason == PAUSED
    status = apps_pb2.DeploymentStatus()
    status.CopyFrom(d.status)
    if d.spec.paused and not paused_now:
        set_condition(status, PROGRESSING, "Unknown", PAUSED, "Deployment is paused", now=now)
    elif not d.spec.paused and paused_now:
        set_condition(status, PROGRESSING, "Unknown", RESUMED, "Deployment is resumed", now=now)
    else:
        return None
    return status
