"""The garbage collector: deletes dependents whose owners are gone, and
carries out Foreground and Orphan deletions.

It watches every kind the Client knows (one shared informer each) and keeps
a graph: uid -> object key, owner uid -> dependent keys. Keys on its queue
are "<proto full name>|<namespace>/<name>". Any change to an object
enqueues it, its owners and (on delete or deletion start) its dependents.

`sync(key)` asks master/reconcile/garbagecollector.py:
* as a dependent (it has ownerReferences): if no owner is solid, it is
  deleted with the policy the plan names; owners that look absent are first
  read from the apiserver (by kind and name, compared by uid), so an
  informer that has not seen a new owner yet never costs a dependent;
* as an owner being deleted with `orphan`: its uid is removed from every
  dependent's ownerReferences, then the finalizer; with
  `foregroundDeletion`: its dependents are deleted (blocking ones first,
  those in the foreground) and the finalizer goes once no blocking
  dependent is left.

The apiserver's DELETE puts those finalizers on (propagationPolicy); this
controller only removes them. Options: recheck_s (1) between passes over an
owner still waiting for its dependents.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from typing import Any, ClassVar

from master.client.errors import APIError, Conflict, NotFound
from master.client.store import object_key, split_key
from master.controllers.base import Controller, ControllerContext
from master.controllers.kindtable import Kind, all_kinds, by_owner_ref
from master.reconcile import garbagecollector as gc
from master.reconcile.workloadpods import without_owner


class GarbageCollector(Controller):
    name: ClassVar[str] = "garbagecollector"
    workers: ClassVar[int] = 4

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.recheck_s = float(ctx.option(self.name, "recheck_s", 1.0))
        self.kinds = all_kinds(self.client.kinds)
        self.by_name = {k.full_name: k for k in self.kinds}
        self.informers: dict[str, Any] = {}
        self.uids: dict[str, str] = {}  # uid -> queue key
        self.dependents: dict[str, set[str]] = defaultdict(set)  # owner uid -> queue keys
        for kind in self.kinds:
            inf = ctx.informers.informer(kind.cls)
            self.informers[kind.full_name] = inf
            inf.add_handler(**self._handlers(kind))

    # --- the graph (handlers: cheap, never raise) -----------------------------------

    def _handlers(self, kind: Kind) -> dict[str, Any]:
        def on_add(obj: Any) -> None:
            self._observe(kind, obj, None)

        def on_update(old: Any, new: Any) -> None:
            self._observe(kind, new, old)

        def on_delete(obj: Any) -> None:
            self._forget(kind, obj)

        return {"on_add": on_add, "on_update": on_update, "on_delete": on_delete}

    def _key(self, kind: Kind, obj: Any) -> str:
        return f"{kind.full_name}|{object_key(obj)}"

    def _observe(self, kind: Kind, obj: Any, old: Any | None) -> None:
        key = self._key(kind, obj)
        meta = obj.metadata
        self.uids[meta.uid] = key
        if old is not None:
            for ref in old.metadata.owner_references:
                if ref.uid not in {r.uid for r in meta.owner_references}:
                    self.dependents[ref.uid].discard(key)
        for ref in meta.owner_references:
            self.dependents[ref.uid].add(key)
            owner = self.uids.get(ref.uid)
            if owner is not None and meta.HasField("deletion_timestamp"):
                self.queue.add(owner)
        interesting = bool(meta.owner_references) or (
            meta.HasField("deletion_timestamp") and (gc.ORPHAN in meta.finalizers or gc.FOREGROUND in meta.finalizers))
        if interesting:
            self.queue.add(key)
        if meta.HasField("deletion_timestamp") and (old is None or not old.metadata.HasField("deletion_timestamp")):
            for dep in self.dependents.get(meta.uid, ()):
                self.queue.add(dep)

    def _forget(self, kind: Kind, obj: Any) -> None:
        meta = obj.metadata
        key = self._key(kind, obj)
        if self.uids.get(meta.uid) == key:
            del self.uids[meta.uid]
        for ref in meta.owner_references:
            deps = self.dependents.get(ref.uid)
            if deps is not None:
                deps.discard(key)
                if not deps and ref.uid not in self.uids:
                    del self.dependents[ref.uid]
            owner = self.uids.get(ref.uid)
            if owner is not None:
                self.queue.add(owner)
        for dep in self.dependents.get(meta.uid, ()):
            self.queue.add(dep)

    def _get(self, key: str) -> tuple[Kind, Any] | None:
        full_name, _, obj_key = key.partition("|")
        kind = self.by_name.get(full_name)
        if kind is None:
            return None
        obj = self.informers[full_name].get(obj_key)
        return (kind, obj) if obj is not None else None

    # --- sync ------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        found = self._get(key)
        if found is None:
            return
        kind, obj = found
        meta = obj.metadata
        deleting = meta.HasField("deletion_timestamp")
        if deleting and (gc.ORPHAN in meta.finalizers or gc.FOREGROUND in meta.finalizers):
            await self._sync_owner(key, kind, obj)
        if meta.owner_references and not deleting:
            await self._sync_dependent(kind, obj)

    async def _sync_dependent(self, kind: Kind, obj: Any) -> None:
        meta = obj.metadata
        refs = [gc.Ref(r.uid, bool(r.block_owner_deletion)) for r in meta.owner_references]
        states = {r.uid: self._owner_state(r) for r in meta.owner_references}
        action = gc.plan_dependent(refs, states, deleting=False, finalizers=list(meta.finalizers))
        if not action.delete:
            return
        for ref in meta.owner_references:
            if ref.uid in action.verify and await self._owner_exists(obj, ref):
                # The informer is behind; the owner's own add event re-enqueues us.
                return
        with contextlib.suppress(NotFound):
            await self.client.delete(kind.cls, meta.name, namespace=meta.namespace,
                                     propagation_policy=action.policy, precondition_uid=meta.uid)

    def _owner_state(self, ref: Any) -> gc.OwnerState:
        key = self.uids.get(ref.uid)
        found = self._get(key) if key is not None else None
        if found is None or found[0].name != ref.kind:
            return gc.OwnerState.ABSENT
        m = found[1].metadata
        return gc.owner_state(True, deleting=m.HasField("deletion_timestamp"), finalizers=list(m.finalizers))

    async def _owner_exists(self, dependent: Any, ref: Any) -> bool:
        kind = by_owner_ref(self.kinds, ref.api_version, ref.kind)
        if kind is None:
            # A kind this client cannot look up: keep the dependent (Kubernetes
            # does not collect what it cannot resolve either).
            return True
        namespace = dependent.metadata.namespace if kind.info.namespaced else ""
        try:
            owner = await self.client.get(kind.cls, ref.name, namespace=namespace)
        except NotFound:
            return False
        return bool(owner.metadata.uid == ref.uid)

    async def _sync_owner(self, key: str, kind: Kind, obj: Any) -> None:
        meta = obj.metadata
        views = []
        for dep_key in sorted(self.dependents.get(meta.uid, ())):
            found = self._get(dep_key)
            if found is None:
                continue
            dm = found[1].metadata
            refs = [r for r in dm.owner_references if r.uid == meta.uid]
            if not refs:
                continue
            views.append(gc.DependentView(dep_key, dm.HasField("deletion_timestamp"),
                                          any(bool(r.block_owner_deletion) for r in refs)))
        step = gc.plan_owner(deleting=True, finalizers=list(meta.finalizers), dependents=views)
        for dep_key in step.orphan:
            await self._drop_owner_ref(dep_key, meta.uid)
        for dep_key, policy in step.delete:
            found = self._get(dep_key)
            if found is None:
                continue
            dkind, dep = found
            with contextlib.suppress(NotFound):
                await self.client.delete(dkind.cls, dep.metadata.name, namespace=dep.metadata.namespace,
                                         propagation_policy=policy, precondition_uid=dep.metadata.uid)
        if step.orphan:
            # Orphaned now; the finalizer goes on the next pass, once the
            # informers show no dependent left.
            self.queue.add_after(key, 0.05)
            return
        if step.remove_finalizer:
            await self._remove_finalizer(kind, obj, step.remove_finalizer)
        else:
            self.queue.add_after(key, self.recheck_s)

    async def _drop_owner_ref(self, dep_key: str, owner_uid: str) -> None:
        found = self._get(dep_key)
        if found is None:
            return
        kind, dep = found
        namespace, name = split_key(dep_key.partition("|")[2])
        for _ in range(5):
            new = without_owner(dep, owner_uid)
            if new is None:
                return
            try:
                await self.client.update(new)
                return
            except NotFound:
                return
            except Conflict:
                dep = await self.client.get(kind.cls, name, namespace=namespace)
        raise Conflict(f"{dep_key}: ownerReferences kept changing")

    async def _remove_finalizer(self, kind: Kind, obj: Any, finalizer: str) -> None:
        meta = obj.metadata
        current = obj
        for _ in range(5):
            new = type(current)()
            new.CopyFrom(current)
            kept = [f for f in new.metadata.finalizers if f != finalizer]
            if len(kept) == len(new.metadata.finalizers):
                return
            del new.metadata.finalizers[:]
            new.metadata.finalizers.extend(kept)
            try:
                await self.client.update(new)
                return
            except NotFound:
                return
            except APIError as exc:
                if exc.code != 409:
                    raise
                current = await self.client.get(kind.cls, meta.name, namespace=meta.namespace)
                if current.metadata.uid != meta.uid:
                    return
        raise Conflict(f"{meta.name}: finalizers kept changing")
