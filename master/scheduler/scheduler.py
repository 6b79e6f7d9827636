"""The scheduler component: informers in, Bindings and conditions out.

`Scheduler(client).run(ready=...)` watches pods and nodes (shared informers
when given, its own otherwise), keeps the cache (cache.py) current from
the informer handlers, and runs the loop: pop a pending pod from the queue
(queue.py), decide with the pure `compute_decision` on an immutable
snapshot, then
  * a node fits: assume the pod there in the cache, and on a task of its own
    bind it through the `binding` subresource with the explanation as a
    Binding annotation (the apiserver copies it onto the pod), then a
    Normal "Scheduled" Event; a failed bind forgets the assumption and the
    pod is retried after its backoff;
  * nothing fits: park the pod until the cluster changes, set
    PodScheduled=False/Unschedulable with Kubernetes' aggregate message,
    write the explanation annotation and a Warning "FailedScheduling" Event.
It decides nothing itself (algorithm.py and the plugins do) and owns no
state beyond the cache and the queue. Handlers only update the cache and
enqueue keys; they never block.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from master.client.clock import Clock, RealClock
from master.client.errors import APIError, Conflict, NotFound
from master.client.events import NORMAL, WARNING, EventRecorder
from master.client.informer import InformerFactory
from master.client.store import object_key
from master.scheduler.algorithm import Decision, compute_decision
from master.scheduler.cache import SchedulerCache
from master.scheduler.explanation import ANNOTATION, render_explanation, same_explanation
from master.scheduler.framework import Profile
from master.scheduler.plugins import default_profile
from master.scheduler.queue import QueueClosed, SchedulingQueue
from master.scheduler.snapshot import PodInfo, node_ready_status
from protos.core.v1 import core_pb2

log = logging.getLogger("flotilla.scheduler")

DEFAULT_SCHEDULER = "default-scheduler"
TERMINAL_PHASES = ("Succeeded", "Failed")


def is_responsible(pod: Any, scheduler_name: str = DEFAULT_SCHEDULER) -> bool:
    return pod.spec.scheduler_name in ("", scheduler_name)


def is_pending(pod: Any) -> bool:
    """Unscheduled, alive and not gated (spec.schedulingGates): what the queue holds."""
    return (not pod.spec.node_name and not pod.metadata.HasField("deletion_timestamp")
            and pod.status.phase not in TERMINAL_PHASES and not pod.spec.scheduling_gates)


def node_change_matters(old: Any, new: Any) -> bool:
    """Whether a node update could make a parked pod fit (heartbeats do not)."""
    return (old.metadata.labels != new.metadata.labels or old.spec != new.spec
            or old.status.allocatable != new.status.allocatable
            or node_ready_status(old) != node_ready_status(new))


def pod_change_matters(old: Any, new: Any) -> bool:
    """Whether a pending pod's update could change where it fits (our own writes do not)."""
    return old.spec != new.spec or old.metadata.labels != new.metadata.labels


class Scheduler:
    """Kubernetes' default-scheduler, with every decision kept on the pod."""

    def __init__(
        self,
        client: Any,
        *,
        clock: Clock | None = None,
        seed: int | None = None,
        recorder: EventRecorder | None = None,
        informers: InformerFactory | None = None,
        profile: Profile | None = None,
        scheduler_name: str = DEFAULT_SCHEDULER,
        initial_backoff_s: float = 1.0,
        max_backoff_s: float = 10.0,
        percentage_of_nodes_to_score: int = 0,
    ) -> None:
        self.client = client
        self.clock: Clock = clock or RealClock()
        self.rng = random.Random(seed)
        self.scheduler_name = scheduler_name
        self.profile = profile or default_profile()
        self._own_recorder = recorder is None
        self.recorder = recorder or EventRecorder(client, scheduler_name, clock=self.clock)
        self._own_informers = informers is None
        self.informers = informers or InformerFactory(client.lister_watcher, clock=self.clock)
        self.pods = self.informers.informer(core_pb2.Pod)
        self.nodes = self.informers.informer(core_pb2.Node)
        self.cache = SchedulerCache()
        self.queue = SchedulingQueue(clock=self.clock, initial_backoff_s=initial_backoff_s,
                                     max_backoff_s=max_backoff_s)
        # Kubernetes' percentageOfNodesToScore (0: adaptive; every node up to 100
        # nodes); the search starts where the previous one stopped.
        self.percentage_of_nodes_to_score = percentage_of_nodes_to_score
        self._next_start = 0
        self.scheduled = 0  # binds that succeeded (benchmarks, tests)
        self.nodes.add_handler(on_add=self._node_added, on_update=self._node_updated,
                               on_delete=self._node_deleted)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated,
                              on_delete=self._pod_deleted)

    async def run(self, *, ready: asyncio.Event | None = None) -> None:
        """Schedule until cancelled; `ready` is set once pods and nodes are listed."""
        try:
            async with asyncio.TaskGroup() as tg:
                if self._own_informers:
                    tg.create_task(self.informers.run(), name="scheduler-informers")
                if self._own_recorder:
                    tg.create_task(self.recorder.run(), name="scheduler-events")
                await self.pods.wait_synced()
                await self.nodes.wait_synced()
                if ready is not None:
                    ready.set()
                tg.create_task(self._expire_assumed(), name="scheduler-assume-expiry")
                await self._loop(tg)
        finally:
            self.queue.close()

    # Informer handlers: cache updates and enqueues only ---------------------------------

    def _node_added(self, node: Any) -> None:
        self.cache.set_node(node)
        self.queue.move_all("NodeAdd")

    def _node_updated(self, old: Any, new: Any) -> None:
        self.cache.set_node(new)
        if node_change_matters(old, new):
            self.queue.move_all("NodeUpdate")

    def _node_deleted(self, node: Any) -> None:
        self.cache.remove_node(node.metadata.name)

    def _pod_added(self, pod: Any) -> None:
        key = object_key(pod)
        if pod.spec.node_name:
            if pod.status.phase not in TERMINAL_PHASES:
                self.cache.set_pod(pod)
        elif is_pending(pod) and is_responsible(pod, self.scheduler_name):
            self.queue.add(key, priority=pod.spec.priority)

    def _pod_updated(self, old: Any, new: Any) -> None:
        key = object_key(new)
        if new.spec.node_name:
            self.queue.delete(key)
            if new.status.phase in TERMINAL_PHASES:
                self.cache.remove_pod(key)
                self.queue.move_all("PodTerminated")
            elif (not old.spec.node_name or self.cache.is_assumed(key)
                  or pod_change_matters(old, new) or self.cache.node_of(key) is None):
                self.cache.set_pod(new)
        elif not is_pending(new):
            self.queue.delete(key)
        elif is_responsible(new, self.scheduler_name) and pod_change_matters(old, new):
            self.queue.add(key, priority=new.spec.priority)

    def _pod_deleted(self, pod: Any) -> None:
        key = object_key(pod)
        self.queue.delete(key)
        if self.cache.node_of(key) is not None:
            self.cache.remove_pod(key)
            self.queue.move_all("PodDelete")

    # The loop ----------------------------------------------------------------------------

    async def _loop(self, tg: asyncio.TaskGroup) -> None:
        while True:
            try:
                key, cycle = await self.queue.pop()
            except QueueClosed:
                return
            try:
                self._schedule_one(key, cycle, tg)
            except Exception:
                log.exception("scheduling cycle crashed", extra={"pod": key})
                self.queue.add_backoff(key)
            await asyncio.sleep(0)  # let handlers and binds run between cycles

    def _schedule_one(self, key: str, cycle: int, tg: asyncio.TaskGroup) -> None:
        pod = self.pods.get(key)
        if (pod is None or not is_pending(pod) or not is_responsible(pod, self.scheduler_name)
                or self.cache.is_assumed(key)):
            self.queue.done(key)
            return
        snapshot = self.cache.snapshot()
        decision = compute_decision(PodInfo.of(pod), snapshot, self.profile, self.rng,
                                    start=self._next_start,
                                    percentage=self.percentage_of_nodes_to_score)
        if snapshot.nodes:
            self._next_start = (self._next_start + len(decision.verdicts)) % len(snapshot.nodes)
        explanation = render_explanation(decision, at=self.clock.wall())
        if decision.node is not None:
            self.cache.assume(pod, decision.node)
            tg.create_task(self._bind(pod, decision.node, explanation))
        else:
            self.queue.add_unschedulable(key, cycle)
            tg.create_task(self._record_unschedulable(pod, decision, explanation))

    async def _bind(self, pod: Any, node: str, explanation: str) -> None:
        key = object_key(pod)
        ns, name = pod.metadata.namespace, pod.metadata.name
        try:
            await self.client.bind(ns, name, node_name=node, annotations={ANNOTATION: explanation})
        except (NotFound, Conflict) as exc:
            # Deleted, being deleted, or bound by someone else: nothing to retry.
            log.info("bind refused", extra={"pod": key, "node": node, "error": str(exc)})
            self.cache.forget(key)
            self.queue.done(key)
            return
        except Exception as exc:  # noqa: BLE001 - any failure is a retry, never a crash
            log.warning("bind failed, retrying", extra={"pod": key, "node": node, "error": str(exc)})
            self.cache.forget(key)
            self.queue.add_backoff(key)
            return
        self.cache.finish_binding(key, now=self.clock.now())
        self.queue.done(key)
        self.scheduled += 1
        self.recorder.event(pod, NORMAL, "Scheduled", f"Successfully assigned {ns}/{name} to {node}")

    async def _record_unschedulable(self, pod: Any, decision: Decision, explanation: str) -> None:
        self.recorder.event(pod, WARNING, "FailedScheduling", decision.message)
        key = object_key(pod)
        current = self.pods.get(key) or pod
        for _ in range(3):
            try:
                await self._write_unschedulable(current, decision.message, explanation)
                return
            except Conflict:
                # Someone wrote the pod meanwhile: re-read, and write only if it
                # is still pending (a bind that won must not be overwritten).
                try:
                    current = await self.client.get(core_pb2.Pod, pod.metadata.name,
                                                    namespace=pod.metadata.namespace)
                except APIError:
                    return
                if not is_pending(current):
                    return
            except APIError as exc:
                log.info("could not record unschedulable pod", extra={"pod": key, "error": str(exc)})
                return

    async def _write_unschedulable(self, current: Any, message: str, explanation: str) -> None:
        if not same_explanation(current.metadata.annotations.get(ANNOTATION, ""), explanation):
            changed = core_pb2.Pod()
            changed.CopyFrom(current)
            changed.metadata.annotations[ANNOTATION] = explanation
            current = await self.client.update(changed)
        if _needs_condition(current, message):
            changed = core_pb2.Pod()
            changed.CopyFrom(current)
            _set_unschedulable(changed, message, self.clock)
            await self.client.update_status(changed)

    async def _expire_assumed(self) -> None:
        while True:
            await self.clock.sleep(1.0)
            for key in self.cache.cleanup_expired(now=self.clock.now()):
                pod = self.pods.get(key)
                if pod is not None and is_pending(pod):
                    self.queue.add(key)


def _needs_condition(pod: Any, message: str) -> bool:
    for c in pod.status.conditions:
        if c.type == "PodScheduled":
            return not (c.status == "False" and c.reason == "Unschedulable" and c.message == message)
    return True


def _set_unschedulable(pod: Any, message: str, clock: Clock) -> None:
    for c in pod.status.conditions:
        if c.type == "PodScheduled":
            cond = c
            break
    else:
        cond = pod.status.conditions.add()
        cond.type = "PodScheduled"
    if cond.status != "False":
        cond.last_transition_time.FromDatetime(clock.wall().replace(microsecond=0))
    cond.status = "False"
    cond.reason = "Unschedulable"
    cond.message = message
    if not pod.status.phase:
        pod.status.phase = "Pending"
