"""PodWorker: the executor for one pod, serialized (kubelet's podWorkers + SyncPod).

Owns: the loop of one pod: observe the runtime (by the pod-uid label), ask
compute_pod_actions for a step, apply it (sandbox + network, volumes, image
pulls by imagePullPolicy, env, containers, kills), start and stop probe loops
for running containers, compute the status and write it when it changed;
graceful termination (stop signal, grace, SIGKILL via the runtime's stop
timeout, then network, volumes, containers gone, then api.delete_pod).
Memory kept here only (lost on restart, by design): backoff entries, start
failures, probe results. Everything else is re-read from the runtime.
Must not: decide (actions.py, status.py are pure) or run two steps of one pod at once.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING, Any

from master.client.errors import APIError
from node_agent.network.errors import NetworkError
from node_agent.pods.actions import (
    ObservedPod,
    PodActions,
    StartFailure,
    compute_pod_actions,
    grace_seconds,
    pod_ref,
)
from node_agent.pods.env import (
    ConfigError,
    compute_dns,
    render_hosts,
)
from node_agent.pods.prober import run_handler
from node_agent.pods.probes import (
    READINESS,
    STARTUP,
    ProbeState,
)
from node_agent.pods.probing import ProbeMixin
from node_agent.pods.starting import StartMixin
from node_agent.pods.status import StatusInputs, compute_pod_status
from node_agent.pods.volumes import (
    pod_dir,
    referenced_volume_objects,
    setup_volumes,
    teardown_volumes,
)
from node_agent.runtime import errors
from node_agent.runtime.interface import (
    LABEL_GRACE_S,
    LABEL_NODE,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    LABEL_TERMINATION_LOG,
    ContainerState,
    ContainerStatus,
    PodSandboxConfig,
    SandboxState,
)
from protos.core.v1 import core_pb2

if TYPE_CHECKING:
    from node_agent.pods.manager import PodManager

log = logging.getLogger(__name__)
MAX_STEPS = 8
# A pod deleted from the API while it stops (a forced delete) gets this much
# more at most: kubelet's minimum grace period.
FORCED_GRACE_S = 2.0


class PodWorker(StartMixin, ProbeMixin):
    def __init__(self, manager: PodManager, pod: core_pb2.Pod) -> None:
        self.m = manager
        self.pod = pod
        self.uid = pod.metadata.uid
        self.wake = asyncio.Event()
        self.removed = False
        self.backoff: dict[str, Any] = {}
        self.start_failures: dict[str, StartFailure] = {}
        self.fresh_failures: set[str] = set()
        self.pod_ip = (manager.host_ip if pod.spec.host_network else manager.network.pod_ip(self.uid)) or ""
        self.sandbox_id = ""
        self.probe_states: dict[tuple[str, str], ProbeState] = {}
        self.probe_tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.status: core_pb2.PodStatus | None = None
        self._written: bytes = b""
        self._volumes_at = -math.inf
        self.volume_paths: dict[str, str] = {}
        self.volume_error = ""
        self.finished = False
        self._startup_thresholds: dict[str, int] = {}
        self._last_observed = ObservedPod()
        self._backoff_told: dict[str, str] = {}
        self._messages: dict[str, str] = {}  # container id -> termination message, read once

    # ------------------------------------------------------------------ control
    def update(self, pod: core_pb2.Pod) -> None:
        self.pod = pod
        self.wake.set()

    def remove(self) -> None:
        self.removed = True
        self.wake.set()

    @property
    def terminating(self) -> bool:
        return self.removed or self.pod.metadata.HasField("deletion_timestamp")

    async def run(self) -> None:
        try:
            while not self.terminating:
                self.wake.clear()
                try:
                    delay = await self.sync()
                except (errors.RuntimeError_, NetworkError, OSError, APIError) as exc:
                    # APIError: the master refused or dropped a status write; it is sent again
                    log.warning("pod %s/%s: sync failed: %s", self.pod.metadata.namespace, self.pod.metadata.name,
                                exc)
                    delay = 2.0
                except Exception:
                    log.exception("pod %s: sync failed", self.uid)
                    delay = 5.0
                await self._wait(delay)
            while True:
                try:
                    await self.terminate()
                    return
                except Exception as exc:  # runtime, network, volumes or the master: retry, never give up the pod
                    log.warning("pod %s: termination failed, retrying: %s", self.uid, exc)
                    await self.m.clock.sleep(2.0)
        finally:
            for task in self.probe_tasks.values():
                task.cancel()

    async def _wait(self, delay: float | None) -> None:
        if self.wake.is_set() or self.terminating:
            return
        waiter = asyncio.ensure_future(self.wake.wait())
        sleeper = asyncio.ensure_future(self.m.clock.sleep(self.m.volume_resync_s if delay is None else delay))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            sleeper.cancel()

    # ------------------------------------------------------------------ observe
    async def observe(self) -> ObservedPod:
        rt = self.m.runtime
        want = {LABEL_POD_UID: self.uid, LABEL_NODE: self.m.node_name}
        sandboxes = await rt.list_pod_sandboxes(want)
        sparse = await rt.list_containers(want)
        full = []
        for c in sparse:
            try:
                full.append(await rt.container_status(c.id))
            except errors.NotFound:
                continue
        unhealthy = frozenset(cid for (cid, kind), st in self.probe_states.items() if self._failed(cid, kind, st))
        self._last_observed = ObservedPod(sandboxes=tuple(sandboxes), containers=tuple(full), unhealthy=unhealthy)
        return self._last_observed

    # --------------------------------------------------------------------- sync
    async def sync(self) -> float | None:
        self.fresh_failures.clear()
        await self._refresh_volumes()
        plan = PodActions()
        observed = ObservedPod()
        for _ in range(MAX_STEPS):
            if self.terminating:
                break  # deleted during a step (a long pull, say): start nothing more, run() terminates
            observed = await self.observe()
            plan = compute_pod_actions(self.pod, observed, self.m.clock.wall().timestamp(), backoff=self.backoff,
                                       start_failures=self.start_failures, policy=self.m.backoff_policy)
            if plan.sandbox_id:
                self.sandbox_id = plan.sandbox_id
            if not plan.changes_something:
                break
            await self.execute(plan)
            if self.fresh_failures:
                observed = await self.observe()
                break
        for w in plan.waits:
            if w.reason == "CrashLoopBackOff" and self._backoff_told.get(w.name) != w.message:
                self._backoff_told[w.name] = w.message
                self._event("Warning", "BackOff", f"Back-off restarting failed container {w.name} in pod "
                                                  f"{pod_ref(self.pod)}")
            elif w.reason == "ImagePullBackOff" and self._backoff_told.get(w.name) != str(w.remaining_s):
                self._backoff_told[w.name] = str(w.remaining_s)
                self._event("Normal", "BackOff", w.message)
        if plan.finished and not self.finished:
            self.finished = True
            await self.m.network.teardown_pod(pod_uid=self.uid)
        self._sync_probes(observed)
        await self._write_status(observed, plan)
        if self.fresh_failures:
            return 1.0  # show ErrImagePull now, ImagePullBackOff at the next sync
        return plan.wake_after_s

    async def _termination_messages(self, observed: ObservedPod) -> dict[str, str]:
        """terminationMessagePath's file of each exited instance (4 KiB at most); with
        FallbackToLogsOnError and an empty file after a failure, the log's tail."""
        specs = {c.name: c for c in list(self.pod.spec.containers) + list(self.pod.spec.init_containers)}
        for c in observed.containers:
            if c.state != ContainerState.EXITED or c.id in self._messages:
                continue
            text = ""
            path = c.labels.get(LABEL_TERMINATION_LOG, "")
            if path:
                try:
                    with open(path, "rb") as f:
                        text = f.read(4096).decode(errors="replace")
                except OSError:
                    text = ""
            spec = specs.get(c.name)
            if not text and c.exit_code != 0 and spec is not None and \
                    spec.termination_message_policy == "FallbackToLogsOnError":
                chunks = [b async for b in self.m.runtime.container_logs(c.id, tail_lines=80)]
                text = b"".join(chunks)[-2048:].decode(errors="replace")
            self._messages[c.id] = text
        return {cid: m for cid, m in self._messages.items() if m}

    async def _write_status(self, observed: ObservedPod, plan: PodActions) -> None:
        waiting = {w.name: (w.reason, w.message) for w in plan.waits}
        for name in self.fresh_failures:
            f = self.start_failures[name]
            waiting[name] = (f.reason, f.message)
        ready: dict[str, bool] = {}
        started: dict[str, bool] = {}
        for (cid, kind), st in self.probe_states.items():
            if kind == READINESS:
                ready[cid] = st.result
            elif kind == STARTUP:
                started[cid] = st.result
        inputs = StatusInputs(waiting=waiting, ready=ready, started=started, pod_ip=self.pod_ip,
                              host_ip=self.m.host_ip, sandbox_id=self.sandbox_id,
                              messages=await self._termination_messages(observed))
        status = compute_pod_status(self.pod, observed, inputs, now=self.m.clock.wall())
        self.status = status
        comparable = core_pb2.PodStatus()
        comparable.CopyFrom(status)
        encoded = comparable.SerializeToString(deterministic=True)
        if encoded == self._written:
            return
        pod = core_pb2.Pod()
        pod.CopyFrom(self.pod)
        pod.status.CopyFrom(status)
        await self.m.api.update_pod_status(pod)
        self._written = encoded
        # Keep our copy's status current so that phase stickiness and transition
        # times hold, on the newest pod: update() may have brought one during the
        # write (a deletionTimestamp), and putting `pod` back would lose it.
        latest = core_pb2.Pod()
        latest.CopyFrom(self.pod)
        latest.status.CopyFrom(status)
        self.pod = latest

    # ------------------------------------------------------------------ execute
    async def execute(self, plan: PodActions) -> None:
        rt = self.m.runtime
        if plan.kill:
            await asyncio.gather(*(rt.stop_container(k.id, k.grace_s) for k in plan.kill))
            for k in plan.kill:
                log.info("pod %s: killed container %s (%s)", self.pod.metadata.name, k.name, k.reason)
                self._event("Normal", "Killing", self._kill_message(k.id, k.name, k.reason))
                self._forget_probes(k.id)
        for sid in plan.kill_sandboxes:
            await rt.stop_pod_sandbox(sid)
        for cid in plan.remove:
            await rt.remove_container(cid)
            self._forget_probes(cid)
        if plan.create_sandbox:
            await self.create_sandbox(self._last_observed)
            return
        if plan.start:
            await asyncio.gather(*(self.start_container(s) for s in plan.start))

    async def create_sandbox(self, observed: ObservedPod) -> None:
        rt = self.m.runtime
        old = observed.sandboxes
        if old:
            await self.m.network.teardown_pod(pod_uid=self.uid)
            for s in old:
                if s.state != SandboxState.READY:
                    await rt.remove_pod_sandbox(s.id)
        config = self.sandbox_config()
        sid = await rt.run_pod_sandbox(config)
        try:
            st = await rt.pod_sandbox_status(sid)
            if config.host_network:
                # The node's own namespace: no plumbing, the pod's IP is the node's.
                self.pod_ip = self.m.host_ip
            else:
                self.pod_ip = await self.m.network.setup_pod(pod_uid=self.uid,
                                                             namespace=self.pod.metadata.namespace,
                                                             name=self.pod.metadata.name, netns_path=st.netns_path)
        except BaseException as exc:
            if isinstance(exc, Exception):
                self._event("Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {exc}")
            await rt.stop_pod_sandbox(sid)
            await rt.remove_pod_sandbox(sid)
            raise
        self.sandbox_id = sid
        self.finished = False
        self._write_hosts()

    def sandbox_config(self) -> PodSandboxConfig:
        meta = self.pod.metadata
        servers, searches, options = compute_dns(self.pod, cluster_dns=self.m.cluster_dns,
                                                 cluster_domain=self.m.cluster_domain)
        return PodSandboxConfig(
            name=meta.name, namespace=meta.namespace, uid=meta.uid, hostname=self.pod.spec.hostname or meta.name,
            labels={LABEL_POD_UID: meta.uid, LABEL_POD_NAMESPACE: meta.namespace, LABEL_POD_NAME: meta.name,
                    LABEL_NODE: self.m.node_name, LABEL_GRACE_S: str(int(grace_seconds(self.pod)))},
            hosts_path=str(self._hosts_path()), dns_servers=servers, dns_searches=searches, dns_options=options,
            host_network=self.pod.spec.host_network,
        )

    def _hosts_path(self) -> Any:
        return pod_dir(self.m.root_dir, self.uid) / "etc-hosts"

    def _write_hosts(self) -> None:
        path = self._hosts_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        # In place, not rename: containers bind-mount this inode.
        with open(path, "w") as f:
            f.write(render_hosts(self.pod, pod_ip=self.pod_ip))

    async def _refresh_volumes(self) -> None:
        now = self.m.clock.now()
        if now - self._volumes_at < self.m.volume_resync_s and not self.volume_error:
            return
        self._volumes_at = now
        cm_names, secret_names = referenced_volume_objects(self.pod)
        if not self.pod.spec.volumes:
            return
        cms, secrets = await self._fetch(cm_names, secret_names)
        try:
            self.volume_paths = await asyncio.to_thread(setup_volumes, self.pod, self.m.root_dir, config_maps=cms,
                                                        secrets=secrets)
            self.volume_error = ""
        except (ConfigError, OSError) as exc:
            self.volume_error = str(exc)

    async def _fetch(self, cm_names: set[str], secret_names: set[str]) -> tuple[dict[str, Any], dict[str, Any]]:
        ns = self.pod.metadata.namespace
        cms = {n: cm for n in cm_names if (cm := await self.m.api.get_config_map(ns, n)) is not None}
        secrets = {n: s for n in secret_names if (s := await self.m.api.get_secret(ns, n)) is not None}
        return cms, secrets

    # -------------------------------------------------------------- termination
    async def _stop(self, c: ContainerStatus, grace: float) -> None:
        """preStop (bounded by the grace period), then the stop signal with what is left
        of it (at least 2 s after a preStop hook, as kubelet gives), then SIGKILL."""
        spec = next((s for s in self.pod.spec.containers if s.name == c.name), None)
        remaining = grace
        if spec is not None and spec.lifecycle.HasField("pre_stop") and c.state == ContainerState.RUNNING \
                and grace > 0:
            started = self.m.clock.now()
            ok, message = await run_handler(spec.lifecycle.pre_stop, timeout_s=grace, runtime=self.m.runtime,
                                            container_id=c.id, container=spec, pod_ip=self.pod_ip,
                                            clock=self.m.clock)
            if not ok:
                self._event("Warning", "FailedPreStopHook", f"PreStopHook failed: {message}")
            remaining = max(2.0, grace - (self.m.clock.now() - started))
        self._event("Normal", "Killing", f"Stopping container {c.name}")
        await self.m.runtime.stop_container(c.id, remaining)

    async def terminate(self) -> None:
        """Stop everything with the grace period, clean up, then let the API drop the pod."""
        rt = self.m.runtime
        for task in self.probe_tasks.values():
            task.cancel()
        grace = grace_seconds(self.pod)
        observed = await self.observe()
        running = [c for c in observed.containers if c.state in (ContainerState.RUNNING, ContainerState.CREATED)]
        stopping = asyncio.ensure_future(asyncio.gather(*(self._stop(c, grace) for c in running)))
        try:
            while not stopping.done():
                # A second delete with a shorter grace period (or a forced one, which
                # removes the pod at once) shortens the stop under way, as kubelet does.
                self.wake.clear()
                waiter = asyncio.ensure_future(self.wake.wait())
                either: set[asyncio.Future[Any]] = {stopping, waiter}
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                shorter = min(grace_seconds(self.pod), FORCED_GRACE_S if self.removed else math.inf)
                if shorter < grace and not stopping.done():
                    grace = shorter
                    log.info("pod %s: grace period shortened to %g s", self.pod.metadata.name, grace)
                    await asyncio.gather(*(rt.stop_container(c.id, grace) for c in running))
            await stopping
        finally:
            stopping.cancel()
        for s in observed.sandboxes:
            await rt.stop_pod_sandbox(s.id)
        await self.m.network.teardown_pod(pod_uid=self.uid)
        for c in observed.containers:
            await rt.remove_container(c.id)
        for s in observed.sandboxes:
            await rt.remove_pod_sandbox(s.id)
        await asyncio.to_thread(teardown_volumes, self.m.root_dir, self.uid)
        if not self.removed:
            await self.m.api.delete_pod(self.pod)
