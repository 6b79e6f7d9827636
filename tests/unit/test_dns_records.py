"""Table tests for netproxy/dnsrecords.py and the DNS server's answers (no sockets)."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import pytest

from netproxy.dns import DnsServer
from netproxy.dnsrecords import Records, compute_records, lookup, render_resolv_conf
from protos.core.v1 import core_pb2


def svc(name: str, ip: str, *, ports: tuple[str, ...] = ("http",)) -> core_pb2.Service:
    s = core_pb2.Service()
    s.metadata.name, s.metadata.namespace = name, "default"
    s.spec.cluster_ip = ip
    for i, pn in enumerate(ports):
        s.spec.ports.add(name=pn, port=80 + i, protocol="TCP")
    return s


def eps(name: str, addrs: list[tuple[str, str]]) -> core_pb2.Endpoints:
    e = core_pb2.Endpoints()
    e.metadata.name, e.metadata.namespace = name, "default"
    sub = e.subsets.add()
    for ip, host in addrs:
        sub.addresses.add(ip=ip, hostname=host)
    sub.ports.add(name="http", port=8080, protocol="TCP")
    return e


def external(name: str, target: str) -> core_pb2.Service:
    s = core_pb2.Service()
    s.metadata.name, s.metadata.namespace = name, "default"
    s.spec.type, s.spec.external_name = "ExternalName", target
    return s


def records() -> Records:
    r = Records()
    r.merge(compute_records(svc("web", "10.96.0.5"), None))
    r.merge(compute_records(svc("db", "None"), eps("db", [("10.244.1.2", "db-0"), ("10.244.2.2", "")])))
    r.merge(compute_records(external("mail", "Smtp.Example.org."), None))
    r.merge(compute_records(external("alias", "web.default.svc.cluster.local"), None))
    r.merge(compute_records(external("alias2", "alias.default.svc.cluster.local"), None))
    r.merge(compute_records(external("broken", "nope.default.svc.cluster.local"), None))
    r.merge(compute_records(external("loop1", "loop2.default.svc.cluster.local"), None))
    r.merge(compute_records(external("loop2", "loop1.default.svc.cluster.local"), None))
    return r


CASES = [
    ("clusterIP A", "web.default.svc.cluster.local.", "A", ("answer", ["10.96.0.5"], [])),
    ("case and no dot", "WEB.default.svc.cluster.local", "A", ("answer", ["10.96.0.5"], [])),
    ("headless A", "db.default.svc.cluster.local.", "A", ("answer", ["10.244.1.2", "10.244.2.2"], [])),
    ("statefulset pod", "db-0.db.default.svc.cluster.local.", "A", ("answer", ["10.244.1.2"], [])),
    ("pod without hostname", "10-244-2-2.db.default.svc.cluster.local.", "A", ("answer", ["10.244.2.2"], [])),
    ("AAAA of a known name", "web.default.svc.cluster.local.", "AAAA", ("answer", [], [])),
    ("namespace node", "default.svc.cluster.local.", "A", ("answer", [], [])),
    ("unknown service", "nope.default.svc.cluster.local.", "A", ("nxdomain",)),
    ("outside", "example.org.", "A", ("forward",)),
    ("ExternalName", "mail.default.svc.cluster.local.", "A", ("cname", "smtp.example.org.")),
    ("ExternalName, any type", "mail.default.svc.cluster.local.", "MX", ("cname", "smtp.example.org.")),
    ("PTR of a clusterIP", "5.0.96.10.in-addr.arpa.", "PTR", ("ptr", ["web.default.svc.cluster.local."])),
    ("PTR of a headless pod", "2.1.244.10.in-addr.arpa.", "PTR", ("ptr", ["db-0.db.default.svc.cluster.local."])),
    ("PTR of an address not ours", "7.2.0.192.in-addr.arpa.", "PTR", ("forward",)),
    ("A of a reverse name", "5.0.96.10.in-addr.arpa.", "A", ("answer", [], [])),
]


@pytest.mark.parametrize("name,query,qtype,want", CASES, ids=[c[0] for c in CASES])
def test_lookup(name: str, query: str, qtype: str, want: tuple[object, ...]) -> None:
    assert lookup(records(), query, qtype) == want


def test_srv() -> None:
    kind, _, srvs = lookup(records(), "_http._tcp.web.default.svc.cluster.local.", "SRV")
    assert kind == "answer" and [(s.port, s.target) for s in srvs] == [(80, "web.default.svc.cluster.local.")]
    _, _, srvs = lookup(records(), "_http._tcp.db.default.svc.cluster.local.", "SRV")
    assert sorted(s.target for s in srvs) == ["10-244-2-2.db.default.svc.cluster.local.",
                                              "db-0.db.default.svc.cluster.local."]


async def test_server_answers_and_servfails_without_upstream() -> None:
    server = DnsServer(records, upstream="")
    out = dns.message.from_wire(await server.answer(dns.message.make_query("web.default.svc.cluster.local", "A").to_wire()))
    assert [r.to_text() for r in out.answer[0]] == ["10.96.0.5"]
    out = dns.message.from_wire(await server.answer(dns.message.make_query("example.org", "A").to_wire()))
    assert out.rcode() == dns.rcode.SERVFAIL
    out = dns.message.from_wire(await server.answer(dns.message.make_query("x.default.svc.cluster.local", "A").to_wire()))
    assert out.rcode() == dns.rcode.NXDOMAIN
    assert await server.answer(b"\x00garbage") is None


async def test_external_name_answers_the_cname_and_its_target() -> None:
    server = DnsServer(records, upstream="")
    q = dns.message.make_query("alias.default.svc.cluster.local", "A")
    out = dns.message.from_wire(await server.answer(q.to_wire()))
    assert [(str(r.name), r.rdtype.name, [x.to_text() for x in r]) for r in out.answer] == [
        ("alias.default.svc.cluster.local.", "CNAME", ["web.default.svc.cluster.local."]),
        ("web.default.svc.cluster.local.", "A", ["10.96.0.5"])]
    # a target outside the cluster with no upstream: the CNAME, and SERVFAIL as for any outside name
    out = dns.message.from_wire(await server.answer(dns.message.make_query("mail.default.svc.cluster.local", "A")
                                                    .to_wire()))
    assert [r.rdtype.name for r in out.answer] == ["CNAME"] and out.rcode() == dns.rcode.SERVFAIL
    # a chain of ExternalNames inside the cluster is followed; a dead end is NXDOMAIN; a loop SERVFAIL
    out = dns.message.from_wire(await server.answer(dns.message.make_query("alias2.default.svc.cluster.local", "A")
                                                    .to_wire()))
    assert [r.rdtype.name for r in out.answer] == ["CNAME", "CNAME", "A"] and out.rcode() == dns.rcode.NOERROR
    out = dns.message.from_wire(await server.answer(dns.message.make_query("broken.default.svc.cluster.local", "A")
                                                    .to_wire()))
    assert [r.rdtype.name for r in out.answer] == ["CNAME"] and out.rcode() == dns.rcode.NXDOMAIN
    out = dns.message.from_wire(await server.answer(dns.message.make_query("loop1.default.svc.cluster.local", "A")
                                                    .to_wire()))
    assert out.rcode() == dns.rcode.SERVFAIL
    out = dns.message.from_wire(await server.answer(dns.message.make_query("5.0.96.10.in-addr.arpa", "PTR").to_wire()))
    assert [x.to_text() for x in out.answer[0]] == ["web.default.svc.cluster.local."]


def test_resolv_conf() -> None:
    assert render_resolv_conf("shop", "cluster.local", ("10.96.0.10",)) == (
        "nameserver 10.96.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n")


async def _ask(server: DnsServer, query: dns.message.Message, *, udp: bool = False) -> dns.message.Message:
    out = await server.answer(query.to_wire(), udp=udp)
    assert out is not None
    return dns.message.from_wire(out)


async def test_udp_answer_too_large_is_truncated_for_tcp() -> None:
    many = Records()
    many.merge(compute_records(svc("big", "None"), eps("big", [(f"10.244.1.{i}", "") for i in range(2, 82)])))
    server = DnsServer(lambda: many, upstream="")
    name = "big.default.svc.cluster.local"
    small = await _ask(server, dns.message.make_query(name, "A", use_edns=False), udp=True)
    assert small.flags & dns.flags.TC and not small.answer
    edns = await _ask(server, dns.message.make_query(name, "A", use_edns=0, payload=4096), udp=True)
    assert not edns.flags & dns.flags.TC and len(edns.answer[0]) == 80
    tcp = await _ask(server, dns.message.make_query(name, "A", use_edns=False))
    assert len(tcp.answer[0]) == 80
