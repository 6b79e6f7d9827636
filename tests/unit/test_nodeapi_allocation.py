"""Pure decisions of node registration: address checks, the pod CIDR
reservation plan, node names, the Node a registration renders."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from master.nodeapi.allocation import (
    Reservation,
    check_advertise_address,
    check_node_name,
    parse_reservations,
    plan_reservation,
)
from master.nodeapi.errors import NodeRefusal
from master.nodeapi.nodeobject import render_node, set_ready
from protos.core.v1 import core_pb2
from protos.node.v1 import node_pb2

NOW = dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)
OLD = NOW - dt.timedelta(minutes=5)


@pytest.mark.parametrize(
    ("address", "force", "code"),
    [
        ("172.28.0.11", False, None),
        ("192.168.56.11", False, None),
        ("127.0.0.1", False, "INVALID_ARGUMENT"),
        ("127.1.2.3", True, "INVALID_ARGUMENT"),
        ("::1", False, "INVALID_ARGUMENT"),
        ("0.0.0.0", False, "INVALID_ARGUMENT"),
        ("224.0.0.1", False, "INVALID_ARGUMENT"),
        ("", False, "INVALID_ARGUMENT"),
        ("node1.example", False, "INVALID_ARGUMENT"),
        ("10.0.2.15", False, "FAILED_PRECONDITION"),
        ("10.0.2.15", True, None),
    ],
)
def test_check_advertise_address(address: str, force: bool, code: str | None) -> None:
    if code is None:
        assert check_advertise_address(address, force=force) == address
        return
    with pytest.raises(NodeRefusal) as info:
        check_advertise_address(address, force=force)
    assert info.value.grpc_code_name() == code
    assert "--advertise-address" in info.value.message  # says what to do


def _plan(res: dict[str, Reservation], node: str, address: str, *, live: set[str] | None = None,
          existing: str = "", cluster: str = "10.244.0.0/16") -> dict[str, Reservation]:
    return plan_reservation(res, node, address=address, cluster_cidr=cluster, node_mask=24,
                            live_nodes=live if live is not None else set(res), now=NOW, existing_cidr=existing)


def test_first_node_gets_the_first_slash_24() -> None:
    assert _plan({}, "a", "172.28.0.11")["a"].pod_cidr == "10.244.0.0/24"


def test_next_nodes_get_distinct_cidrs_and_reregistration_keeps_its_own() -> None:
    res: dict[str, Reservation] = {}
    for i, n in enumerate("abc"):
        res = _plan(res, n, f"172.28.0.{11 + i}")
    assert [res[n].pod_cidr for n in "abc"] == ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]
    again = _plan(res, "b", "172.28.0.99")
    assert again["b"].pod_cidr == "10.244.1.0/24" and again["b"].address == "172.28.0.99"


def test_the_nodes_own_spec_pod_cidr_wins() -> None:
    assert _plan({}, "a", "172.28.0.11", existing="10.244.7.0/24")["a"].pod_cidr == "10.244.7.0/24"
    # ... unless another node holds it, or it is not a /24 of the cluster.
    res = {"b": Reservation("10.244.7.0/24", "172.28.0.12", NOW)}
    assert _plan(res, "a", "172.28.0.11", existing="10.244.7.0/24")["a"].pod_cidr == "10.244.0.0/24"
    assert _plan({}, "a", "172.28.0.11", existing="192.168.0.0/24")["a"].pod_cidr == "10.244.0.0/24"


def test_address_used_by_another_node_is_refused() -> None:
    res = {"b": Reservation("10.244.0.0/24", "172.28.0.12", NOW)}
    with pytest.raises(NodeRefusal) as info:
        _plan(res, "a", "172.28.0.12")
    assert info.value.grpc_code_name() == "ALREADY_EXISTS" and "'b'" in info.value.message


def test_a_deleted_nodes_reservation_is_held_for_a_while_after_it_is_first_seen_missing() -> None:
    res = {"gone": Reservation("10.244.0.0/24", "172.28.0.12", OLD, missing_since=OLD),
           "deleted-just-now": Reservation("10.244.1.0/24", "172.28.0.13", OLD),
           "in-flight": Reservation("10.244.2.0/24", "172.28.0.14", NOW)}
    out = _plan(res, "a", "172.28.0.12", live=set())
    # seen missing 5 minutes ago: freed (its address and CIDR go to "a")
    assert "gone" not in out and out["a"].pod_cidr == "10.244.0.0/24"
    # first seen missing now: kept and stamped, however old the reservation is
    assert out["deleted-just-now"].missing_since == NOW and out["in-flight"].missing_since == NOW
    # its agent registers again within a heartbeat: same CIDR, the stamp cleared
    back = _plan(out, "deleted-just-now", "172.28.0.13", live={"a"})
    assert back["deleted-just-now"].pod_cidr == "10.244.1.0/24" and back["deleted-just-now"].missing_since is None
    # a Node that is back clears the stamp of its record when anyone registers
    again = _plan(out, "b", "172.28.0.20", live={"a", "in-flight"})
    assert again["in-flight"].missing_since is None and again["deleted-just-now"].missing_since == NOW


def test_the_registering_nodes_own_stamp_is_kept_when_it_is_refused() -> None:
    from master.nodeapi.allocation import still_held

    res = {"x": Reservation("10.244.1.0/24", "172.28.0.5", OLD, missing_since=OLD),
           "y": Reservation("10.244.2.0/24", "172.28.0.6", OLD)}
    with pytest.raises(NodeRefusal):
        _plan(res, "x", "172.28.0.6", live={"y"})  # x asks for y's address
    # what the service writes on that refusal: x's clock keeps running
    assert still_held(res, "x", {"y"}, NOW, 60.0) == res


def test_exhausted_cluster_cidr() -> None:
    res = {"b": Reservation("10.244.0.0/24", "172.28.0.12", NOW)}
    with pytest.raises(NodeRefusal) as info:
        _plan(res, "a", "172.28.0.11", cluster="10.244.0.0/24")
    assert info.value.grpc_code_name() == "RESOURCE_EXHAUSTED"


@given(st.lists(st.sampled_from([f"n{i}" for i in range(12)]), max_size=40))
def test_any_registration_order_keeps_cidrs_unique_and_stable(order: list[str]) -> None:
    res: dict[str, Reservation] = {}
    seen: dict[str, str] = {}
    for n in order:
        res = _plan(res, n, f"172.28.0.{10 + int(n[1:])}")
        seen.setdefault(n, res[n].pod_cidr)
        assert res[n].pod_cidr == seen[n]
        cidrs = [r.pod_cidr for r in res.values()]
        assert len(cidrs) == len(set(cidrs))


def test_reservations_round_trip_and_garbage_is_dropped() -> None:
    r = Reservation("10.244.3.0/24", "172.28.0.11", NOW)
    m = Reservation("10.244.4.0/24", "172.28.0.12", OLD, missing_since=NOW)
    assert parse_reservations({"a": r.to_json(), "m": m.to_json(), "b": "not json", "c": "{}"}) == {"a": r, "m": m}


@pytest.mark.parametrize(("name", "code"), [("node1", None), ("n.example.com", None), ("", "UNAUTHENTICATED"),
                                            ("Node1", "INVALID_ARGUMENT"), ("-x", "INVALID_ARGUMENT"),
                                            ("a" * 64, "INVALID_ARGUMENT")])
def test_check_node_name(name: str, code: str | None) -> None:
    got = check_node_name(name)
    assert (got.grpc_code_name() if got else None) == code


def test_render_node_new_and_existing() -> None:
    req = node_pb2.RegisterRequest(node_name="a", hostname="a", advertise_address="172.28.0.11",
                                   capacity={"cpu": "2"}, labels={"zone": "z"}, kubelet_port=10250,
                                   taints=[core_pb2.Taint(key="k", effect="NoSchedule")])
    node = render_node(req, name="a", pod_cidr="10.244.0.0/24", address="172.28.0.11", now=NOW, existing=None)
    assert node.spec.pod_cidr == "10.244.0.0/24" and list(node.spec.pod_cidrs) == ["10.244.0.0/24"]
    assert dict(node.status.capacity) == {"cpu": "2", "pods": "110"} == dict(node.status.allocatable)
    assert [t.key for t in node.spec.taints] == ["k"]
    assert node.metadata.labels["zone"] == "z" and node.metadata.labels["kubernetes.io/hostname"] == "a"
    assert [(c.type, c.status, c.reason) for c in node.status.conditions] == [("Ready", "True", "KubeletReady")]
    # An existing Node keeps others' labels and taints; taints are not re-added.
    node.metadata.labels["team"] = "x"
    del node.spec.taints[:]
    again = render_node(req, name="a", pod_cidr="10.244.0.0/24", address="172.28.0.12", now=NOW, existing=node)
    assert again.metadata.labels["team"] == "x" and not again.spec.taints
    assert [a.address for a in again.status.addresses if a.type == "InternalIP"] == ["172.28.0.12"]
    assert not set_ready(again, NOW)  # already Ready: nothing to write
