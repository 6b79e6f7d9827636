"""Resource arithmetic for scheduling: what a pod requests, what a node offers.

Owns the translation of quantity strings into integers the plugins compare
(cpu in millicores, memory in bytes, pod slots) and Kubernetes' rule for a
pod's effective request: max(sum of app containers + restartable (sidecar)
init containers, the largest init container plus the sidecars started before
it) + pod overhead. Pure: no I/O; the quantity parser is the apiserver's one
helper (master.apiserver.admission.quantity), so the two never disagree.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from master.apiserver.admission.quantity import try_parse

CPU = "cpu"
MEMORY = "memory"
PODS = "pods"

# Kubernetes' scoring defaults for a container that requests nothing
# (schedutil.DefaultMilliCPURequest / DefaultMemoryRequest): used only by
# score plugins, never by the fit filter.
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Resources:
    milli_cpu: int = 0
    memory_bytes: int = 0
    pods: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.milli_cpu + other.milli_cpu,
                         self.memory_bytes + other.memory_bytes, self.pods + other.pods)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.milli_cpu - other.milli_cpu,
                         self.memory_bytes - other.memory_bytes, self.pods - other.pods)


# Quantity strings repeat (every pod of a Deployment asks for "100m"), and the
# exact Fraction parse is slow; cache the few distinct spellings.
@functools.lru_cache(maxsize=4096)
def milli_cpu(text: str) -> int:
    value = try_parse(text)
    return 0 if value is None else math.ceil(value * 1000)


@functools.lru_cache(maxsize=4096)
def memory_bytes(text: str) -> int:
    value = try_parse(text)
    return 0 if value is None else math.ceil(value)


def from_map(quantities: Mapping[str, str]) -> Resources:
    """Resources from a requests/allocatable map (unknown names ignored)."""
    return Resources(milli_cpu(quantities.get(CPU, "0")),
                     memory_bytes(quantities.get(MEMORY, "0")), _count(quantities.get(PODS, "0")))


@functools.lru_cache(maxsize=1024)
def _count(text: str) -> int:
    return int(try_parse(text) or 0)


def _max(a: Resources, b: Resources) -> Resources:
    return Resources(max(a.milli_cpu, b.milli_cpu), max(a.memory_bytes, b.memory_bytes),
                     max(a.pods, b.pods))


def _container_requests(container: Any, *, non_zero: bool) -> Resources:
    r = from_map(container.resources.requests)
    if non_zero:
        # Kubernetes substitutes the default only where the request is unset.
        requests = container.resources.requests
        r = Resources(r.milli_cpu if CPU in requests else DEFAULT_MILLI_CPU,
                      r.memory_bytes if MEMORY in requests else DEFAULT_MEMORY_BYTES)
    return r


def compute_pod_requests(spec: Any, *, non_zero: bool = False) -> Resources:
    """The pod's effective request (pods=1), as Kubernetes' resource helpers count it."""
    apps = _sum(_container_requests(c, non_zero=non_zero) for c in spec.containers)
    sidecars = Resources()
    init_peak = Resources()
    for c in spec.init_containers:
        r = _container_requests(c, non_zero=non_zero)
        if c.restart_policy == "Always":
            sidecars = sidecars + r
            init_peak = _max(init_peak, sidecars)
        else:
            init_peak = _max(init_peak, sidecars + r)
    total = _max(apps + sidecars, init_peak)
    overhead = from_map(spec.overhead)
    return Resources(total.milli_cpu + overhead.milli_cpu,
                     total.memory_bytes + overhead.memory_bytes, 1)


def _sum(items: Iterable[Resources]) -> Resources:
    total = Resources()
    for r in items:
        total = total + r
    return total
