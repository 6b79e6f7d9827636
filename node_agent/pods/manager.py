"""PodManager: the pods bound to this node, one serialized worker per pod.

Owns: the set of desired pods (from the node API's pod stream: `set_pods`
after a (re)list, `upsert_pod`, `remove_pod`), one PodWorker task per pod uid,
recovery at start (what Docker's labels show for this node), a relist loop that
wakes a worker when its containers change (kubelet's PLEG), and garbage
collection of Flotilla containers that no pod claims (only this node's label,
and only after the first full list, so a restarted agent never removes a pod it
simply has not heard of yet).
Must not: plan or run containers itself (node_agent.pods.worker does, with
node_agent.pods.actions deciding), or talk to the master except through NodeAPI.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from master.client.clock import Clock, RealClock
from node_agent.network.interface import PodNetwork
from node_agent.pods.api import NodeAPI, Pod
from node_agent.pods.backoff import BackoffPolicy
from node_agent.pods.volumes import teardown_volumes
from node_agent.pods.worker import PodWorker
from node_agent.runtime import errors
from node_agent.runtime.interface import LABEL_NODE, LABEL_POD_UID, ContainerRuntime
from protos.core.v1 import core_pb2

log = logging.getLogger(__name__)


class EventSink(Protocol):
    """What master.client.events.EventRecorder offers; event() only enqueues."""

    def event(self, obj: Any, type_: str, reason: str, message: str) -> None: ...


class PodManager:
    def __init__(
        self,
        runtime: ContainerRuntime,
        network: PodNetwork,
        api: NodeAPI,
        *,
        node_name: str,
        clock: Clock | None = None,
        backoff_initial_s: float = 10.0,
        backoff_max_s: float = 300.0,
        backoff_reset_s: float = 600.0,
        relist_period_s: float = 1.0,
        volume_resync_s: float = 10.0,
        root_dir: str = "/var/lib/flotilla",
        host_ip: str = "",
        registry_configured: bool = False,
        cluster_dns: tuple[str, ...] = (),
        cluster_domain: str = "cluster.local",
        events: EventSink | None = None,
    ) -> None:
        self.runtime = runtime
        self.network = network
        self.api = api
        self.node_name = node_name
        self.clock = clock or RealClock()
        self.backoff_policy = BackoffPolicy(initial_s=backoff_initial_s, max_s=backoff_max_s,
                                            reset_s=backoff_reset_s)
        self.relist_period_s = relist_period_s
        self.volume_resync_s = volume_resync_s
        self.root_dir = root_dir
        self.host_ip = host_ip
        self.registry_configured = registry_configured
        # Pods' resolv.conf: the cluster DNS service address(es); empty = the node's resolver.
        self.cluster_dns = tuple(cluster_dns)
        self.cluster_domain = cluster_domain
        # Where Events go (master.client.events.EventRecorder, component "kubelet"); None: nowhere.
        self.events = events
        self.workers: dict[str, PodWorker] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._pending: dict[str, Pod] = {}
        self._listed = False
        self._running = False
        self._fingerprints: dict[str, tuple[tuple[str, str, int], ...]] = {}
        self.recovered_uids: set[str] = set()
        self.orphans_removed: list[str] = []

    # ---------------------------------------------------------------- lifecycle
    async def run(self, *, ready: asyncio.Event | None = None) -> None:
        """Recover from Docker labels, set `ready`, then keep workers in step until cancelled."""
        mine = {LABEL_NODE: self.node_name}
        sandboxes = await self.runtime.list_pod_sandboxes(mine)
        containers = await self.runtime.list_containers(mine)
        self.recovered_uids = {s.labels.get(LABEL_POD_UID, "") for s in sandboxes} | {
            c.labels.get(LABEL_POD_UID, "") for c in containers}
        self.recovered_uids.discard("")
        log.info("pod manager: %d pods found in the runtime for node %s", len(self.recovered_uids), self.node_name)
        self._running = True
        try:
            for pod in list(self._pending.values()):
                self._start_worker(pod)
            self._pending.clear()
            if ready is not None:
                ready.set()
            await self._relist_loop()
        finally:
            self._running = False
            tasks = list(self._tasks.values())
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _relist_loop(self) -> None:
        while True:
            await self.clock.sleep(self.relist_period_s)
            try:
                await self.relist()
            except errors.RuntimeError_ as exc:
                log.warning("pod manager: relist failed: %s", exc)
            except Exception:  # e.g. an orphan's network or volume teardown: retried next round, agent stays up
                log.exception("pod manager: relist failed")

    async def relist(self) -> None:
        """One PLEG round: wake workers whose containers changed; remove unclaimed pods."""
        mine = {LABEL_NODE: self.node_name}
        containers = await self.runtime.list_containers(mine)
        sandboxes = await self.runtime.list_pod_sandboxes(mine)
        prints: dict[str, list[tuple[str, str, int]]] = {}
        for c in containers:
            prints.setdefault(c.labels.get(LABEL_POD_UID, ""), []).append((c.id, c.state.value, c.exit_code))
        for s in sandboxes:
            prints.setdefault(s.labels.get(LABEL_POD_UID, ""), []).append((s.id, s.state.value, 0))
        fingerprints = {uid: tuple(sorted(p)) for uid, p in prints.items()}
        for uid, fp in fingerprints.items():
            if fp != self._fingerprints.get(uid) and uid in self.workers:
                self.workers[uid].wake.set()
        self._fingerprints = fingerprints
        if self._listed:
            for uid in fingerprints:
                if uid and uid not in self.workers:
                    await self._remove_orphan(uid)

    async def _remove_orphan(self, uid: str) -> None:
        log.info("pod manager: removing containers of pod %s, which no pod on this node claims", uid)
        want = {LABEL_NODE: self.node_name, LABEL_POD_UID: uid}
        for c in await self.runtime.list_containers(want):
            await self.runtime.stop_container(c.id, 0)
            await self.runtime.remove_container(c.id)
        sandboxes = await self.runtime.list_pod_sandboxes(want)
        for s in sandboxes:
            await self.runtime.stop_pod_sandbox(s.id)
        # Network and volumes before the sandboxes go: if either fails, the
        # sandbox is still there and the next relist tries the whole removal again.
        await self.network.teardown_pod(pod_uid=uid)
        await asyncio.to_thread(teardown_volumes, self.root_dir, uid)
        for s in sandboxes:
            await self.runtime.remove_pod_sandbox(s.id)
        self.orphans_removed.append(uid)

    # ------------------------------------------------------------- pod updates
    def set_pods(self, pods: Iterable[Pod]) -> None:
        """The full set bound to this node (after a (re)list); pods not in it are removed."""
        desired = {p.metadata.uid: p for p in pods}
        for uid in list(self.workers) + list(self._pending):
            if uid not in desired:
                self.remove_pod(uid)
        for pod in desired.values():
            self.upsert_pod(pod)
        self._listed = True

    def upsert_pod(self, pod: Pod) -> None:
        if pod.spec.node_name and pod.spec.node_name != self.node_name:
            return
        uid = pod.metadata.uid
        worker = self.workers.get(uid)
        if worker is not None:
            worker.update(pod)
        elif not self._running:
            self._pending[uid] = pod
        else:
            self._start_worker(pod)

    def remove_pod(self, uid: str) -> None:
        """The pod object is gone from the API: stop its containers and forget it."""
        self._pending.pop(uid, None)
        worker = self.workers.get(uid)
        if worker is not None:
            worker.remove()

    def _start_worker(self, pod: Pod) -> None:
        uid = pod.metadata.uid
        worker = PodWorker(self, pod)
        self.workers[uid] = worker
        task = asyncio.create_task(worker.run(), name=f"pod-worker-{pod.metadata.name}")
        self._tasks[uid] = task

        def done(t: asyncio.Task[None]) -> None:
            if self.workers.get(uid) is worker:
                del self.workers[uid]
                self._tasks.pop(uid, None)
            if not t.cancelled() and t.exception() is not None:
                log.error("pod worker %s died", uid, exc_info=t.exception())

        task.add_done_callback(done)

    # ------------------------------------------------------------------ reads
    def pods(self) -> list[Pod]:
        """The pods this node runs, with the status the agent last computed (for /pods)."""
        out = []
        for w in self.workers.values():
            p = core_pb2.Pod()
            p.CopyFrom(w.pod)
            if w.status is not None:
                p.status.CopyFrom(w.status)
            out.append(p)
        return out

    def worker(self, namespace: str, name: str) -> PodWorker | None:
        for w in self.workers.values():
            if w.pod.metadata.namespace == namespace and w.pod.metadata.name == name:
                return w
        return None
