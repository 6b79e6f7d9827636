"""Table and property tests for netproxy/render.py (and the fake it is applied to)."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netproxy.fake import FakeIptables
from netproxy.model import Endpoint, ServicePort
from netproxy.render import (
    HAIRPIN,
    MARK_MASQ,
    NODEPORTS,
    POSTROUTING,
    SERVICES,
    ProxyOptions,
    chains_of,
    hairpin_addresses,
    probabilities,
    render,
    render_service,
    sep_chain,
    svc_chain,
)


def sp(name: str = "web", *, n: int = 3, proto: str = "TCP", node_port: int = 0, affinity: int = 0,
       ip: str = "10.96.0.5") -> ServicePort:
    eps = tuple(Endpoint(f"10.244.{i + 1}.2", 8080) for i in range(n))
    return ServicePort("default", name, "http", proto, ip, 80, node_port, affinity, eps)


def lines_of(text: str, chain: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith(f"-A {chain} ")]


CASES = [
    ("three endpoints", sp(), SERVICES, [
        f'-A {SERVICES} -d 10.96.0.5/32 -m comment --comment "default/web:http cluster IP" -p tcp -m tcp --dport 80 -j {svc_chain(sp())}',
    ]),
    ("udp, one endpoint: DNAT in the dispatch rule", sp(proto="UDP", n=1), SERVICES, [
        '-A FLOTILLA-SERVICES -d 10.96.0.5/32 -m comment --comment "default/web:http cluster IP" -p udp -m udp --dport 80 -j DNAT --to-destination 10.244.1.2:8080',
    ]),
    ("one endpoint with affinity keeps its chain", sp(n=1, affinity=60), SERVICES, [
        f'-A {SERVICES} -d 10.96.0.5/32 -m comment --comment "default/web:http cluster IP" -p tcp -m tcp --dport 80 -j {svc_chain(sp(n=1, affinity=60))}',
    ]),
    ("nodeport, one endpoint", sp(node_port=30080, n=1), NODEPORTS, [
        f'-A {NODEPORTS} -m comment --comment "default/web:http" -p tcp -m tcp --dport 30080 -j {MARK_MASQ}',
        f'-A {NODEPORTS} -m comment --comment "default/web:http" -p tcp -m tcp --dport 30080 -j DNAT --to-destination 10.244.1.2:8080',
    ]),
    ("nodeport, two endpoints", sp(node_port=30080, n=2), NODEPORTS, [
        f'-A {NODEPORTS} -m comment --comment "default/web:http" -p tcp -m tcp --dport 30080 -j {MARK_MASQ}',
        f'-A {NODEPORTS} -m comment --comment "default/web:http" -p tcp -m tcp --dport 30080 -j {svc_chain(sp(node_port=30080, n=2))}',
    ]),
]


@pytest.mark.parametrize("name,port,chain,want", CASES, ids=[c[0] for c in CASES])
def test_dispatch_rules(name: str, port: ServicePort, chain: str, want: list[str]) -> None:
    text = render([port]).text
    got = [ln for ln in lines_of(text, chain) if "keep last" not in ln]
    assert got == want


def test_service_chain_steps_dnat_and_no_endpoint_chains() -> None:
    port = sp()
    svc = svc_chain(port)
    text = render([port]).text
    steps = lines_of(text, svc)
    assert [re.search(r"--probability (\S+)", s).group(1) if "--probability" in s else None for s in steps] == [
        "0.3333333333", "0.5000000000", None]
    assert steps[0].endswith("-p tcp -j DNAT --to-destination 10.244.1.2:8080")
    assert steps[2] == f"-A {svc} -p tcp -j DNAT --to-destination 10.244.3.2:8080"
    assert chains_of(port) == {svc} and "SEP-" not in text
    assert chains_of(sp(n=1)) == set() and render_service(sp(n=1)) == []


def test_no_endpoints_rejects_in_filter_and_has_no_nat_rule() -> None:
    port = sp(n=0, node_port=30081)
    text = render([port]).text
    nat, filt = text.split("*filter")
    assert "10.96.0.5" not in nat
    assert "-d 10.96.0.5/32" in filt and "--dport 80 -j REJECT" in filt
    assert "-m addrtype --dst-type LOCAL -p tcp -m tcp --dport 30081 -j REJECT" in filt


def test_session_affinity_uses_recent_in_endpoint_chains() -> None:
    port = sp(affinity=600, n=2)
    lines = render_service(port)
    assert sum("--rcheck --seconds 600 --reap" in ln for ln in lines) == 2
    sep = sep_chain(port, port.endpoints[0])
    assert f"-A {sep} -m recent --set --name {sep} --mask 255.255.255.255 --rsource -p tcp " \
           "-j DNAT --to-destination 10.244.1.2:8080" in lines
    assert chains_of(port) == {svc_chain(port), sep, sep_chain(port, port.endpoints[1])}


def test_cluster_cidr_masquerade_and_dns_are_decided_once() -> None:
    opts = ProxyOptions(cluster_cidr="10.244.0.0/16", dns_vip="10.96.0.10", dns_target="10.0.0.2:53")
    text = render([sp(), sp("b", ip="10.96.0.6")], options=opts).text
    assert lines_of(text, POSTROUTING)[0] == (
        f"-A {POSTROUTING} ! -s 10.244.0.0/16 -m addrtype ! --dst-type LOCAL "
        f"-m conntrack --ctstate DNAT --ctorigdst 10.96.0.0/12 -j {MARK_MASQ}")
    assert "! -s" not in "\n".join(lines_of(text, svc_chain(sp())))
    assert "-d 10.96.0.10/32 -p udp" in text and "--to-destination 10.0.0.2:53" in text


def test_hairpin_rules_cover_the_node_pod_cidr_whatever_the_services() -> None:
    opts = ProxyOptions(node_cidr="10.244.1.0/24")
    few, many = render([sp()], options=opts).text, render([sp(), sp("b", ip="10.96.0.6")], options=opts).text
    hairpin = lines_of(few, HAIRPIN)
    assert len(hairpin) == 254 and hairpin == lines_of(many, HAIRPIN)
    assert hairpin[1] == f"-A {HAIRPIN} -s 10.244.1.2/32 -d 10.244.1.2/32 -j {MARK_MASQ}"
    assert f"-A {POSTROUTING} -s 10.244.1.0/24 -d 10.244.1.0/24 -m conntrack --ctstate DNAT -j {HAIRPIN}" in few
    # no node CIDR yet, or one too wide to list: the chain exists, nothing jumps to it
    assert lines_of(render([sp()]).text, HAIRPIN) == [] and f"-j {HAIRPIN}" not in render([sp()]).text
    assert hairpin_addresses("10.244.0.0/16") == () and hairpin_addresses("garbage") == ()
    FakeIptables().restore(few)


def test_fake_accepts_full_then_incremental_equals_fresh_full() -> None:
    a, b = sp("a", n=3), sp("b", n=3, ip="10.96.0.6")
    fake = FakeIptables()
    fake.restore(render([a, b]).text)
    b2 = ServicePort(b.namespace, b.name, b.port_name, b.protocol, b.cluster_ip, b.port, 0, 0, b.endpoints[:2])
    fake.restore(render([a, b2], only={b2.key}).text)
    fresh = FakeIptables()
    fresh.restore(render([a, b2]).text)
    assert fake.user_chains("nat") == fresh.user_chains("nat")
    # down to one endpoint: the dispatch rule DNATs itself and the chain goes
    b1 = ServicePort(b.namespace, b.name, b.port_name, b.protocol, b.cluster_ip, b.port, 0, 0, b.endpoints[:1])
    fake.restore(render([a, b1], only={b1.key}, gone_chains=chains_of(b2)).text)
    assert svc_chain(b1) not in fake.user_chains("nat")
    # removing a whole service: its chains go
    assert svc_chain(a) in fake.user_chains("nat")
    fake.restore(render([], only=set(), gone_chains=chains_of(a)).text)
    assert svc_chain(a) not in fake.user_chains("nat")


def shares_in_text(text: str, port: ServicePort) -> dict[str, Fraction]:
    """Each DNAT target's overall share, walked from the port's dispatch rule through
    the rendered text, with the printed (10-decimal) probabilities."""
    dispatch = [ln for ln in lines_of(text, SERVICES) if f"-d {port.cluster_ip}/32" in ln]
    assert len(dispatch) == 1
    shares: dict[str, Fraction] = {}

    def walk(line: str, reach: Fraction) -> Fraction:
        m = re.search(r"--probability (\S+)", line)
        take = reach * Fraction(m.group(1)) if m else reach
        if "-j DNAT --to-destination " in line:
            dest = line.rsplit(" ", 1)[1]
            shares[dest] = shares.get(dest, Fraction(0)) + take
        else:
            chain = line.rsplit("-j ", 1)[1]
            rest = take
            for ln in lines_of(text, chain):
                rest -= walk(ln, rest)
        return take

    walk(dispatch[0], Fraction(1))
    return shares


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=60))
def test_every_endpoint_gets_exactly_one_nth(n: int) -> None:
    shares = []
    remaining = Fraction(1)
    for p in probabilities(n):
        take = remaining if p is None else remaining * p
        shares.append(take)
        remaining -= take
    assert shares == [Fraction(1, n)] * n and remaining == 0
    # and walking the rendered rules gives every endpoint 1/n, to the printed precision
    port = sp(n=n)
    walked = shares_in_text(render([port]).text, port)
    assert sorted(walked) == sorted(f"{ep.ip}:{ep.port}" for ep in port.endpoints)
    assert all(abs(share - Fraction(1, n)) < Fraction(n, 10**9) for share in walked.values())
    assert sum(walked.values()) == 1


endpoint_sets = st.lists(st.tuples(st.integers(1, 250), st.integers(1, 65535)), max_size=8, unique=True)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 200), st.sampled_from(["TCP", "UDP"]), endpoint_sets), max_size=12,
                unique_by=lambda t: t[0]))
def test_rendering_is_deterministic(specs: list[tuple[int, str, list[tuple[int, int]]]]) -> None:
    ports = [ServicePort("ns", f"s{i}", "", proto, f"10.96.1.{i}", 80, 0, 0,
                         tuple(sorted(Endpoint(f"10.244.0.{a}", p) for a, p in eps))) for i, proto, eps in specs]
    one = render(ports).text
    assert render(list(reversed(ports))).text == one
    FakeIptables().restore(one)  # and it applies
