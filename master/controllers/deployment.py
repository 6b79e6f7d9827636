"""The Deployment controller: rolls pod templates out through ReplicaSets.

Owns the executor of Kubernetes' syncDeployment: it claims the ReplicaSets
a Deployment selects (adopting orphans, releasing strays), finds or creates
the ReplicaSet for the current template (`<name>-<pod-template-hash>`,
with the next revision), applies one step of the rollout plan (Recreate,
RollingUpdate, or proportional scaling when only `spec.replicas` changed or
the deployment is paused), deletes ReplicaSets beyond revisionHistoryLimit,
and writes status with the Available and Progressing conditions kubectl
reads. It requeues itself for the progress deadline.

Every decision is in master/reconcile/deployment.py and deployment_rollout.py;
this module only reads informers and writes through the Client. Pods are
created by the ReplicaSet controller, never here.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from master.client.errors import AlreadyExists, Conflict, NotFound
from master.client.store import object_key
from master.controllers.base import Controller, ControllerContext
from master.controllers.replicaset import ensure_index
from master.reconcile import deployment as dep
from master.reconcile import deployment_rollout as roll
from master.reconcile import replicaset as rsr
from master.reconcile.workloadpods import without_owner
from protos.apps.v1 import apps_pb2
from protos.core.v1 import core_pb2

log = logging.getLogger("flotilla.controllers.deployment")

BY_NAMESPACE = "namespace"
BY_OWNER = "owner-uid"


def _namespace(obj: Any) -> list[str]:
    return [obj.metadata.namespace]


def _owner_uid(obj: Any) -> list[str]:
    ref = rsr.controller_ref(obj)
    return [ref.uid] if ref is not None else []


def _copy(obj: Any) -> Any:
    new = type(obj)()
    new.CopyFrom(obj)
    return new


class DeploymentController(Controller):
    name: ClassVar[str] = "deployment"
    workers: ClassVar[int] = 4

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.deployments = ctx.informers.informer(apps_pb2.Deployment)
        self.replicasets = ctx.informers.informer(apps_pb2.ReplicaSet)
        self.pods = ctx.informers.informer(core_pb2.Pod)
        ensure_index(self.deployments, BY_NAMESPACE, _namespace)
        ensure_index(self.replicasets, BY_NAMESPACE, _namespace)
        ensure_index(self.pods, BY_OWNER, _owner_uid)
        self.deployments.add_handler(**self.enqueue_handlers())
        self.replicasets.add_handler(on_add=self._rs_changed, on_update=self._rs_updated,
                                     on_delete=self._rs_changed)
        self.pods.add_handler(on_delete=self._pod_deleted)

    # Handlers (enqueue only) ---------------------------------------------------------

    def _owner_key(self, rs: apps_pb2.ReplicaSet) -> str | None:
        ref = rsr.controller_ref(rs)
        if ref is None or ref.kind != "Deployment":
            return None
        return f"{rs.metadata.namespace}/{ref.name}"

    def _rs_changed(self, rs: apps_pb2.ReplicaSet) -> None:
        key = self._owner_key(rs)
        if key is not None:
            self.queue.add(key)
            return
        for d in self.deployments.by_index(BY_NAMESPACE, rs.metadata.namespace):
            if rsr.selector_matches(d.spec.selector, rs.metadata.labels):
                self.enqueue(d)

    def _rs_updated(self, old: apps_pb2.ReplicaSet, new: apps_pb2.ReplicaSet) -> None:
        old_key = self._owner_key(old)
        if old_key is not None and old_key != self._owner_key(new):
            self.queue.add(old_key)
        self._rs_changed(new)

    def _pod_deleted(self, pod: core_pb2.Pod) -> None:
        # Recreate waits for the old pods to be gone; their deletion wakes it.
        ref = rsr.controller_ref(pod)
        if ref is None or ref.kind != "ReplicaSet":
            return
        rs = self.replicasets.get(f"{pod.metadata.namespace}/{ref.name}")
        if rs is not None:
            key = self._owner_key(rs)
            if key is not None:
                self.queue.add(key)

    # Sync ------------------------------------------------------------------------------

    def _now(self) -> float:
        return self.clock.wall().timestamp()

    async def sync(self, key: str) -> None:
        d = self.deployments.get(key)
        if d is None:
            return
        rss = await self._claim(d)
        if d.metadata.HasField("deletion_timestamp") or rsr.selector_is_empty(d.spec.selector):
            await self._write_status(d, dep.compute_counts(d, rss, dep.find_new_replicaset(d, rss),
                                                           now=self._now()))
            return
        paused = dep.plan_paused_condition(d, now=self._now())
        if paused is not None:
            await self._write_status(d, paused)
            return
        new = dep.find_new_replicaset(d, rss)
        old = dep.old_replicasets(rss, new)
        if d.spec.paused or roll.is_scaling_event(d, rss):
            await self._scale(d, new, old)
            return
        if dep.is_rolling(d):
            await self._rolling(d, new, old)
        else:
            await self._recreate(d, new, old)

    async def _claim(self, d: apps_pb2.Deployment) -> list[apps_pb2.ReplicaSet]:
        candidates = self.replicasets.by_index(BY_NAMESPACE, d.metadata.namespace)
        claims = rsr.plan_claims(d, candidates, d.spec.selector)
        owned = list(claims.owned)
        for rs in claims.adopt:
            new = _copy(rs)
            new.metadata.owner_references.append(
                rsr.owner_reference(d, api_version="apps/v1", kind="Deployment"))
            try:
                owned.append(await self.client.update(new))
            except (Conflict, NotFound):
                continue
        for rs in claims.release:
            new = without_owner(rs, d.metadata.uid)
            if new is None:
                continue
            try:
                await self.client.update(new)
            except (Conflict, NotFound):
                continue
        return owned

    async def _scale(self, d: apps_pb2.Deployment, new: apps_pb2.ReplicaSet | None,
                     old: list[apps_pb2.ReplicaSet]) -> None:
        """Paused, or only spec.replicas changed: resize without rolling (Kubernetes' sync)."""
        d, new = await self._sync_new(d, new, old, create=False)
        rss = [*([new] if new is not None else []), *old]
        plan = roll.plan_scale(d, new, old)
        rss = await self._apply(d, rss, plan, fix_annotations=True)
        if d.spec.paused:
            await self._cleanup(d, [rs for rs in rss if new is None or rs.metadata.uid != new.metadata.uid])
        new = next((rs for rs in rss if new is not None and rs.metadata.uid == new.metadata.uid), None)
        await self._write_status(d, dep.compute_status(d, rss, new, now=self._now(), rollout=False))

    async def _rolling(self, d: apps_pb2.Deployment, new: apps_pb2.ReplicaSet | None,
                       old: list[apps_pb2.ReplicaSet]) -> None:
        d, new = await self._sync_new(d, new, old, create=True)
        assert new is not None
        plan = roll.plan_rolling(d, new, old)
        rss = await self._apply(d, [new, *old], plan)
        await self._finish(d, rss, new)

    async def _recreate(self, d: apps_pb2.Deployment, new: apps_pb2.ReplicaSet | None,
                        old: list[apps_pb2.ReplicaSet]) -> None:
        d, new = await self._sync_new(d, new, old, create=False)
        running = any(
            rs.status.replicas > 0
            or any(p.status.phase not in ("Succeeded", "Failed") for p in self.pods.by_index(BY_OWNER, rs.metadata.uid))
            for rs in old)
        plan = roll.plan_recreate(d, new, old, old_pods_running=running)
        rss = [*([new] if new is not None else []), *old]
        if not plan and not running and new is None:
            d, new = await self._sync_new(d, None, old, create=True)
            assert new is not None
            rss = [new, *old]
        rss = await self._apply(d, rss, plan)
        new = next((rs for rs in rss if new is not None and rs.metadata.uid == new.metadata.uid), None)
        await self._finish(d, rss, new)

    async def _finish(self, d: apps_pb2.Deployment, rss: list[apps_pb2.ReplicaSet],
                      new: apps_pb2.ReplicaSet | None) -> None:
        now = self._now()
        status = dep.compute_status(d, rss, new, now=now)
        if dep.is_complete(d, status):
            await self._cleanup(d, [rs for rs in rss if new is None or rs.metadata.uid != new.metadata.uid])
        await self._write_status(d, status)
        left = dep.deadline_left_s(d, status, now=now)
        if left is not None and left >= 0:
            self.queue.add_after(object_key(d), left + 1.0)

    # The new ReplicaSet and revisions ---------------------------------------------------

    async def _sync_new(
        self, d: apps_pb2.Deployment, new: apps_pb2.ReplicaSet | None,
        old: list[apps_pb2.ReplicaSet], *, create: bool,
    ) -> tuple[apps_pb2.Deployment, apps_pb2.ReplicaSet | None]:
        """Give the new ReplicaSet its revision (creating it when asked); returns fresh copies."""
        revision = dep.next_revision(old)
        if new is not None:
            current: apps_pb2.ReplicaSet = new
            annotations = dep.plan_revision_annotations(current, revision)
            if (annotations != dict(current.metadata.annotations)
                    or current.spec.min_ready_seconds != d.spec.min_ready_seconds):
                rs = _copy(current)
                rs.metadata.annotations.clear()
                rs.metadata.annotations.update(annotations)
                rs.spec.min_ready_seconds = d.spec.min_ready_seconds
                current = await self.client.update(rs)
            if dep.get_condition(d.status, dep.PROGRESSING) is None:
                status = _copy(d.status)
                dep.set_condition(status, dep.PROGRESSING, "True", dep.FOUND_NEW_RS,
                                  f'Found new replica set "{current.metadata.name}"', now=self._now())
                d = await self._write_status(d, status)
            return await self._set_revision(d, dep.revision_of(current)), current
        if not create:
            return d, None
        replicas = roll.new_rs_replicas(d, old, None)
        rs = dep.render_new_replicaset(d, revision=revision, replicas=replicas,
                                       collision_count=d.status.collision_count)
        try:
            created = await self.client.create(rs)
        except AlreadyExists:
            existing = await self.client.get(apps_pb2.ReplicaSet, rs.metadata.name, namespace=d.metadata.namespace)
            ref = rsr.controller_ref(existing)
            if ref is not None and ref.uid == d.metadata.uid and dep.templates_equal(
                    existing.spec.template, d.spec.template):
                return d, existing
            status = _copy(d.status)
            status.collision_count = d.status.collision_count + 1
            await self._write_status(d, status)
            raise Conflict(f"hash collision for {rs.metadata.name}; collisionCount is now "
                           f"{status.collision_count}") from None
        self.recorder.event(d, "Normal", "ScalingReplicaSet",
                            f"Scaled up replica set {created.metadata.name} from 0 to {replicas}")
        status = _copy(d.status)
        dep.set_condition(status, dep.PROGRESSING, "True", dep.NEW_RS_CREATED,
                          f'Created new replica set "{created.metadata.name}"', now=self._now())
        d = await self._write_status(d, status)
        return await self._set_revision(d, revision), created

    async def _set_revision(self, d: apps_pb2.Deployment, revision: int) -> apps_pb2.Deployment:
        if d.metadata.annotations.get(dep.REVISION) == str(revision):
            return d
        new = _copy(d)
        new.metadata.annotations[dep.REVISION] = str(revision)
        return await self.client.update(new)

    # Writes --------------------------------------------------------------------------------

    async def _apply(self, d: apps_pb2.Deployment, rss: list[apps_pb2.ReplicaSet], plan: roll.Plan,
                     *, fix_annotations: bool = False) -> list[apps_pb2.ReplicaSet]:
        """Scale the planned sets (and stamp desired/max-replicas); returns the sets after."""
        wanted = dep.replica_annotations(d)
        out = []
        for rs in rss:
            target = plan.get(rs.metadata.name)
            stale = any(rs.metadata.annotations.get(k) != v for k, v in wanted.items())
            if target is None and not (fix_annotations and stale and dep.replicas_of(rs) > 0):
                out.append(rs)
                continue
            new = _copy(rs)
            before = dep.replicas_of(rs)
            if target is not None:
                new.spec.replicas = target
            new.metadata.annotations.update(wanted)
            updated = await self.client.update(new)
            if target is not None and target != before:
                verb = "up" if target > before else "down"
                self.recorder.event(d, "Normal", "ScalingReplicaSet",
                                    f"Scaled {verb} replica set {rs.metadata.name} from {before} to {target}")
            out.append(updated)
        return out

    async def _cleanup(self, d: apps_pb2.Deployment, old: list[apps_pb2.ReplicaSet]) -> None:
        for rs in dep.plan_cleanup(d, old):
            try:
                await self.client.delete(apps_pb2.ReplicaSet, rs.metadata.name, namespace=rs.metadata.namespace,
                                         precondition_uid=rs.metadata.uid)
            except NotFound:
                continue

    async def _write_status(self, d: apps_pb2.Deployment, status: apps_pb2.DeploymentStatus) -> apps_pb2.Deployment:
        if status == d.status:
            return d
        new = _copy(d)
        new.status.CopyFrom(status)
        try:
            return await self.client.update_status(new)
        except Conflict:
            # Most often our own previous write that the informer has not shown
            # yet; the status is still right for the same generation.
            fresh = await self.client.get(apps_pb2.Deployment, d.metadata.name, namespace=d.metadata.namespace)
            if fresh.metadata.uid != d.metadata.uid or fresh.metadata.generation != d.metadata.generation:
                raise
            fresh.status.CopyFrom(status)
            return await self.client.update_status(fresh)
