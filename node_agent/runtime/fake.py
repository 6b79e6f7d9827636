"""FakeRuntime: an in-memory ContainerRuntime for unit and integration tests.

Controllable: `exit_container(id, code, oom=...)`, `fail_pull[image] = message`,
`fail_create[name] = message`, `images` (what is "present"), `logs[id]`,
`exec_results[tuple(cmd)] = (exit_code, output)`. Timestamps come from the
injected Clock's wall time, so backoff tests run on a FakeClock.
Must not: sleep or touch Docker.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from master.client.clock import Clock, RealClock
from node_agent.runtime import errors
from node_agent.runtime.interface import (
    KIND_CONTAINER,
    KIND_SANDBOX,
    LABEL_CONTAINER_NAME,
    LABEL_KIND,
    PAUSE_IMAGE,
    TEST_IMAGE,
    ContainerConfig,
    ContainerState,
    ContainerStatus,
    ImageInfo,
    PodSandboxConfig,
    PodSandboxStatus,
    SandboxState,
)


@dataclass
class _Sandbox:
    status: PodSandboxStatus
    config: PodSandboxConfig


@dataclass
class _Container:
    status: ContainerStatus
    config: ContainerConfig
    sandbox_id: str
    stop_calls: list[float] = field(default_factory=list)


def _matches(labels: Mapping[str, str], want: Mapping[str, str] | None) -> bool:
    return all(labels.get(k) == v for k, v in (want or {}).items())


class FakeExec:
    """With stdin, behaves like `cat` after its output: echoes stdin once it is closed."""

    def __init__(self, code: int, output: bytes, *, stdin: bool = False) -> None:
        self.code = code
        self._output = output
        self._wants_stdin = stdin
        self._stdin_closed = asyncio.Event()
        self.stdin = b""

    async def write_stdin(self, data: bytes) -> None:
        self.stdin += data

    async def close_stdin(self) -> None:
        self._stdin_closed.set()

    async def output(self) -> AsyncIterator[tuple[int, bytes]]:
        if self._output:
            yield 1, self._output
        if self._wants_stdin:
            await self._stdin_closed.wait()
        if self.stdin:
            yield 1, self.stdin

    async def resize(self, *, width: int, height: int) -> None:
        return None

    async def wait(self) -> int:
        return self.code

    async def close(self) -> None:
        return None


class FakeRuntime:
    def __init__(self, *, clock: Clock | None = None) -> None:
        self.clock = clock or RealClock()
        self._ids = itertools.count(1)
        self.sandboxes: dict[str, _Sandbox] = {}
        self.containers: dict[str, _Container] = {}
        self.images: dict[str, ImageInfo] = {
            PAUSE_IMAGE: ImageInfo(id="sha256:pause", tags=(PAUSE_IMAGE,)),
            TEST_IMAGE: ImageInfo(id="sha256:busybox", tags=(TEST_IMAGE,)),
        }
        self.registry: dict[str, ImageInfo] = {}
        self.fail_pull: dict[str, str] = {}
        self.fail_create: dict[str, str] = {}
        self.logs: dict[str, list[bytes]] = {}
        self.exec_results: dict[tuple[str, ...], tuple[int, bytes]] = {}
        self.pulls: list[str] = []
        self.stops: list[tuple[str, float]] = []  # (container id, timeout_s) of every stop_container
        self.calls: list[str] = []

    def _now(self) -> datetime:
        return self.clock.wall()

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    # --- test controls
    def exit_container(self, container_id: str, code: int, *, oom: bool = False) -> None:
        c = self.containers[container_id]
        reason = "OOMKilled" if oom else ("Completed" if code == 0 else "Error")
        c.status = replace(c.status, state=ContainerState.EXITED, exit_code=code, reason=reason,
                           finished_at=self._now(), pid=0)

    def kill_sandbox(self, sandbox_id: str) -> None:
        s = self.sandboxes[sandbox_id]
        s.status = replace(s.status, state=SandboxState.NOTREADY, netns_path="", pid=0)

    def running(self, name: str | None = None) -> list[ContainerStatus]:
        return [c.status for c in self.containers.values()
                if c.status.state == ContainerState.RUNNING and (name is None or c.status.name == name)]

    # --- sandboxes
    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str:
        self.calls.append("run_pod_sandbox")
        sid = self._new_id("sb")
        labels = {**config.labels, LABEL_KIND: KIND_SANDBOX}
        self.sandboxes[sid] = _Sandbox(PodSandboxStatus(
            id=sid, state=SandboxState.READY, labels=labels, created_at=self._now(),
            netns_path=f"/proc/fake-{sid}/ns/net", pid=1000 + len(self.sandboxes)), config)
        return sid

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        self.calls.append("stop_pod_sandbox")
        if sandbox_id in self.sandboxes:
            self.kill_sandbox(sandbox_id)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        self.calls.append("remove_pod_sandbox")
        self.sandboxes.pop(sandbox_id, None)

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandboxStatus:
        s = self.sandboxes.get(sandbox_id)
        if s is None:
            raise errors.NotFound(f"sandbox {sandbox_id}")
        return s.status

    async def list_pod_sandboxes(self, labels: Mapping[str, str] | None = None) -> list[PodSandboxStatus]:
        return [s.status for s in self.sandboxes.values() if _matches(s.status.labels, labels)]

    # --- containers
    async def create_container(self, sandbox_id: str, config: ContainerConfig,
                               sandbox_config: PodSandboxConfig) -> str:
        self.calls.append(f"create_container {config.name}")
        if config.image not in self.images:
            raise errors.ImageNotPresent(f"image {config.image!r} is not present")
        if config.name in self.fail_create:
            raise errors.ContainerConfigError(self.fail_create[config.name])
        cid = self._new_id("c")
        labels = {**sandbox_config.labels, **config.labels, LABEL_KIND: KIND_CONTAINER,
                  LABEL_CONTAINER_NAME: config.name}
        self.containers[cid] = _Container(ContainerStatus(
            id=cid, name=config.name, state=ContainerState.CREATED, labels=labels, image=config.image,
            image_id=self.images[config.image].id, created_at=self._now()), config, sandbox_id)
        return cid

    async def start_container(self, container_id: str) -> None:
        self.calls.append(f"start_container {container_id}")
        c = self.containers.get(container_id)
        if c is None:
            raise errors.NotFound(container_id)
        c.status = replace(c.status, state=ContainerState.RUNNING, started_at=self._now(), pid=2000)

    async def stop_container(self, container_id: str, timeout_s: float) -> None:
        self.calls.append(f"stop_container {container_id}")
        c = self.containers.get(container_id)
        if c is None:
            return
        self.stops.append((container_id, timeout_s))
        c.stop_calls.append(timeout_s)
        if c.status.state == ContainerState.RUNNING:
            c.status = replace(c.status, state=ContainerState.EXITED, exit_code=137, reason="Error",
                               finished_at=self._now(), pid=0)

    async def remove_container(self, container_id: str) -> None:
        self.calls.append(f"remove_container {container_id}")
        self.containers.pop(container_id, None)

    async def container_status(self, container_id: str) -> ContainerStatus:
        c = self.containers.get(container_id)
        if c is None:
            raise errors.NotFound(container_id)
        return c.status

    async def list_containers(self, labels: Mapping[str, str] | None = None) -> list[ContainerStatus]:
        return [c.status for c in self.containers.values() if _matches(c.status.labels, labels)]

    # --- images
    async def pull_image(self, image: str) -> ImageInfo:
        self.pulls.append(image)
        if image in self.fail_pull:
            raise errors.ImagePullError(self.fail_pull[image])
        info = self.registry.get(image)
        if info is None:
            raise errors.ImagePullError(
                f"pull access denied for {image.split(':')[0]}, repository does not exist or may require "
                "'docker login'")
        self.images[image] = info
        return info

    async def image_status(self, image: str) -> ImageInfo | None:
        return self.images.get(image)

    async def list_images(self) -> list[ImageInfo]:
        return list(self.images.values())

    # --- streams
    async def container_logs(self, container_id: str, *, follow: bool = False, tail_lines: int | None = None,
                             since: datetime | None = None, timestamps: bool = False) -> AsyncIterator[bytes]:
        if container_id not in self.containers:
            raise errors.NotFound(container_id)
        lines = self.logs.get(container_id, [])
        if tail_lines is not None:
            lines = lines[-tail_lines:] if tail_lines > 0 else []
        for line in lines:
            yield line

    async def exec(self, container_id: str, cmd: list[str], *, stdin: bool, tty: bool) -> FakeExec:
        c = self.containers.get(container_id)
        if c is None or c.status.state != ContainerState.RUNNING:
            raise errors.NotFound(f"container {container_id} is not running")
        self.calls.append(f"exec {container_id} {' '.join(cmd)}")
        code, out = self.exec_results.get(tuple(cmd), (0, b""))
        return FakeExec(code, out, stdin=stdin)
