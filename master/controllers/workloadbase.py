"""What the DaemonSet, StatefulSet, Job and CronJob controllers share.

`OwnerController` watches an owner kind and the child kind it makes (Pods,
or Jobs for CronJob). A child change enqueues its controlling owner; `sync`
re-reads the owner, gives its children (found through an index on the
controller ownerReference's uid) to the subclass's pure `plan`, and applies
the returned `Plan`: deletes, creates, the status (only when it changed),
Events, and a delayed requeue.

Expectations (client-go's ControllerExpectations, in their simplest form):
after writing, a key is not planned again until the informer shows what was
written (created children present, deleted ones gone or terminating) or
`expectation_timeout_s` passes. Without it a lagging informer would make a
controller create a pod twice.

Does no deciding: everything about what to create or delete is in
master/reconcile. Never mutates informer objects: status goes on a copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from master.client.errors import AlreadyExists, APIError, NotFound
from master.client.events import NORMAL, WARNING
from master.client.informer import Informer
from master.controllers.base import Controller, ControllerContext
from master.reconcile.workloadpods import Plan, controller_of, copy_message

OWNER_UID_INDEX = "flotilla.workloads/controller-uid"


def _owner_uids(obj: Any) -> list[str]:
    ref = controller_of(obj)
    return [ref.uid] if ref is not None else []


def ensure_owner_index(informer: Informer[Any]) -> None:
    """The shared 'children by controller uid' index (several controllers ask for it)."""
    try:
        informer.add_index(OWNER_UID_INDEX, _owner_uids)
    except ValueError:
        pass  # another workload controller added it to the shared informer first


@dataclass
class _Expectation:
    namespace: str
    created: set[str]
    deleted: set[str]
    deadline: float


class OwnerController(Controller):
    owner_cls: ClassVar[type[Any]]
    child_cls: ClassVar[type[Any]]
    owner_kind: ClassVar[str] = ""
    expectation_timeout_s: ClassVar[float] = 60.0

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.owners: Informer[Any] = ctx.informers.informer(self.owner_cls)
        self.children: Informer[Any] = ctx.informers.informer(self.child_cls)
        ensure_owner_index(self.children)
        self.owners.add_handler(**self.enqueue_handlers())
        self.children.add_handler(on_add=self._on_child,
                                  on_update=self._on_child_update,
                                  on_delete=self._on_child)
        self._expectations: dict[str, _Expectation] = {}

    # --- subclass hooks -------------------------------------------------------------

    def plan(self, owner: Any, children: list[Any]) -> Plan:
        raise NotImplementedError

    def create_message(self, owner: Any, name: str) -> str:
        return f"Created pod: {name}"

    def delete_message(self, owner: Any, name: str) -> str:
        return f"Deleted pod: {name}"

    async def after_apply(self, owner: Any, plan: Plan) -> None:
        """Anything beyond children and status (the Job's TTL deletion)."""

    def add_created(self, status: Any, created: Any) -> None:
        """Record a created child in the status (CronJob's active list)."""

    # --- the loop ----------------------------------------------------------------------

    def _on_child_update(self, old: Any, new: Any) -> None:
        self._on_child(old)  # an ownerReference may have changed: both owners look
        self._on_child(new)

    def _on_child(self, child: Any) -> None:
        ref = controller_of(child)
        if ref is not None and ref.kind == self.owner_kind:
            self.queue.add(f"{child.metadata.namespace}/{ref.name}")

    def children_of(self, owner: Any) -> list[Any]:
        return [c for c in self.children.by_index(OWNER_UID_INDEX, owner.metadata.uid)
                if c.metadata.namespace == owner.metadata.namespace]

    def _satisfied(self, key: str) -> bool:
        exp = self._expectations.get(key)
        if exp is None:
            return True
        done = self.clock.now() >= exp.deadline
        if not done:
            seen = all(self.children.get(f"{exp.namespace}/{n}") is not None for n in exp.created)
            gone = all((c := self.children.get(f"{exp.namespace}/{n}")) is None
                       or c.metadata.HasField("deletion_timestamp") for n in exp.deleted)
            done = seen and gone
        if done:
            del self._expectations[key]
        return done

    async def sync(self, key: str) -> None:
        owner = self.owners.get(key)
        if owner is None:
            self._expectations.pop(key, None)
            return
        if owner.metadata.HasField("deletion_timestamp"):
            return  # being deleted: the garbage collector removes its children, nothing is made
        if not self._satisfied(key):
            self.queue.add_after(key, 1.0)  # a lost watch event must not wedge the key
            return
        plan = self.plan(owner, self.children_of(owner))
        await self.apply(owner, plan, key)

    async def apply(self, owner: Any, plan: Plan, key: str) -> None:
        namespace = owner.metadata.namespace
        deleted: set[str] = set()
        created: set[str] = set()
        status = copy_message(plan.status) if plan.status is not None else None
        try:
            deletes = [(n, None) for n in plan.deletes] + [(n, 0) for n in plan.force_deletes]
            for name, grace in dict.fromkeys(deletes):
                try:
                    await self.client.delete(self.child_cls, name, namespace=namespace,
                                             propagation_policy="Background",
                                             grace_period_seconds=grace)
                except NotFound:
                    continue
                deleted.add(name)
                self.recorder.event(owner, NORMAL, "SuccessfulDelete", self.delete_message(owner, name))
            for child in plan.creates:
                try:
                    made = await self.client.create(child)
                except AlreadyExists:
                    continue  # a deterministic name: it was made before
                except APIError as exc:
                    self.recorder.event(owner, WARNING, "FailedCreate",
                                        f"Error creating: {exc}")
                    raise
                created.add(made.metadata.name)
                if status is not None:
                    self.add_created(status, made)
                self.recorder.event(owner, NORMAL, "SuccessfulCreate",
                                    self.create_message(owner, made.metadata.name))
        finally:
            if created or deleted:
                self._expectations[key] = _Expectation(
                    namespace, created, deleted, self.clock.now() + self.expectation_timeout_s)
        for type_, reason, message in plan.events:
            self.recorder.event(owner, type_, reason, message)
        if status is not None and status.SerializeToString(deterministic=True) != \
                owner.status.SerializeToString(deterministic=True):
            updated = copy_message(owner)
            updated.status.CopyFrom(status)
            await self.client.update_status(updated)
        await self.after_apply(owner, plan)
        if plan.requeue_after_s is not None:
            self.queue.add_after(key, plan.requeue_after_s)
