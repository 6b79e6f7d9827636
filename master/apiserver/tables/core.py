"""Rows of the core/v1 kinds that are not workloads (Services, Endpoints,
Nodes, Namespaces, ConfigMaps, Secrets, Events, ResourceQuotas) and of
coordination.k8s.io Leases.

Pure, as the whole package.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from master.apiserver.tables.cells import (
    _AGE,
    _EMPTY,
    _NAME,
    _NONE,
    Cells,
    Obj,
    Printers,
    _age,
    _col,
    _format_labels,
    _name,
    _since,
)


def _load_balancer_addresses(status: Obj) -> list[str]:
    ingress = ((status.get("loadBalancer") or _EMPTY).get("ingress")) or ()
    return sorted({i.get("ip") or i.get("hostname") for i in ingress} - {None, ""})


def _service_external_ip(spec: Obj, status: Obj) -> str:
    kind, external = spec.get("type"), spec.get("externalIPs") or []
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or _NONE
    if kind == "LoadBalancer":
        return ",".join(_load_balancer_addresses(status) + external) or "<pending>"
    if kind == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


def _service_ports(ports: Iterable[Obj]) -> str:
    pieces = []
    for p in ports:
        node_port = f":{p['nodePort']}" if p.get("nodePort") else ""
        pieces.append(f"{p.get('port', 0)}{node_port}/{p.get('protocol', 'TCP')}")
    return ",".join(pieces) or _NONE


def _service_cells(obj: Obj, now_s: float) -> Cells:
    spec, status = obj.get("spec") or _EMPTY, obj.get("status") or _EMPTY
    cluster_ips = spec.get("clusterIPs")
    cluster_ip = (cluster_ips[0] if cluster_ips else spec.get("clusterIP")) or _NONE
    return [_name(obj), spec.get("type", ""), cluster_ip, _service_external_ip(spec, status),
            _service_ports(spec.get("ports") or ()), _age(obj, now_s),
            _format_labels(spec.get("selector"))]


def _host_port(ip: str, port: Any) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _endpoint_addresses(subsets: Iterable[Obj]) -> Iterable[str]:
    for subset in subsets:
        addresses = [a.get("ip", "") for a in subset.get("addresses") or ()]
        ports = subset.get("ports")
        if not ports:  # headless services may have no ports
            yield from addresses
        for port in ports or ():
            yield from (_host_port(ip, port.get("port", 0)) for ip in addresses)


def _endpoints_cells(obj: Obj, now_s: float) -> Cells:
    subsets = obj.get("subsets")
    if not subsets:
        return [_name(obj), _NONE, _age(obj, now_s)]
    shown: list[str] = []
    count = 0
    for address in _endpoint_addresses(subsets):
        count += 1
        if count <= 3:
            shown.append(address)
    text = ",".join(shown) + (f" + {count - 3} more..." if count > 3 else "")
    return [_name(obj), text, _age(obj, now_s)]


def _node_status(obj: Obj) -> str:
    ready = None
    for c in (obj.get("status") or _EMPTY).get("conditions") or ():
        if c.get("type") == "Ready":
            ready = c.get("status")  # the last Ready condition wins, as in a Go map
    parts = ["Unknown" if ready is None else "Ready" if ready == "True" else "NotReady"]
    if (obj.get("spec") or _EMPTY).get("unschedulable"):
        parts.append("SchedulingDisabled")
    return ",".join(parts)


def _node_roles(labels: Mapping[str, str]) -> str:
    roles = set()
    for key, value in labels.items():
        if key.startswith("node-role.kubernetes.io/") and len(key) > 24:
            roles.add(key[24:])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) or _NONE


def _node_address(status: Obj, kind: str) -> str:
    for a in status.get("addresses") or ():
        if a.get("type") == kind:
            return a.get("address", "")
    return _NONE


def _node_cells(obj: Obj, now_s: float) -> Cells:
    status = obj.get("status") or _EMPTY
    info = status.get("nodeInfo") or _EMPTY
    labels = (obj.get("metadata") or _EMPTY).get("labels") or _EMPTY
    return [_name(obj), _node_status(obj), _node_roles(labels), _age(obj, now_s),
            info.get("kubeletVersion", ""), _node_address(status, "InternalIP"),
            _node_address(status, "ExternalIP"), info.get("osImage") or "<unknown>",
            info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>"]


def _namespace_cells(obj: Obj, now_s: float) -> Cells:
    return [_name(obj), (obj.get("status") or _EMPTY).get("phase", ""), _age(obj, now_s)]


def _configmap_cells(obj: Obj, now_s: float) -> Cells:
    count = len(obj.get("data") or ()) + len(obj.get("binaryData") or ())
    return [_name(obj), count, _age(obj, now_s)]


def _secret_cells(obj: Obj, now_s: float) -> Cells:
    return [_name(obj), obj.get("type", ""), len(obj.get("data") or ()), _age(obj, now_s)]


def _event_source(obj: Obj) -> str:
    source = obj.get("source") or _EMPTY
    component = source.get("component") or obj.get("reportingComponent") or ""
    host = source.get("host") or obj.get("reportingInstance") or ""
    return f"{component}, {host}" if host else component


def _event_cells(obj: Obj, now_s: float) -> Cells:
    first_ts = obj.get("firstTimestamp") or obj.get("eventTime")
    first = _since(first_ts, now_s)
    last = _since(obj["lastTimestamp"], now_s) if obj.get("lastTimestamp") else first
    count = obj.get("count") or 1  # singleton events of the new API carry no count
    series = obj.get("series")
    if series is not None:
        last = _since(series.get("lastObservedTime"), now_s)
        count = series.get("count") or 0
    involved = obj.get("involvedObject") or _EMPTY
    kind, name = (involved.get("kind") or "").lower(), involved.get("name")
    return [last, obj.get("type", ""), obj.get("reason", ""), f"{kind}/{name}" if name else kind,
            involved.get("fieldPath", ""), _event_source(obj),
            (obj.get("message") or "").strip(), first, count, _name(obj)]


def _resourcequota_cells(obj: Obj, now_s: float) -> Cells:
    status = obj.get("status") or _EMPTY
    hard, used = status.get("hard") or _EMPTY, status.get("used") or _EMPTY
    requests: list[str] = []
    limits: list[str] = []
    for resource in sorted(hard):
        target = limits if resource.partition(".")[0] == "limits" and "." in resource else requests
        target.append(f"{resource}: {used.get(resource, '0')}/{hard[resource]}")
    return [_name(obj), _age(obj, now_s), ", ".join(requests), ", ".join(limits)]


def _lease_cells(obj: Obj, now_s: float) -> Cells:
    holder = (obj.get("spec") or _EMPTY).get("holderIdentity") or ""
    return [_name(obj), holder, _age(obj, now_s)]


PRINTERS: Printers = {
    ("", "services"): ([
        _NAME, _col("Type", "How the service is exposed."),
        _col("Cluster-IP", "The service's virtual IP in the cluster."),
        _col("External-IP", "External or load-balancer addresses."),
        _col("Port(s)", "Service ports, with node ports."), _AGE,
        _col("Selector", "Pods selected as endpoints.", priority=1),
    ], _service_cells),
    ("", "endpoints"): ([
        _NAME, _col("Endpoints", "Up to three address:port pairs."), _AGE,
    ], _endpoints_cells),
    ("", "nodes"): ([
        _NAME, _col("Status", "The status of the node."),
        _col("Roles", "The roles of the node."), _AGE,
        _col("Version", "Kubelet version reported by the node agent."),
        _col("Internal-IP", "The node's InternalIP address.", priority=1),
        _col("External-IP", "The node's ExternalIP address.", priority=1),
        _col("OS-Image", "The node's operating system image.", priority=1),
        _col("Kernel-Version", "The node's kernel version.", priority=1),
        _col("Container-Runtime", "The node's container runtime version.", priority=1),
    ], _node_cells),
    ("", "namespaces"): ([
        _NAME, _col("Status", "The status of the namespace."), _AGE,
    ], _namespace_cells),
    ("", "configmaps"): ([
        _NAME, _col("Data", "Number of keys in data and binaryData."), _AGE,
    ], _configmap_cells),
    ("", "secrets"): ([
        _NAME, _col("Type", "The secret type."), _col("Data", "Number of keys in data."), _AGE,
    ], _secret_cells),
    ("", "events"): ([
        _col("Last Seen", "Time since the event was last seen."),
        _col("Type", "Normal or Warning."), _col("Reason", "Why the event happened."),
        _col("Object", "The object the event is about."),
        _col("Subobject", "The part of the object, such as a container.", priority=1),
        _col("Source", "The component that reported the event.", priority=1),
        _col("Message", "A human-readable description."),
        _col("First Seen", "Time since the event was first seen.", priority=1),
        _col("Count", "How many times it happened.", priority=1),
        _col("Name", "Name of the event object.", priority=1, format_="name"),
    ], _event_cells),
    ("", "resourcequotas"): ([
        _NAME, _AGE, _col("Request", "Used/hard for each request quota."),
        _col("Limit", "Used/hard for each limits.* quota."),
    ], _resourcequota_cells),
    ("coordination.k8s.io", "leases"): ([
        _NAME, _col("Holder", "The identity holding the lease."), _AGE,
    ], _lease_cells),
}
