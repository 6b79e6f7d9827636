"""The `kubernetes` Service in `default` and its Endpoints, kept by the apiserver
(and `kube-system/kube-dns` at the tenth address of the service CIDR).

`run_master_service` makes sure Service default/kubernetes exists (clusterIP
= the first address of the service CIDR, port 443 "https" -> the masters'
REST port) and that its Endpoints list exactly the live masters, re-checking
every `interval_s`; it also runs the allocator's `repair`.

Which masters are live is Kubernetes' "lease" endpoint reconciler, with API
Leases instead of raw etcd keys with a TTL: every master renews
`kube-system/flotilla-apiserver-<its address>` (label
flotilla.io/apiserver-endpoint, holderIdentity = the address,
leaseDurationSeconds = 3 x interval) each cycle, and writes into the
Endpoints the holders of the leases that have not expired (always itself),
listing the leases inside the Endpoints' compare-and-swap so that a master
withdrawing meanwhile is never written back. A lease expired for
FORGET_AFTER_S is deleted.
So a master that dies leaves the `kubernetes` Service within a lease
duration, and one that stops cleanly removes its lease and its address at
once. Lease expiry is judged on each master's own clock (as Kubernetes'
node leases are). It owns nothing else; the Endpoints controller skips this
Service (it has no selector).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

from master.apiserver import errors
from master.apiserver.allocators.service import ServiceAllocator
from master.apiserver.registry import DeleteOptions, Registry, resource_info
from master.apiserver.selectors import parse_label_selector
from master.apiserver.watchcache import Filter

log = logging.getLogger(__name__)

SERVICES = resource_info("", "services")
ENDPOINTS = resource_info("", "endpoints")
LEASES = resource_info("coordination.k8s.io", "leases")
LEASE_NAMESPACE = "kube-system"
LEASE_LABEL = "flotilla.io/apiserver-endpoint"
# A lease expired this long ago is deleted by whichever master sees it.
FORGET_AFTER_S = 600.0


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


def with_addresses(current: Any | None, ips: Iterable[str], port: int) -> Any:
    """The Endpoints listing exactly `ips` (sorted) on the https port (a new object when current is None)."""
    ep = ENDPOINTS.message_class()()
    if current is not None:
        ep.CopyFrom(current)
    else:
        ep.metadata.name, ep.metadata.namespace = "kubernetes", "default"
    del ep.subsets[:]
    subset = ep.subsets.add()
    sp = subset.ports.add()
    sp.name, sp.port, sp.protocol = "https", port, "TCP"
    for ip in sorted(set(ips)):
        subset.addresses.add().ip = ip
    return ep


def lease_name(ip: str) -> str:
    return "flotilla-apiserver-" + ip.replace(".", "-").replace(":", "-").lower()


def master_lease(ip: str, *, duration_s: int, now: float, current: Any | None = None) -> Any:
    """This master's Lease, renewed at `now` (unix seconds)."""
    lease = LEASES.message_class()()
    if current is not None:
        lease.CopyFrom(current)
    lease.metadata.name, lease.metadata.namespace = lease_name(ip), LEASE_NAMESPACE
    lease.metadata.labels[LEASE_LABEL] = "true"
    lease.spec.holder_identity = ip
    lease.spec.lease_duration_seconds = duration_s
    lease.spec.renew_time.FromNanoseconds(int(now * 1e9))
    if not lease.spec.HasField("acquire_time"):
        lease.spec.acquire_time.CopyFrom(lease.spec.renew_time)
    return lease


def live_masters(leases: Iterable[Any], *, now: float, own_ip: str) -> list[str]:
    """The holders of unexpired master leases, and always this master."""
    live = {own_ip}
    for lease in leases:
        spec = lease.spec
        if not spec.holder_identity or not spec.HasField("renew_time"):
            continue
        renewed = spec.renew_time.seconds + spec.renew_time.nanos / 1e9
        if renewed + spec.lease_duration_seconds > now:
            live.add(spec.holder_identity)
    return sorted(live)


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


async def _renew_lease(registry: Registry, ip: str, *, duration_s: int) -> None:
    name = lease_name(ip)
    try:
        current = (await registry.get(LEASES, LEASE_NAMESPACE, name)).msg
    except errors.APIError as exc:
        if exc.code != 404:
            raise
        try:
            await registry.create(LEASES, LEASE_NAMESPACE, master_lease(ip, duration_s=duration_s, now=time.time()))
            return
        except errors.APIError as again:
            if again.reason != "AlreadyExists":
                raise

    async def renew(cur: Any) -> Any:
        return master_lease(ip, duration_s=duration_s, now=time.time(), current=cur.msg)

    del current
    await registry.guaranteed_update(LEASES, LEASE_NAMESPACE, name, renew)


async def _live_masters(registry: Registry, own_ip: str) -> list[str]:
    selector = parse_label_selector(f"{LEASE_LABEL}=true")
    leases, _ = await registry.list(LEASES, Filter(namespace=LEASE_NAMESPACE, labels=selector), resource_version="")
    now = time.time()
    for lease in leases:  # a master gone for good: its lease goes too, long after it expired
        spec = lease.msg.spec
        renewed = spec.renew_time.seconds + spec.renew_time.nanos / 1e9
        if spec.holder_identity != own_ip and renewed + spec.lease_duration_seconds + FORGET_AFTER_S < now:
            with contextlib.suppress(errors.APIError):
                await registry.delete(LEASES, LEASE_NAMESPACE, lease.msg.metadata.name,
                                      DeleteOptions(precondition_rv=str(lease.rv)))
    return live_masters([x.msg for x in leases], now=now, own_ip=own_ip)


async def _set_addresses(registry: Registry, own_ip: str, port: int) -> None:
    """The Endpoints := the live masters. The leases are listed after the Endpoints
    are read, inside the compare-and-swap: a master that withdraws (lease deleted,
    then its address dropped) in between makes the write conflict and re-list,
    so it is never written back."""
    try:
        current = (await registry.get(ENDPOINTS, "default", "kubernetes")).msg
    except errors.APIError as exc:
        if exc.code != 404:
            raise
        current = None
    wanted = with_addresses(current, await _live_masters(registry, own_ip), port)
    if current is None:
        try:
            await registry.create(ENDPOINTS, "default", wanted)
        except errors.APIError as exc:
            if exc.reason != "AlreadyExists":  # another master's, a moment ago: next cycle
                raise
        return
    if wanted == current:
        return

    async def put(cur: Any) -> Any:
        return with_addresses(cur.msg, await _live_masters(registry, own_ip), port)

    await registry.guaranteed_update(ENDPOINTS, "default", "kubernetes", put)


async def ensure_master_service(registry: Registry, *, cluster_ip: str, advertise_ip: str, port: int,
                                dns_ip: str = "", lease_duration_s: int = 30) -> None:
    await _create_once(registry, "default", desired_service(cluster_ip, port))
    await _renew_lease(registry, advertise_ip, duration_s=lease_duration_s)
    await _set_addresses(registry, advertise_ip, port)
    if dns_ip:
        # Last, and on its own: a Service holding the DNS address (a user's own
        # DNS Service, say) must not keep this master out of the Endpoints above.
        try:
            await _create_once(registry, "kube-system", dns_service(dns_ip))
        except errors.APIError as exc:
            log.warning("kube-system/kube-dns not created: %s", exc)


async def withdraw_master(registry: Registry, *, advertise_ip: str, port: int) -> None:
    """A clean stop: this master's lease and address go at once (the others stay)."""
    with contextlib.suppress(errors.APIError):
        await registry.delete(LEASES, LEASE_NAMESPACE, lease_name(advertise_ip), DeleteOptions())

    async def drop(cur: Any) -> Any:
        ips = [a.ip for s in cur.msg.subsets for a in s.addresses if a.ip != advertise_ip]
        return with_addresses(cur.msg, ips, port)

    with contextlib.suppress(errors.APIError):
        await registry.guaranteed_update(ENDPOINTS, "default", "kubernetes", drop)


async def run_master_service(
    registry: Registry,
    allocator: ServiceAllocator,
    *,
    advertise_ip: str,
    port: int,
    interval_s: float = 5.0,
    repair_every: int = 12,
) -> None:
    cluster_ip = allocator.ips.nth(1)
    duration_s = max(1, round(3 * interval_s))
    n = 0
    try:
        while True:
            if advertise_ip:
                try:
                    await ensure_master_service(registry, cluster_ip=cluster_ip, advertise_ip=advertise_ip,
                                                port=port, dns_ip=allocator.ips.nth(10), lease_duration_s=duration_s)
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
    finally:
        if advertise_ip:  # best effort, bounded: the process is stopping
            with contextlib.suppress(Exception):
                await asyncio.wait_for(withdraw_master(registry, advertise_ip=advertise_ip, port=port), 2.0)
