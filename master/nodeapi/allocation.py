"""Pure decisions of node registration: is the advertised address usable,
and which pod CIDR does the node get.

Both constraints (one address per node, one /24 per node) are kept in one
record, the ConfigMap kube-system/flotilla-node-allocations (data: node name
-> JSON {"podCIDR", "address", "reserved"}), written by compare-and-swap on
its resourceVersion. Two registrations racing read the same version; one
write wins, the other re-reads and re-plans, so no two nodes ever get the
same CIDR or address. The Node's spec.podCIDR is a copy for everyone else.

A record whose Node does not exist is either a reservation in flight (the
Node is created right after the record) or a deleted Node whose agent may
still run: a heartbeat refused for a missing Node makes the agent register
again within a period, and it must get its /24 back, since its bridge and
pods use it. So a registration that finds a record without its Node stamps
it `missingSince` (and clears the stamp once the Node is back); only a
registration `stale_after_s` after that stamp frees its CIDR and address.
Nothing is written on heartbeats.

Must not: do I/O. service.py reads and writes the record and the Node.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import json
from collections.abc import Mapping, Set
from dataclasses import dataclass, replace

from master.nodeapi.errors import NodeRefusal, refuse

VAGRANT_NAT_ADDRESS = "10.0.2.15"


@dataclass(frozen=True)
class Reservation:
    pod_cidr: str
    address: str
    reserved: _dt.datetime
    missing_since: _dt.datetime | None = None  # first registration that found no Node for it

    def to_json(self) -> str:
        doc = {"podCIDR": self.pod_cidr, "address": self.address, "reserved": self.reserved.isoformat()}
        if self.missing_since is not None:
            doc["missingSince"] = self.missing_since.isoformat()
        return json.dumps(doc, sort_keys=True)


def parse_reservations(data: Mapping[str, str]) -> dict[str, Reservation]:
    """Unreadable entries are dropped (and so rewritten on the next write)."""
    out: dict[str, Reservation] = {}
    for node, text in data.items():
        try:
            raw = json.loads(text)
            missing = raw.get("missingSince")
            res = Reservation(str(ipaddress.ip_network(raw["podCIDR"])), str(raw["address"]),
                              _dt.datetime.fromisoformat(raw["reserved"]),
                              _dt.datetime.fromisoformat(missing) if missing else None)
        except (ValueError, KeyError, TypeError):
            continue
        out[node] = res
    return out


def check_advertise_address(address: str, *, force: bool) -> str:
    """The normalized address, or a NodeRefusal saying what to do instead."""
    if not address:
        raise refuse("INVALID_ARGUMENT", "advertise_address is required: pass --advertise-address "
                     "with the address other nodes reach this host on")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise refuse("INVALID_ARGUMENT", f"advertise_address {address!r} is not an IP address: "
                     "pass --advertise-address with this host's address (e.g. 192.168.56.11)") from None
    if ip.is_loopback:
        raise refuse("INVALID_ARGUMENT", f"advertise_address {address} is a loopback address, which other "
                     "nodes cannot reach: pass --advertise-address with this host's network address")
    if ip.is_unspecified or ip.is_multicast or (ip.version == 4 and ip == ipaddress.ip_address("255.255.255.255")):
        raise refuse("INVALID_ARGUMENT", f"advertise_address {address} cannot be a host's address: "
                     "pass --advertise-address with this host's network address")
    if str(ip) == VAGRANT_NAT_ADDRESS and not force:
        raise refuse("FAILED_PRECONDITION", f"advertise_address {address} is the NAT address every Vagrant "
                     "VM shares, so other nodes cannot reach this one on it: pass --advertise-address with the "
                     "host-only/private network address, or --force-advertise-address if it really is unique")
    return str(ip)


def still_held(reservations: Mapping[str, Reservation], node: str, live_nodes: Set[str],
               now: _dt.datetime, stale_after_s: float) -> dict[str, Reservation]:
    """The records that still hold their CIDR and address, with missingSince kept
    in step (`node`'s own record is kept as it is). Written back even when the
    registration is refused: otherwise every refused retry would stamp a missing
    Node afresh, and a deleted node's address or CIDR would never come free."""
    out: dict[str, Reservation] = {}
    for n, r in reservations.items():
        if n == node:  # replaced by a fresh record when the registration succeeds
            out[n] = r
            continue
        if n in live_nodes:
            out[n] = replace(r, missing_since=None) if r.missing_since is not None else r
            continue
        since = r.missing_since or now
        if (now - since).total_seconds() <= stale_after_s:
            out[n] = r if r.missing_since is not None else replace(r, missing_since=since)
    return out


def plan_reservation(
    reservations: Mapping[str, Reservation],
    node: str,
    *,
    address: str,
    cluster_cidr: str,
    node_mask: int,
    live_nodes: Set[str],
    now: _dt.datetime,
    existing_cidr: str = "",
    stale_after_s: float = 60.0,
) -> dict[str, Reservation]:
    """The reservations after `node` registers with `address`: its own entry
    (same CIDR as before when it had one) plus every other still-valid entry.
    Raises NodeRefusal (ALREADY_EXISTS: address taken; RESOURCE_EXHAUSTED: no
    CIDR left)."""
    cluster = ipaddress.ip_network(cluster_cidr)
    valid = still_held(reservations, node, live_nodes, now, stale_after_s)
    for other, res in valid.items():
        if other != node and res.address == address:
            raise refuse("ALREADY_EXISTS", f"advertise_address {address} is already used by node {other!r}: "
                         "give this host its own address (--advertise-address), or delete node "
                         f"{other!r} if it is gone (kubectl delete node {other})")
    taken = {r.pod_cidr for n, r in valid.items() if n != node}
    cidr = _keep(valid.get(node), existing_cidr, cluster, node_mask, taken)
    if cidr is None:
        cidr = next((str(s) for s in cluster.subnets(new_prefix=node_mask) if str(s) not in taken), None)
    if cidr is None:
        raise refuse("RESOURCE_EXHAUSTED", f"no /{node_mask} is left in the cluster CIDR {cluster_cidr}: "
                     "delete nodes that are gone, or run the master with a larger --cluster-cidr")
    out = {n: r for n, r in valid.items() if n != node}
    out[node] = Reservation(cidr, address, now)
    return dict(sorted(out.items()))


def _keep(mine: Reservation | None, existing: str, cluster: ipaddress.IPv4Network | ipaddress.IPv6Network,
          mask: int, taken: Set[str]) -> str | None:
    """The CIDR the node already holds, if it is still a valid, unshared one.
    The Node's own spec.podCIDR wins over the record (it is what its pods use)."""
    for candidate in (existing, mine.pod_cidr if mine else ""):
        if not candidate:
            continue
        try:
            net = ipaddress.ip_network(candidate)
        except ValueError:
            continue
        if net.prefixlen == mask and net.subnet_of(cluster) and str(net) not in taken:  # type: ignore[arg-type]
            return str(net)
    return None


def check_node_name(name: str) -> NodeRefusal | None:
    """Node names are DNS subdomains (lowercase, <= 253, labels of [a-z0-9-])."""
    if not name:
        return refuse("UNAUTHENTICATED", "no node identity: send the node name in the "
                      "`flotilla-node-name` request metadata")
    ok = len(name) <= 253 and all(
        0 < len(part) <= 63 and part[0].isalnum() and part[-1].isalnum()
        and all(c.isdigit() or ("a" <= c <= "z") or c == "-" for c in part)
        for part in name.split("."))
    if not ok:
        return refuse("INVALID_ARGUMENT", f"node name {name!r} is not a valid DNS subdomain "
                      "(lowercase letters, digits, '-' and '.'): pass --node-name")
    return None
