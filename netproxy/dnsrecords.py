"""Cluster DNS answers, computed from Services and Endpoints: the DNS server's decision.

`DnsRecords` is a map from a lower-case FQDN (with the trailing dot) to A
addresses and SRV records, rebuilt per Service by `compute_records(service,
endpoints, domain)` following Kubernetes' DNS specification:

* `SVC.NS.svc.DOMAIN`: A = the clusterIP; for a headless Service, the ready
  endpoint addresses;
* `_PORT._PROTO.SVC.NS.svc.DOMAIN` (named ports only): SRV 0 100 port target,
  the target being the Service name (clusterIP) or each endpoint's name
  (headless);
* `HOSTNAME.SVC.NS.svc.DOMAIN` for headless endpoints that carry a hostname
  (StatefulSet pods: spec.hostname + spec.subdomain); endpoints without one
  get a name from their IP (10-244-1-5), as Kubernetes does;
* ExternalName Services: `SVC.NS.svc.DOMAIN` is a CNAME to spec.externalName;
* PTR: `D.C.B.A.in-addr.arpa` of a clusterIP names its Service, and of a
  headless endpoint its `HOSTNAME.SVC.NS.svc.DOMAIN`.

`lookup(records, name, qtype)` answers ("answer", A ips, SRVs) /
("cname", target) / ("ptr", names) / ("nxdomain",) / ("forward",): names
outside the cluster domain, and reverse names that are not ours, go to the
upstream resolver. Pure: no I/O; dns.py serves it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class Srv:
    priority: int
    weight: int
    port: int
    target: str


@dataclass
class Records:
    a: dict[str, list[str]] = field(default_factory=dict)
    srv: dict[str, list[Srv]] = field(default_factory=dict)
    cname: dict[str, str] = field(default_factory=dict)
    ptr: dict[str, list[str]] = field(default_factory=dict)

    def merge(self, other: Records) -> None:
        for k, v in other.a.items():
            self.a.setdefault(k, []).extend(v)
        for k, s in other.srv.items():
            self.srv.setdefault(k, []).extend(s)
        self.cname.update(other.cname)
        for k, names in other.ptr.items():
            have = self.ptr.setdefault(k, [])
            have.extend(n for n in names if n not in have)


def _ip_name(ip: str) -> str:
    return ip.replace(".", "-").replace(":", "-")


def reverse_name(ip: str) -> str:
    """"10.96.0.5" -> "5.0.96.10.in-addr.arpa." ("" for anything but IPv4)."""
    parts = ip.split(".")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        return ""
    return ".".join(reversed(parts)) + ".in-addr.arpa."


def _add_ptr(rec: Records, ip: str, name: str) -> None:
    rev = reverse_name(ip)
    if rev and name not in rec.ptr.setdefault(rev, []):
        rec.ptr[rev].append(name)


def compute_records(service: Any, endpoints: Any | None, domain: str = DEFAULT_DOMAIN) -> Records:
    spec = service.spec
    base = f"{service.metadata.name}.{service.metadata.namespace}.svc.{domain}.".lower()
    rec = Records()
    headless = spec.cluster_ip == "None"
    if spec.type == "ExternalName":
        if spec.external_name:
            rec.cname[base] = spec.external_name.lower().rstrip(".") + "."
        return rec
    if not headless:
        if spec.cluster_ip:
            rec.a[base] = [spec.cluster_ip]
            _add_ptr(rec, spec.cluster_ip, base)
        for p in spec.ports:
            if p.name:
                rec.srv[f"_{p.name}._{(p.protocol or 'TCP').lower()}.{base}"] = [Srv(0, 100, p.port, base)]
        return rec
    ips: list[str] = []
    for subset in endpoints.subsets if endpoints is not None else []:
        addrs = list(subset.addresses)
        if spec.publish_not_ready_addresses:
            addrs += list(subset.not_ready_addresses)
        for addr in addrs:
            ips.append(addr.ip)
            host = f"{(addr.hostname or _ip_name(addr.ip)).lower()}.{base}"
            rec.a.setdefault(host, [])
            if addr.ip not in rec.a[host]:
                rec.a[host].append(addr.ip)
            _add_ptr(rec, addr.ip, host)
            for port in subset.ports:
                if port.name:
                    key = f"_{port.name}._{(port.protocol or 'TCP').lower()}.{base}"
                    rec.srv.setdefault(key, []).append(Srv(0, 100, port.port, host))
    if ips or endpoints is not None:
        rec.a[base] = sorted(set(ips), key=lambda ip: tuple(int(x) for x in ip.split(".") if x.isdigit()))
    return rec


def lookup(records: Records, name: str, qtype: str, *, domain: str = DEFAULT_DOMAIN) -> tuple[Any, ...]:
    """("answer", [A ips], [Srv]) | ("cname", target) | ("ptr", [names]) | ("nxdomain",) |
    ("forward",) for a query name and type."""
    name = name.lower()
    if not name.endswith("."):
        name += "."
    if name.endswith(".in-addr.arpa."):
        if name in records.ptr and qtype in ("PTR", "ANY"):
            return ("ptr", list(records.ptr[name]))
        return ("forward",) if name not in records.ptr else ("answer", [], [])
    suffix = f".{domain}.".lower()
    if not name.endswith(suffix) and name != suffix[1:]:
        return ("forward",)
    if name in records.cname:
        return ("cname", records.cname[name])
    known = name in records.a or name in records.srv
    if not known:
        # "svc.DOMAIN." and "NS.svc.DOMAIN." exist (empty non-terminals): NOERROR, no records
        labels = name[: -len(suffix)].split(".") if name != suffix[1:] else []
        if labels and labels[-1] == "svc" and len(labels) <= 2:
            return ("answer", [], [])
        return ("nxdomain",)
    if qtype == "A":
        return ("answer", list(records.a.get(name, [])), [])
    if qtype == "SRV":
        return ("answer", [], list(records.srv.get(name, [])))
    return ("answer", [], [])


def render_resolv_conf(namespace: str, cluster_domain: str = DEFAULT_DOMAIN, nameservers: tuple[str, ...] = ("10.96.0.10",),
                       *, ndots: int = 5) -> str:
    """A pod's /etc/resolv.conf (Kubernetes' ClusterFirst policy): the cluster DNS,
    the search path NS.svc.DOMAIN svc.DOMAIN DOMAIN, and ndots:5.
    The node agent writes it into each pod (not on this branch)."""
    lines = [f"nameserver {ns}" for ns in nameservers]
    lines.append(f"search {namespace}.svc.{cluster_domain} svc.{cluster_domain} {cluster_domain}")
    lines.append(f"options ndots:{ndots}")
    return "\n".join(lines) + "\n"
