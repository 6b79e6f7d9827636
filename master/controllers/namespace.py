"""The namespace controller: empties a deleted namespace, then lets it go.

A DELETE of a namespace makes the apiserver set deletionTimestamp and
status.phase Terminating (the `kubernetes` entry in spec.finalizers keeps
it); creates in it are then refused with 403. This controller, for each
Terminating namespace, after `deletion_delay_s` (Kubernetes waits a moment
so that `kubectl delete -f` still finds its own objects):

1. lists every namespaced kind the Client knows in the namespace (a
   consistent LIST, not an informer: this runs rarely and must not miss
   anything);
2. deletes every object not already being deleted (pods bound to a node
   that does not exist are deleted with grace 0: no agent will ever stop
   them);
3. writes the deletion conditions (master/reconcile/namespace.py) to
   status when they changed;
4. when nothing is left, removes `kubernetes` from spec.finalizers; the
   apiserver then removes the namespace (or keeps it while metadata
   finalizers remain). Otherwise it looks again after `recheck_s`.

Options (ControllerContext.option("namespace", ...)): deletion_delay_s (5),
recheck_s (1).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
from typing import Any, ClassVar

from master.client.errors import APIError, NotFound
from master.client.store import split_key
from master.controllers.base import Controller, ControllerContext
from master.controllers.kindtable import Kind, all_kinds
from master.reconcile import namespace as plan
from protos.core.v1 import core_pb2

_PARALLEL_DELETES = 16  # deletes in flight at once while emptying a namespace


class NamespaceController(Controller):
    name: ClassVar[str] = "namespace"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.delay_s = float(ctx.option(self.name, "deletion_delay_s", 5.0))
        self.recheck_s = float(ctx.option(self.name, "recheck_s", 1.0))
        self.namespaces = ctx.informers.informer(core_pb2.Namespace)
        self.namespaces.add_handler(**self.enqueue_handlers())
        self.nodes = ctx.informers.informer(core_pb2.Node)
        self.kinds = [k for k in all_kinds(self.client.kinds) if k.info.namespaced]

    async def sync(self, key: str) -> None:
        ns = self.namespaces.get(key)
        if ns is None or not ns.metadata.HasField("deletion_timestamp"):
            return
        if plan.FINALIZER not in ns.spec.finalizers:
            return
        now = self.clock.wall()
        since = ns.metadata.deletion_timestamp.ToDatetime(tzinfo=_dt.UTC)
        wait_s = self.delay_s - (now - since).total_seconds()
        if wait_s > 0:
            self.queue.add_after(key, wait_s)
            return
        name = split_key(key)[1]
        items, objects, failures = await self._contents(name)
        content = plan.plan_content(items)
        for start in range(0, len(content.delete), _PARALLEL_DELETES):
            batch = content.delete[start:start + _PARALLEL_DELETES]
            errs = await asyncio.gather(*(self._delete(name, objects[(i.resource, i.name)]) for i in batch))
            failures.extend(e for e in errs if e)
        # What was deleted without lingering no longer counts as remaining.
        items, _, more = await self._contents(name)
        content = plan.plan_content(items)
        await self._write_conditions(ns, plan.compute_conditions(content, failures + more), now)
        if content.empty and not failures:
            await self._finalize(name)
        else:
            self.queue.add_after(key, self.recheck_s)

    async def _contents(self, namespace: str) -> tuple[list[plan.ContentItem], dict[tuple[str, str], tuple[Kind, Any]], list[str]]:
        items: list[plan.ContentItem] = []
        objects: dict[tuple[str, str], tuple[Kind, Any]] = {}
        failures: list[str] = []
        for kind in self.kinds:
            try:
                objs, _ = await self.client.list(kind.cls, namespace=namespace)
            except APIError as exc:
                failures.append(f"{kind.group_resource}: {exc}")
                continue
            for o in objs:
                m = o.metadata
                items.append(plan.ContentItem(kind.group_resource, m.name, m.HasField("deletion_timestamp"),
                                              tuple(m.finalizers)))
                objects[(kind.group_resource, m.name)] = (kind, o)
        return items, objects, failures

    async def _delete(self, namespace: str, found: tuple[Kind, Any]) -> str:
        kind, obj = found
        grace: int | None = None
        if kind.info.resource == "pods" and not kind.info.group:
            node = obj.spec.node_name
            if not node or self.nodes.get(node) is None:
                grace = 0
        try:
            await self.client.delete(kind.cls, obj.metadata.name, namespace=namespace,
                                     grace_period_seconds=grace,
                                     precondition_uid=obj.metadata.uid)
        except NotFound:
            return ""
        except APIError as exc:
            if exc.code == 409:  # a new object of that name: the next pass sees it
                return ""
            return f"{kind.group_resource} {obj.metadata.name}: {exc}"
        return ""

    async def _write_conditions(self, ns: core_pb2.Namespace, wanted: list[plan.Condition],
                                now: _dt.datetime) -> None:
        existing = [plan.Condition(c.type, c.status, c.reason, c.message,
                                   c.last_transition_time.ToDatetime(tzinfo=_dt.UTC))
                    for c in ns.status.conditions]
        merged = plan.merge_conditions(existing, wanted, now=now)
        if [(c.type, c.status, c.reason, c.message) for c in merged] == \
                [(c.type, c.status, c.reason, c.message) for c in existing]:
            return
        new = core_pb2.Namespace()
        new.CopyFrom(ns)
        del new.status.conditions[:]
        for c in merged:
            out = new.status.conditions.add(type=c.type, status=c.status, reason=c.reason, message=c.message)
            if c.last_transition_time is not None:
                out.last_transition_time.FromDatetime(c.last_transition_time)
        new.status.phase = "Terminating"
        try:
            await self.client.update_status(new)
        except NotFound:
            pass

    async def _finalize(self, name: str) -> None:
        for _ in range(5):
            try:
                current = await self.client.get(core_pb2.Namespace, name)
            except NotFound:
                return
            new = core_pb2.Namespace()
            new.CopyFrom(current)
            del new.spec.finalizers[:]
            new.spec.finalizers.extend(plan.without_finalizer(current.spec.finalizers))
            try:
                await self.client.update(new)
                return
            except NotFound:
                return
            except APIError as exc:
                if exc.code != 409:
                    raise
        raise RuntimeError(f"namespace {name}: finalizer removal kept conflicting")
