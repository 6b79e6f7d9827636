"""netproxy/explain.py: the path of one connection through the rendered rules."""

from __future__ import annotations

import dataclasses

import pytest

from netproxy.explain import Packet, explain_path
from netproxy.model import Endpoint, ServicePort
from netproxy.render import ProxyOptions, svc_chain

WEB = ServicePort("default", "web", "http", "TCP", "10.96.0.5", 80, 30080, 0,
                  (Endpoint("10.244.1.2", 8080, "h1"), Endpoint("10.244.1.3", 8080, "h1"),
                   Endpoint("10.244.3.2", 8080, "h3")))
EMPTY = ServicePort("default", "empty", "", "TCP", "10.96.0.6", 80)
NODES = {"h1": ["192.168.77.1"], "h2": ["192.168.77.2"]}
OPTS = ProxyOptions(cluster_cidr="10.244.0.0/16", dns_vip="10.96.0.10", dns_target="192.168.77.2:53")


ONE = ServicePort("default", "one", "", "TCP", "10.96.0.7", 80, 0, 0, (Endpoint("10.244.3.2", 8080, "h3"),))


def explain(dst: str, port: int, *, src: str = "10.244.2.2", node: str = "h2", opts: ProxyOptions = OPTS) -> str:
    return "\n".join(explain_path(Packet(src, node, dst, port), [WEB, EMPTY, ONE], node_addresses=NODES,
                                  options=opts))


def test_cluster_ip_shares_are_exact_thirds() -> None:
    text = explain("10.96.0.5", 80)
    assert svc_chain(WEB) in text
    assert text.count("(overall 1/3, 33.3%)") == 3
    assert "--probability 0.3333333333" in text and "--probability 0.5000000000" in text and "otherwise" in text
    assert "DNAT 10.244.3.2:8080" in text and "source 10.244.2.2 kept" in text


def test_hairpin_is_marked_in_postrouting_when_the_node_cidr_is_known() -> None:
    on_h1 = dataclasses.replace(OPTS, node_cidr="10.244.1.0/24")
    text = explain("10.96.0.5", 80, src="10.244.1.2", node="h1", opts=on_h1)
    assert "[hairpin: back to its own source -> FLOTILLA-HAIRPIN marks it]" in text
    assert "DNATed back to 10.244.1.2 is marked by FLOTILLA-HAIRPIN and masqueraded" in text
    unknown = explain("10.96.0.5", 80, src="10.244.1.2", node="h1")
    assert "no hairpin rule covers this address" in unknown and "source 10.244.1.2 kept" in unknown


def test_one_endpoint_is_dnated_by_the_dispatch_rule_and_off_cluster_sources_are_masqueraded() -> None:
    text = explain("10.96.0.7", 80)
    assert "-d 10.96.0.7/32 --dport 80 -> DNAT 10.244.3.2:8080" in text and "no chain" in text
    assert "(overall 1, 100.0%)" in text and "source 10.244.2.2 kept" in text
    host = explain("10.96.0.7", 80, src="192.168.77.2")
    assert "source outside 10.244.0.0/16, to a cluster IP -> FLOTILLA-MARK-MASQ" in host
    assert "marked packets are masqueraded" in host


def test_node_port_of_another_node_and_no_endpoints_and_dns_and_nothing() -> None:
    text = explain("192.168.77.1", 30080)
    assert "routed to node h1" in text and "FLOTILLA-NODEPORTS --dport 30080" in text and "masqueraded" in text
    # a nodePort's original destination is a node address: the off-cluster rule is not what marks it
    host = explain("192.168.77.1", 30080, src="192.168.77.2")
    assert "to a cluster IP" not in host and "FLOTILLA-MARK-MASQ" in host
    assert "REJECT" in explain("10.96.0.6", 80)
    assert "cluster DNS: DNAT 192.168.77.2:53" in explain("10.96.0.10", 53)
    assert "no Flotilla rule matches" in explain("8.8.8.8", 53)


def test_flotctl_explain_reports_an_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse
    import urllib.error

    from flotctl.net import cmd_explain

    def get(_path: str) -> object:
        raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))

    args = argparse.Namespace(destination="10.96.0.5:80", namespace="default", pod="client",
                              cluster_cidr="10.244.0.0/16", cluster_dns="10.96.0.10", protocol="TCP")
    assert cmd_explain(args, get) == 1
    assert "unreachable" in capsys.readouterr().err
