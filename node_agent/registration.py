"""Joining the cluster and staying in it: registration, heartbeat, the pod
stream into the PodManager, and the Node informer that keeps host-gw routes
in step.

Owns:
* `build_register_request` (pure: flags + host facts -> RegisterRequest) and
  `host_facts` (reads /etc/os-release, uname, /proc/meminfo, machine-id);
* `register` — retries while the master is unreachable; a refusal (bad
  address, address in use, ...) is permanent and ends the agent with the
  master's message, because retrying cannot fix a flag;
* `run_heartbeat` — one Heartbeat every period; a node deleted behind our
  back (FAILED_PRECONDITION) registers again;
* `run_pod_stream` — WatchPods into PodManager (ADDED/MODIFIED -> upsert,
  DELETED -> remove, SYNCED -> set_pods with the initial list; a BOOKMARK
  only moves the resume point), resumed from the last resourceVersion,
  relisted on 410;
* `run_route_sync` — Nodes -> routes.compute_desired_routes -> network.

Must not: touch pods' containers (PodManager) or links (network/bridge.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from master.client.clock import Clock, RealClock
from master.client.errors import APIError
from master.client.informer import Informer
from node_agent.network.routes import compute_desired_routes
from protos.core.v1 import core_pb2
from protos.node.v1 import node_pb2

log = logging.getLogger(__name__)
AGENT_VERSION = "v1.31.0+flotilla"  # the version the apiserver reports (kubectl get nodes)
PERMANENT_CODES = {"INVALID_ARGUMENT", "ALREADY_EXISTS", "FAILED_PRECONDITION", "PERMISSION_DENIED",
                   "UNAUTHENTICATED", "RESOURCE_EXHAUSTED"}


class RegistrationRefused(Exception):
    """The master refused this node; the message says what to change."""


class PodSink(Protocol):
    def set_pods(self, pods: Sequence[core_pb2.Pod]) -> None: ...

    def upsert_pod(self, pod: core_pb2.Pod) -> None: ...

    def remove_pod(self, uid: str) -> None: ...


class RouteSink(Protocol):
    async def sync_routes(self, desired: Mapping[str, str]) -> Any: ...


@dataclass
class NodeIdentity:
    node_name: str
    advertise_address: str
    force_address: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[core_pb2.Taint] = field(default_factory=list)
    kubelet_port: int = 10250
    capacity: dict[str, str] = field(default_factory=dict)  # overrides of the detected values


def host_facts() -> dict[str, str]:
    """What the node tells the master about itself (best effort; missing facts are "")."""
    facts = {"os_image": "", "kernel_version": platform.release(), "architecture": _arch(),
             "machine_id": _read("/etc/machine-id"), "boot_id": _read("/proc/sys/kernel/random/boot_id"),
             "cpu": str(os.cpu_count() or 1), "memory": ""}
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            facts["os_image"] = line.split("=", 1)[1].strip().strip('"')
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            facts["memory"] = f"{int(line.split()[1])}Ki"
    return facts


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def build_register_request(identity: NodeIdentity, facts: Mapping[str, str], *,
                           runtime_version: str) -> node_pb2.RegisterRequest:
    capacity = {"cpu": facts.get("cpu", "1"), "pods": "110"}
    if facts.get("memory"):
        capacity["memory"] = facts["memory"]
    capacity.update(identity.capacity)
    return node_pb2.RegisterRequest(
        node_name=identity.node_name, hostname=identity.node_name,
        advertise_address=identity.advertise_address, force_address=identity.force_address,
        capacity=capacity, labels=identity.labels, taints=identity.taints,
        os_image=facts.get("os_image", ""), kernel_version=facts.get("kernel_version", ""),
        container_runtime_version=runtime_version, kubelet_version=AGENT_VERSION,
        operating_system="linux", architecture=facts.get("architecture", ""),
        machine_id=facts.get("machine_id", ""), boot_id=facts.get("boot_id", ""),
        kubelet_port=identity.kubelet_port)


async def register(api: Any, request: node_pb2.RegisterRequest, *, clock: Clock | None = None,
                   max_delay_s: float = 10.0, expect_pod_cidr: str = "") -> node_pb2.RegisterResponse:
    """Register, retrying while the master is unreachable. `expect_pod_cidr` (a
    re-registration): the CIDR this agent's bridge and pods already use; getting
    another one is a refusal, since the running pods cannot change address."""
    clock = clock or RealClock()
    delay = 0.5
    while True:
        try:
            resp: node_pb2.RegisterResponse = await api.register(request)
            if expect_pod_cidr and resp.pod_cidr != expect_pod_cidr:
                raise RegistrationRefused(
                    f"node {request.node_name!r} registered again and the master gave it the pod CIDR "
                    f"{resp.pod_cidr}, but its bridge and pods use {expect_pod_cidr} (another node took it "
                    "while this Node was deleted): delete this node's pods and restart the agent")
            log.info("registered", extra={"node": request.node_name, "pod_cidr": resp.pod_cidr})
            return resp
        except APIError as exc:
            if exc.grpc_code in PERMANENT_CODES:
                raise RegistrationRefused(f"the master refused node {request.node_name!r}: {exc.message}") from exc
            log.warning("registration failed, retrying", extra={"error": str(exc), "retry_s": delay})
        await clock.sleep(delay)
        delay = min(delay * 2, max_delay_s)


async def run_heartbeat(api: Any, *, period_s: float, reregister: Callable[[], Any],
                        clock: Clock | None = None, ready: asyncio.Event | None = None,
                        follow_master: bool = True) -> None:
    """Heartbeat forever. Errors are logged and retried at the next period (the
    lease tolerates missed beats up to its duration). With `follow_master`, the
    period the master answers replaces `period_s`."""
    clock = clock or RealClock()
    while True:
        try:
            resp = await api.heartbeat()
            if follow_master and resp.heartbeat_period_seconds > 0:
                period_s = float(resp.heartbeat_period_seconds)
            if ready is not None:
                ready.set()
        except APIError as exc:
            if exc.grpc_code == "FAILED_PRECONDITION":
                log.warning("node is not registered any more: registering again")
                await reregister()
                continue
            log.warning("heartbeat failed", extra={"error": str(exc)})
        await clock.sleep(period_s)


async def run_pod_stream(api: Any, sink: PodSink, *, clock: Clock | None = None,
                         ready: asyncio.Event | None = None) -> None:
    """Feed the pods bound to this node into `sink`, forever."""
    clock = clock or RealClock()
    rv = ""
    failures = 0
    while True:
        initial: list[core_pb2.Pod] | None = [] if rv == "" else None
        delivered = False
        try:
            async for event in api.watch_pods(rv):
                failures = 0
                delivered = True
                if event.type == "ERROR":
                    log.info("pod stream: resourceVersion too old, relisting", extra={"code": event.code})
                    rv = ""
                    break
                if event.type == "SYNCED":
                    sink.set_pods(initial or [])
                    initial = None
                    rv = event.resource_version
                    if ready is not None:
                        ready.set()
                    continue
                if initial is not None and event.type == "ADDED":
                    initial.append(event.pod)
                    continue
                rv = event.resource_version or rv
                if event.type == "BOOKMARK":
                    continue  # no pod: only where a resume starts
                if event.type == "DELETED":
                    sink.remove_pod(event.pod.metadata.uid)
                else:
                    sink.upsert_pod(event.pod)
            else:
                if delivered:
                    continue  # the server closed the stream: resume from rv at once
                # Closed before a single event: back off, or a server that keeps
                # ending streams at once would make this a hot loop.
                failures += 1
                await clock.sleep(min(0.5 * 2 ** min(failures, 5), 10.0))
            continue
        except APIError as exc:
            failures += 1
            log.warning("pod stream failed", extra={"error": str(exc), "failures": failures})
        await clock.sleep(min(0.5 * 2 ** min(failures, 5), 10.0))


async def run_route_sync(nodes: Informer[core_pb2.Node], network: RouteSink, *, own_node: str,
                         ready: asyncio.Event | None = None) -> None:
    """Keep host-gw routes equal to what the Nodes say (`nodes`: a Node informer
    run by the caller's factory). Handlers only set a flag; one loop recomputes
    the whole plan (cheap: one route per node)."""
    dirty = asyncio.Event()
    nodes.add_handler(on_add=lambda _n: dirty.set(), on_update=lambda _o, _n: dirty.set(),
                      on_delete=lambda _n: dirty.set())
    await nodes.wait_synced()
    dirty.set()
    while True:
        await dirty.wait()
        dirty.clear()
        desired = compute_desired_routes(nodes.list(), own_node=own_node)
        try:
            await network.sync_routes(desired)
        except Exception as exc:  # a netlink hiccup: retry soon, keep the agent up
            log.warning("route sync failed", extra={"error": str(exc)})
            await asyncio.sleep(1.0)
            dirty.set()
        if ready is not None:
            ready.set()
