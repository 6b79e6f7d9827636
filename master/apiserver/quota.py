"""ResourceQuota admission: check a create against every quota of its
namespace and charge the quotas it uses, race-free.

The registry calls `QuotaAdmission.create(..., write)` for the etcd create
of every namespaced object (`check` for dry runs) (after defaults and validation, as Kubernetes runs
quota last). Inside it:

1. the namespace's quotas come from the watch cache, once it has applied
   every quota write this apiserver made; if there are none, the object's
   usage is not even computed, and if none limits what it uses, nothing
   else happens (no lock, no write);
2. otherwise a per-namespace lock is taken for the check and the charge,
   so creates in this apiserver are checked one at a time; an admitted
   object counts from then on (in flight, then written), so the lock does
   not wait for its write;
3. usage is the larger of each quota's status.used and a count of the
   objects of the same kind: the watch cache plus the objects this
   apiserver created whose revision the cache has not applied yet. The
   count makes admission independent of how far behind the quota controller
   is (it may lower status.used from a lagging informer); status.used
   covers charges made by another apiserver;
4. the verdict is `master.reconcile.resourcequota.plan_admission`; a refusal
   is Kubernetes' 403 Forbidden (`pods "x" is forbidden: exceeded quota:
   ...`) and writes nothing;
5. each quota charged gets status.used raised by compare-and-swap
   (guaranteed_update re-checks the verdict against every new version), so
   two apiservers charging one quota serialize on its resourceVersion.

A create that fails after charging leaves status.used high until the quota
controller recalculates it, as in Kubernetes. Updates are not checked: the
resources a quota counts (pod requests and limits, object counts) do not
change on update here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from master.apiserver import errors
from master.apiserver.watchcache import Filter
from master.reconcile import resourcequota as rq
from protos.resources import ResourceInfo, lookup

if TYPE_CHECKING:
    from master.apiserver.objects import StoredObject
    from master.apiserver.registry import Registry

def _quota_info() -> ResourceInfo:
    info = lookup("", "resourcequotas")
    if info is None:
        raise LookupError("resourcequotas is not in the resource registry")
    return info


_QUOTAS = _quota_info()


_USAGE_MEMO_MAX = 200_000


def forbidden(info: ResourceInfo, name: str, detail: str) -> errors.APIError:
    return errors.APIError(f'{info.group_resource} "{name}" is forbidden: {detail}', 403, "Forbidden",
                           name=name, group=info.group, kind=info.resource)


class QuotaAdmission:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._locks: dict[str, asyncio.Lock] = {}
        # Objects this apiserver admitted under a quota, by (group, resource,
        # namespace): in flight, or written at a revision the watch cache has
        # not applied yet. Cache + these = everything this process admitted.
        self._recent: dict[tuple[str, str, str], list[_Admitted]] = {}
        # The last version of each quota this apiserver wrote: the next charge
        # starts from it rather than from a cache that has not caught up.
        self._written: dict[tuple[str, str], StoredObject] = {}
        # Usage of each cached object version ((key, rv) -> usage): counting a
        # namespace then costs a dict sum per object, not quantity parsing.
        self._usage: dict[tuple[str, int], dict[str, Fraction]] = {}

    async def create(self, info: ResourceInfo, namespace: str, msg: Any,
                     write: Callable[[], Awaitable[int]]) -> int:
        """Check and charge `msg`, then `write()` it (under the namespace lock
        when a quota limits it); returns what write returns."""
        if not info.namespaced:
            return await write()
        quotas = await self._quotas(namespace)
        if not quotas:  # the common case: nothing to count, so nothing is parsed
            return await write()
        usage = rq.usage_of(info.resource, info.group, msg)
        if not _limited(quotas, usage):
            return await write()
        lock = self._locks.setdefault(namespace, asyncio.Lock())
        recent = self._recent.setdefault((info.group, info.resource, namespace), [])
        async with lock:
            await self._check_and_charge(info, namespace, msg, usage, dry_run=False)
            # Counted from here on, so the lock need not wait for the write.
            admitted = _Admitted(info.key(namespace, msg.metadata.name), msg)
            recent.append(admitted)
        try:
            admitted.rev = await write()
        except BaseException:
            recent.remove(admitted)
            raise
        return admitted.rev

    async def check(self, info: ResourceInfo, namespace: str, msg: Any) -> None:
        """A dry run: the verdict without a charge."""
        if not info.namespaced:
            return
        quotas = await self._quotas(namespace)
        usage = rq.usage_of(info.resource, info.group, msg) if quotas else {}
        if _limited(quotas, usage):
            await self._check_and_charge(info, namespace, msg, usage, dry_run=True)

    async def _quotas(self, namespace: str) -> list[StoredObject]:
        """The namespace's quotas, from the watch cache once it holds every
        quota write this apiserver made (read-your-writes: a quota created a
        moment ago through this process limits the very next create)."""
        cache = self.registry.caches[_QUOTAS]
        if not cache.ready:
            return []
        written = cache.written_rv(namespace)
        if cache.rv < written:
            await cache.wait_rv(written, timeout_s=self.registry.consistent_timeout_s)
        return cache.list(Filter(namespace=namespace))

    async def _check_and_charge(self, info: ResourceInfo, namespace: str, msg: Any,
                                usage: dict[str, Fraction], *, dry_run: bool) -> None:
        quotas = [q for q in await self._quotas(namespace) if rq.tracked_by(q.msg.spec.hard, usage)]
        counted = await self._count(info, namespace, quotas)
        pod = msg if info.kind == "Pod" else None
        views = [_view(q.msg, counted) for q in quotas]
        verdict = rq.plan_admission(views, usage, pod=pod)
        if verdict.error:
            raise forbidden(info, msg.metadata.name, verdict.error)
        if dry_run:
            return
        for q in quotas:
            await self._charge(info, q.msg.metadata.name, namespace, msg, usage, counted, pod)

    async def _count(self, info: ResourceInfo, namespace: str,
                     quotas: list[StoredObject]) -> dict[str, Fraction]:
        """Usage of this kind in the namespace: the watch cache plus what this
        apiserver wrote that the cache has not applied yet (no etcd round trip;
        writes of other apiservers are covered by the status.used they charged)."""
        hard: dict[str, str] = {}
        for q in quotas:
            hard.update(q.msg.spec.hard)
        cache = self.registry.caches[info]
        if not cache.ready:
            objs, _ = await self.registry.list(info, Filter(namespace=namespace), resource_version="")
            return rq.compute_used(hard, ((info.resource, info.group, o.msg) for o in objs))
        if len(self._usage) > _USAGE_MEMO_MAX:
            self._usage.clear()
        usages: dict[str, dict[str, Fraction]] = {}
        for o in cache.list(Filter(namespace=namespace)):
            memo = self._usage.get((o.key, o.rv))
            if memo is None:
                memo = self._usage[(o.key, o.rv)] = rq.usage_of(info.resource, info.group, o.msg)
            usages[o.key] = memo
        recent = self._recent.get((info.group, info.resource, namespace), [])
        recent[:] = [r for r in recent if r.rev is None or r.rev > cache.rv]
        for r in recent:
            if r.key not in usages:
                usages[r.key] = rq.usage_of(info.resource, info.group, r.obj)
        return rq.sum_usage(hard, usages.values())

    async def _charge(self, info: ResourceInfo, quota: str, namespace: str, msg: Any,
                      usage: dict[str, Fraction], counted: dict[str, Fraction], pod: Any) -> None:
        async def mutate(current: StoredObject) -> Any:
            view = _view(current.msg, counted)
            verdict = rq.plan_admission([view], usage, pod=pod)
            if verdict.error:
                raise forbidden(info, msg.metadata.name, verdict.error)
            new = current.copy_msg()
            charges = (verdict.charges or {}).get(view.name, {})
            new.status.used.update(rq.format_used(charges, new.spec.hard))
            if not new.status.hard:
                new.status.hard.update(new.spec.hard)
            return new

        mine = self._written.pop((namespace, quota), None)
        try:
            written = await self.registry.guaranteed_update(
                _QUOTAS, namespace, quota, mutate, subresource="status", start=mine)
        except errors.APIError as exc:
            if exc.code != 404:  # a quota deleted meanwhile limits nothing
                raise
            return
        self._written[(namespace, quota)] = written


def _limited(quotas: list[StoredObject], usage: dict[str, Fraction]) -> bool:
    return any(rq.tracked_by(q.msg.spec.hard, usage) for q in quotas)


@dataclass
class _Admitted:
    key: str
    obj: Any
    rev: int | None = None  # None while the write is in flight


def _view(quota: Any, counted: dict[str, Fraction]) -> rq.QuotaView:
    used = rq.parse_used(quota.status.used)
    merged = {n: max(used.get(n, Fraction(0)), counted.get(n, Fraction(0))) for n in quota.spec.hard}
    return rq.QuotaView(quota.metadata.name, dict(quota.spec.hard), merged)
