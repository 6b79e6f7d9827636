"""Starting one container of a pod: the image by imagePullPolicy, env, mounts,
labels, create + start, and the failure memory that becomes a waiting reason
(ErrImagePull, ErrImageNeverPull, CreateContainerConfigError, ...); the pod's
Events.

A mixin of PodWorker (node_agent.pods.worker), split out to keep each module
readable; it uses the worker's state and owns none of its own.
Must not: decide which container starts (node_agent.pods.actions does).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from node_agent.pods.actions import StartContainer, StartFailure, container_hash, grace_seconds
from node_agent.pods.backoff import BackoffEntry, next_backoff
from node_agent.pods.env import (
    ConfigError,
    compute_env,
    cpu_shares,
    memory_limit_bytes,
    nano_cpus,
    referenced_objects,
)
from node_agent.pods.prober import run_handler
from node_agent.pods.probes import STARTUP, ProbeState
from node_agent.runtime import errors
from node_agent.runtime.interface import (
    LABEL_CONTAINER_HASH,
    LABEL_CONTAINER_NAME,
    LABEL_CONTAINER_TYPE,
    LABEL_GRACE_S,
    LABEL_NODE,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    LABEL_RESTART_COUNT,
    LABEL_SANDBOX_ID,
    LABEL_TERMINATION_LOG,
    ContainerConfig,
    Mount,
    PodSandboxConfig,
)
from protos.core.v1 import core_pb2

if TYPE_CHECKING:
    from pathlib import Path

    from node_agent.pods.manager import PodManager

log = logging.getLogger(__name__)


def default_pull_policy(image: str) -> str:
    name = image.rsplit("/", 1)[-1]
    if "@" in name:
        return "IfNotPresent"
    tag = name.split(":", 1)[1] if ":" in name else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"




class StartMixin:
    m: PodManager
    pod: core_pb2.Pod
    uid: str
    sandbox_id: str
    pod_ip: str
    volume_paths: dict[str, str]
    volume_error: str
    backoff: dict[str, BackoffEntry]
    start_failures: dict[str, StartFailure]
    fresh_failures: set[str]
    probe_states: dict[tuple[str, str], ProbeState]

    def sandbox_config(self) -> PodSandboxConfig:
        raise NotImplementedError

    def _hosts_path(self) -> Path:
        raise NotImplementedError

    async def _fetch(self, cm_names: set[str], secret_names: set[str]) -> tuple[dict[str, Any], dict[str, Any]]:
        raise NotImplementedError

    def _container_spec(self, name: str, init: bool) -> Any:
        for c in self.pod.spec.init_containers if init else self.pod.spec.containers:
            if c.name == name:
                return c
        raise KeyError(name)

    def _fail(self, name: str, reason: str, message: str) -> None:
        prev = self.start_failures.get(name)
        entry = next_backoff(prev.entry if prev else None, now=self.m.clock.wall().timestamp(),
                             policy=self.m.backoff_policy)
        self.start_failures[name] = StartFailure(reason, message, entry)
        self.fresh_failures.add(name)
        log.info("pod %s: container %s: %s: %s", self.pod.metadata.name, name, reason, message)
        if reason == "ErrImagePull":
            self._event("Warning", "Failed", message)
        self._event("Warning", "Failed", f"Error: {reason}" if reason.startswith("ErrImage") else f"Error: {message}")

    def _kill_message(self, cid: str, name: str, reason: str) -> str:
        if reason != "Unhealthy":
            return f"Stopping container {name}"
        startup = self.probe_states.get((cid, STARTUP))
        which = "startup" if startup is not None and not startup.result else "liveness"
        return f"Container {name} failed {which} probe, will be restarted"

    def _event(self, type_: str, reason: str, message: str) -> None:
        """Tell people (kubectl describe) what happened; never fails the sync."""
        if self.m.events is not None:
            try:
                self.m.events.event(self.pod, type_, reason, message)
            except Exception:  # advice only
                log.debug("event dropped", exc_info=True)

    async def _ensure_image(self, spec: Any) -> bool:
        rt, image = self.m.runtime, spec.image
        policy = spec.image_pull_policy or default_pull_policy(image)
        present = await rt.image_status(image)
        if policy == "Never":
            if present is None:
                self._fail(spec.name, "ErrImageNeverPull",
                           f'Container image "{image}" is not present with pull policy of Never')
                return False
            return True
        if present is not None and policy == "IfNotPresent":
            self._event("Normal", "Pulled", f'Container image "{image}" already present on machine')
            return True
        self._event("Normal", "Pulling", f'Pulling image "{image}"')
        started = self.m.clock.now()
        try:
            await rt.pull_image(image)
        except errors.RuntimeError_ as exc:
            if present is not None and not self.m.registry_configured:
                return True  # Always, but no registry to ask: the local image is all there is
            self._fail(spec.name, "ErrImagePull", f'Failed to pull image "{image}": {exc}')
            return False
        self._event("Normal", "Pulled", f'Successfully pulled image "{image}" in {self.m.clock.now() - started:.3f}s')
        return True

    async def start_container(self, step: StartContainer) -> None:
        spec = self._container_spec(step.name, step.init)
        if self.volume_error:
            self._fail(step.name, "CreateContainerConfigError", self.volume_error)
            return
        if not await self._ensure_image(spec):
            return
        cm_names, secret_names = referenced_objects(spec)
        cms, secrets = await self._fetch(cm_names, secret_names)
        try:
            env = compute_env(self.pod, spec, config_maps=cms, secrets=secrets, pod_ip=self.pod_ip,
                              host_ip=self.m.host_ip)
            tlog = self._termination_log(spec.name, step.restart_count)
            mounts = self._mounts(spec, termination_log=tlog)
            config = ContainerConfig(
                name=spec.name, image=spec.image, command=tuple(spec.command), args=tuple(spec.args),
                working_dir=spec.working_dir, env=env, mounts=mounts,
                labels={LABEL_POD_UID: self.uid, LABEL_POD_NAMESPACE: self.pod.metadata.namespace,
                        LABEL_POD_NAME: self.pod.metadata.name, LABEL_NODE: self.m.node_name,
                        LABEL_CONTAINER_NAME: spec.name, LABEL_CONTAINER_HASH: container_hash(spec),
                        LABEL_RESTART_COUNT: str(step.restart_count), LABEL_SANDBOX_ID: self.sandbox_id,
                        LABEL_CONTAINER_TYPE: "init" if step.init else "app", LABEL_TERMINATION_LOG: tlog,
                        LABEL_GRACE_S: str(int(grace_seconds(self.pod)))},
                memory_limit_bytes=memory_limit_bytes(spec), nano_cpus=nano_cpus(spec), cpu_shares=cpu_shares(spec),
                stop_signal=spec.lifecycle.stop_signal, tty=bool(spec.tty), stdin=bool(spec.stdin),
            )
        except ConfigError as exc:
            self._fail(step.name, "CreateContainerConfigError", str(exc))
            return
        rt = self.m.runtime
        try:
            cid = await rt.create_container(self.sandbox_id, config, self.sandbox_config())
        except errors.ImageNotPresent as exc:
            self._fail(step.name, "ErrImagePull", str(exc))
            return
        except errors.ContainerConfigError as exc:
            self._fail(step.name, "CreateContainerError", str(exc))
            return
        self._event("Normal", "Created", f"Created container {step.name}")
        try:
            await rt.start_container(cid)
        except errors.ContainerConfigError as exc:
            await rt.remove_container(cid)
            self._fail(step.name, "RunContainerError", str(exc))
            return
        self._event("Normal", "Started", f"Started container {step.name}")
        if spec.lifecycle.HasField("post_start"):
            ok, message = await run_handler(spec.lifecycle.post_start, timeout_s=float(grace_seconds(self.pod) or 30),
                                            runtime=rt, container_id=cid, container=spec, pod_ip=self.pod_ip,
                                            clock=self.m.clock)
            if not ok:
                # kubelet kills a container whose postStart hook failed; the restart policy decides the rest.
                self._event("Warning", "FailedPostStartHook", f"PostStartHook failed: {message}")
                await rt.stop_container(cid, grace_seconds(self.pod))
        if step.backoff_ran_s is not None:
            key = f"{self.uid}/{step.name}"
            self.backoff[key] = next_backoff(self.backoff.get(key), now=self.m.clock.wall().timestamp(),
                                             policy=self.m.backoff_policy, ran_s=step.backoff_ran_s)

    def _termination_log(self, name: str, restart_count: int) -> str:
        """A fresh host file for this instance's termination message (kubelet's layout)."""
        path = self._hosts_path().parent / "containers" / name / str(restart_count) / "termination-log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        os.chmod(path, 0o666)
        return str(path)

    def _mounts(self, spec: Any, *, termination_log: str = "") -> tuple[Mount, ...]:
        # hostNetwork pods keep the node's /etc/hosts, as in Kubernetes.
        mounts = [] if self.pod.spec.host_network else [Mount(str(self._hosts_path()), "/etc/hosts")]
        if termination_log:
            mounts.append(Mount(termination_log, spec.termination_message_path or "/dev/termination-log"))
        for vm in spec.volume_mounts:
            host = self.volume_paths.get(vm.name)
            if host is None:
                raise ConfigError(f'volume "{vm.name}" is not defined')
            if vm.sub_path:
                host = f"{host}/{vm.sub_path}"
            mounts.append(Mount(host, vm.mount_path, read_only=vm.read_only))
        return tuple(mounts)
