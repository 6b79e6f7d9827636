"""The Endpoints of a Service, computed from its pods: the endpoints controller's decision.

`compute_subsets(service, pods)` is Kubernetes' endpoints controller rule set:
pods in the Service's namespace matching its selector, with a pod IP, not
being deleted and not finished, become addresses (ready ones in `addresses`,
the others in `notReadyAddresses`, or all ready with
publishNotReadyAddresses); each carries nodeName, a targetRef to the pod and,
when the pod names the Service as its subdomain, its hostname. Ports come
from the Service's ports, a named targetPort resolved against each pod's
container ports (a pod without that port is left out for that port).
Addresses with the same port set share a subset; everything is sorted so
equal inputs give equal output and an unchanged Service is never rewritten.

`plan_endpoints(service, pods, current, now=...)` answers the Endpoints to
write, or None when `current` already says the same thing.

Pure: no I/O. master/controllers/endpoints.py reads the informers and writes.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from typing import Any

from master.reconcile.workloadpods import is_ready as pod_ready
from protos.core.v1 import core_pb2

TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"


def selector_matches(selector: Any, labels: Any) -> bool:
    """A Service selector (a plain map) matches when every pair is present."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def resolve_target_port(port: Any, pod: Any) -> int | None:
    """The container port a Service port sends to on this pod (None: the pod has no such port)."""
    kind = port.target_port.WhichOneof("kind")
    if kind == "number_value":
        return int(port.target_port.number_value)
    if kind == "string_value":
        name = port.target_port.string_value
        if name.isdigit():
            return int(name)
        for container in pod.spec.containers:
            for cp in container.ports:
                if cp.name == name and (cp.protocol or "TCP") == (port.protocol or "TCP"):
                    return int(cp.container_port)
        return None
    return int(port.port)


def _address(pod: Any, service_name: str) -> Any:
    addr = core_pb2.EndpointAddress(ip=pod.status.pod_ip, node_name=pod.spec.node_name)
    if pod.spec.hostname and pod.spec.subdomain == service_name:
        addr.hostname = pod.spec.hostname
    ref = addr.target_ref
    ref.kind, ref.namespace, ref.name, ref.uid = "Pod", pod.metadata.namespace, pod.metadata.name, pod.metadata.uid
    return addr


def _eligible(pod: Any, service: Any) -> bool:
    if pod.metadata.namespace != service.metadata.namespace or not pod.status.pod_ip:
        return False
    if not selector_matches(service.spec.selector, pod.metadata.labels):
        return False
    if pod.status.phase in ("Succeeded", "Failed"):
        return False
    return not pod.metadata.HasField("deletion_timestamp") or service.spec.publish_not_ready_addresses


def compute_subsets(service: Any, pods: Iterable[Any]) -> list[Any]:
    groups: dict[tuple[tuple[str, int, str], ...], tuple[list[Any], list[Any]]] = {}
    for pod in pods:
        if not _eligible(pod, service):
            continue
        ports = []
        for sp in service.spec.ports:
            target = resolve_target_port(sp, pod)
            if target is not None:
                ports.append((sp.name, target, sp.protocol or "TCP"))
        if not ports and service.spec.ports:
            continue
        ready, not_ready = groups.setdefault(tuple(sorted(ports)), ([], []))
        is_ready = pod_ready(pod) or service.spec.publish_not_ready_addresses
        (ready if is_ready else not_ready).append(_address(pod, service.metadata.name))
    subsets = []
    for ports_key in sorted(groups):
        ready, not_ready = groups[ports_key]
        subset = core_pb2.EndpointSubset()
        subset.addresses.extend(sorted(ready, key=_addr_key))
        subset.not_ready_addresses.extend(sorted(not_ready, key=_addr_key))
        for name, port, protocol in ports_key:
            subset.ports.add(name=name, port=port, protocol=protocol)
        subsets.append(subset)
    return subsets


def _addr_key(addr: Any) -> tuple[int, ...]:
    return tuple(int(x) for x in addr.ip.split(".")) if "." in addr.ip else (0,)


def plan_endpoints(service: Any, pods: Iterable[Any], current: Any | None, *, now: _dt.datetime) -> Any | None:
    """The Endpoints to write for service, or None when current is already right."""
    subsets = compute_subsets(service, pods)
    labels = dict(service.metadata.labels)
    if current is not None and list(current.subsets) == subsets and dict(current.metadata.labels) == labels:
        return None
    ep = core_pb2.Endpoints()
    if current is not None:
        ep.CopyFrom(current)
        del ep.subsets[:]
    ep.metadata.name, ep.metadata.namespace = service.metadata.name, service.metadata.namespace
    ep.metadata.labels.clear()
    ep.metadata.labels.update(labels)
    if current is None or list(current.subsets) != subsets:
        ep.metadata.annotations[TRIGGER_TIME_ANNOTATION] = format_time(now)
    ep.subsets.extend(subsets)
    return ep


def format_time(t: _dt.datetime) -> str:
    """RFC 3339 with nanoseconds in UTC, as Kubernetes writes the trigger time."""
    t = t.astimezone(_dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}000Z"
