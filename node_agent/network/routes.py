"""Host-gw routes to the other nodes' pod CIDRs, as a pure plan (DESIGN 8).

Owns: `compute_desired_routes` (Nodes -> {pod CIDR: next hop}) and
`plan_routes` (desired vs the routes we installed -> adds and deletes).
Routes we install carry our own routing protocol number (ROUTE_PROTO), so
the plan only ever removes routes Flotilla made.

Must not: do I/O. bridge.py applies the plan with pyroute2.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# rtnetlink protocol number for our routes (rt_protos: 0-4 and a few named ones
# are taken; anything free identifies "installed by Flotilla").
ROUTE_PROTO = 0x66


@dataclass(frozen=True)
class RoutePlan:
    add: dict[str, str] = field(default_factory=dict)  # cidr -> gateway (add or replace)
    delete: list[str] = field(default_factory=list)  # cidrs

    @property
    def empty(self) -> bool:
        return not self.add and not self.delete


def node_internal_ip(node: Any) -> str | None:
    for addr in node.status.addresses:
        if addr.type == "InternalIP" and addr.address:
            return str(addr.address)
    return None


def node_pod_cidr(node: Any) -> str | None:
    if node.spec.pod_cidr:
        return str(node.spec.pod_cidr)
    for cidr in node.spec.pod_cidrs:
        return str(cidr)
    return None


def compute_desired_routes(nodes: Iterable[Any], *, own_node: str) -> dict[str, str]:
    """pod CIDR -> that node's InternalIP, for every other node that has both.
    A node being deleted (deletionTimestamp) keeps its route until it is gone.
    Malformed values are skipped, not fatal: one bad Node must not cut every route."""
    desired: dict[str, str] = {}
    for node in sorted(nodes, key=lambda n: n.metadata.name):
        if node.metadata.name == own_node:
            continue
        cidr, ip = node_pod_cidr(node), node_internal_ip(node)
        if cidr is None or ip is None:
            continue
        try:
            net = ipaddress.ip_network(cidr)
            ipaddress.ip_address(ip)
        except ValueError:
            continue
        desired.setdefault(str(net), ip)
    return desired


def plan_routes(desired: Mapping[str, str], current: Mapping[str, str]) -> RoutePlan:
    """What to change so that our routes (current: cidr -> gateway) become desired."""
    add = {cidr: gw for cidr, gw in desired.items() if current.get(cidr) != gw}
    delete = sorted(cidr for cidr in current if cidr not in desired)
    return RoutePlan(add=dict(sorted(add.items())), delete=delete)
