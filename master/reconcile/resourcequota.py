"""ResourceQuota arithmetic: what an object uses, what a namespace uses, and
whether one more object fits.

Shared by the apiserver's quota admission (master/apiserver/quota.py, which
checks and charges a create) and the quota controller
(master/controllers/resourcequota.py, which keeps status.used current). Both
must agree on what counts, so the rules live here once:

* a pod counts unless it is terminal (Succeeded/Failed) or being deleted;
  it uses `pods` / `count/pods` = 1 and its effective requests and limits
  (the larger of the sum over containers and any one init container), under
  `requests.cpu` (also `cpu`), `requests.memory` (also `memory`),
  `limits.cpu`, `limits.memory`;
* any other object uses `count/<resource>[.<group>]` = 1, and the legacy
  names Kubernetes keeps for some core kinds (`services`, `configmaps`,
  `secrets`, `replicationcontrollers`, `resourcequotas`,
  `persistentvolumeclaims`).

Quantities are exact Fractions (master.apiserver.admission.quantity) and are
printed back the way Kubernetes canonicalises them ("1500m", "2", "1Gi").

Pure: no I/O. Messages are read, never changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from master.apiserver.admission.quantity import try_parse

# Names under which a core kind's object count is also tracked (Kubernetes' legacy names).
LEGACY_COUNT_NAMES = {
    "services": "services",
    "configmaps": "configmaps",
    "secrets": "secrets",
    "replicationcontrollers": "replicationcontrollers",
    "resourcequotas": "resourcequotas",
    "persistentvolumeclaims": "persistentvolumeclaims",
}
# Pod compute resources a quota may limit, and where each is read from.
COMPUTE = {
    "requests.cpu": ("requests", "cpu"),
    "cpu": ("requests", "cpu"),
    "requests.memory": ("requests", "memory"),
    "memory": ("requests", "memory"),
    "limits.cpu": ("limits", "cpu"),
    "limits.memory": ("limits", "memory"),
}


def count_name(resource: str, group: str) -> str:
    return f"count/{resource}.{group}" if group else f"count/{resource}"


def pod_counts(pod: Any) -> bool:
    """Terminal pods and pods being deleted use nothing."""
    if pod.status.phase in ("Succeeded", "Failed"):
        return False
    return not pod.metadata.HasField("deletion_timestamp")


def _container_sum(containers: Iterable[Any], part: str, name: str) -> Fraction:
    total = Fraction(0)
    for ctr in containers:
        values = getattr(ctr.resources, part)
        value = try_parse(values[name]) if name in values else None
        if value is not None:
            total += value
    return total


def pod_compute(pod: Any, part: str, name: str) -> Fraction:
    """Effective request or limit of one resource: max(sum of containers, each init container)."""
    total = _container_sum(pod.spec.containers, part, name)
    for ctr in pod.spec.init_containers:
        total = max(total, _container_sum([ctr], part, name))
    return total


def usage_of(resource: str, group: str, obj: Any) -> dict[str, Fraction]:
    """What one object of `group/resource` uses, by quota resource name."""
    if resource == "pods" and not group:
        if not pod_counts(obj):
            return {}
        used = {"pods": Fraction(1), "count/pods": Fraction(1)}
        for quota_name, (part, name) in COMPUTE.items():
            used[quota_name] = pod_compute(obj, part, name)
        return used
    used = {count_name(resource, group): Fraction(1)}
    if not group and resource in LEGACY_COUNT_NAMES:
        used[LEGACY_COUNT_NAMES[resource]] = Fraction(1)
    return used


def tracked_by(hard: Mapping[str, str], usage: Mapping[str, Fraction]) -> dict[str, Fraction]:
    """The part of `usage` this quota limits."""
    return {k: v for k, v in usage.items() if k in hard}


def compute_used(hard: Mapping[str, str], objects: Iterable[tuple[str, str, Any]]) -> dict[str, Fraction]:
    """The namespace's usage of every resource `hard` names, from (resource, group, object)."""
    return sum_usage(hard, (usage_of(resource, group, obj) for resource, group, obj in objects))


def sum_usage(hard: Mapping[str, str], usages: Iterable[Mapping[str, Fraction]]) -> dict[str, Fraction]:
    """The sum of per-object usages, for every resource `hard` names."""
    used = {name: Fraction(0) for name in hard}
    for usage in usages:
        for name, value in usage.items():
            if name in used:
                used[name] += value
    return used


def missing_compute(pod: Any, hard: Mapping[str, str]) -> list[str]:
    """Kubernetes refuses a pod that leaves out a compute resource the quota limits:
    "<resource> for: <container>,..." per missing resource, sorted."""
    out = []
    for quota_name in sorted(hard):
        if quota_name not in COMPUTE:
            continue
        part, name = COMPUTE[quota_name]
        lacking = [c.name for c in list(pod.spec.init_containers) + list(pod.spec.containers)
                   if name not in getattr(c.resources, part)]
        if lacking:
            out.append(f"{quota_name} for: {','.join(lacking)}")
    return out


@dataclass(frozen=True)
class QuotaView:
    """What admission reads from one quota: its name, hard limits and usage now."""

    name: str
    hard: Mapping[str, str]
    used: Mapping[str, Fraction]


@dataclass(frozen=True)
class Admission:
    """The verdict for one create: an error message, or the new usage per quota charged."""

    error: str = ""
    charges: Mapping[str, dict[str, Fraction]] | None = None  # quota name -> new used values


def plan_admission(quotas: Iterable[QuotaView], usage: Mapping[str, Fraction], *,
                   pod: Any = None) -> Admission:
    """Whether an object using `usage` fits every quota (Kubernetes' quota admission).

    The first quota (by name) it does not fit answers with Kubernetes' message;
    otherwise every quota that limits something the object uses is charged.
    """
    charges: dict[str, dict[str, Fraction]] = {}
    for q in sorted(quotas, key=lambda v: v.name):
        if pod is not None:
            missing = missing_compute(pod, q.hard)
            if missing:
                return Admission(error=f"failed quota: {q.name}: must specify {'; '.join(missing)}")
        requested = tracked_by(q.hard, usage)
        if not requested:
            continue
        exceeded = []
        for name in sorted(requested):
            limit = try_parse(q.hard[name])
            if limit is not None and q.used.get(name, Fraction(0)) + requested[name] > limit:
                exceeded.append(name)
        if exceeded:
            return Admission(error=exceeded_message(q, requested, exceeded))
        charges[q.name] = {n: q.used.get(n, Fraction(0)) + v for n, v in requested.items()}
    return Admission(charges=charges)


def exceeded_message(q: QuotaView, requested: Mapping[str, Fraction], names: list[str]) -> str:
    def show(values: Mapping[str, Fraction]) -> str:
        return ",".join(f"{n}={format_quantity(values.get(n, Fraction(0)), binary=_binary(n, q.hard))}"
                        for n in names)

    limited = {n: try_parse(q.hard[n]) or Fraction(0) for n in names}
    return (f"exceeded quota: {q.name}, requested: {show(requested)}, "
            f"used: {show(q.used)}, limited: {show(limited)}")


def _binary(name: str, hard: Mapping[str, str]) -> bool:
    text = hard.get(name, "")
    return any(text.endswith(suffix) for _, suffix in _BINARY_SUFFIXES)


_DECIMAL_SUFFIXES = ((18, "E"), (15, "P"), (12, "T"), (9, "G"), (6, "M"), (3, "k"), (0, ""),
                     (-3, "m"), (-6, "u"), (-9, "n"))
_BINARY_SUFFIXES = ((60, "Ei"), (50, "Pi"), (40, "Ti"), (30, "Gi"), (20, "Mi"), (10, "Ki"))


def format_quantity(value: Fraction, *, binary: bool = False) -> str:
    """Kubernetes' canonical form: the largest suffix that keeps the mantissa whole."""
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    v = abs(value)
    if binary and v.denominator == 1 and v >= 1024:
        n = v.numerator
        for shift, suffix in _BINARY_SUFFIXES:
            if n % (1 << shift) == 0:
                return f"{sign}{n >> shift}{suffix}"
    if binary and v.denominator == 1:
        return f"{sign}{v.numerator}"
    for exp, suffix in _DECIMAL_SUFFIXES:
        scaled = v / (Fraction(10) ** exp)
        if scaled.denominator == 1:
            return f"{sign}{scaled.numerator}{suffix}"
    # Smaller than a nano unit: Kubernetes rounds up to 1n.
    scaled = v / (Fraction(10) ** -9)
    return f"{sign}{-(-scaled.numerator // scaled.denominator)}n"


def format_used(used: Mapping[str, Fraction], hard: Mapping[str, str]) -> dict[str, str]:
    return {n: format_quantity(v, binary=_binary(n, hard)) for n, v in used.items()}


def parse_used(used: Mapping[str, str]) -> dict[str, Fraction]:
    out = {}
    for n, text in used.items():
        value = try_parse(text)
        if value is not None:
            out[n] = value
    return out


def plan_status(hard: Mapping[str, str], used: Mapping[str, Fraction],
                current_hard: Mapping[str, str], current_used: Mapping[str, str]) -> dict[str, str] | None:
    """The status.used to write (status.hard mirrors spec.hard), or None when both are current."""
    wanted = format_used(used, hard)
    if dict(current_hard) == dict(hard) and dict(current_used) == wanted:
        return None
    return wanted
