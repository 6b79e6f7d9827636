"""The `kubernetes` Service in `default` and its Endpoints, kept by the apiserver
(and `kube-system/kube-dns` at the tenth address of the service CIDR).

`run_master_service` makes sure Service default/kubernetes exists (clusterIP
= the first address of the service CIDR, port 443 "https" -> the masters'
REST port) and that its Endpoints list this master's advertised address,
re-checking every `interval_s`; it also runs the allocator's `repair`. Every
master adds its own address and never removes another's (Kubernetes' "lease"
reconciler that drops dead masters is not built). It owns nothing else; the
Endpoints controller skips this Service (it has no selector).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from master.apiserver import errors
from master.apiserver.allocators.service import ServiceAllocator
from master.apiserver.registry import Registry, resource_info
from master.apiserver.watchcache import Filter

log = logging.getLogger(__name__)

SERVICES = resource_info("", "services")
ENDPOINTS = resource_info("", "endpoints")


def desired_service(cluster_ip: str, port: int) -> Any:
    svc = SERVICES.message_class()()
    svc.metadata.name = "kubernetes"
    svc.metadata.namespace = "default"
    svc.metadata.labels["component"] = "apiserver"
    svc.metadata.labels["provider"] = "kubernetes"
    svc.spec.cluster_ip = cluster_ip
    p = svc.spec.ports.add()
    p.name, p.port, p.protocol = "https", 443, "TCP"
    p.target_port.number_value = port
    return svc


def with_address(current: Any | None, ip: str, port: int) -> Any:
    """The Endpoints with ip:port added (a new object when current is None)."""
    ep = ENDPOINTS.message_class()()
    if current is not None:
        ep.CopyFrom(current)
    else:
        ep.metadata.name, ep.metadata.namespace = "kubernetes", "default"
    if not ep.subsets:
        ep.subsets.add()
    subset = ep.subsets[0]
    if not subset.ports:
        sp = subset.ports.add()
        sp.name, sp.port, sp.protocol = "https", port, "TCP"
    if ip not in [a.ip for a in subset.addresses]:
        subset.addresses.add().ip = ip
        subset.addresses.sort(key=lambda a: a.ip)
    return ep


def dns_service(cluster_ip: str) -> Any:
    """kube-system/kube-dns: the cluster DNS address. No selector and no Endpoints:
    every flotilla-proxy answers it on its own host (netproxy/dns.py)."""
    svc = SERVICES.message_class()()
    svc.metadata.name, svc.metadata.namespace = "kube-dns", "kube-system"
    svc.metadata.labels["k8s-app"] = "kube-dns"
    svc.spec.cluster_ip = cluster_ip
    for name, proto in (("dns", "UDP"), ("dns-tcp", "TCP")):
        svc.spec.ports.add(name=name, port=53, protocol=proto).target_port.number_value = 53
    return svc


async def _create_once(registry: Registry, namespace: str, svc: Any) -> None:
    try:
        await registry.create(SERVICES, namespace, svc)
    except errors.APIError as exc:
        if exc.reason != "AlreadyExists":
            raise


async def ensure_master_service(registry: Registry, *, cluster_ip: str, advertise_ip: str, port: int,
                                dns_ip: str = "") -> None:
    await _create_once(registry, "default", desired_service(cluster_ip, port))
    try:
        current = (await registry.get(ENDPOINTS, "default", "kubernetes")).msg
    except errors.APIError as exc:
        if exc.code != 404:
            raise
        current = None
    wanted = with_address(current, advertise_ip, port)
    if current is None:
        await registry.create(ENDPOINTS, "default", wanted)
    elif wanted != current:

        async def add(cur: Any) -> Any:
            return with_address(cur.msg, advertise_ip, port)

        await registry.guaranteed_update(ENDPOINTS, "default", "kubernetes", add)
    if dns_ip:
        # Last, and on its own: a Service holding the DNS address (a user's own
        # DNS Service, say) must not keep this master out of the Endpoints above.
        try:
            await _create_once(registry, "kube-system", dns_service(dns_ip))
        except errors.APIError as exc:
            log.warning("kube-system/kube-dns not created: %s", exc)


async def run_master_service(
    registry: Registry,
    allocator: ServiceAllocator,
    *,
    advertise_ip: str,
    port: int,
    interval_s: float = 10.0,
    repair_every: int = 6,
) -> None:
    cluster_ip = allocator.ips.nth(1)
    n = 0
    while True:
        if advertise_ip:
            try:
                await ensure_master_service(registry, cluster_ip=cluster_ip, advertise_ip=advertise_ip, port=port,
                                            dns_ip=allocator.ips.nth(10))
            except errors.APIError as exc:
                log.warning("kubernetes service: %s", exc)
        n += 1
        if n % repair_every == 0:  # also when the step above keeps failing
            try:
                services, _ = await registry.list(SERVICES, Filter(), resource_version="")
                removed = await allocator.repair([s.msg for s in services])
                if removed:
                    log.warning("released orphaned service allocations: %s", ", ".join(removed))
            except errors.APIError as exc:
                log.warning("service allocation repair: %s", exc)
        await asyncio.sleep(interval_s)
