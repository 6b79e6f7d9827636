"""One step of a Deployment rollout: which ReplicaSets get which replica counts.

Owns Kubernetes' rollout arithmetic as pure plans over ReplicaSets:
* `new_rs_replicas`: how far the new ReplicaSet may grow (replicas + maxSurge);
* `plan_rolling`: scale the new ReplicaSet up, or else the old ones down,
  first their unhealthy pods, then as far as replicas - maxUnavailable
  available pods allow (reconcileOldReplicaSets);
* `plan_recreate`: every old ReplicaSet to zero, then, once no old pod is
  left running, the new one to full size;
* `is_scaling_event` / `plan_scale`: a change of `spec.replicas` in the
  middle of a rollout, spread over the active ReplicaSets in proportion to
  their size (Kubernetes' proportional scaling).

A plan is a dict ReplicaSet name -> new spec.replicas, only for the sets
that change. Must not do I/O; master/controllers/deployment.py applies it.
"""

from __future__ import annotations

from collections.abc import Sequence

from master.reconcile.deployment import (
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    go_round,
    is_rolling,
    max_surge,
    max_unavailable,
    replicas_of,
)
from protos.apps.v1 import apps_pb2

Plan = dict[str, int]


def _spec(rs: apps_pb2.ReplicaSet) -> int:
    return replicas_of(rs)


def _by_age(rss: Sequence[apps_pb2.ReplicaSet]) -> list[apps_pb2.ReplicaSet]:
    return sorted(rss, key=lambda r: (r.metadata.creation_timestamp.seconds,
                                      r.metadata.creation_timestamp.nanos, r.metadata.name))


def _active(rss: Sequence[apps_pb2.ReplicaSet | None]) -> list[apps_pb2.ReplicaSet]:
    return [rs for rs in rss if rs is not None and _spec(rs) > 0]


def new_rs_replicas(d: apps_pb2.Deployment, all_rss: Sequence[apps_pb2.ReplicaSet],
                    new: apps_pb2.ReplicaSet | None) -> int:
    """Kubernetes' NewRSNewReplicas: the new set's size after this step."""
    desired = replicas_of(d)
    current_new = _spec(new) if new is not None else 0
    if not is_rolling(d):
        return desired
    if current_new == desired:
        return current_new
    # Kubernetes sums spec.replicas only; a set that was just scaled down may
    # still run pods it has not seen go, so count what it reports as well:
    # this is what keeps "never more than replicas + maxSurge pods" true.
    total = sum(max(_spec(rs), rs.status.replicas) for rs in all_rss)
    max_total = desired + max_surge(d)
    if total >= max_total:
        return current_new
    return current_new + max(0, min(max_total - total, desired - current_new))


def plan_rolling(d: apps_pb2.Deployment, new: apps_pb2.ReplicaSet,
                 old: Sequence[apps_pb2.ReplicaSet]) -> Plan:
    """One RollingUpdate step: scale up the new set if allowed, else scale old ones down."""
    all_rss = [new, *old]
    target = new_rs_replicas(d, all_rss, new)
    if target != _spec(new):
        return {new.metadata.name: target}
    return plan_scale_down_old(d, new, old)


def plan_scale_down_old(d: apps_pb2.Deployment, new: apps_pb2.ReplicaSet,
                        old: Sequence[apps_pb2.ReplicaSet]) -> Plan:
    """Kubernetes' reconcileOldReplicaSets, as a plan."""
    if sum(_spec(rs) for rs in old) == 0:
        return {}
    all_pods = _spec(new) + sum(_spec(rs) for rs in old)
    min_available = replicas_of(d) - max_unavailable(d)
    new_unavailable = _spec(new) - new.status.available_replicas
    budget = all_pods - min_available - new_unavailable
    if budget <= 0:
        return {}
    plan: Plan = {}
    sizes = {rs.metadata.name: _spec(rs) for rs in old}
    # First the old pods that are not available anyway: removing them costs nothing.
    for rs in _by_age(old):
        if budget <= 0:
            break
        unhealthy = sizes[rs.metadata.name] - rs.status.available_replicas
        if unhealthy <= 0:
            continue
        cut = min(budget, unhealthy)
        sizes[rs.metadata.name] -= cut
        plan[rs.metadata.name] = sizes[rs.metadata.name]
        budget -= cut
    # Then available ones, as far as minAvailable allows (counting what is left).
    available = new.status.available_replicas + sum(
        min(rs.status.available_replicas, sizes[rs.metadata.name]) for rs in old)
    room = available - min_available
    for rs in _by_age(old):
        if room <= 0:
            break
        size = sizes[rs.metadata.name]
        if size == 0:
            continue
        cut = min(size, room)
        sizes[rs.metadata.name] = size - cut
        plan[rs.metadata.name] = size - cut
        room -= cut
    return plan


def plan_recreate(d: apps_pb2.Deployment, new: apps_pb2.ReplicaSet | None,
                  old: Sequence[apps_pb2.ReplicaSet], *, old_pods_running: bool) -> Plan:
    """Recreate: old sets to zero; when none of their pods runs, the new one to full size.

    When the plan is empty and `new` is None, the caller creates the new set.
    """
    down = {rs.metadata.name: 0 for rs in old if _spec(rs) > 0}
    if down or old_pods_running:
        return down
    if new is not None and _spec(new) != replicas_of(d):
        return {new.metadata.name: replicas_of(d)}
    return {}


def _annotated(rs: apps_pb2.ReplicaSet, key: str) -> int | None:
    try:
        return int(rs.metadata.annotations[key])
    except (KeyError, ValueError):
        return None


def is_scaling_event(d: apps_pb2.Deployment, rss: Sequence[apps_pb2.ReplicaSet]) -> bool:
    """An active set was sized for another spec.replicas than the deployment's now."""
    return any(_annotated(rs, DESIRED_REPLICAS) not in (None, replicas_of(d)) for rs in _active(rss))


def is_saturated(d: apps_pb2.Deployment, new: apps_pb2.ReplicaSet | None) -> bool:
    if new is None:
        return False
    desired = replicas_of(d)
    return (_spec(new) == desired and _annotated(new, DESIRED_REPLICAS) == desired
            and new.status.available_replicas == desired)


def _fraction(rs: apps_pb2.ReplicaSet, d: apps_pb2.Deployment) -> int:
    """How much `rs` should change for the deployment's new size (getReplicaSetFraction)."""
    if replicas_of(d) == 0:
        return -_spec(rs)
    allowed = replicas_of(d) + max_surge(d)
    annotated = _annotated(rs, MAX_REPLICAS)
    if annotated is None:
        annotated = d.status.replicas
    if annotated <= 0:
        return 0
    return go_round(_spec(rs) * allowed / annotated) - _spec(rs)


def plan_scale(d: apps_pb2.Deployment, new: apps_pb2.ReplicaSet | None,
               old: Sequence[apps_pb2.ReplicaSet]) -> Plan:
    """Kubernetes' scale(): resize to spec.replicas, proportionally during a rollout."""
    desired = replicas_of(d)
    active = _active([new, *old])
    if len(active) <= 1:
        target = active[0] if active else (new if new is not None else (_by_age(old)[-1] if old else None))
        if target is None or _spec(target) == desired:
            return {}
        return {target.metadata.name: desired}
    if is_saturated(d, new):
        return {rs.metadata.name: 0 for rs in _active(old)}
    if not is_rolling(d):
        return {}
    allowed = desired + max_surge(d) if desired > 0 else 0
    to_add = allowed - sum(_spec(rs) for rs in active)
    if to_add == 0:
        return {}
    # Growing: largest first, newer first among equals; shrinking: largest first, older first.
    def age(r: apps_pb2.ReplicaSet) -> float:
        return r.metadata.creation_timestamp.seconds + r.metadata.creation_timestamp.nanos / 1e9
    if to_add > 0:
        ordered = sorted(active, key=lambda r: (-_spec(r), -age(r), r.metadata.name))
    else:
        ordered = sorted(active, key=lambda r: (-_spec(r), age(r), r.metadata.name))
    sizes: dict[str, int] = {}
    added = 0
    for rs in ordered:
        proportion = 0
        if added != to_add:
            fraction = _fraction(rs, d)
            left = to_add - added
            proportion = min(fraction, left) if to_add > 0 else max(fraction, left)
        sizes[rs.metadata.name] = _spec(rs) + proportion
        added += proportion
    first = ordered[0].metadata.name
    sizes[first] = max(0, sizes[first] + to_add - added)
    return {name: n for name, n in sizes.items()
            if n != _spec(next(r for r in active if r.metadata.name == name))}
