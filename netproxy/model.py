"""What the proxy programs, as plain values: one `ServicePort` per Service port.

`compute_service_ports(service, endpoints)` turns a Service and its Endpoints
into frozen `ServicePort`s (cluster IP, port, protocol, nodePort, session
affinity, ready endpoints sorted), so the renderer, the syncer's change
detection, `flotctl net explain` and DNS all read the same thing. Services
the proxy does not program (ExternalName, headless, no clusterIP yet) give
none. Pure: no I/O.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, order=True)
class Endpoint:
    ip: str
    port: int
    node_name: str = ""


@dataclass(frozen=True)
class ServicePort:
    namespace: str
    name: str
    port_name: str
    protocol: str  # TCP | UDP (SCTP is not programmed)
    cluster_ip: str
    port: int
    node_port: int = 0
    affinity_timeout_s: int = 0  # 0: no session affinity
    endpoints: tuple[Endpoint, ...] = ()

    @functools.cached_property
    def key(self) -> str:
        """"namespace/name:port" (kube-proxy's ServicePortName), the identity of the rules."""
        return f"{self.namespace}/{self.name}:{self.port_name}" if self.port_name else f"{self.namespace}/{self.name}"

    @functools.cached_property
    def service_key(self) -> str:
        return f"{self.namespace}/{self.name}"


PROGRAMMED_PROTOCOLS = ("TCP", "UDP")


def ready_endpoints(endpoints: Any | None, port_name: str, protocol: str) -> tuple[Endpoint, ...]:
    """Ready addresses of the Endpoints subsets that carry the named port."""
    if endpoints is None:
        return ()
    out: set[Endpoint] = set()
    for subset in endpoints.subsets:
        for ep_port in subset.ports:
            if ep_port.name == port_name and (ep_port.protocol or "TCP") == protocol:
                out |= {Endpoint(a.ip, ep_port.port, a.node_name) for a in subset.addresses}
    return tuple(sorted(out, key=lambda e: (_ip_key(e.ip), e.port)))


def _ip_key(ip: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in ip.split("."))
    except ValueError:
        return (0,)


def compute_service_ports(service: Any, endpoints: Any | None) -> list[ServicePort]:
    spec = service.spec
    if spec.type == "ExternalName" or not spec.cluster_ip or spec.cluster_ip == "None":
        return []
    affinity = 0
    if spec.session_affinity == "ClientIP":
        affinity = spec.session_affinity_config.client_ip.timeout_seconds or 10800
    out = []
    for p in spec.ports:
        protocol = p.protocol or "TCP"
        if protocol not in PROGRAMMED_PROTOCOLS:
            continue
        node_port = p.node_port if spec.type in ("NodePort", "LoadBalancer") else 0
        out.append(ServicePort(
            service.metadata.namespace, service.metadata.name, p.name, protocol, spec.cluster_ip,
            p.port, node_port, affinity, ready_endpoints(endpoints, p.name, protocol),
        ))
    return out


def index_by_service(ports: Iterable[ServicePort]) -> dict[str, list[ServicePort]]:
    out: dict[str, list[ServicePort]] = {}
    for sp in ports:
        out.setdefault(sp.service_key, []).append(sp)
    return out
