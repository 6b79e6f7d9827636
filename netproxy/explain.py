"""The path a new connection takes through Flotilla's rules: `flotctl net explain`.

`explain_path(...)` walks the same chains render.py writes, for one packet
(source pod IP on its host, destination IP:port, protocol), and returns the
steps as text: the dispatch rule that matches, the service chain (or the
DNAT of a port's one endpoint), every endpoint's probability step and
overall share (exact fractions), the DNAT target, the masquerade marks
(NodePort; hairpin and off-cluster source, decided in POSTROUTING) and
POSTROUTING. It is computed from the ServicePorts the proxy computes from the
API (model.py), not read back from a host's iptables-save.

Pure: no I/O. flotctl/net.py fetches the objects and prints the steps.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from fractions import Fraction

from netproxy.model import ServicePort
from netproxy.render import (
    HAIRPIN,
    MARK_MASQ,
    NODEPORTS,
    POSTROUTING,
    SERVICES,
    ProxyOptions,
    format_probability,
    hairpin_addresses,
    has_chain,
    probabilities,
    sep_chain,
    svc_chain,
)


@dataclass(frozen=True)
class Packet:
    src_ip: str
    src_node: str
    dst_ip: str
    dst_port: int
    protocol: str = "TCP"


def _in_cidr(ip: str, cidr: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


def _target_text(sp: ServicePort) -> str:
    return f"-> {svc_chain(sp)}" if has_chain(sp) else f"-> DNAT {sp.endpoints[0].ip}:{sp.endpoints[0].port}"


def _service_steps(pkt: Packet, sp: ServicePort, options: ProxyOptions, *, marked: bool,
                   local_addresses: frozenset[str] = frozenset()) -> list[str]:
    """From the port's target (its SVC chain, or the DNAT of its one endpoint) to POSTROUTING."""
    out: list[str] = []
    if has_chain(sp):
        out.append(f"  {svc_chain(sp)} ({sp.key}, {len(sp.endpoints)} ready endpoint(s))")
    else:
        out.append(f"  ({sp.key}: one ready endpoint, DNAT in the rule itself, no chain)")
    if sp.affinity_timeout_s:
        out.append(f"    sessionAffinity ClientIP: a client seen within {sp.affinity_timeout_s}s "
                   "returns to its endpoint (-m recent) before the random steps")
    hairpin_ok = pkt.src_ip in hairpin_addresses(options.node_cidr) if options.node_cidr else False
    remaining = Fraction(1)
    for ep, p in zip(sp.endpoints, probabilities(len(sp.endpoints)), strict=True):
        share = remaining if p is None else remaining * p
        remaining -= share
        step = "otherwise" if p is None else f"--probability {format_probability(p)}"
        via = f"{sep_chain(sp, ep)} " if sp.affinity_timeout_s else ""
        hairpin = ""
        if ep.ip == pkt.src_ip:
            hairpin = (f" [hairpin: back to its own source -> {HAIRPIN} marks it]" if hairpin_ok else
                       " [hairpin, but no hairpin rule covers this address (the node's pod CIDR is unknown, "
                       "wider than /22, or does not hold it): not masqueraded, the connection stalls]")
        out.append(f"    {step:<36} -> {via}DNAT {ep.ip}:{ep.port} "
                   f"(overall {share}, {float(share):.1%}){hairpin}"
                   + (f" on node {ep.node_name}" if ep.node_name else ""))
    cc = options.cluster_cidr
    # the rule matches the original destination (a cluster IP, not a nodePort's node
    # address) and not a DNAT to this host's own address
    off_cluster = (bool(cc) and bool(options.service_cidr) and not _in_cidr(pkt.src_ip, cc)
                   and _in_cidr(pkt.dst_ip, options.service_cidr)
                   and not all(ep.ip in local_addresses for ep in sp.endpoints))
    if off_cluster:
        out.append(f"nat POSTROUTING -> {POSTROUTING}: source outside {cc}, to a cluster IP -> {MARK_MASQ}")
    if marked or off_cluster:
        out.append(f"nat POSTROUTING -> {POSTROUTING}: marked packets are masqueraded (source becomes the host's address)")
    elif hairpin_ok and any(ep.ip == pkt.src_ip for ep in sp.endpoints):
        out.append(f"nat POSTROUTING -> {POSTROUTING}: a connection DNATed back to {pkt.src_ip} is marked by "
                   f"{HAIRPIN} and masqueraded (source becomes the host's address); to another endpoint, "
                   "the source is kept")
    else:
        out.append(f"nat POSTROUTING -> {POSTROUTING}: not marked, source {pkt.src_ip} kept")
    return out


def explain_path(
    pkt: Packet,
    ports: list[ServicePort],
    *,
    node_addresses: dict[str, list[str]],
    options: ProxyOptions | None = None,
) -> list[str]:
    options = options or ProxyOptions()
    proto = pkt.protocol.upper()
    out = [f"{proto} {pkt.src_ip} -> {pkt.dst_ip}:{pkt.dst_port}, rules of node {pkt.src_node or '?'} "
           "(rendered from the API state the proxy uses)",
           f"nat PREROUTING -> {SERVICES}"]
    if options.dns_vip and pkt.dst_ip == options.dns_vip and pkt.dst_port == 53:
        return out + [f"  cluster DNS: DNAT {options.dns_target} (this node's DNS server inside flotilla-proxy)"]
    for sp in ports:
        if sp.cluster_ip == pkt.dst_ip and sp.port == pkt.dst_port and sp.protocol == proto:
            if not sp.endpoints:
                return out + ["  no rule (no ready endpoints)",
                              f"filter {SERVICES}: REJECT icmp-port-unreachable ({sp.key} has no endpoints)"]
            return out + [f"  -d {sp.cluster_ip}/32 --dport {sp.port} {_target_text(sp)}"] + \
                _service_steps(pkt, sp, options, marked=False,
                               local_addresses=frozenset(node_addresses.get(pkt.src_node, [])))
    owner = next((n for n, addrs in node_addresses.items() if pkt.dst_ip in addrs), "")
    if owner:
        for sp in ports:
            if sp.node_port == pkt.dst_port and sp.protocol == proto:
                where = "local" if owner == pkt.src_node else f"not local here: routed to node {owner}, whose"
                head = [f"  {where} -m addrtype --dst-type LOCAL -> {NODEPORTS}"]
                if not sp.endpoints:
                    return out + head + [f"filter {SERVICES}: REJECT ({sp.key} has no endpoints)"]
                head.append(f"  {NODEPORTS} --dport {sp.node_port}: -j {MARK_MASQ}, then {_target_text(sp)}")
                return out + head + _service_steps(pkt, sp, options, marked=True)
    return out + ["  no Flotilla rule matches: the packet is routed as it is"]
