"""The CRI-shaped container runtime protocol (DESIGN 7) and the value types it speaks.

Owns: the shapes crossing the runtime boundary (sandbox/container configs and
statuses, image info, exec streams) and the Flotilla label names every container
carries. Must not: know about Pods as API objects or decide anything; the pod
workers (node_agent.pods) translate Pods into these configs and decide what to run.
Implementations: node_agent.runtime.docker.DockerRuntime, node_agent.runtime.fake.FakeRuntime.

Every method is async; blocking SDK calls run in threads inside the adapter.
Errors are node_agent.runtime.errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

# Labels every Flotilla container carries (sandboxes and app containers).
LABEL_POD_UID = "flotilla.pod.uid"
LABEL_POD_NAMESPACE = "flotilla.pod.namespace"
LABEL_POD_NAME = "flotilla.pod.name"
LABEL_CONTAINER_NAME = "flotilla.container.name"
LABEL_CONTAINER_HASH = "flotilla.container.hash"
LABEL_NODE = "flotilla.node"
# "sandbox" or "container": which of the two a Docker container is.
LABEL_KIND = "flotilla.kind"
KIND_SANDBOX = "sandbox"
KIND_CONTAINER = "container"
# App containers only: how many times this container name was started before in this pod.
LABEL_RESTART_COUNT = "flotilla.container.restart-count"
# App containers only: "init" or "app".
LABEL_CONTAINER_TYPE = "flotilla.container.type"
# The sandbox id an app container joined.
LABEL_SANDBOX_ID = "flotilla.sandbox.id"
# Host path of the file mounted at the container's terminationMessagePath.
LABEL_TERMINATION_LOG = "flotilla.container.termination-log"
# Grace period the pod asked for, so a restarted agent can still honour it.
LABEL_GRACE_S = "flotilla.pod.grace-seconds"

PAUSE_IMAGE = "flotilla/pause:3.9"
TEST_IMAGE = "flotilla/busybox:test"


class SandboxState(StrEnum):
    READY = "SANDBOX_READY"
    NOTREADY = "SANDBOX_NOTREADY"


class ContainerState(StrEnum):
    CREATED = "CONTAINER_CREATED"
    RUNNING = "CONTAINER_RUNNING"
    EXITED = "CONTAINER_EXITED"
    UNKNOWN = "CONTAINER_UNKNOWN"


@dataclass(frozen=True)
class PodSandboxConfig:
    """What a sandbox is made from. `labels` must include the Flotilla pod labels."""

    name: str
    namespace: str
    uid: str
    hostname: str
    labels: Mapping[str, str] = field(default_factory=dict)
    # Files the sandbox should expose to every container (e.g. /etc/hosts), host paths.
    hosts_path: str = ""
    dns_servers: tuple[str, ...] = ()
    dns_searches: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    # The host's network namespace instead of a pod one (spec.hostNetwork).
    host_network: bool = False


@dataclass(frozen=True)
class PodSandboxStatus:
    id: str
    state: SandboxState
    labels: Mapping[str, str]
    created_at: datetime | None
    # /proc/<pid>/ns/net of the sandbox's init process; "" when it is not running.
    netns_path: str = ""
    pid: int = 0


@dataclass(frozen=True)
class Mount:
    host_path: str
    container_path: str
    read_only: bool = False


@dataclass(frozen=True)
class ContainerConfig:
    """One container of a pod, fully resolved (env values filled in, mounts as host paths)."""

    name: str
    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    working_dir: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    # Resource limits; 0 means unlimited.
    memory_limit_bytes: int = 0
    nano_cpus: int = 0
    cpu_shares: int = 0
    stop_signal: str = ""
    tty: bool = False
    stdin: bool = False


@dataclass(frozen=True)
class ContainerStatus:
    id: str
    name: str  # the Flotilla container name (label), not Docker's name
    state: ContainerState
    labels: Mapping[str, str]
    image: str
    image_id: str = ""
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int = 0
    # "OOMKilled", "Completed", "Error" or "" while running.
    reason: str = ""
    message: str = ""
    pid: int = 0

    @property
    def restart_count(self) -> int:
        try:
            return int(self.labels.get(LABEL_RESTART_COUNT, "0"))
        except ValueError:
            return 0


@dataclass(frozen=True)
class ImageInfo:
    id: str
    tags: tuple[str, ...]
    size_bytes: int = 0
    stop_signal: str = ""


class ExecStream(Protocol):
    """A running exec session: bytes in, bytes out, an exit code at the end."""

    async def write_stdin(self, data: bytes) -> None: ...

    async def close_stdin(self) -> None: ...

    def output(self) -> AsyncIterator[tuple[int, bytes]]:
        """(stream, data) chunks: stream 1 = stdout, 2 = stderr (tty: everything on 1)."""
        ...

    async def resize(self, *, width: int, height: int) -> None: ...

    async def wait(self) -> int:
        """The exit code, once the process ended."""
        ...

    async def close(self) -> None: ...


class ContainerRuntime(Protocol):
    # --- sandboxes
    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str: ...

    async def stop_pod_sandbox(self, sandbox_id: str) -> None: ...

    async def remove_pod_sandbox(self, sandbox_id: str) -> None: ...

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandboxStatus: ...

    async def list_pod_sandboxes(self, labels: Mapping[str, str] | None = None) -> list[PodSandboxStatus]: ...

    # --- containers
    async def create_container(
        self, sandbox_id: str, config: ContainerConfig, sandbox_config: PodSandboxConfig
    ) -> str: ...

    async def start_container(self, container_id: str) -> None: ...

    async def stop_container(self, container_id: str, timeout_s: float) -> None:
        """Send the stop signal (the config's, else the image's, else SIGTERM),
        wait `timeout_s`, then SIGKILL. Idempotent on an exited container."""
        ...

    async def remove_container(self, container_id: str) -> None: ...

    async def container_status(self, container_id: str) -> ContainerStatus: ...

    async def list_containers(self, labels: Mapping[str, str] | None = None) -> list[ContainerStatus]: ...

    # --- images
    async def pull_image(self, image: str) -> ImageInfo: ...

    async def image_status(self, image: str) -> ImageInfo | None: ...

    async def list_images(self) -> list[ImageInfo]: ...

    # --- streaming
    def container_logs(
        self,
        container_id: str,
        *,
        follow: bool = False,
        tail_lines: int | None = None,
        since: datetime | None = None,
        timestamps: bool = False,
    ) -> AsyncIterator[bytes]: ...

    async def exec(self, container_id: str, cmd: list[str], *, stdin: bool, tty: bool) -> ExecStream: ...
