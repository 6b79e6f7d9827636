"""The ReplicaSet controller: keeps `spec.replicas` pods of a ReplicaSet running.

Owns the executor around master/reconcile/replicaset.py: it reads the set
and its namespace's pods from the shared informers, applies the plan
(adopt / release through pod updates, create pods in slow-start batches,
delete the ranked victims) and writes status through the status
subresource. The ReplicationController controller (replicationcontroller.py)
is this class with another kind plugged in (`OwnerKind`).

Expectations (Kubernetes' ControllerExpectations): after creating or
deleting pods, the controller does not act on the set again until the
informer has shown it those creates and deletes (or `EXPECTATIONS_TTL_S`
has passed), so a slow watch never makes it create a second batch. Only
the worker that synced the key changes its expectations; informer
handlers only lower them.

It must not decide anything itself: every decision is in the reconciler.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

from master.client.clock import Clock
from master.client.errors import APIError, Conflict, NotFound
from master.client.store import object_key, split_key
from master.controllers.base import Controller, ControllerContext
from master.reconcile import replicaset as rs
from master.reconcile.workloadpods import without_owner
from protos.apps.v1 import apps_pb2
from protos.core.v1 import core_pb2
from protos.meta.v1 import meta_pb2

log = logging.getLogger("flotilla.controllers.replicaset")

EXPECTATIONS_TTL_S = 300.0
BY_NAMESPACE = "namespace"


@dataclass
class _Expected:
    adds: int = 0
    deletes: set[str] = field(default_factory=set)  # pod uids
    at: float = 0.0


class Expectations:
    """Creates and deletes an owner is still waiting to see, by owner key."""

    def __init__(self, clock: Clock, *, ttl_s: float = EXPECTATIONS_TTL_S) -> None:
        self.clock = clock
        self.ttl_s = ttl_s
        self._by_key: dict[str, _Expected] = {}

    def satisfied(self, key: str) -> bool:
        e = self._by_key.get(key)
        if e is None:
            return True
        if (e.adds <= 0 and not e.deletes) or self.clock.now() - e.at > self.ttl_s:
            return True
        return False

    def expect(self, key: str, *, adds: int = 0, deletes: set[str] | None = None) -> None:
        self._by_key[key] = _Expected(adds, set(deletes or ()), self.clock.now())

    def creation_observed(self, key: str) -> None:
        self.lower_adds(key, 1)

    def lower_adds(self, key: str, count: int) -> None:
        e = self._by_key.get(key)
        if e is not None:
            e.adds -= count

    def deletion_observed(self, key: str, uid: str) -> None:
        e = self._by_key.get(key)
        if e is not None:
            e.deletes.discard(uid)

    def forget(self, key: str) -> None:
        self._by_key.pop(key, None)


def _namespace_index(obj: Any) -> list[str]:
    return [obj.metadata.namespace]


def ensure_index(informer: Any, name: str, fn: Any) -> None:
    """Add an index to a shared informer unless another controller already did.

    Informers are shared, so two controllers asking for the same index is
    normal; an index name means the same function everywhere here.
    """
    try:
        informer.add_index(name, fn)
    except ValueError:
        pass


class ReplicaSetController(Controller):
    name: ClassVar[str] = "replicaset"
    owner_cls: ClassVar[type[Any]] = apps_pb2.ReplicaSet
    owner_api_version: ClassVar[str] = "apps/v1"
    owner_kind: ClassVar[str] = "ReplicaSet"
    workers: ClassVar[int] = 4

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.expectations = Expectations(ctx.clock)
        # key -> (reason, message) of the last failed create/delete (ReplicaFailure).
        self._failures: dict[str, tuple[str, str]] = {}
        self.burst = int(ctx.option(self.name, "burst_replicas", rs.BURST_REPLICAS))
        self.owners = ctx.informers.informer(self.owner_cls)
        self.pods = ctx.informers.informer(core_pb2.Pod)
        ensure_index(self.owners, BY_NAMESPACE, _namespace_index)
        ensure_index(self.pods, BY_NAMESPACE, _namespace_index)
        self.owners.add_handler(on_add=self.enqueue, on_update=self._owner_updated,
                                on_delete=self._owner_deleted)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated,
                              on_delete=self._pod_deleted)

    # Kind plumbing (overridden by the ReplicationController controller) ----------

    def selector_of(self, owner: Any) -> meta_pb2.LabelSelector:
        return owner.spec.selector  # type: ignore[no-any-return]

    def new_status(self, owner: Any, counts: rs.ReplicaCounts) -> Any:
        status = type(owner.status)()
        status.CopyFrom(owner.status)
        status.replicas = counts.replicas
        status.fully_labeled_replicas = counts.fully_labeled_replicas
        status.ready_replicas = counts.ready_replicas
        status.available_replicas = counts.available_replicas
        status.observed_generation = owner.metadata.generation
        failure = self._failures.get(object_key(owner))
        kept = [c for c in status.conditions if c.type != "ReplicaFailure"]
        old = next((c for c in status.conditions if c.type == "ReplicaFailure"), None)
        del status.conditions[:]
        status.conditions.extend(kept)
        if failure is not None:
            reason, message = failure
            cond = status.conditions.add(type="ReplicaFailure", status="True", reason=reason, message=message)
            if old is not None and old.status == "True":
                cond.last_transition_time.CopyFrom(old.last_transition_time)
            else:
                cond.last_transition_time.FromDatetime(self.clock.wall())
        return status

    # Handlers (enqueue only) -----------------------------------------------------

    def _owner_updated(self, old: Any, new: Any) -> None:
        self.enqueue(new)

    def _owner_deleted(self, owner: Any) -> None:
        self.expectations.forget(object_key(owner))
        self._failures.pop(object_key(owner), None)
        self.enqueue(owner)

    def _owner_key_of(self, pod: core_pb2.Pod) -> str | None:
        ref = rs.controller_ref(pod)
        if ref is None or ref.kind != self.owner_kind:
            return None
        owner = self.owners.get(f"{pod.metadata.namespace}/{ref.name}")
        if owner is None or owner.metadata.uid != ref.uid:
            return None
        return object_key(owner)

    def _enqueue_matching(self, pod: core_pb2.Pod) -> None:
        """An orphan changed: every set that might adopt it takes a look."""
        for owner in self.owners.by_index(BY_NAMESPACE, pod.metadata.namespace):
            sel = self.selector_of(owner)
            if not rs.selector_is_empty(sel) and rs.selector_matches(sel, pod.metadata.labels):
                self.enqueue(owner)

    def _pod_added(self, pod: core_pb2.Pod) -> None:
        if pod.metadata.HasField("deletion_timestamp"):
            self._pod_deleted(pod)
            return
        key = self._owner_key_of(pod)
        if key is not None:
            self.expectations.creation_observed(key)
            self.queue.add(key)
        elif rs.controller_ref(pod) is None:
            self._enqueue_matching(pod)

    def _pod_updated(self, old: core_pb2.Pod, new: core_pb2.Pod) -> None:
        if new.metadata.HasField("deletion_timestamp"):
            self._pod_deleted(new)
            return
        old_key, new_key = self._owner_key_of(old), self._owner_key_of(new)
        if old_key is not None and old_key != new_key:
            self.queue.add(old_key)
        if new_key is not None:
            self.queue.add(new_key)
            if not rs.is_pod_ready(old) and rs.is_pod_ready(new):
                owner = self.owners.get(new_key)
                if owner is not None and owner.spec.min_ready_seconds > 0:
                    # Ready now, available after minReadySeconds: look again then.
                    self.queue.add_after(new_key, owner.spec.min_ready_seconds + 1)
        elif rs.controller_ref(new) is None and (
            old.metadata.labels != new.metadata.labels or rs.controller_ref(old) is not None
        ):
            self._enqueue_matching(new)

    def _pod_deleted(self, pod: core_pb2.Pod) -> None:
        key = self._owner_key_of(pod)
        if key is not None:
            self.expectations.deletion_observed(key, pod.metadata.uid)
            self.queue.add(key)

    # Sync ------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        owner = self.owners.get(key)
        if owner is None:
            self.expectations.forget(key)
            return
        namespace, _ = split_key(key)
        claims = rs.plan_claims(owner, self.pods.by_index(BY_NAMESPACE, namespace), self.selector_of(owner))
        owned = list(claims.owned)
        owned += await self._adopt(owner, claims.adopt)
        await self._release(owner, claims.release)
        active = [p for p in owned if rs.is_pod_active(p)]
        failure: APIError | None = None
        if self.expectations.satisfied(key) and not owner.metadata.HasField("deletion_timestamp"):
            desired = owner.spec.replicas if owner.spec.HasField("replicas") else 1
            plan = rs.plan_replicas(desired, active, burst=self.burst)
            try:
                if plan.create:
                    await self._create(owner, key, plan.create)
                elif plan.delete:
                    await self._delete(owner, key, plan.delete)
                self._failures.pop(key, None)
            except APIError as exc:
                failure = exc
                self._failures[key] = (("FailedCreate" if plan.create else "FailedDelete"), str(exc))
        await self._write_status(owner, active)
        if failure is not None:
            raise failure  # backoff, after the ReplicaFailure condition is written

    async def _adopt(self, owner: Any, pods: list[core_pb2.Pod]) -> list[core_pb2.Pod]:
        adopted = []
        for pod in pods:
            new = core_pb2.Pod()
            new.CopyFrom(pod)
            new.metadata.owner_references.append(
                rs.owner_reference(owner, api_version=self.owner_api_version, kind=self.owner_kind))
            try:
                adopted.append(await self.client.update(new))
            except (Conflict, NotFound):
                continue  # changed or gone meanwhile: the next sync sees it
        return adopted

    async def _release(self, owner: Any, pods: list[core_pb2.Pod]) -> None:
        for pod in pods:
            new = without_owner(pod, owner.metadata.uid)
            if new is None:
                continue
            try:
                await self.client.update(new)
            except (Conflict, NotFound):
                continue

    async def _create(self, owner: Any, key: str, count: int) -> None:
        self.expectations.expect(key, adds=count)
        pod = rs.render_pod(owner, owner.spec.template, api_version=self.owner_api_version,
                            kind=self.owner_kind)
        created = 0
        try:
            for batch in rs.slow_start_batches(count):
                results = await asyncio.gather(*(self.client.create(pod) for _ in range(batch)),
                                               return_exceptions=True)
                failures = [r for r in results if isinstance(r, BaseException)]
                for r in results:
                    if not isinstance(r, BaseException):
                        created += 1
                        self.recorder.event(owner, "Normal", "SuccessfulCreate",
                                            f"Created pod: {r.metadata.name}")
                if failures:
                    error = failures[0]
                    self.recorder.event(owner, "Warning", "FailedCreate", f"Error creating: {error}")
                    raise error
        finally:
            # Creates that never happened will never be observed.
            self.expectations.lower_adds(key, count - created)

    async def _delete(self, owner: Any, key: str, pods: list[core_pb2.Pod]) -> None:
        self.expectations.expect(key, deletes={p.metadata.uid for p in pods})
        results = await asyncio.gather(
            *(self.client.delete(core_pb2.Pod, p.metadata.name, namespace=p.metadata.namespace,
                                 precondition_uid=p.metadata.uid) for p in pods),
            return_exceptions=True)
        for pod, r in zip(pods, results, strict=True):
            if isinstance(r, NotFound):
                self.expectations.deletion_observed(key, pod.metadata.uid)
            elif isinstance(r, BaseException):
                self.expectations.deletion_observed(key, pod.metadata.uid)
                self.recorder.event(owner, "Warning", "FailedDelete", f"Error deleting: {r}")
                if isinstance(r, APIError):
                    raise r
            else:
                self.recorder.event(owner, "Normal", "SuccessfulDelete", f"Deleted pod: {pod.metadata.name}")

    async def _write_status(self, owner: Any, active: list[core_pb2.Pod]) -> None:
        now = self.clock.wall().timestamp()
        min_ready = owner.spec.min_ready_seconds
        counts = rs.compute_status(active, owner.spec.template.metadata.labels,
                                   min_ready_seconds=min_ready, now=now)
        status = self.new_status(owner, counts)
        wait_s = rs.seconds_until_available(active, min_ready, now)
        if wait_s is not None:
            self.queue.add_after(object_key(owner), wait_s + 0.5)
        if status == owner.status and owner.status.HasField("replicas"):
            return
        new = type(owner)()
        new.CopyFrom(owner)
        new.status.CopyFrom(status)
        try:
            try:
                await self.client.update_status(new)
            except Conflict:
                # Usually our own last write, not yet in the informer (Kubernetes'
                # updateReplicaSetStatus does the same): the counts come from the
                # pods, so they hold for the fresh copy of the same generation.
                fresh = await self.client.get(type(owner), owner.metadata.name, namespace=owner.metadata.namespace)
                if fresh.metadata.uid != owner.metadata.uid or fresh.metadata.generation != owner.metadata.generation:
                    raise
                fresh.status.CopyFrom(status)
                await self.client.update_status(fresh)
        except NotFound:
            return
