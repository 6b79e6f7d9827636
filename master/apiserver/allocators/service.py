"""Reservations of clusterIPs and nodePorts in the store: the Service write hook.

Each allocated value is a key of its own, created with the store's "create if
absent" transaction: `<prefix>/serviceips/<ip>` and
`<prefix>/servicenodeports/<port>`, whose value names the owning Service
("namespace/name"). Two concurrent creates can therefore never hold the same
value: exactly one `create` of the key wins (etcd's version == 0 compare).
The registry calls `before_write` after admission and before the object's own
transaction, `after_write(ok=...)` once that transaction answered, and
`after_delete` when the object's key is gone; a failed write gives back what
it reserved, a successful one releases what the old object held and the new
one does not.

A master that dies between the reservation and the object's write leaves an
orphan key; `repair` (run periodically by the apiserver) removes reservations
whose owner does not hold them, after seeing them orphaned twice.

It does not validate the rest of the Service (admission does) and holds no
state of its own beyond the repair's candidates: etcd is the allocation map.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Any

from master.apiserver import errors
from master.apiserver.allocators.plan import AllocationPlan, held_ips, held_ports, plan_allocation
from master.apiserver.allocators.ranges import IPRange, PortRange
from master.storage import errors as store_errors
from master.storage.interface import Store

log = logging.getLogger(__name__)

RANDOM_TRIES = 8
FULL_SCAN_TRIES = 5


@dataclass
class Reservation:
    plan: AllocationPlan
    owner: str
    reserved: list[str] = field(default_factory=list)  # keys created for this write


def _owner(msg: Any) -> str:
    return f"{msg.metadata.namespace}/{msg.metadata.name}"


class ServiceAllocator:
    def __init__(
        self,
        store: Store,
        *,
        service_cidr: str,
        node_port_range: str,
        prefix: str = "/registry/ranges",
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.ips = IPRange.parse(service_cidr)
        self.ports = PortRange.parse(node_port_range)
        self._ip_prefix = f"{prefix}/serviceips/"
        self._port_prefix = f"{prefix}/servicenodeports/"
        self._rng = rng or random.Random()
        self._orphans: set[tuple[str, int]] = set()

    # --- the registry's hook -------------------------------------------------

    async def before_write(self, new: Any, old: Any | None) -> Reservation:
        """Fills new's empty clusterIP / nodePorts and reserves every value it
        newly holds; raises Invalid (422) when one is taken or out of range."""
        plan = plan_allocation(new.spec, old.spec if old is not None else None)
        res = Reservation(plan, _owner(new))
        try:
            await self._reserve_ip(new, res)
            for index, port in plan.node_ports:
                await self._reserve_port(new, res, index, port)
        except BaseException:
            await self._release_keys(res.reserved, res.owner)
            raise
        return res

    async def after_write(self, res: Reservation, *, ok: bool) -> None:
        if not ok:
            await self._release_keys(res.reserved, res.owner)
            return
        keys = [self._ip_prefix + ip for ip in res.plan.release_ips]
        keys += [self._port_prefix + str(p) for p in res.plan.release_ports]
        await self._release_keys(keys, res.owner)

    async def after_delete(self, old: Any) -> None:
        keys = [self._ip_prefix + ip for ip in held_ips(old.spec)]
        keys += [self._port_prefix + str(p) for p in held_ports(old.spec)]
        await self._release_keys(keys, _owner(old))

    # --- reservations ----------------------------------------------------------

    async def _reserve_ip(self, new: Any, res: Reservation) -> None:
        want = res.plan.cluster_ip
        if want is None:
            return
        path = "spec.clusterIPs"
        if want:
            if self.ips.offset(want) is None:
                raise self._invalid(new, path, want, "provided IP is not in the valid range. "
                                    f"The range of valid IPs is {self.ips.network}")
            if not await self._claim(self._ip_prefix + want, res):
                raise self._invalid(new, path, want, "provided IP is already allocated")
            return
        ip = await self._allocate(self._ip_prefix, res, self.ips.random_candidates(self._rng, RANDOM_TRIES),
                                  lambda taken: self.ips.free(taken, self._rng))
        if ip is None:
            raise self._invalid(new, path, "", f"failed to allocate a serviceIP: range is full ({self.ips.network})")
        new.spec.cluster_ip = ip
        del new.spec.cluster_ips[:]
        new.spec.cluster_ips.append(ip)

    async def _reserve_port(self, new: Any, res: Reservation, index: int, port: int) -> None:
        path = f"spec.ports[{index}].nodePort"
        if port:
            if not self.ports.contains(port):
                raise self._invalid(new, path, port, "provided port is not in the valid range. "
                                    f"The range of valid ports is {self.ports}")
            if not await self._claim(self._port_prefix + str(port), res):
                raise self._invalid(new, path, port, "provided port is already allocated")
            return
        got = await self._allocate(
            self._port_prefix, res, [str(p) for p in self.ports.random_candidates(self._rng, RANDOM_TRIES)],
            lambda taken: _str_or_none(self.ports.free({int(t) for t in taken}, self._rng)),
        )
        if got is None:
            raise self._invalid(new, path, 0, f"failed to allocate a nodePort: range is full ({self.ports})")
        new.spec.ports[index].node_port = int(got)

    async def _allocate(self, prefix: str, res: Reservation, candidates: list[str], pick: Any) -> str | None:
        """Random tries first (cheap while the range is sparse), then a scan of
        the taken keys; None when the scan finds the range full."""
        for value in candidates:
            if await self._claim(prefix + value, res, only_new=True):
                return value
        for _ in range(FULL_SCAN_TRIES):
            revs, _ = await self._call(self.store.list_revisions(prefix))
            value = pick({k[len(prefix):] for k in revs})
            if value is None:
                return None
            if await self._claim(prefix + value, res, only_new=True):
                return value
        return None

    async def _claim(self, key: str, res: Reservation, *, only_new: bool = False) -> bool:
        """Create the key for res.owner. An existing key is ours only when it
        names the same owner (a leftover of our own) and only_new is False."""
        try:
            await self.store.create(key, res.owner.encode())
            res.reserved.append(key)
            return True
        except store_errors.KeyExists:
            if only_new:
                return False
        except store_errors.StoreError as exc:
            raise _translate(exc) from exc
        kv = await self._call(self.store.get(key))
        return kv is not None and kv.value.decode() == res.owner

    async def _release_keys(self, keys: list[str], owner: str) -> None:
        for key in keys:
            try:
                kv = await self.store.get(key)
                if kv is None or kv.value.decode() != owner:
                    continue
                await self.store.delete(key, expected_revision=kv.mod_revision)
            except (store_errors.KeyNotFound, store_errors.RevisionConflict):
                continue
            except store_errors.StoreError as exc:
                # The write itself succeeded; a leaked key is what repair() is for.
                log.warning("could not release %s: %s", key, exc)

    # --- repair ------------------------------------------------------------------

    async def repair(self, services: list[Any]) -> list[str]:
        """Delete reservations no Service holds, once they were seen orphaned
        by two consecutive repairs at the same revision. Returns the keys removed."""
        holders: set[str] = set()
        for svc in services:
            holders |= {self._ip_prefix + ip for ip in held_ips(svc.spec)}
            holders |= {self._port_prefix + str(p) for p in held_ports(svc.spec)}
        orphans: set[tuple[str, int]] = set()
        for prefix in (self._ip_prefix, self._port_prefix):
            revs, _ = await self._call(self.store.list_revisions(prefix))
            orphans |= {(k, rev) for k, rev in revs.items() if k not in holders}
        removed = []
        for key, rev in sorted(orphans & self._orphans):
            try:
                await self.store.delete(key, expected_revision=rev)
                removed.append(key)
            except store_errors.StoreError:
                continue
        self._orphans = orphans - set((k, r) for k, r in orphans if k in removed)
        return removed

    # --- helpers -------------------------------------------------------------------

    def _invalid(self, new: Any, path: str, value: Any, detail: str) -> errors.APIError:
        return errors.Invalid("Service", new.metadata.name, [errors.invalid(path, value, detail)])

    async def _call(self, aw: Any) -> Any:
        try:
            return await aw
        except store_errors.StoreError as exc:
            raise _translate(exc) from exc


def _str_or_none(value: int | None) -> str | None:
    return None if value is None else str(value)


def _translate(exc: store_errors.StoreError) -> errors.APIError:
    if isinstance(exc, store_errors.Unavailable):
        return errors.ServiceUnavailable(f"etcd is unavailable: {exc}")
    return errors.InternalError(f"allocation failed: {exc}")
