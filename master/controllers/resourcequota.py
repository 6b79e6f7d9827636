"""The ResourceQuota controller: keeps status.hard = spec.hard and
status.used current.

It watches quotas and every kind the Client knows (shared informers,
indexed by namespace). Like Kubernetes' replenishment, only what can lower
usage enqueues the quotas of a namespace (a delete, a pod going terminal or
being deleted): creates are charged by admission. A quota's own change and
every `resync_s` recalculate it as well. The
arithmetic is master/reconcile/resourcequota.py, the same the apiserver's
admission uses, so both count the same things (terminal pods and pods
being deleted count for nothing).

Admission charges status.used at create time (master/apiserver/quota.py);
this controller may briefly write a lower figure from informers that lag,
which admission tolerates: it checks against the larger of status.used and
its own consistent count. Options: resync_s (30).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from master.client.errors import NotFound
from master.client.store import object_key
from master.controllers.base import Controller, ControllerContext
from master.controllers.kindtable import Kind, all_kinds
from master.reconcile import resourcequota as rq
from protos.core.v1 import core_pb2

_BY_NAMESPACE = "resourcequota-namespace"


class ResourceQuotaController(Controller):
    name: ClassVar[str] = "resourcequota"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.resync_s = float(ctx.option(self.name, "resync_s", 30.0))
        self.kinds = [k for k in all_kinds(self.client.kinds) if k.info.namespaced]
        self.quotas = ctx.informers.informer(core_pb2.ResourceQuota)
        # Not on status changes: those are admission's charges (or our own
        # writes); reacting to them would only fight admission for the object.
        self.quotas.add_handler(on_add=self.enqueue, on_update=self._quota_updated)
        self.indexed: list[tuple[Kind, Any]] = []
        for kind in self.kinds:
            inf = ctx.informers.informer(kind.cls)
            inf.add_index(_BY_NAMESPACE, lambda o: [o.metadata.namespace])
            self.indexed.append((kind, inf))
            if kind.cls is core_pb2.ResourceQuota:
                continue
            inf.add_handler(on_update=self._update_handler(kind), on_delete=self._changed)

    def _quota_updated(self, old: Any, new: Any) -> None:
        if old.spec.SerializeToString(deterministic=True) != new.spec.SerializeToString(deterministic=True):
            self.enqueue(new)

    def _update_handler(self, kind: Kind) -> Callable[[Any, Any], None]:
        """Only a change in what an object uses (a pod going terminal or being
        deleted) needs a recalculation: creates were charged by admission."""
        res, group = kind.info.resource, kind.info.group

        def on_update(old: Any, new: Any) -> None:
            if old is not new and rq.usage_of(res, group, old) != rq.usage_of(res, group, new):
                self._changed(new)

        return on_update

    def _changed(self, obj: Any) -> None:
        for q in self.quotas.by_index(_BY_NAMESPACE, obj.metadata.namespace):
            self.queue.add(object_key(q))

    async def sync(self, key: str) -> None:
        quota = self.quotas.get(key)
        if quota is None:
            return
        hard = dict(quota.spec.hard)
        used = rq.compute_used(hard, self._objects(quota.metadata.namespace))
        status_used = rq.plan_status(hard, used, quota.status.hard, quota.status.used)
        if status_used is not None:
            new = core_pb2.ResourceQuota()
            new.CopyFrom(quota)
            new.status.hard.clear()
            new.status.hard.update(hard)
            new.status.used.clear()
            new.status.used.update(status_used)
            try:
                await self.client.update_status(new)
            except NotFound:
                return
        self.queue.add_after(key, self.resync_s)

    def _objects(self, namespace: str) -> list[tuple[str, str, Any]]:
        out = []
        for kind, inf in self.indexed:
            for obj in inf.by_index(_BY_NAMESPACE, namespace):
                out.append((kind.info.resource, kind.info.group, obj))
        return out
