"""The flotilla-proxy component: informers -> syncer and DNS, plus /healthz and /metrics.

`run(config, *, ready)` checks the iptables backend (never mix: refuse when
the other one holds Flotilla chains), connects to the master over gRPC,
watches Services, Endpoints and Nodes through shared informers (handlers only
mark the Service key dirty), runs the Syncer, the cluster DNS server (when
configured) and the health server on 10256 in one TaskGroup. Ready once the
informers synced and the first sync applied (and the DNS server listens, when
its address is known). Without --dns-bind-address the DNS address is this
Node's InternalIP; when the Node is not registered yet, DNS starts (and a
full sync adds its DNAT) once the Node shows one. The Node's podCIDR sets
the hairpin rules, with a full sync, whenever it appears or changes.

/healthz answers 200 while the last good sync (before the first one: the
start) is younger than max(`healthz_stale_s`, 2 x the full resync period),
503 otherwise; /metrics is
Prometheus text of the syncer's registry.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import generate_latest

from master.client.client import Client
from master.client.informer import InformerFactory
from master.client.store import object_key
from netproxy.conntrack import ConntrackTool
from netproxy.dns import DnsServer, host_upstream
from netproxy.dnsrecords import DEFAULT_DOMAIN, Records, compute_records
from netproxy.iptables import Iptables, LegacyIptables, check_backend
from netproxy.render import MAX_HAIRPIN_PREFIX, ProxyOptions, hairpin_addresses
from netproxy.syncer import Syncer
from protos.core.v1 import core_pb2

log = logging.getLogger("flotilla.proxy")


@dataclass
class ProxyConfig:
    master: str = "127.0.0.1:6444"
    node_name: str = ""
    healthz_bind: str = "0.0.0.0:10256"
    backend: str = "legacy"
    min_sync_interval_s: float = 0.1
    full_resync_s: float = 300.0
    healthz_stale_s: float = 60.0
    cluster_cidr: str = ""
    service_cidr: str = "10.96.0.0/12"
    cluster_domain: str = DEFAULT_DOMAIN
    cluster_dns: str = ""  # the DNS service VIP (10.96.0.10); "" = no DNS
    dns_bind: str = ""  # "ip:port" this host's DNS server listens on ("": the Node's InternalIP:53)
    dns_upstream: str = "auto"  # "auto" = /etc/resolv.conf, "" = none (SERVFAIL)


class DnsState:
    """Records per Service, merged on demand (only after a change)."""

    def __init__(self, domain: str) -> None:
        self.domain = domain
        self.by_service: dict[str, Records] = {}
        self._merged: Records | None = None

    def update(self, key: str, svc: Any | None, ep: Any | None) -> None:
        if svc is None:
            self.by_service.pop(key, None)
        else:
            self.by_service[key] = compute_records(svc, ep, self.domain)
        self._merged = None

    def records(self) -> Records:
        if self._merged is None:
            merged = Records()
            for rec in self.by_service.values():
                merged.merge(rec)
            self._merged = merged
        return self._merged


async def run(config: ProxyConfig, *, ready: asyncio.Event, iptables: Iptables | None = None) -> None:
    await asyncio.to_thread(check_backend, config.backend)
    ipt = iptables or LegacyIptables(backend=config.backend)
    async with await Client.connect(config.master) as client:
        factory = InformerFactory(client.lister_watcher, resync_period_s=0)
        services = factory.informer(core_pb2.Service)
        endpoints = factory.informer(core_pb2.Endpoints)
        # this node's InternalIP is where DNS listens when --dns-bind-address is not given
        nodes = factory.informer(core_pb2.Node)
        options = ProxyOptions(cluster_cidr=config.cluster_cidr, service_cidr=config.service_cidr)
        dns_state = DnsState(config.cluster_domain)

        def lookup(key: str) -> tuple[Any | None, Any | None]:
            return services.get(key), endpoints.get(key)

        syncer = Syncer(ipt, ConntrackTool(), lookup=lookup, options=options,
                        min_sync_interval_s=config.min_sync_interval_s, full_resync_s=config.full_resync_s)

        def changed(obj: Any) -> None:
            key = object_key(obj)
            syncer.mark(key)
            dns_state.update(key, services.get(key), endpoints.get(key))

        for inf in (services, endpoints):
            inf.add_handler(on_add=changed, on_update=lambda _o, n: changed(n), on_delete=changed)
        node_seen = asyncio.Event()

        def node_changed(node: Any) -> None:
            if node.metadata.name != config.node_name:
                return
            if _node_dns_address(node):
                node_seen.set()
            # the hairpin rules cover this node's pod CIDR, known once the agent registered
            cidr = node.spec.pod_cidr or next(iter(node.spec.pod_cidrs), "")
            if cidr != syncer.options.node_cidr:
                if cidr and not hairpin_addresses(cidr):
                    log.warning("no hairpin rules: the node's pod CIDR is not an IPv4 /%d or narrower",
                                MAX_HAIRPIN_PREFIX, extra={"node": config.node_name, "pod_cidr": cidr})
                syncer.options = dataclasses.replace(syncer.options, node_cidr=cidr)
                syncer.request_full()

        nodes.add_handler(on_add=node_changed, on_update=lambda _o, n: node_changed(n))
        synced = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(factory.run(ready=synced), name="informers")
            tg.create_task(_health(config, syncer), name="healthz")
            await synced.wait()
            dns_bind = config.dns_bind or _node_dns_address(nodes.get(config.node_name))
            dns_ready = asyncio.Event()
            if config.cluster_dns and dns_bind:
                syncer.options = dataclasses.replace(syncer.options, dns_vip=config.cluster_dns, dns_target=dns_bind)
            tg.create_task(syncer.run(), name="syncer")
            if config.cluster_dns:
                # The proxy may start before its node's agent registered the Node
                # (flotctl lab up starts both at once): DNS then starts when the
                # Node shows an InternalIP, and a full sync adds the DNS DNAT.
                tg.create_task(_dns(config, syncer, dns_state, dns_bind, node_seen, nodes, dns_ready), name="dns")
                if dns_bind:
                    await dns_ready.wait()
            await syncer.synced.wait()
            log.info("proxy ready", extra={"node": config.node_name, "services": len(services.keys())})
            ready.set()


async def _dns(config: ProxyConfig, syncer: Syncer, dns_state: DnsState, dns_bind: str, node_seen: asyncio.Event,
               nodes: Any, ready: asyncio.Event) -> None:
    late = not dns_bind
    if late:
        log.warning("no DNS address yet: waiting for the Node's InternalIP (or pass --dns-bind-address)",
                    extra={"node": config.node_name})
        while not dns_bind:
            await node_seen.wait()
            node_seen.clear()
            dns_bind = _node_dns_address(nodes.get(config.node_name))
        log.info("cluster DNS address found", extra={"node": config.node_name, "address": dns_bind})
    dns_host, _, dns_port = dns_bind.rpartition(":")
    upstream = config.dns_upstream
    if upstream == "auto":
        upstream = host_upstream(exclude=(dns_host, config.cluster_dns, "127.0.0.53"))
    server = DnsServer(dns_state.records, domain=config.cluster_domain, upstream=upstream)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(server.serve(dns_host, int(dns_port or 53), ready=ready), name="dns-server")
        await ready.wait()
        if late:  # listening now: the DNAT to it goes in with a full sync
            syncer.options = dataclasses.replace(syncer.options, dns_vip=config.cluster_dns, dns_target=dns_bind)
            syncer.request_full()


def _node_dns_address(node: Any | None) -> str:
    if node is None:
        return ""
    for addr in node.status.addresses:
        if addr.type == "InternalIP" and addr.address:
            return f"{addr.address}:53"
    return ""


def healthy(now: float, last: float, *, stale_s: float) -> bool:
    """`last` = the last good sync, or the start while none succeeded yet: a proxy
    that never manages a first sync turns unhealthy too, after stale_s."""
    return now - last < stale_s


async def _health(config: ProxyConfig, syncer: Syncer) -> None:
    started = time.time()

    async def healthz(_req: web.Request) -> web.Response:
        last = syncer.last_good_sync or started
        ok = healthy(time.time(), last, stale_s=max(config.healthz_stale_s, 2 * config.full_resync_s))
        body = f'{{"lastUpdated": {last:.3f}, "currentTime": {time.time():.3f}, "nodeName": "{config.node_name}"}}'
        return web.Response(status=200 if ok else 503, text=body, content_type="application/json")

    async def metrics(_req: web.Request) -> web.Response:
        return web.Response(body=generate_latest(syncer.metrics.registry), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/livez", healthz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, _, port = config.healthz_bind.rpartition(":")
    site = web.TCPSite(runner, host or "0.0.0.0", int(port))
    await site.start()
    try:
        await asyncio.Future()
    finally:
        await runner.cleanup()
