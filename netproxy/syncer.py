"""The proxy's sync loop: coalesced, rate-limited, incremental, with a periodic full resync.

Event handlers call `mark(service_key)`; the loop wakes, waits until
`min_sync_interval_s` has passed since the last sync (changes arriving
meanwhile coalesce into one sync), recomputes the ServicePorts of only the
marked Services, and applies one `iptables-restore --noflush`:

* incremental (the usual case): the shared chains plus the chains of the
  service ports that changed, and `-X` for chains that went (a removed
  service, a removed endpoint) — cost in proportion to the change, plus one
  rule per service port for the dispatch chain;
* full (at start, every `full_resync_s`, and after any failure): every
  chain, plus `-X` for every Flotilla chain iptables-save shows that is not
  wanted (rules a crashed proxy left), and the jumps from built-in chains
  that the same iptables-save lacks.

After a successful apply it flushes conntrack entries of UDP endpoints that
left, and records metrics: sync duration (by kind), rules written, rules
programmed, and network programming latency (now minus the Endpoints'
`endpoints.kubernetes.io/last-change-trigger-time`).

The decisions are render.py's and model.py's; this module only schedules,
diffs and calls the adapters (in a thread: they block).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from netproxy.conntrack import Conntrack
from netproxy.errors import BackendConflict, ProxyError
from netproxy.iptables import Iptables, flotilla_chains, missing_jumps
from netproxy.model import ServicePort, compute_service_ports
from netproxy.render import SHARED_NAT, ProxyOptions, SharedCache, chains_of, render, render_delta

log = logging.getLogger("flotilla.proxy")

TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
Lookup = Callable[[str], tuple[Any | None, Any | None]]  # service key -> (Service, Endpoints)


@dataclass
class SyncMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.duration = Histogram("flotilla_proxy_sync_duration_seconds", "Time of one sync (render + apply)",
                                  ["kind"], registry=r,
                                  buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.latency = Histogram("flotilla_proxy_network_programming_duration_seconds",
                                 "Endpoints change (trigger time) to rules applied", registry=r,
                                 buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.rules = Gauge("flotilla_proxy_rules", "Rules programmed (rules of the last sync's view)", registry=r)
        self.written = Counter("flotilla_proxy_rules_written_total", "Rules written by syncs", registry=r)
        self.failures = Counter("flotilla_proxy_sync_failures_total", "Syncs that failed", registry=r)
        self.last_sync = Gauge("flotilla_proxy_last_sync_timestamp_seconds", "Unix time of the last good sync",
                               registry=r)


def parse_trigger_time(text: str) -> float | None:
    try:
        head, _, frac = text.rstrip("Z").partition(".")
        t = _dt.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=_dt.UTC).timestamp()
        return t + (float("0." + frac) if frac else 0.0)
    except ValueError:
        return None


class Syncer:
    def __init__(
        self,
        iptables: Iptables,
        conntrack: Conntrack,
        *,
        lookup: Lookup,
        options: ProxyOptions | None = None,
        min_sync_interval_s: float = 0.1,
        full_resync_s: float = 300.0,
        metrics: SyncMetrics | None = None,
    ) -> None:
        self.iptables = iptables
        self.conntrack = conntrack
        self.lookup = lookup
        self.options = options or ProxyOptions()
        self.min_sync_interval_s = min_sync_interval_s
        self.full_resync_s = full_resync_s
        self.metrics = metrics or SyncMetrics()
        self.ports: dict[str, list[ServicePort]] = {}  # service key -> its programmed ports
        self._chains: dict[str, set[str]] = {}  # service port key -> chains in the kernel
        self._rules: dict[str, int] = {}  # service port key -> rule count (for the gauge)
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._need_full = True
        self._last_full = 0.0
        self._last_sync = 0.0
        self._triggers: dict[str, str] = {}
        self._shared_cache: SharedCache = {}
        self.synced = asyncio.Event()  # set after the first good sync (healthz)
        self.last_good_sync = 0.0

    # --- input -------------------------------------------------------------------

    def mark(self, service_key: str) -> None:
        self._dirty.add(service_key)
        self._wake.set()

    def request_full(self) -> None:
        self._need_full = True
        self._wake.set()

    # --- the loop ----------------------------------------------------------------

    async def run(self) -> None:
        self._wake.set()
        while True:
            timeout = max(0.0, self._last_full + self.full_resync_s - time.monotonic())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            except TimeoutError:
                self._need_full = True
            wait = self._last_sync + self.min_sync_interval_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # coalesce what arrives meanwhile
            self._wake.clear()
            try:
                await self.sync_once()
            except BackendConflict:
                raise
            except ProxyError as exc:
                self.metrics.failures.inc()
                log.error("sync failed, retrying with a full sync: %s", exc)
                self._need_full = True
                await asyncio.sleep(1.0)
                self._wake.set()

    async def sync_once(self) -> str:
        """One sync; returns "full", "partial" or "none"."""
        self._last_sync = time.monotonic()
        # Taken now, not cleared after the sync: a request_full() that arrives
        # while this sync waits on iptables (a new node CIDR, the DNS address)
        # must bring the next sync, not be lost to this one's commit.
        full, self._need_full = self._need_full, False
        dirty, self._dirty = self._dirty, set()
        try:
            return await self._sync(dirty, full)
        except BaseException:
            self._dirty |= dirty
            self._need_full = self._need_full or full
            raise

    async def _sync(self, dirty: set[str], full: bool) -> str:
        t0 = time.perf_counter()
        jumps: list[Any] = []
        new_ports = dict(self.ports)
        triggers: dict[str, str] = {}
        for key in dirty:
            svc, ep = self.lookup(key)
            ports = ([sp for sp in compute_service_ports(svc, ep) if not self._answered_here(sp)]
                     if svc is not None else [])
            if ports:
                new_ports[key] = ports
            else:
                new_ports.pop(key, None)
            if ep is not None and TRIGGER_TIME_ANNOTATION in ep.metadata.annotations:
                triggers[key] = ep.metadata.annotations[TRIGGER_TIME_ANNOTATION]
        changed_keys = {sp.key for k in dirty for sp in new_ports.get(k, [])
                        if sp not in self.ports.get(k, [])}
        if not full and not changed_keys and all(new_ports.get(k) == self.ports.get(k) for k in dirty):
            return "none"
        if full:
            # ports computed before the DNS address was known may hold the DNS VIP
            new_ports = {k: kept for k, ports in new_ports.items()
                         if (kept := [sp for sp in ports if not self._answered_here(sp)])}
            all_ports = [sp for ports in new_ports.values() for sp in ports]
            saved = await asyncio.to_thread(self.iptables.save)
            gone = flotilla_chains(saved).get("nat", set()) - set(SHARED_NAT)
            jumps = missing_jumps(saved)
            self._shared_cache = {}
            rendered = render(all_ports, gone_chains=gone, options=self.options, cache=self._shared_cache,
                              jumps=jumps)
            removed_keys: set[str] = set(self._chains) - {sp.key for sp in all_ports}
        else:
            # only the dirty Services are looked at: the cost follows the change
            old_dirty = [sp for k in dirty for sp in self.ports.get(k, [])]
            new_dirty = [sp for k in dirty for sp in new_ports.get(k, [])]
            changed_ports = [sp for sp in new_dirty if sp.key in changed_keys]
            new_ck = {(sp.key, sp.protocol) for sp in new_dirty}
            removed = [(sp.key, sp.protocol) for sp in old_dirty if (sp.key, sp.protocol) not in new_ck]
            removed_keys = {k for k, _ in removed} - {sp.key for sp in new_dirty}
            gone = set().union(*(self._chains.get(sp.key, set()) for sp in old_dirty)) if old_dirty else set()
            gone -= set().union(*(chains_of(sp) for sp in new_dirty)) if new_dirty else set()
            rendered = render_delta(changed_ports, removed, cache=self._shared_cache, gone_chains=gone,
                                    options=self.options)
        stale_udp = self._stale_udp(dirty, new_ports)
        await asyncio.to_thread(self.iptables.restore, rendered.text)
        if full and jumps:
            log.info("jumps inserted: %s", ", ".join(f"{t} {c} -> {target}" for t, c, target, _ in jumps))
        self._commit(new_ports, rendered, full=full, removed_keys=removed_keys)
        await self._flush_conntrack(stale_udp)
        elapsed = time.perf_counter() - t0
        kind = "full" if full else "partial"
        self.metrics.duration.labels(kind).observe(elapsed)
        self.metrics.written.inc(rendered.rules)
        self._observe_latency(triggers)
        log.debug("synced", extra={"kind": kind, "seconds": round(elapsed, 4), "services": len(new_ports),
                                   "changed": len(changed_keys), "gone_chains": len(gone)})
        return kind

    def _commit(self, new_ports: dict[str, list[ServicePort]], rendered: Any, *, full: bool,
                removed_keys: set[str]) -> None:
        old_ports = self.ports
        self.ports = new_ports
        if full:
            self._chains = dict(rendered.chains)
        else:
            for key in removed_keys:
                self._chains.pop(key, None)
            self._chains.update(rendered.chains)
        now = time.monotonic()
        if full:
            self._last_full = now
        if full:
            self._rules = {}
        for key in removed_keys:
            self._rules.pop(key, None)
        self._rules.update(rendered.rules_by_key)
        self.metrics.rules.set(sum(self._rules.values()))
        self.last_good_sync = time.time()
        self.metrics.last_sync.set(self.last_good_sync)
        self.synced.set()
        del old_ports

    def _answered_here(self, sp: ServicePort) -> bool:
        """The cluster DNS VIP is DNATed to this host's DNS server, never balanced:
        a Service on it (kube-system/kube-dns) is not programmed. Filtered here,
        so that a Service moving onto the VIP is a removal like any other."""
        o = self.options
        return bool(o.dns_vip and o.dns_target and sp.cluster_ip == o.dns_vip)

    def _stale_udp(self, dirty: set[str], new_ports: dict[str, list[ServicePort]]) -> list[tuple[str, int, str]]:
        """(vip, nodePort, endpoint ip) of UDP endpoints that leave a service port now."""
        out = []
        for key in dirty:
            new = {(sp.key, sp.protocol): sp for sp in new_ports.get(key, [])}
            for sp in self.ports.get(key, []):
                if sp.protocol != "UDP":
                    continue
                kept = new.get((sp.key, sp.protocol))
                kept_ips = {e.ip for e in kept.endpoints} if kept is not None else set()
                for ep in sp.endpoints:
                    if ep.ip not in kept_ips:
                        out.append((sp.cluster_ip, sp.node_port, ep.ip))
        return out

    async def _flush_conntrack(self, stale: list[tuple[str, int, str]]) -> None:
        for vip, node_port, ip in stale:
            try:
                await asyncio.to_thread(self.conntrack.flush_udp, vip=vip, endpoint_ip=ip)
                if node_port:
                    await asyncio.to_thread(self.conntrack.flush_udp, node_port=node_port, endpoint_ip=ip)
            except ProxyError as exc:
                log.warning("conntrack flush for %s failed: %s", ip, exc)

    def _observe_latency(self, triggers: dict[str, str]) -> None:
        now = time.time()
        for key, text in triggers.items():
            if self._triggers.get(key) == text:
                continue
            self._triggers[key] = text
            t = parse_trigger_time(text)
            if t is not None and now >= t:
                self.metrics.latency.observe(now - t)
