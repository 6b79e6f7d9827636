"""Pure parts of the pod network: next-IP choice, host-local IPAM on a temp
dir, the route plan as a function of Nodes, the masquerade rule text."""

from __future__ import annotations

from pathlib import Path

import pytest

from node_agent.network.errors import IPAMError
from node_agent.network.ipam import HostLocalIPAM, compute_next_ip, gateway_ip
from node_agent.network.masquerade import render_masquerade
from node_agent.network.routes import RoutePlan, compute_desired_routes, plan_routes
from protos.core.v1 import core_pb2


@pytest.mark.parametrize(
    ("cidr", "allocated", "last", "want"),
    [
        ("10.244.3.0/24", [], None, "10.244.3.2"),
        ("10.244.3.0/24", ["10.244.3.2"], None, "10.244.3.3"),
        ("10.244.3.0/24", [], "10.244.3.7", "10.244.3.8"),
        ("10.244.3.0/24", [], "10.244.3.254", "10.244.3.2"),  # wraps, skips .0 .1 .255
        ("10.244.3.0/24", ["10.244.3.9"], "10.244.3.8", "10.244.3.10"),
        ("10.244.3.0/30", ["10.244.3.2"], None, None),  # .0 net, .1 gw, .2 taken, .3 broadcast
        ("10.244.3.0/24", [f"10.244.3.{i}" for i in range(2, 255)], None, None),
        ("10.244.3.0/24", [], "192.168.0.1", "10.244.3.2"),  # last outside the range
    ],
)
def test_compute_next_ip(cidr: str, allocated: list[str], last: str | None, want: str | None) -> None:
    assert compute_next_ip(cidr, allocated, last=last) == want


def test_gateway_is_dot_one() -> None:
    assert gateway_ip("10.244.7.0/24") == "10.244.7.1"


def test_ipam_persists_and_never_reuses_a_held_address(tmp_path: Path) -> None:
    ipam = HostLocalIPAM(tmp_path, "10.244.1.0/24")
    a = ipam.allocate("uid-a")
    b = ipam.allocate("uid-b")
    assert a != b and ipam.allocate("uid-a") == a
    # A restarted agent reads the same state: same answers, no duplicate.
    again = HostLocalIPAM(tmp_path, "10.244.1.0/24")
    assert again.get("uid-a") == a and again.get("uid-b") == b
    c = again.allocate("uid-c")
    assert c not in {a, b}
    assert again.release("uid-a") == a and again.release("uid-a") is None
    assert again.get("uid-a") is None
    # Round robin: the released address is not the next one handed out.
    assert again.allocate("uid-d") not in {a, b, c}


def test_ipam_exhaustion_is_an_error(tmp_path: Path) -> None:
    ipam = HostLocalIPAM(tmp_path, "10.244.1.0/29")  # .2 - .6
    for i in range(5):
        ipam.allocate(f"u{i}")
    with pytest.raises(IPAMError):
        ipam.allocate("one-too-many")


def test_ipam_drops_addresses_of_another_cidr(tmp_path: Path) -> None:
    HostLocalIPAM(tmp_path, "10.244.1.0/24").allocate("old")
    fresh = HostLocalIPAM(tmp_path, "10.244.2.0/24")
    assert fresh.get("old") is None and fresh.allocate("new") == "10.244.2.2"


def test_ipam_skips_an_address_taken_behind_its_back(tmp_path: Path) -> None:
    ipam = HostLocalIPAM(tmp_path, "10.244.1.0/24")
    (tmp_path / "ipam" / "10.244.1.2").write_text("someone-else\n")
    assert ipam.allocate("mine") == "10.244.1.3"


def _node(name: str, cidr: str = "", ip: str = "") -> core_pb2.Node:
    node = core_pb2.Node()
    node.metadata.name = name
    if cidr:
        node.spec.pod_cidr = cidr
        node.spec.pod_cidrs.append(cidr)
    if ip:
        node.status.addresses.add(type="InternalIP", address=ip)
        node.status.addresses.add(type="Hostname", address=name)
    return node


@pytest.mark.parametrize(
    ("nodes", "want"),
    [
        ([], {}),
        ([_node("me", "10.244.0.0/24", "172.28.0.10")], {}),
        ([_node("me", "10.244.0.0/24", "172.28.0.10"), _node("b", "10.244.1.0/24", "172.28.0.11")],
         {"10.244.1.0/24": "172.28.0.11"}),
        ([_node("b", "10.244.1.0/24")], {}),  # no address yet
        ([_node("b", "", "172.28.0.11")], {}),  # no CIDR yet
        ([_node("b", "garbage", "172.28.0.11"), _node("c", "10.244.2.0/24", "not-an-ip")], {}),
        ([_node("b", "10.244.1.0/24", "172.28.0.11"), _node("c", "10.244.2.0/24", "172.28.0.12")],
         {"10.244.1.0/24": "172.28.0.11", "10.244.2.0/24": "172.28.0.12"}),
    ],
)
def test_compute_desired_routes(nodes: list[core_pb2.Node], want: dict[str, str]) -> None:
    assert compute_desired_routes(nodes, own_node="me") == want


@pytest.mark.parametrize(
    ("desired", "current", "want"),
    [
        ({}, {}, RoutePlan()),
        ({"10.244.1.0/24": "a"}, {}, RoutePlan(add={"10.244.1.0/24": "a"})),
        ({"10.244.1.0/24": "a"}, {"10.244.1.0/24": "a"}, RoutePlan()),
        ({"10.244.1.0/24": "b"}, {"10.244.1.0/24": "a"}, RoutePlan(add={"10.244.1.0/24": "b"})),  # node moved
        ({}, {"10.244.1.0/24": "a"}, RoutePlan(delete=["10.244.1.0/24"])),  # node left
    ],
)
def test_plan_routes(desired: dict[str, str], current: dict[str, str], want: RoutePlan) -> None:
    assert plan_routes(desired, current) == want


def test_render_masquerade() -> None:
    text = render_masquerade(pod_cidr="10.244.3.0/24", cluster_cidr="10.244.0.0/16", chain="X")
    assert text.startswith("*nat\n:X - [0:0]\n") and text.endswith("COMMIT\n")
    assert "-A X -s 10.244.3.0/24 ! -d 10.244.0.0/16 " in text and text.count("-j MASQUERADE") == 1


def test_ipam_frees_an_address_left_unwritten_by_a_crash(tmp_path: Path) -> None:
    HostLocalIPAM(tmp_path, "10.244.1.0/29")
    (tmp_path / "ipam" / "10.244.1.2").write_text("")  # O_CREAT done, the uid never written
    ipam = HostLocalIPAM(tmp_path, "10.244.1.0/29")
    assert not (tmp_path / "ipam" / "10.244.1.2").exists()
    assert len({ipam.allocate(f"u{i}") for i in range(5)}) == 5  # .2 - .6: all five usable again
