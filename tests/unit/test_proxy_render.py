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
    MARK_MASQ,
    NODEPORTS,
    SERVICES,
    ProxyOptions,
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
    ("udp", sp(proto="UDP", n=1), SERVICES, [
        f'-A {SERVICES} -d 10.96.0.5/32 -m comment --comment "default/web:http cluster IP" -p udp -m udp --dport 80 -j {svc_chain(sp(proto="UDP", n=1))}',
    ]),
    ("nodeport", sp(node_port=30080, n=1), NODEPORTS, [
        f'-A {NODEPORTS} -m comment --comment "default/web:http" -p tcp -m tcp --dport 30080 -j {MARK_MASQ}',
        f'-A {NODEPORTS} -m comment --comment "default/web:http" -p tcp -m tcp --dport 30080 -j {svc_chain(sp(node_port=30080, n=1))}',
    ]),
]


@pytest.mark.parametrize("name,port,chain,want", CASES, ids=[c[0] for c in CASES])
def test_dispatch_rules(name: str, port: ServicePort, chain: str, want: list[str]) -> None:
    text = render([port]).text
    got = [ln for ln in lines_of(text, chain) if "keep last" not in ln]
    assert got == want


def test_service_chain_steps_and_dnat() -> None:
    port = sp()
    svc = svc_chain(port)
    steps = lines_of(render([port]).text, svc)
    assert [re.search(r"--probability (\S+)", s).group(1) if "--probability" in s else None for s in steps] == [
        "0.3333333333", "0.5000000000", None]
    sep = sep_chain(port, port.endpoints[0])
    assert lines_of(render([port]).text, sep) == [
        f'-A {sep} -s 10.244.1.2/32 -j {MARK_MASQ}',
        f'-A {sep} -p tcp -m tcp -j DNAT --to-destination 10.244.1.2:8080',
    ]


def test_no_endpoints_rejects_in_filter_and_has_no_nat_rule() -> None:
    port = sp(n=0, node_port=30081)
    text = render([port]).text
    nat, filt = text.split("*filter")
    assert "10.96.0.5" not in nat
    assert "-d 10.96.0.5/32" in filt and "--dport 80 -j REJECT" in filt
    assert "-m addrtype --dst-type LOCAL -p tcp -m tcp --dport 30081 -j REJECT" in filt


def test_session_affinity_uses_recent() -> None:
    port = sp(affinity=600, n=2)
    lines = render_service(port)
    assert sum("--rcheck --seconds 600 --reap" in ln for ln in lines) == 2
    assert sum("-m recent --set" in ln for ln in lines) == 2


def test_cluster_cidr_masquerade_and_dns() -> None:
    opts = ProxyOptions(cluster_cidr="10.244.0.0/16", dns_vip="10.96.0.10", dns_target="10.0.0.2:53")
    text = render([sp()], options=opts).text
    assert lines_of(text, svc_chain(sp()))[0].startswith(f"-A {svc_chain(sp())} ! -s 10.244.0.0/16")
    assert "-d 10.96.0.10/32 -p udp" in text and "--to-destination 10.0.0.2:53" in text


def test_fake_accepts_full_then_incremental_equals_fresh_full() -> None:
    a, b = sp("a", n=3), sp("b", n=2, ip="10.96.0.6")
    fake = FakeIptables()
    fake.restore(render([a, b]).text)
    b2 = ServicePort(b.namespace, b.name, b.port_name, b.protocol, b.cluster_ip, b.port, 0, 0, b.endpoints[:1])
    gone = {sep_chain(b, b.endpoints[1])}
    fake.restore(render([a, b2], only={b2.key}, gone_chains=gone).text)
    fresh = FakeIptables()
    fresh.restore(render([a, b2]).text)
    assert fake.user_chains("nat") == fresh.user_chains("nat")
    # removing a whole service: its chains go
    fake.restore(render([a], only=set(), gone_chains={svc_chain(b2), sep_chain(b2, b2.endpoints[0])}).text)
    assert not any(c == svc_chain(b2) for c in fake.user_chains("nat"))


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
    # and the printed probabilities are those fractions to 10 decimals
    port = sp(n=n)
    printed = [re.search(r"--probability (\S+)", ln) for ln in lines_of(render([port]).text, svc_chain(port))]
    for m, p in zip(printed, probabilities(n), strict=True):
        assert (m is None) == (p is None)
        if m is not None and p is not None:
            assert abs(Fraction(m.group(1)) - p) < Fraction(1, 10**10)


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
