"""Node lifecycle decisions: when a node's heartbeat is too old, which taints
its Ready condition calls for, and when a pod on a NoExecute-tainted node
must go.

* `plan_node_health`: the last heartbeat is the latest of the Lease's
  renewTime, the Ready condition's lastHeartbeatTime, the node's creation
  and when the controller first saw it; once it is older than the grace period and Ready is not Unknown
  yet, every kubelet condition becomes Unknown (reason NodeStatusUnknown,
  "Kubelet stopped posting node status.") and a NodeNotReady event is due.
  The answer also says when to look again (the heartbeat's expiry).
* `plan_taints`: Ready Unknown -> node.kubernetes.io/unreachable,
  Ready False -> node.kubernetes.io/not-ready, each NoSchedule and
  NoExecute; Ready True (or no Ready yet) -> neither. Other taints stay.
* `plan_eviction`: a pod that does not tolerate every NoExecute taint goes
  now; one that does goes after the smallest tolerationSeconds among the
  tolerations used, counted from the taint's timeAdded; without
  tolerationSeconds it stays.

Pure: no I/O; times are datetimes passed in (the controller's clock).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
NO_SCHEDULE = "NoSchedule"
NO_EXECUTE = "NoExecute"
UNKNOWN_REASON = "NodeStatusUnknown"
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."
KUBELET_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")


@dataclass(frozen=True)
class HealthPlan:
    mark_unknown: bool = False  # set every kubelet condition to Unknown now
    recheck_after_s: float | None = None  # when the heartbeat expires, if it has not


def _ts(ts: Any) -> _dt.datetime | None:
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return ts.ToDatetime(tzinfo=_dt.UTC)


def ready_condition(node: Any) -> Any | None:
    for c in node.status.conditions:
        if c.type == "Ready":
            return c
    return None


def last_heartbeat(node: Any, lease: Any | None, *,
                   observed_since: _dt.datetime | None = None) -> _dt.datetime | None:
    times = [_ts(node.metadata.creation_timestamp), observed_since]
    ready = ready_condition(node)
    if ready is not None:
        times.append(_ts(ready.last_heartbeat_time))
    if lease is not None:
        times.append(_ts(lease.spec.renew_time))
    known = [t for t in times if t is not None]
    return max(known) if known else None


def plan_node_health(node: Any, lease: Any | None, *, now: _dt.datetime, grace_s: float,
                     observed_since: _dt.datetime | None = None) -> HealthPlan:
    """`observed_since`: when this controller first saw the node. Like
    Kubernetes' probe timestamps it gives every node a full grace period
    after a controller (re)start, so that a master that was down does not
    declare every node dead at once."""
    beat = last_heartbeat(node, lease, observed_since=observed_since)
    if beat is None:
        return HealthPlan(recheck_after_s=grace_s)
    expires = beat + _dt.timedelta(seconds=grace_s)
    if now < expires:
        return HealthPlan(recheck_after_s=(expires - now).total_seconds())
    ready = ready_condition(node)
    if ready is not None and ready.status == "Unknown":
        return HealthPlan()
    return HealthPlan(mark_unknown=True)


def mark_unknown(node: Any, *, now: _dt.datetime) -> None:
    """Set the kubelet conditions to Unknown in place (on a copy the caller owns)."""
    existing = {c.type: c for c in node.status.conditions}
    for type_ in KUBELET_CONDITIONS:
        c = existing.get(type_)
        if c is None:
            c = node.status.conditions.add(type=type_)
            c.last_heartbeat_time.FromDatetime(now)
        if c.status != "Unknown":
            c.last_transition_time.FromDatetime(now)
        c.status, c.reason, c.message = "Unknown", UNKNOWN_REASON, UNKNOWN_MESSAGE


@dataclass(frozen=True)
class TaintPlan:
    taints: list[tuple[str, str]] = field(default_factory=list)  # (key, effect) wanted, in order
    changed: bool = False


def plan_taints(node: Any) -> TaintPlan:
    """The taints the node should carry; changed says whether that differs from now."""
    ready = ready_condition(node)
    status = ready.status if ready is not None else ""
    wanted_key = {"Unknown": UNREACHABLE, "False": NOT_READY}.get(status)
    current = [(t.key, t.effect) for t in node.spec.taints]
    ours = {UNREACHABLE, NOT_READY}
    keep = [(k, e) for k, e in current if k not in ours or k == wanted_key]
    if wanted_key is not None:
        for effect in (NO_SCHEDULE, NO_EXECUTE):
            if (wanted_key, effect) not in keep:
                keep.append((wanted_key, effect))
    return TaintPlan(keep, keep != current)


def apply_taints(node: Any, plan: TaintPlan, *, now: _dt.datetime) -> None:
    """Rewrite node.spec.taints to the plan (in place), keeping existing taints as they are."""
    old = {}
    for t in node.spec.taints:
        kept = type(t)()
        kept.CopyFrom(t)
        old[(t.key, t.effect)] = kept
    del node.spec.taints[:]
    for key, effect in plan.taints:
        t = node.spec.taints.add()
        if (key, effect) in old:
            t.CopyFrom(old[(key, effect)])
            continue
        t.key, t.effect = key, effect
        if effect == NO_EXECUTE:
            t.time_added.FromDatetime(now)


def tolerates(toleration: Any, taint: Any) -> bool:
    """Kubernetes' Toleration.ToleratesTaint."""
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    op = toleration.operator or "Equal"
    if op == "Exists":
        return True
    return op == "Equal" and toleration.value == taint.value


def plan_eviction(tolerations: Sequence[Any], taints: Sequence[Any], *,
                  now: _dt.datetime) -> float | None:
    """Seconds until the pod must be evicted (0: now), or None to let it stay."""
    no_execute = [t for t in taints if t.effect == NO_EXECUTE]
    if not no_execute:
        return None
    deadline: _dt.datetime | None = None
    for taint in no_execute:
        used = [t for t in tolerations if tolerates(t, taint)]
        if not used:
            return 0.0
        bounded = [t.toleration_seconds for t in used if t.HasField("toleration_seconds")]
        if not bounded:
            continue
        start = _ts(taint.time_added) or now
        at = start + _dt.timedelta(seconds=max(min(bounded), 0))
        deadline = at if deadline is None else min(deadline, at)
    if deadline is None:
        return None
    return max((deadline - now).total_seconds(), 0.0)
