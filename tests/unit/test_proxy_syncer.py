"""netproxy/syncer.py over the fakes: full then incremental syncs, chains that go,
conntrack flushes for UDP, the rule gauge and no-op syncs."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from netproxy.fake import FakeConntrack, FakeIptables
from netproxy.model import compute_service_ports
from netproxy.render import ProxyOptions, svc_chain
from netproxy.syncer import Syncer, parse_trigger_time
from protos.core.v1 import core_pb2


def service(name: str, ip: str, *, proto: str = "TCP", node_port: int = 0) -> core_pb2.Service:
    s = core_pb2.Service()
    s.metadata.name, s.metadata.namespace = name, "default"
    s.spec.type = "NodePort" if node_port else "ClusterIP"
    s.spec.cluster_ip = ip
    s.spec.ports.add(port=80, protocol=proto, node_port=node_port or None)
    return s


def endpoints(name: str, ips: list[str], *, proto: str = "TCP") -> core_pb2.Endpoints:
    e = core_pb2.Endpoints()
    e.metadata.name, e.metadata.namespace = name, "default"
    e.metadata.annotations["endpoints.kubernetes.io/last-change-trigger-time"] = "2026-01-01T00:00:00.000000000Z"
    if ips:
        sub = e.subsets.add()
        for ip in ips:
            sub.addresses.add(ip=ip)
        sub.ports.add(port=8080, protocol=proto)
    return e


class World:
    def __init__(self) -> None:
        self.objs: dict[str, tuple[Any, Any]] = {}
        self.ipt = FakeIptables()
        self.ct = FakeConntrack()
        self.syncer = Syncer(self.ipt, self.ct, lookup=lambda k: self.objs.get(k, (None, None)))

    def put(self, name: str, svc: Any, ep: Any) -> None:
        self.objs[f"default/{name}"] = (svc, ep)
        self.syncer.mark(f"default/{name}")

    def drop(self, name: str) -> None:
        self.objs.pop(f"default/{name}", None)
        self.syncer.mark(f"default/{name}")


async def test_full_then_incremental_matches_a_fresh_full_sync() -> None:
    w = World()
    for i in range(5):
        w.put(f"s{i}", service(f"s{i}", f"10.96.0.{i + 20}"), endpoints(f"s{i}", [f"10.244.0.{i + 2}", "10.244.1.9"]))
    assert await w.syncer.sync_once() == "full"
    assert len(w.ipt.restores) == 1
    w.put("s1", service("s1", "10.96.0.21"), endpoints("s1", ["10.244.0.3"]))
    w.drop("s3")
    assert await w.syncer.sync_once() == "partial"
    partial = w.ipt.restores[-1]
    assert svc_chain(w.syncer.ports["default/s1"][0]) in partial
    assert svc_chain(w.syncer.ports["default/s2"][0]) not in partial.split("*filter")[0].split("-A")[0]
    fresh = World()
    fresh.objs = dict(w.objs)
    for k in fresh.objs:
        fresh.syncer.mark(k)
    await fresh.syncer.sync_once()
    assert normalized(w.ipt) == normalized(fresh.ipt)


async def test_nothing_changed_writes_nothing() -> None:
    w = World()
    w.put("a", service("a", "10.96.0.5"), endpoints("a", ["10.244.0.2"]))
    await w.syncer.sync_once()
    w.put("a", service("a", "10.96.0.5"), endpoints("a", ["10.244.0.2"]))
    assert await w.syncer.sync_once() == "none"
    assert len(w.ipt.restores) == 1


async def test_udp_endpoint_leaving_flushes_conntrack() -> None:
    w = World()
    w.put("dns", service("dns", "10.96.0.10", proto="UDP", node_port=30053),
          endpoints("dns", ["10.244.0.2", "10.244.0.3"], proto="UDP"))
    await w.syncer.sync_once()
    w.put("dns", service("dns", "10.96.0.10", proto="UDP", node_port=30053),
          endpoints("dns", ["10.244.0.2"], proto="UDP"))
    await w.syncer.sync_once()
    assert w.ct.flushed == [("10.96.0.10", 0, "10.244.0.3"), ("", 30053, "10.244.0.3")]


async def test_full_resync_removes_leftover_chains_and_counts_rules() -> None:
    w = World()
    w.ipt.restore("*nat\n:FLOTILLA-SVC-LEFTOVER - [0:0]\n-A FLOTILLA-SVC-LEFTOVER -j RETURN\nCOMMIT\n")
    w.put("a", service("a", "10.96.0.5"), endpoints("a", ["10.244.0.2", "10.244.0.3"]))
    await w.syncer.sync_once()
    assert "FLOTILLA-SVC-LEFTOVER" not in w.ipt.user_chains("nat")
    assert w.syncer.metrics.rules._value.get() == 1 + 2  # dispatch, 2 steps (each a DNAT)
    assert any("PREROUTING" in r for r in w.ipt.tables["nat"]["PREROUTING"])


def test_full_syncs_insert_the_built_in_jumps_once() -> None:
    w = World()
    w.put("a", service("a", "10.96.0.5"), endpoints("a", ["10.244.0.2"]))
    for _ in range(2):
        w.syncer.request_full()
        assert asyncio.run(w.syncer.sync_once()) == "full"
    for table, chain, n in (("nat", "PREROUTING", 1), ("nat", "OUTPUT", 1), ("nat", "POSTROUTING", 1),
                            ("filter", "INPUT", 1), ("filter", "FORWARD", 1), ("filter", "OUTPUT", 1)):
        jumps = [r for r in w.ipt.tables[table][chain] if "-j FLOTILLA-" in r]
        assert len(jumps) == n and '--comment "flotilla service portals"' in jumps[0], (table, chain, jumps)
    assert "-I PREROUTING 1" in w.ipt.restores[0] and "-I PREROUTING" not in w.ipt.restores[1]


def test_a_full_sync_requested_during_a_sync_is_not_lost() -> None:
    w = World()
    w.put("a", service("a", "10.96.0.5"), endpoints("a", ["10.244.0.2"]))
    restore = w.ipt.restore

    def restore_and_learn_the_node_cidr(text: str) -> None:
        restore(text)
        if len(w.ipt.restores) == 1:  # the Node's podCIDR arrives while iptables works
            w.syncer.options = ProxyOptions(node_cidr="10.244.0.0/24")
            w.syncer.request_full()

    w.ipt.restore = restore_and_learn_the_node_cidr  # type: ignore[method-assign]
    assert asyncio.run(w.syncer.sync_once()) == "full"
    assert asyncio.run(w.syncer.sync_once()) == "full"
    assert len(w.ipt.user_chains("nat")["FLOTILLA-HAIRPIN"]) == 254
    assert asyncio.run(w.syncer.sync_once()) == "none"


def test_a_service_moving_onto_the_dns_vip_is_removed_incrementally() -> None:
    opts = ProxyOptions(dns_vip="10.96.0.10", dns_target="192.168.77.1:53")
    w, fresh = World(), World()
    w.syncer.options = fresh.syncer.options = opts
    w.put("a", service("a", "10.96.0.5", node_port=30001), endpoints("a", ["10.244.0.2", "10.244.0.3"]))
    w.put("b", service("b", "10.96.0.6"), endpoints("b", []))
    assert asyncio.run(w.syncer.sync_once()) == "full"
    for name in ("a", "b"):  # both clusterIPs changed to the DNS VIP
        svc, ep = w.objs[f"default/{name}"]
        svc.spec.cluster_ip = "10.96.0.10"
        w.syncer.mark(f"default/{name}")
    assert asyncio.run(w.syncer.sync_once()) == "partial"
    fresh.objs = dict(w.objs)
    for k in fresh.objs:
        fresh.syncer.mark(k)
    asyncio.run(fresh.syncer.sync_once())
    assert normalized(w.ipt) == normalized(fresh.ipt)
    text = w.ipt.save()
    assert "10.96.0.5" not in text and "10.96.0.6" not in text and "FLOTILLA-SVC-" not in text


def test_parse_trigger_time() -> None:
    assert parse_trigger_time("1970-01-01T00:00:01.500000000Z") == 1.5
    assert parse_trigger_time("garbage") is None


def normalized(ipt: FakeIptables) -> dict[str, dict[str, list[str]]]:
    """Chains with the shared ones' rules sorted (incremental syncs insert at the top)."""
    out = {}
    for table in ("nat", "filter"):
        chains = dict(ipt.user_chains(table))
        for shared in ("FLOTILLA-SERVICES", "FLOTILLA-NODEPORTS"):
            if shared in chains:
                chains[shared] = sorted(chains[shared])
        out[table] = chains
    return out


state = st.dictionaries(st.integers(0, 6), st.tuples(st.booleans(), st.sets(st.integers(2, 6), max_size=3)),
                        max_size=6)


@settings(max_examples=60, deadline=None)
@given(st.lists(state, min_size=2, max_size=5))
def test_incremental_syncs_converge_to_the_full_sync(states: list[dict[int, tuple[bool, set[int]]]]) -> None:
    async def run() -> None:
        w = World()
        for n, st_ in enumerate(states):
            keys = {f"default/s{i}" for i in range(7)}
            w.objs = {}
            for i, (np, ips) in st_.items():
                w.objs[f"default/s{i}"] = (service(f"s{i}", f"10.96.0.{i + 20}", node_port=30000 + i if np else 0),
                                           endpoints(f"s{i}", [f"10.244.0.{x}" for x in sorted(ips)]))
            for k in keys:
                w.syncer.mark(k)
            kind = await w.syncer.sync_once()
            assert n == 0 or kind in ("partial", "none")
        fresh = World()
        fresh.objs = dict(w.objs)
        for k in fresh.objs:
            fresh.syncer.mark(k)
        await fresh.syncer.sync_once()
        assert normalized(w.ipt) == normalized(fresh.ipt)
        nodeports = w.ipt.user_chains("nat").get("FLOTILLA-NODEPORTS", [])
        for i, rule in enumerate(nodeports):  # each MARK rule is followed by its jump
            if rule.endswith("-j FLOTILLA-MARK-MASQ"):
                assert nodeports[i + 1].split("-j")[0] == rule.split("-j")[0]

    asyncio.run(run())


async def _until(what: str, check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_run_coalesces_waits_the_minimum_interval_resyncs_and_recovers() -> None:
    w = World()
    w.syncer.min_sync_interval_s, w.syncer.full_resync_s = 0.5, 1.5
    times: list[float] = []
    restore = w.ipt.restore

    def timed(text: str) -> None:
        restore(text)
        times.append(time.monotonic())

    w.ipt.restore = timed  # type: ignore[method-assign]

    def syncs(kind: str) -> float:
        value = w.syncer.metrics.registry.get_sample_value("flotilla_proxy_sync_duration_seconds_count",
                                                           {"kind": kind})
        return value or 0.0

    w.put("a", service("a", "10.96.0.5"), endpoints("a", ["10.244.0.2"]))
    task = asyncio.create_task(w.syncer.run())
    try:
        await asyncio.wait_for(w.syncer.synced.wait(), 20)
        assert syncs("full") == 1 and len(w.ipt.restores) == 1
        # two changes at once: one partial sync, no sooner than the minimum interval after the last
        w.put("b", service("b", "10.96.0.6"), endpoints("b", ["10.244.0.3"]))
        w.put("c", service("c", "10.96.0.7"), endpoints("c", ["10.244.0.4"]))
        await _until("the partial sync", lambda: len(w.ipt.restores) == 2)
        assert syncs("partial") == 1 and times[1] - times[0] >= 0.5 - 0.02
        assert all(f"-d {vip}/32" in w.ipt.restores[1] for vip in ("10.96.0.6", "10.96.0.7"))
        # nothing marked: the periodic full resync still comes
        await _until("the periodic full resync", lambda: syncs("full") == 2)
        # a failed apply leaves the rules and is followed by a full sync that brings the change
        w.ipt.fail_next = "iptables-restore: line 3 failed"
        w.put("d", service("d", "10.96.0.8"), endpoints("d", ["10.244.0.5"]))
        await _until("the retry", lambda: "default/d" in w.syncer.ports)
        assert w.syncer.metrics.failures._value.get() == 1 and syncs("full") >= 3
        assert any("-d 10.96.0.8/32" in r for r in w.ipt.user_chains("nat")["FLOTILLA-SERVICES"])
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_load_balancer_is_programmed_as_node_port() -> None:
    lb = service("lb", "10.96.0.9", node_port=30090)
    lb.spec.type = "LoadBalancer"
    ports = compute_service_ports(lb, endpoints("lb", ["10.244.0.2"]))
    assert [(p.node_port, len(p.endpoints)) for p in ports] == [(30090, 1)]
    cluster_ip = service("c", "10.96.0.9", node_port=30090)
    cluster_ip.spec.type = "ClusterIP"  # a stale nodePort on a ClusterIP Service is not programmed
    assert compute_service_ports(cluster_ip, None)[0].node_port == 0


def test_healthz_turns_503_when_no_sync_ever_succeeds() -> None:
    from netproxy.proxy import healthy

    assert healthy(100.0, 50.0, stale_s=60)
    assert not healthy(200.0, 50.0, stale_s=60)  # "last" is the start while nothing synced
