"""What a Service write must reserve and release.

`plan_allocation(new, old)` compares the spec being written with the one
stored (None on create) and answers which clusterIP and nodePorts must be
reserved before the write (explicit values the old object did not hold, and
empty fields to fill) and which held values go once the write succeeded
(a nodePort dropped, NodePort -> ClusterIP, delete). Pure: no I/O; the
reservations themselves are `service.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EXTERNAL_TYPES = ("NodePort", "LoadBalancer")


@dataclass
class AllocationPlan:
    # "" = allocate a free address; an address = reserve that one; None = nothing to do.
    cluster_ip: str | None = None
    # (index in spec.ports, explicit port or 0 = allocate one)
    node_ports: list[tuple[int, int]] = field(default_factory=list)
    release_ips: list[str] = field(default_factory=list)
    release_ports: list[int] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.cluster_ip is None and not self.node_ports and not self.release_ips and not self.release_ports


def needs_cluster_ip(spec: Any) -> bool:
    return spec.type != "ExternalName" and spec.cluster_ip != "None"


def needs_node_ports(spec: Any) -> bool:
    if spec.type == "NodePort":
        return True
    if spec.type == "LoadBalancer":
        return not spec.HasField("allocate_load_balancer_node_ports") or spec.allocate_load_balancer_node_ports
    return False


def held_ips(spec: Any | None) -> set[str]:
    if spec is None or not needs_cluster_ip(spec) or not spec.cluster_ip:
        return set()
    return {spec.cluster_ip}


def held_ports(spec: Any | None) -> set[int]:
    if spec is None or spec.type not in EXTERNAL_TYPES:
        return set()
    return {p.node_port for p in spec.ports if p.node_port}


def plan_allocation(new: Any | None, old: Any | None) -> AllocationPlan:
    """new/old are ServiceSpecs (None: the object does not exist on that side)."""
    plan = AllocationPlan()
    old_ips, old_ports = held_ips(old), held_ports(old)
    if new is not None and needs_cluster_ip(new):
        if not new.cluster_ip:
            plan.cluster_ip = ""
        elif new.cluster_ip not in old_ips:
            plan.cluster_ip = new.cluster_ip
    if new is not None and needs_node_ports(new):
        seen: set[int] = set()
        for i, port in enumerate(new.ports):
            if not port.node_port:
                plan.node_ports.append((i, 0))
            elif port.node_port not in old_ports and port.node_port not in seen:
                plan.node_ports.append((i, port.node_port))
            seen.add(port.node_port)
    new_ips = held_ips(new) | ({plan.cluster_ip} if plan.cluster_ip else set())
    plan.release_ips = sorted(old_ips - new_ips)
    new_ports = held_ports(new) if new is not None and needs_node_ports(new) else set()
    plan.release_ports = sorted(old_ports - new_ports)
    return plan
