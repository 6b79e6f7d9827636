"""Hollow nodes: Nodes without containers, for integration tests of the control plane.

A `HollowCluster` plays the node agents' part against a real apiserver,
through the same gRPC Client every component uses:

* it creates one Node per hollow node (Ready, capacity cpu 4 / memory 8Gi /
  pods 110 unless given for the cluster or for one node, an InternalIP on
  127.0.2.0/24 so nothing ever routes off the machine) and renews its Lease
  `kube-node-lease/<node>` every `renew_period_s` (the heartbeat convention:
  whoever renews the lease sets Ready=True when it is not);
* it watches every pod and, for pods bound to one of its nodes, writes the
  status a healthy agent would: Running, every container running and ready,
  a pod IP from the node's /24, PodScheduled / Initialized / ContainersReady
  / Ready True;
* pods marked for deletion (deletionTimestamp) are removed with grace 0 and
  a uid precondition, as an agent does once containers have stopped;
* with `binder=True` it binds pending pods round-robin to heartbeating,
  schedulable nodes: a stand-in for tests that run without the scheduler.

Tests steer pods with annotations:
* `hollow.flotilla.dev/ready: "false"`: Running but not Ready (flip it back
  to "true" to make it Ready);
* `hollow.flotilla.dev/exit-code: "N"` (with optional
  `hollow.flotilla.dev/run-seconds`, default 0.2): the containers exit with
  N after that long; the pod goes Succeeded for 0 and Failed otherwise
  (restartPolicy is not simulated: Job tests want terminal pods).

and nodes with `stop_heartbeat(name)` / `resume_heartbeat(name)`,
`add_node()` and `remove_node(name)`.

It is a test harness, not an agent: no containers, no probes, no restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import itertools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from master.client import Client, NotFound
from master.client.errors import APIError, Conflict
from master.client.informer import InformerFactory
from protos.coordination.v1 import coordination_pb2
from protos.core.v1 import core_pb2
from tests.integration.harness import running

log = logging.getLogger("flotilla.tests.hollow")

READY_ANNOTATION = "hollow.flotilla.dev/ready"
EXIT_CODE_ANNOTATION = "hollow.flotilla.dev/exit-code"
RUN_SECONDS_ANNOTATION = "hollow.flotilla.dev/run-seconds"
LEASE_NAMESPACE = "kube-node-lease"


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def _stamp(ts: Any, when: _dt.datetime | None = None) -> None:
    ts.FromDatetime(when or _now())


@dataclass
class HollowNode:
    name: str
    index: int
    labels: dict[str, str]
    capacity: dict[str, str] = field(default_factory=dict)
    heartbeating: bool = True
    ip: str = ""
    pod_cidr: str = ""
    _ip_counter: itertools.count[int] = field(default_factory=lambda: itertools.count(2))
    _pod_ips: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ip = f"127.0.2.{self.index + 1}"
        self.pod_cidr = f"10.244.{self.index + 200}.0/24"

    def pod_ip(self, uid: str) -> str:
        if uid not in self._pod_ips:
            n = next(self._ip_counter)
            self._pod_ips[uid] = f"10.244.{self.index + 200}.{n % 250 + 2}"
        return self._pod_ips[uid]


class HollowCluster:
    def __init__(
        self,
        client: Client,
        *,
        nodes: int = 3,
        prefix: str = "hollow",
        renew_period_s: float = 1.0,
        lease_duration_s: int = 40,
        binder: bool = False,
        labels: dict[str, str] | None = None,
        capacity: dict[str, str] | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.renew_period_s = renew_period_s
        self.lease_duration_s = lease_duration_s
        self.binder = binder
        self.base_labels = dict(labels or {})
        self.capacity = capacity or {"cpu": "4", "memory": "8Gi", "pods": "110"}
        self.nodes: dict[str, HollowNode] = {}
        self._initial = nodes
        self._indices = itertools.count()
        self._rr = itertools.count()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tg: asyncio.TaskGroup | None = None
        self._pods_queue: asyncio.Queue[core_pb2.Pod] = asyncio.Queue()
        self._pending_exit: set[str] = set()

    # --- nodes ---------------------------------------------------------------------------

    async def add_node(self, *, labels: dict[str, str] | None = None,
                       taints: list[core_pb2.Taint] | None = None,
                       capacity: dict[str, str] | None = None) -> HollowNode:
        """A new node; `capacity` replaces the cluster's for this node only."""
        index = next(self._indices)
        name = f"{self.prefix}-{index}"
        node = HollowNode(name, index, {**self.base_labels, **(labels or {}),
                                        "kubernetes.io/hostname": name,
                                        "kubernetes.io/os": "linux"},
                          capacity=dict(capacity or self.capacity))
        obj = core_pb2.Node()
        obj.metadata.name = name
        obj.metadata.labels.update(node.labels)
        obj.spec.pod_cidr = node.pod_cidr
        obj.spec.pod_cidrs.append(node.pod_cidr)
        for t in taints or []:
            obj.spec.taints.add().CopyFrom(t)
        try:
            await self.client.create(obj)
        except APIError as exc:
            if exc.reason != "AlreadyExists":
                raise
        self.nodes[name] = node
        await self._write_node_status(node)
        await self._renew(node)
        if self._tg is not None:
            self._tg.create_task(self._heartbeat_loop(node))
        return node

    async def remove_node(self, name: str) -> None:
        self.nodes.pop(name, None)
        with contextlib.suppress(NotFound):
            await self.client.delete(core_pb2.Node, name)
        with contextlib.suppress(NotFound):
            await self.client.delete(coordination_pb2.Lease, name, namespace=LEASE_NAMESPACE)

    def stop_heartbeat(self, name: str) -> None:
        self.nodes[name].heartbeating = False

    async def resume_heartbeat(self, name: str) -> None:
        node = self.nodes[name]
        node.heartbeating = True
        await self._renew(node)

    async def _write_node_status(self, node: HollowNode) -> None:
        for _ in range(20):
            current = await self.client.get(core_pb2.Node, node.name)
            new = core_pb2.Node()
            new.CopyFrom(current)
            st = new.status
            st.capacity.clear()
            st.capacity.update(node.capacity)
            st.allocatable.clear()
            st.allocatable.update(node.capacity)
            del st.addresses[:]
            st.addresses.add(type="InternalIP", address=node.ip)
            st.addresses.add(type="Hostname", address=node.name)
            st.daemon_endpoints.kubelet_endpoint.port = 10250
            st.node_info.kubelet_version = "v1.31.0-flotilla-hollow"
            st.node_info.operating_system = "linux"
            st.node_info.architecture = "amd64"
            st.node_info.container_runtime_version = "hollow://0"
            _set_node_ready(new)
            try:
                await self.client.update_status(new)
                return
            except Conflict:
                continue

    async def _renew(self, node: HollowNode) -> None:
        """Renew the lease; set Ready=True when it is not (the heartbeat convention)."""
        try:
            lease = await self.client.get(coordination_pb2.Lease, node.name, namespace=LEASE_NAMESPACE)
            new = coordination_pb2.Lease()
            new.CopyFrom(lease)
            _stamp(new.spec.renew_time)
            await self.client.update(new)
        except NotFound:
            lease = coordination_pb2.Lease()
            lease.metadata.name = node.name
            lease.metadata.namespace = LEASE_NAMESPACE
            lease.spec.holder_identity = node.name
            lease.spec.lease_duration_seconds = self.lease_duration_s
            _stamp(lease.spec.acquire_time)
            _stamp(lease.spec.renew_time)
            await self.client.create(lease)
        except Conflict:
            return
        current = await self.client.get(core_pb2.Node, node.name)
        if not _is_ready(current):
            new_node = core_pb2.Node()
            new_node.CopyFrom(current)
            _set_node_ready(new_node)
            with contextlib.suppress(Conflict):
                await self.client.update_status(new_node)

    async def _heartbeat_loop(self, node: HollowNode) -> None:
        while node.name in self.nodes:
            await asyncio.sleep(self.renew_period_s)
            if node.heartbeating and node.name in self.nodes:
                try:
                    await self._renew(node)
                except APIError as exc:
                    log.info("hollow heartbeat failed: %s", exc)

    # --- pods ----------------------------------------------------------------------------

    async def run(self, *, ready: asyncio.Event) -> None:
        factory = InformerFactory(self.client.lister_watcher)
        pods = factory.informer(core_pb2.Pod)
        pods.add_handler(on_add=self._pods_queue.put_nowait,
                         on_update=lambda _old, new: self._pods_queue.put_nowait(new))
        synced = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            tg.create_task(factory.run(ready=synced))
            for _ in range(self._initial):
                await self.add_node()
            await synced.wait()
            for node in list(self.nodes.values()):
                tg.create_task(self._heartbeat_loop(node))
            tg.create_task(self._pod_loop())
            ready.set()

    async def _pod_loop(self) -> None:
        while True:
            pod = await self._pods_queue.get()
            try:
                await self._handle(pod)
            except NotFound:
                pass
            except APIError as exc:
                log.info("hollow pod handling failed for %s: %s", pod.metadata.name, exc)

    async def _handle(self, pod: core_pb2.Pod) -> None:
        node = self.nodes.get(pod.spec.node_name)
        if not pod.spec.node_name:
            if self.binder and not pod.metadata.HasField("deletion_timestamp"):
                await self._bind(pod)
            return
        if node is None:
            return
        if pod.metadata.HasField("deletion_timestamp"):
            with contextlib.suppress(NotFound, Conflict):
                await self.client.delete(core_pb2.Pod, pod.metadata.name,
                                         namespace=pod.metadata.namespace,
                                         grace_period_seconds=0,
                                         precondition_uid=pod.metadata.uid)
            return
        if pod.status.phase in ("Succeeded", "Failed"):
            return
        exit_code = pod.metadata.annotations.get(EXIT_CODE_ANNOTATION)
        desired = _running_status(pod, node)
        if exit_code is not None and pod.status.phase == "Running":
            if pod.metadata.uid not in self._pending_exit:
                self._pending_exit.add(pod.metadata.uid)
                assert self._tg is not None
                self._tg.create_task(self._exit_later(pod, node, int(exit_code)))
            return
        if _status_equal(pod.status, desired):
            return
        new = core_pb2.Pod()
        new.CopyFrom(pod)
        new.status.CopyFrom(desired)
        await self.client.update_status(new)

    async def _exit_later(self, pod: core_pb2.Pod, node: HollowNode, code: int) -> None:
        delay = float(pod.metadata.annotations.get(RUN_SECONDS_ANNOTATION, "0.2"))
        await asyncio.sleep(delay)
        for _ in range(10):
            try:
                current = await self.client.get(core_pb2.Pod, pod.metadata.name,
                                                namespace=pod.metadata.namespace)
            except NotFound:
                return
            if current.metadata.uid != pod.metadata.uid or current.metadata.HasField("deletion_timestamp"):
                return
            new = core_pb2.Pod()
            new.CopyFrom(current)
            _terminate(new, code)
            try:
                await self.client.update_status(new)
                return
            except Conflict:
                continue

    async def _bind(self, pod: core_pb2.Pod) -> None:
        candidates = sorted(n.name for n in self.nodes.values() if n.heartbeating)
        if not candidates:
            return
        target = candidates[next(self._rr) % len(candidates)]
        with contextlib.suppress(Conflict, NotFound):
            await self.client.bind(pod.metadata.namespace, pod.metadata.name, node_name=target)


@contextlib.asynccontextmanager
async def hollow_cluster(client: Client, **kwargs: Any) -> AsyncIterator[HollowCluster]:
    """Start a HollowCluster; on exit stop it and delete its Nodes and Leases."""
    hc = HollowCluster(client, **kwargs)
    try:
        async with running(lambda ready: hc.run(ready=ready), what="hollow cluster", quiet_exit=True):
            yield hc
    finally:
        for name in list(hc.nodes):
            with contextlib.suppress(Exception):
                await hc.remove_node(name)


# --- status shapes ---------------------------------------------------------------------

def _is_ready(node: core_pb2.Node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


def _set_node_ready(node: core_pb2.Node) -> None:
    now = _now()
    wanted = {
        "MemoryPressure": ("False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        "DiskPressure": ("False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        "PIDPressure": ("False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        "Ready": ("True", "KubeletReady", "kubelet is posting ready status"),
    }
    existing = {c.type: c for c in node.status.conditions}
    for type_, (status, reason, message) in wanted.items():
        c = existing.get(type_)
        if c is None:
            c = node.status.conditions.add(type=type_)
        if c.status != status:
            _stamp(c.last_transition_time, now)
        c.status, c.reason, c.message = status, reason, message
        _stamp(c.last_heartbeat_time, now)


def _running_status(pod: core_pb2.Pod, node: HollowNode) -> core_pb2.PodStatus:
    ready = pod.metadata.annotations.get(READY_ANNOTATION, "true") != "false"
    st = core_pb2.PodStatus()
    st.CopyFrom(pod.status)
    st.phase = "Running"
    st.host_ip = node.ip
    del st.host_ips[:]
    st.host_ips.add(ip=node.ip)
    ip = node.pod_ip(pod.metadata.uid)
    st.pod_ip = ip
    del st.pod_ips[:]
    st.pod_ips.add(ip=ip)
    if not st.HasField("start_time"):
        _stamp(st.start_time)
    flag = "True" if ready else "False"
    conds = {"PodScheduled": "True", "Initialized": "True",
             "ContainersReady": flag, "Ready": flag}
    existing = {c.type: c for c in st.conditions}
    for type_, status in conds.items():
        c = existing.get(type_) or st.conditions.add(type=type_)
        if c.status != status:
            c.status = status
            _stamp(c.last_transition_time)
            c.reason = "" if status == "True" else "ContainersNotReady"
    statuses = {c.name: c for c in st.container_statuses}
    del st.container_statuses[:]
    for container in pod.spec.containers:
        old = statuses.get(container.name)
        cs = st.container_statuses.add(name=container.name, image=container.image,
                                       image_id=f"hollow://{container.image}",
                                       container_id=f"hollow://{pod.metadata.uid[:8]}-{container.name}",
                                       ready=ready, started=True,
                                       restart_count=old.restart_count if old else 0)
        if old is not None and old.state.HasField("running"):
            cs.state.running.started_at.CopyFrom(old.state.running.started_at)
        else:
            _stamp(cs.state.running.started_at)
    return st


def _terminate(pod: core_pb2.Pod, code: int) -> None:
    st = pod.status
    st.phase = "Succeeded" if code == 0 else "Failed"
    reason = "Completed" if code == 0 else "Error"
    for cs in st.container_statuses:
        started = cs.state.running.started_at if cs.state.HasField("running") else None
        cs.state.Clear()
        cs.state.terminated.exit_code = code
        cs.state.terminated.reason = reason
        if started is not None:
            cs.state.terminated.started_at.CopyFrom(started)
        _stamp(cs.state.terminated.finished_at)
        cs.ready = False
        cs.started = False
    for c in st.conditions:
        if c.type in ("Ready", "ContainersReady") and c.status != "False":
            c.status = "False"
            c.reason = "PodCompleted"
            _stamp(c.last_transition_time)


def _status_equal(a: core_pb2.PodStatus, b: core_pb2.PodStatus) -> bool:
    """Equal for our purposes: ignore timestamps, which _running_status keeps stable."""
    return a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True)
