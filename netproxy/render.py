"""Service rules as iptables-restore text: the proxy's one decision (DESIGN 9).

`render(ports, only=..., gone_chains=..., options=...)` returns the text for
one `iptables-restore --noflush`, touching only Flotilla's own chains:

nat:
  FLOTILLA-SERVICES    dispatch, jumped to from PREROUTING and OUTPUT: one rule per
                       service port with ready endpoints (-d VIP -p P --dport N),
                       the cluster DNS redirect, and last `-m addrtype
                       --dst-type LOCAL -j FLOTILLA-NODEPORTS`
  FLOTILLA-NODEPORTS   per nodePort: mark for masquerade, then the port's target
  FLOTILLA-SVC-<hash>  per service port with more than one endpoint (or session
                       affinity): one `-m statistic --mode random --probability
                       1/(n-i)` step per endpoint, the last unconditional, so each
                       gets exactly 1/n, each step a DNAT
  FLOTILLA-SEP-<hash>  only with sessionAffinity ClientIP: per endpoint, `-m recent
                       --set` and the DNAT (affinity checks in the SVC chain jump here)
  FLOTILLA-MARK-MASQ   sets MASQ_MARK
  FLOTILLA-POSTROUTING masquerades marked packets (jumped to from POSTROUTING); marks
                       hairpin connections (FLOTILLA-HAIRPIN) and, with a cluster
                       CIDR, connections to a cluster IP (conntrack's original
                       destination in the Service CIDR) from outside it
  FLOTILLA-HAIRPIN     one `-s A -d A` rule per address of this node's pod CIDR: a
                       pod whose connection to a service was DNATed to itself
filter:
  FLOTILLA-SERVICES    REJECT for service ports and nodePorts without endpoints
                       (jumped to from INPUT, FORWARD and OUTPUT for new connections)

A port with one endpoint and no affinity has no chain of its own: its
dispatch and nodePort rules DNAT straight to the endpoint. Hairpin and
off-cluster masquerading are decided once in POSTROUTING (conntrack knows the
connection was DNATed) rather than by a rule per endpoint. Both keep the
number of chains and rules low, and iptables-legacy's restore, which
rewrites the whole nat table, costs in proportion to them (LAB-NOTES; at
10,000 one-endpoint services a chain per service and per endpoint made
adding one service take ~0.19 s, this layout ~0.04 s).

`render` writes the shared chains whole plus the service chains asked for
(all of them for a full sync); `render_delta` (the syncer's incremental sync)
edits the shared chains in place instead (-D a changed port's old dispatch,
nodePort and reject rules, -I its new ones) and writes only the changed
ports' own chains, so its text follows the change, not the number of
services. Chains in `gone_chains` are flushed and deleted (`-X`) after every
rule that could point at them is gone. Declaring a chain in --noflush mode
flushes it, so a service chain is always written whole.

The jumps from the built-in chains (JUMPS) are inserted by a full sync's
text only when the iptables-save taken just before lacks them (`jumps=`):
a --noflush restore cannot insert idempotently, and asking `iptables -C`
per jump would read the whole nat table each time (seconds at 10,000
services with 10 endpoints).

Pure: no I/O. Output is deterministic: equal inputs give byte-equal text.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction

from netproxy.model import Endpoint, ServicePort

PREFIX = "FLOTILLA-"
SERVICES = "FLOTILLA-SERVICES"
NODEPORTS = "FLOTILLA-NODEPORTS"
POSTROUTING = "FLOTILLA-POSTROUTING"
MARK_MASQ = "FLOTILLA-MARK-MASQ"
HAIRPIN = "FLOTILLA-HAIRPIN"
# Not kube-proxy's 0x4000, so both could share a host without clearing each other's mark.
MASQ_MARK = "0x2000"
SHARED_NAT = (SERVICES, NODEPORTS, POSTROUTING, MARK_MASQ, HAIRPIN)
# A node pod CIDR wider than this gets no hairpin rules (one rule per address; DESIGN 8 gives /24s).
MAX_HAIRPIN_PREFIX = 22
SHARED_FILTER = (SERVICES,)

# (table, built-in chain, our chain, extra match): inserted by a full sync when missing (`render(jumps=)`).
JUMPS: tuple[tuple[str, str, str, str], ...] = (
    ("nat", "PREROUTING", SERVICES, ""),
    ("nat", "OUTPUT", SERVICES, ""),
    ("nat", "POSTROUTING", POSTROUTING, ""),
    ("filter", "INPUT", SERVICES, "-m conntrack --ctstate NEW"),
    ("filter", "FORWARD", SERVICES, "-m conntrack --ctstate NEW"),
    ("filter", "OUTPUT", SERVICES, "-m conntrack --ctstate NEW"),
)
Jump = tuple[str, str, str, str]
JUMP_COMMENT = "flotilla service portals"


def jump_spec(target: str, match: str) -> str:
    """The rule text after "-A CHAIN" of one jump from a built-in chain."""
    # iptables-restore splits on spaces and knows only double quotes (not shlex's single ones)
    return " ".join([*([match] if match else []), _comment(JUMP_COMMENT), "-j", target])


@dataclass(frozen=True)
class ProxyOptions:
    # Traffic to a cluster IP from outside this CIDR is masqueraded ("" = only hairpin and NodePort).
    cluster_cidr: str = ""
    # The Service CIDR (the apiserver's --service-cluster-ip-range): how POSTROUTING
    # tells a connection to a cluster IP (conntrack's original destination).
    service_cidr: str = "10.96.0.0/12"
    # This node's pod CIDR (Node spec.podCIDR): its addresses get the hairpin rules ("" = none yet).
    node_cidr: str = ""
    # Cluster DNS: dns_vip:53 (UDP and TCP) is DNATed to dns_target ("ip:port") on this host.
    dns_vip: str = ""
    dns_target: str = ""


@dataclass
class Rendered:
    text: str
    chains: dict[str, set[str]] = field(default_factory=dict)  # service port key -> its chains
    rules: int = 0  # -A lines in this text
    # service port key -> -A lines of its own chains and its dispatch / nodePort / reject rules
    rules_by_key: dict[str, int] = field(default_factory=dict)


@functools.lru_cache(maxsize=1 << 18)
def _hash(*parts: str) -> str:
    """12 base-32 characters of sha256 (60 bits): chain names stay <= 28 characters.
    Cached: a sync names every service's chain, and base64's b32 is slow Python."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return base64.b32encode(digest[:10]).decode()[:12]


def svc_chain(sp: ServicePort) -> str:
    return f"{PREFIX}SVC-{_hash(sp.key, sp.protocol)}"


def sep_chain(sp: ServicePort, ep: Endpoint) -> str:
    return f"{PREFIX}SEP-{_hash(sp.key, sp.protocol, f'{ep.ip}:{ep.port}')}"


def has_chain(sp: ServicePort) -> bool:
    """A port with one endpoint and no session affinity is DNATed straight from its
    dispatch and nodePort rules; any other port with endpoints has a SVC chain."""
    return len(sp.endpoints) > 1 or (bool(sp.endpoints) and bool(sp.affinity_timeout_s))


def chains_of(sp: ServicePort) -> set[str]:
    if not has_chain(sp):
        return set()
    seps = {sep_chain(sp, ep) for ep in sp.endpoints} if sp.affinity_timeout_s else set()
    return {svc_chain(sp)} | seps


def probabilities(n: int) -> list[Fraction | None]:
    """Step i matches with 1/(n-i) of what reaches it; the last step takes the rest (None).
    Endpoint i's overall share is prod_{j<i}(1 - p_j) * p_i == 1/n."""
    return [Fraction(1, n - i) for i in range(n - 1)] + [None] if n else []


def format_probability(p: Fraction) -> str:
    return f"{float(p):0.10f}"


def _match(sp: ServicePort) -> str:
    proto = sp.protocol.lower()
    return f"-p {proto} -m {proto}"


def _comment(text: str) -> str:
    return f'-m comment --comment "{text}"'


def _dnat(ep: Endpoint) -> str:
    return f"-j DNAT --to-destination {ep.ip}:{ep.port}"


def target(sp: ServicePort) -> str:
    """The `-j ...` of a port's dispatch and nodePort rules (the port has endpoints)."""
    return f"-j {svc_chain(sp)}" if has_chain(sp) else _dnat(sp.endpoints[0])


@functools.lru_cache(maxsize=8)
def hairpin_addresses(node_cidr: str) -> tuple[str, ...]:
    """Every host address of the node's pod CIDR; none for an unknown, invalid or too wide one."""
    try:
        net = ipaddress.ip_network(node_cidr, strict=False)
    except ValueError:
        return ()
    if net.version != 4 or net.prefixlen < MAX_HAIRPIN_PREFIX:
        return ()
    return tuple(str(a) for a in net.hosts())


def render_service(sp: ServicePort) -> list[str]:
    """The -A lines of one service port's own chains (none without endpoints or
    with a single endpoint and no affinity: see `target`).

    No `-m comment` here (the chain names say whose they are, and the dispatch
    rule names the service): a comment match made iptables-legacy's restore of
    a 10,000-service table about 40% slower (0.23 s -> 0.14 s for one chain)."""
    if not has_chain(sp):
        return []
    svc = svc_chain(sp)
    # `-p` alone: DNAT needs the protocol, not the tcp/udp match module, which
    # would add a match per endpoint for the kernel to check on every restore
    # (about a quarter of the cost of adding a service at 10,000 x 10)
    m = f"-p {sp.protocol.lower()}"
    lines: list[str] = []
    if sp.affinity_timeout_s:
        for ep in sp.endpoints:
            sep = sep_chain(sp, ep)
            lines.append(f"-A {svc} -m recent --name {sep} "
                         f"--mask 255.255.255.255 --rsource --rcheck --seconds {sp.affinity_timeout_s} --reap -j {sep}")
    for ep, p in zip(sp.endpoints, probabilities(len(sp.endpoints)), strict=True):
        step = f" -m statistic --mode random --probability {format_probability(p)}" if p is not None else ""
        lines.append(f"-A {svc}{step} -j {sep_chain(sp, ep)}" if sp.affinity_timeout_s
                     else f"-A {svc}{step} {m} {_dnat(ep)}")
    if sp.affinity_timeout_s:
        for ep in sp.endpoints:
            sep = sep_chain(sp, ep)
            lines.append(f"-A {sep} -m recent --set --name {sep} --mask 255.255.255.255 --rsource {m} {_dnat(ep)}")
    return lines


SharedLines = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]
# (service port key, protocol) -> (the ServicePort rendered, its shared lines); see render(cache=...)
SharedCache = dict[tuple[str, str], tuple[ServicePort, SharedLines]]


def _port_shared(sp: ServicePort) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(dispatch, nodeport, reject) lines of one service port."""
    m = _match(sp)
    if sp.endpoints:
        to = target(sp)
        dispatch = (f"-A {SERVICES} -d {sp.cluster_ip}/32 {_comment(f'{sp.key} cluster IP')} {m} "
                    f"--dport {sp.port} {to}",)
        nodeports: tuple[str, ...] = ()
        if sp.node_port:
            nodeports = (f"-A {NODEPORTS} {_comment(sp.key)} {m} --dport {sp.node_port} -j {MARK_MASQ}",
                         f"-A {NODEPORTS} {_comment(sp.key)} {m} --dport {sp.node_port} {to}")
        return dispatch, nodeports, ()
    reject = "-j REJECT --reject-with icmp-port-unreachable"
    filt = [f"-A {SERVICES} -d {sp.cluster_ip}/32 {_comment(f'{sp.key} has no endpoints')} {m} "
            f"--dport {sp.port} {reject}"]
    if sp.node_port:
        filt.append(f"-A {SERVICES} {_comment(f'{sp.key} has no endpoints')} -m addrtype --dst-type LOCAL "
                    f"{m} --dport {sp.node_port} {reject}")
    return (), (), tuple(filt)


def render_shared(ports: Iterable[ServicePort], options: ProxyOptions, *,
                  cache: SharedCache | None = None) -> tuple[list[str], list[str]]:
    """(nat lines, filter lines) of the shared chains, whole. With `cache`, a port
    that is the very object rendered last time reuses its lines (an identity check:
    the syncer keeps unchanged ServicePorts), so a sync does not re-format them."""
    nat = []
    hairpin = hairpin_addresses(options.node_cidr) if options.node_cidr else ()
    if hairpin:
        cidr = str(ipaddress.ip_network(options.node_cidr, strict=False))
        nat.append(f"-A {POSTROUTING} -s {cidr} -d {cidr} -m conntrack --ctstate DNAT -j {HAIRPIN}")
        nat += [f"-A {HAIRPIN} -s {a}/32 -d {a}/32 -j {MARK_MASQ}" for a in hairpin]
    if options.cluster_cidr and options.service_cidr:
        # A connection to a cluster IP from outside the cluster CIDR, DNATed to any
        # endpoint but this host's own addresses (the cluster DNS answers here).
        nat.append(f"-A {POSTROUTING} ! -s {options.cluster_cidr} -m addrtype ! --dst-type LOCAL "
                   f"-m conntrack --ctstate DNAT --ctorigdst {options.service_cidr} -j {MARK_MASQ}")
    nat += [
        f"-A {POSTROUTING} -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
        f"-A {POSTROUTING} -j MARK --xor-mark {MASQ_MARK}",
        f"-A {POSTROUTING} {_comment('flotilla service traffic requiring SNAT')} -j MASQUERADE",
        f"-A {MARK_MASQ} -j MARK --or-mark {MASQ_MARK}",
    ]
    if options.dns_vip and options.dns_target:
        for proto in ("udp", "tcp"):
            nat.append(f"-A {SERVICES} -d {options.dns_vip}/32 -p {proto} {_comment('cluster DNS')} "
                       f"-m {proto} --dport 53 -j DNAT --to-destination {options.dns_target}")
    filt: list[str] = []
    nodeports: list[str] = []
    for sp in ports:
        if cache is None:
            dispatch, nps, rejects = _port_shared(sp)
        else:
            ck = (sp.key, sp.protocol)
            hit = cache.get(ck)
            if hit is None or hit[0] is not sp:
                hit = cache[ck] = (sp, _port_shared(sp))
            dispatch, nps, rejects = hit[1]
        nat.extend(dispatch)
        nodeports.extend(nps)
        filt.extend(rejects)
    nat.append(f"-A {SERVICES} {_comment('flotilla nodeports; keep last')} -m addrtype --dst-type LOCAL -j {NODEPORTS}")
    return nat + nodeports, filt


def render(
    ports: list[ServicePort],
    *,
    only: set[str] | None = None,
    gone_chains: Iterable[str] = (),
    options: ProxyOptions = ProxyOptions(),
    write: list[ServicePort] | None = None,
    cache: SharedCache | None = None,
    jumps: Iterable[Jump] = (),
) -> Rendered:
    """The restore text; `only` = keys of the service ports whose chains to write
    (None: all), or `write` = those ports themselves (the syncer's fast path);
    `jumps` = the JUMPS to insert (those the kernel lacks)."""
    if options.dns_vip and options.dns_target:
        # the DNS VIP is answered on this host (the DNAT above), never balanced as a Service
        ports = [sp for sp in ports if sp.cluster_ip != options.dns_vip]
    ports = sorted(ports, key=lambda sp: (sp.key, sp.protocol))
    nat_shared, filt = render_shared(ports, options, cache=cache)
    if write is not None:
        written = sorted(write, key=lambda sp: (sp.key, sp.protocol))
    else:
        written = [sp for sp in ports if only is None or sp.key in only]
    chains: dict[str, set[str]] = {}
    svc_lines: list[str] = []
    per_key: dict[str, int] = {}
    for sp in written:
        chains.setdefault(sp.key, set()).update(chains_of(sp))
        own = render_service(sp)
        svc_lines.extend(own)
        per_key[sp.key] = per_key.get(sp.key, 0) + len(own) + (3 if sp.node_port else 1)
    written_chains: set[str] = set().union(*chains.values()) if chains else set()
    nat_rules = nat_shared + svc_lines
    gone = sorted(set(gone_chains) - written_chains)
    nat_decls = sorted(SHARED_NAT) + sorted(written_chains) + gone
    inserts = {t: [f"-I {chain} 1 {jump_spec(target, match)}" for tt, chain, target, match in sorted(set(jumps))
                   if tt == t] for t in ("nat", "filter")}
    lines = (["*nat"] + [f":{c} - [0:0]" for c in nat_decls] + nat_rules + inserts["nat"] + [f"-X {c}" for c in gone]
             + ["COMMIT"])
    lines += ["*filter"] + [f":{c} - [0:0]" for c in SHARED_FILTER] + filt + inserts["filter"] + ["COMMIT"]
    return Rendered("\n".join(lines) + "\n", chains, len(nat_rules) + len(filt), per_key)


def _edits(old: tuple[str, ...], new: tuple[str, ...]) -> list[str]:
    """A changed group of one port's shared lines is replaced whole: -D every old
    line, then -I ... 1 every new one (in reverse, so a NodePort's MARK rule lands
    before its jump). Keeping an unchanged MARK rule and re-inserting only a changed
    jump would put the jump first, and the mark would never be set. Every line is
    "-A CHAIN spec"."""
    if old == new:
        return []
    out = [f"-D {ln[3:]}" for ln in old]
    for ln in reversed(new):
        chain, _, spec = ln[3:].partition(" ")
        out.append(f"-I {chain} 1 {spec}")
    return out


def render_delta(
    changed: list[ServicePort],
    removed: Iterable[tuple[str, str]],
    *,
    cache: SharedCache,
    gone_chains: Iterable[str] = (),
    options: ProxyOptions = ProxyOptions(),
) -> Rendered:
    """An incremental restore whose size follows the change only: the shared chains
    are edited in place (-D the changed ports' old dispatch / nodePort / reject rules,
    -I the new ones) instead of rewritten, using `cache` as the record of what the
    kernel holds (render() with the same cache filled it); the changed ports' own
    chains are written whole and `gone_chains` deleted. `removed` are the
    (key, protocol) of ports that went. If the kernel disagrees with the cache a -D
    fails, the whole restore is refused, and the syncer falls back to a full sync."""
    if options.dns_vip and options.dns_target:
        changed = [sp for sp in changed if sp.cluster_ip != options.dns_vip]
    changed = sorted(changed, key=lambda sp: (sp.key, sp.protocol))
    nat_edits: list[str] = []
    filt_edits: list[str] = []
    empty: SharedLines = ((), (), ())
    for ck in sorted(set(removed)):
        old = cache.pop(ck, (None, empty))[1]  # type: ignore[arg-type]
        nat_edits += _edits(old[0] + old[1], ())
        filt_edits += _edits(old[2], ())
    chains: dict[str, set[str]] = {}
    svc_lines: list[str] = []
    per_key: dict[str, int] = {}
    for sp in changed:
        ck = (sp.key, sp.protocol)
        old = cache.get(ck, (None, empty))[1]  # type: ignore[arg-type]
        new = _port_shared(sp)
        cache[ck] = (sp, new)
        nat_edits += _edits(old[0] + old[1], new[0] + new[1])
        filt_edits += _edits(old[2], new[2])
        chains.setdefault(sp.key, set()).update(chains_of(sp))
        own = render_service(sp)
        svc_lines.extend(own)
        per_key[sp.key] = per_key.get(sp.key, 0) + len(own) + (3 if sp.node_port else 1)
    written_chains: set[str] = set().union(*chains.values()) if chains else set()
    gone = sorted(set(gone_chains) - written_chains)
    decls = sorted(written_chains) + gone
    lines = ["*nat"] + [f":{c} - [0:0]" for c in decls] + nat_edits + svc_lines + [f"-X {c}" for c in gone]
    lines += ["COMMIT", "*filter"] + filt_edits + ["COMMIT"]
    return Rendered("\n".join(lines) + "\n", chains, len(nat_edits) + len(svc_lines) + len(filt_edits), per_key)


def render_cleanup(nat_chains: Iterable[str], filter_chains: Iterable[str]) -> str:
    """Flush and delete the given Flotilla chains (the jumps are removed first, by the adapter)."""
    out = []
    for table, chains in (("nat", sorted(set(nat_chains))), ("filter", sorted(set(filter_chains)))):
        out += [f"*{table}"] + [f":{c} - [0:0]" for c in chains] + [f"-X {c}" for c in chains] + ["COMMIT"]
    return "\n".join(out) + "\n"
