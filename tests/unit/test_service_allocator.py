"""Allocator tests: ranges and plans (pure, tables) and ServiceAllocator over the memory store."""

from __future__ import annotations

import random
import types

import pytest

from master.apiserver import errors
from master.apiserver.allocators.plan import plan_allocation
from master.apiserver.allocators.ranges import IPRange, PortRange
from master.apiserver.allocators.service import ServiceAllocator
from master.storage.memory import MemoryStore
from protos.core.v1 import core_pb2


def spec(type_: str = "ClusterIP", ip: str = "", node_ports: tuple[int, ...] = (0,), **kw: bool) -> core_pb2.ServiceSpec:
    s = core_pb2.ServiceSpec(type=type_, cluster_ip=ip)
    for i, np in enumerate(node_ports):
        s.ports.add(port=80 + i, protocol="TCP", node_port=np or None)
    if "allocate_lb" in kw:
        s.allocate_load_balancer_node_ports = kw["allocate_lb"]
    return s


PLANS = [
    ("create clusterIP", spec(), None, ("", [], [], [])),
    ("create explicit", spec(ip="10.96.0.9"), None, ("10.96.0.9", [], [], [])),
    ("headless", spec(ip="None"), None, (None, [], [], [])),
    ("externalName", spec("ExternalName"), None, (None, [], [], [])),
    ("nodeport fill", spec("NodePort", node_ports=(0, 30001)), None, ("", [(0, 0), (1, 30001)], [], [])),
    ("lb without node ports", spec("LoadBalancer", allocate_lb=False), None, ("", [], [], [])),
    ("update keeps", spec("NodePort", "10.96.0.9", (30001,)), spec("NodePort", "10.96.0.9", (30001,)),
     (None, [], [], [])),
    ("nodeport -> clusterIP", spec(ip="10.96.0.9"), spec("NodePort", "10.96.0.9", (30001,)),
     (None, [], [], [30001])),
    ("port changed", spec("NodePort", "10.96.0.9", (30002,)), spec("NodePort", "10.96.0.9", (30001,)),
     (None, [(0, 30002)], [], [30001])),
    ("delete", None, spec("NodePort", "10.96.0.9", (30001,)), (None, [], ["10.96.0.9"], [30001])),
]


@pytest.mark.parametrize("name,new,old,want", PLANS, ids=[p[0] for p in PLANS])
def test_plan(name: str, new: object, old: object, want: tuple[object, ...]) -> None:
    p = plan_allocation(new, old)
    assert (p.cluster_ip, p.node_ports, p.release_ips, p.release_ports) == want


def test_ranges() -> None:
    r = IPRange.parse("10.96.0.0/12")
    assert r.nth(1) == "10.96.0.1" and r.nth(10) == "10.96.0.10"
    assert r.offset("10.96.0.1") == 0 and r.offset("10.95.255.255") is None and r.offset("10.111.255.255") is None
    assert r.static_band == 256
    cands = r.random_candidates(random.Random(1), 50)
    assert all(r.offset(c) is not None and r.offset(c) >= 256 for c in cands)  # type: ignore[operator]
    small = IPRange.parse("10.0.0.0/29")  # 6 usable
    assert small.free({small.address(i) for i in range(6)}, random.Random(0)) is None
    assert small.free({small.address(i) for i in range(5)}, random.Random(0)) == small.address(5)
    pr = PortRange.parse("30000-30002")
    assert pr.size == 3 and pr.free({30000, 30002}, random.Random(0)) == 30001 and pr.free({30000, 30001, 30002}, random.Random(0)) is None
    with pytest.raises(ValueError):
        PortRange.parse("5-1")
    with pytest.raises(ValueError):
        IPRange.parse("10.0.0.0/30")


def service(name: str, **kw: object) -> core_pb2.Service:
    s = core_pb2.Service()
    s.metadata.name, s.metadata.namespace = name, "default"
    s.spec.CopyFrom(spec(**kw))  # type: ignore[arg-type]
    return s


async def test_allocator_reserves_refuses_and_releases() -> None:
    store = MemoryStore()
    alloc = ServiceAllocator(store, service_cidr="10.0.0.0/28", node_port_range="30000-30001")
    a = service("a", type_="NodePort", node_ports=(0, 0))
    res = await alloc.before_write(a, None)
    await alloc.after_write(res, ok=True)
    assert sorted(p.node_port for p in a.spec.ports) == [30000, 30001] and a.spec.cluster_ips == [a.spec.cluster_ip]
    b = service("b", type_="NodePort")
    with pytest.raises(errors.APIError) as exc:
        await alloc.before_write(b, None)
    assert exc.value.code == 422 and "range is full" in str(exc.value)
    # the refused write kept nothing: b's clusterIP went back
    revs, _ = await store.list_revisions("/registry/ranges/serviceips/")
    assert list(revs) == [f"/registry/ranges/serviceips/{a.spec.cluster_ip}"]
    # a failed object write gives back what it took
    c = service("c")
    res = await alloc.before_write(c, None)
    await alloc.after_write(res, ok=False)
    assert len((await store.list_revisions("/registry/ranges/serviceips/"))[0]) == 1
    await alloc.after_delete(a)
    assert not (await store.list_revisions("/registry/ranges/"))[0]


async def test_repair_removes_orphans_seen_twice() -> None:
    store = MemoryStore()
    alloc = ServiceAllocator(store, service_cidr="10.0.0.0/28", node_port_range="30000-30001")
    held = service("held", ip="10.0.0.3")
    await alloc.after_write(await alloc.before_write(held, None), ok=True)
    await store.create("/registry/ranges/servicenodeports/30001", b"default/ghost")
    assert await alloc.repair([held]) == []
    assert await alloc.repair([held]) == ["/registry/ranges/servicenodeports/30001"]
    assert list((await store.list_revisions("/registry/ranges/"))[0]) == ["/registry/ranges/serviceips/10.0.0.3"]


class _Registry:
    """The calls ensure_master_service makes on a first run; kube-dns's address is taken."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], object] = {}

    async def create(self, info: object, namespace: str, msg: object) -> None:
        name = msg.metadata.name  # type: ignore[attr-defined]
        if name == "kube-dns":
            raise errors.Invalid("Service", name, [errors.invalid("spec.clusterIPs", "10.96.0.10",
                                                                  "provided IP is already allocated")])
        self.objects[(info.resource, namespace, name)] = msg  # type: ignore[attr-defined]

    async def get(self, info: object, namespace: str, name: str) -> object:
        raise errors.NotFound(info.resource, name)  # type: ignore[attr-defined]

    async def list(self, info: object, flt: object, *, resource_version: str = "") -> tuple[list[object], int]:
        found = [types.SimpleNamespace(msg=m) for (r, ns, _), m in self.objects.items()
                 if r == info.resource and ns == flt.namespace]  # type: ignore[attr-defined]
        return found, 1


async def test_kubernetes_endpoints_written_even_when_the_dns_address_is_taken() -> None:
    from master.apiserver.allocators.kubernetes import ensure_master_service

    reg = _Registry()
    await ensure_master_service(reg, cluster_ip="10.96.0.1", advertise_ip="192.0.2.1",  # type: ignore[arg-type]
                                port=6443, dns_ip="10.96.0.10")
    ep = reg.objects[("endpoints", "default", "kubernetes")]
    assert [a.ip for a in ep.subsets[0].addresses] == ["192.0.2.1"]  # type: ignore[attr-defined]
    assert ("services", "default", "kubernetes") in reg.objects
