"""DockerRuntime: the ContainerRuntime protocol over the Docker Engine API (docker SDK).

Owns: translating CRI-shaped verbs into Docker calls and Docker's answers and
errors back (errors.py, once, here). A sandbox is a pause container with
`network_mode=none` and no restart policy (LAB-NOTES: a restarted sandbox gets a
new, empty netns); app containers join its network and IPC namespaces with
`container:<sandbox>`. Images are looked up with `images.get`-style inspects and
created with `create_container` + `start`, never `containers.run` (which pulls
silently). Blocking SDK calls run in threads (DESIGN 5).
Must not: decide restarts, backoff or status; that is node_agent.pods.
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions

from node_agent.runtime import errors
from node_agent.runtime.docker_exec import DockerExec, start_exec
from node_agent.runtime.images import build_pause_image, build_test_image
from node_agent.runtime.interface import (
    KIND_CONTAINER,
    KIND_SANDBOX,
    LABEL_CONTAINER_NAME,
    LABEL_KIND,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
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

T = TypeVar("T")
_STATE = {
    "created": ContainerState.CREATED,
    "running": ContainerState.RUNNING,
    "paused": ContainerState.RUNNING,
    "restarting": ContainerState.RUNNING,
    "exited": ContainerState.EXITED,
    "dead": ContainerState.EXITED,
    "removing": ContainerState.EXITED,
}
_EXITED_RE = re.compile(r"Exited \((-?\d+)\)")


def parse_docker_time(value: str | None) -> datetime | None:
    """Docker's RFC 3339 with nanoseconds; the zero time ("0001-...") is None."""
    if not value or value.startswith("0001-"):
        return None
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?", value)
    if not m:
        return None
    frac = (m.group(2) or ".0")[1:7].ljust(6, "0")
    tz = m.group(3) or "Z"
    tz = "+00:00" if tz == "Z" else tz
    return datetime.fromisoformat(f"{m.group(1)}.{frac}{tz}").astimezone(UTC)


def has_registry_host(image: str) -> bool:
    """Docker's rule: the first path component is a registry host when it has a '.'
    or a ':' or is 'localhost'."""
    first, sep, _ = image.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


def pull_source(image: str, registry: str) -> str | None:
    """Where to pull `image` from; None when it names no registry and none is configured."""
    if has_registry_host(image):
        return image
    if registry:
        return f"{registry.rstrip('/')}/{image}"
    return None


def _translate(exc: Exception, what: str) -> errors.RuntimeError_:
    if isinstance(exc, docker.errors.ImageNotFound):
        return errors.ImageNotPresent(f"{what}: {exc.explanation or exc}")
    if isinstance(exc, docker.errors.NotFound):
        return errors.NotFound(f"{what}: {exc.explanation or exc}")
    if isinstance(exc, docker.errors.APIError):
        if exc.status_code is not None and 400 <= exc.status_code < 500:
            return errors.ContainerConfigError(f"{what}: {exc.explanation or exc}")
        return errors.RuntimeUnavailable(f"{what}: {exc.explanation or exc}")
    if isinstance(exc, requests.exceptions.ConnectionError | docker.errors.DockerException):
        return errors.RuntimeUnavailable(f"{what}: {exc}")
    return errors.RuntimeUnavailable(f"{what}: {type(exc).__name__}: {exc}")


class DockerRuntime:
    def __init__(self, *, base_url: str = "unix:///var/run/docker.sock", node_name: str = "",
                 registry: str = "", timeout_s: float = 60.0, threads: int = 32,
                 image_cache_s: float = 10.0) -> None:
        # A pool of our own: the loop's default one has cpu+4 threads, and a burst of
        # pods would queue every Docker call behind it.
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="docker")
        # Log streams block a thread each for as long as they last (`logs -f`): a pool
        # of their own, so that followers never starve the loop's default pool (6
        # threads on 2 cores), where the pod network and volumes do their work.
        self._log_pool = ThreadPoolExecutor(max_workers=256, thread_name_prefix="docker-logs")
        self._api = docker.APIClient(base_url=base_url, version="auto", timeout=int(timeout_s),
                                     max_pool_size=threads)
        self._socket_path = base_url.removeprefix("unix://")
        self.node_name = node_name
        self.registry = registry
        self._image_cache_s = image_cache_s
        self._images: dict[str, tuple[float, ImageInfo]] = {}

    async def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        except errors.RuntimeError_:
            raise
        except Exception as exc:
            raise _translate(exc, what) from exc

    async def close(self) -> None:
        await asyncio.to_thread(self._api.close)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._log_pool.shutdown(wait=False, cancel_futures=True)

    async def version(self) -> str:
        info = await self._call("version", self._api.version)
        return f"docker://{info.get('Version', '')}"

    # ------------------------------------------------------------------ images
    async def ensure_image(self, name: str) -> None:
        """Build `flotilla/pause:3.9` or the test image locally when missing."""
        if await self.image_status(name) is not None:
            return
        self._images.pop(name, None)
        if name == PAUSE_IMAGE:
            await self._call("build pause image", build_pause_image, self._api, name)
        elif name == TEST_IMAGE:
            await self._call("build test image", build_test_image, self._api, name)
        else:
            raise errors.ImageNotPresent(f"no local recipe for image {name!r}")

    async def image_status(self, image: str) -> ImageInfo | None:
        """The local image, or None. Present images are remembered for a few seconds
        (a pod start asks twice); absent ones never are."""
        cached = self._images.get(image)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self._image_cache_s:
            return cached[1]
        try:
            attrs = await self._call(f"inspect image {image}", self._api.inspect_image, image)
        except (errors.NotFound, errors.ImageNotPresent):
            self._images.pop(image, None)
            return None
        cfg = attrs.get("Config") or {}
        info = ImageInfo(id=attrs["Id"], tags=tuple(attrs.get("RepoTags") or ()),
                         size_bytes=int(attrs.get("Size") or 0), stop_signal=cfg.get("StopSignal") or "")
        self._images[image] = (now, info)
        return info

    async def list_images(self) -> list[ImageInfo]:
        got = await self._call("list images", self._api.images)
        return [ImageInfo(id=i["Id"], tags=tuple(i.get("RepoTags") or ()), size_bytes=int(i.get("Size") or 0))
                for i in got]

    async def pull_image(self, image: str) -> ImageInfo:
        """Pull `image`. A name with a registry host is pulled from that host; a bare
        name (`busybox:1.36`) from the configured registry (then tagged with the bare
        name) and, with none configured, fails at once rather than asking Docker Hub."""
        source = pull_source(image, self.registry)
        if source is None:
            raise errors.ImagePullError(
                f"no image registry is configured for {image!r}: load the image into the node's dockerd, "
                "name a registry in the image (host:port/name:tag) or start the agent with --registry")

        def pull() -> None:
            last_error = ""
            for line in self._api.pull(source, stream=True, decode=True):
                if "error" in line:
                    last_error = line.get("error", "")
            if last_error:
                raise errors.ImagePullError(last_error)
            if source != image:
                repo, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
                self._api.tag(source, repo, tag or "latest")

        self._images.pop(image, None)
        try:
            await self._call(f"pull {image}", pull)
        except errors.ImagePullError:
            raise
        except errors.RuntimeError_ as exc:
            raise errors.ImagePullError(str(exc).split(": ", 1)[-1]) from exc
        info = await self.image_status(image)
        if info is None:
            raise errors.ImagePullError(f"pull of {image} reported success but the image is not present")
        return info

    # --------------------------------------------------------------- sandboxes
    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str:
        await self.ensure_image(PAUSE_IMAGE)
        labels = {**config.labels, LABEL_KIND: KIND_SANDBOX}
        host_config = self._api.create_host_config(
            network_mode="host" if config.host_network else "none", ipc_mode="shareable",
            dns=list(config.dns_servers) or None, dns_search=list(config.dns_searches) or None,
            dns_opt=list(config.dns_options) or None,
        )
        name = f"flt_{config.namespace}_{config.name}_{config.uid[:8]}_pause_{secrets.token_hex(3)}"
        created = await self._call(
            "create sandbox", self._api.create_container, image=PAUSE_IMAGE, name=name,
            hostname=None if config.host_network else config.hostname[:63], labels=labels, host_config=host_config,
        )
        cid: str = created["Id"]
        try:
            await self._call("start sandbox", self._api.start, cid)
        except errors.RuntimeError_:
            await self.remove_pod_sandbox(cid)
            raise
        return cid

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        await self.stop_container(sandbox_id, 0)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        await self.remove_container(sandbox_id)

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandboxStatus:
        attrs = await self._call(f"inspect sandbox {sandbox_id[:12]}", self._api.inspect_container, sandbox_id)
        return _sandbox_from_inspect(attrs)

    async def list_pod_sandboxes(self, labels: Mapping[str, str] | None = None) -> list[PodSandboxStatus]:
        items = await self._list({**(labels or {}), LABEL_KIND: KIND_SANDBOX})
        return [
            PodSandboxStatus(
                id=i["Id"], state=SandboxState.READY if i.get("State") == "running" else SandboxState.NOTREADY,
                labels=i.get("Labels") or {}, created_at=datetime.fromtimestamp(i.get("Created", 0), UTC),
            )
            for i in items
        ]

    async def _list(self, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        got: list[dict[str, Any]] = await self._call("list containers", self._api.containers, all=True,
                                                     filters=filters)
        return got

    # -------------------------------------------------------------- containers
    async def create_container(self, sandbox_id: str, config: ContainerConfig,
                               sandbox_config: PodSandboxConfig) -> str:
        image = await self.image_status(config.image)
        if image is None:
            raise errors.ImageNotPresent(f"image {config.image!r} is not present")
        labels = {**config.labels, LABEL_KIND: KIND_CONTAINER}
        for key in (LABEL_POD_UID, LABEL_POD_NAMESPACE, LABEL_POD_NAME):
            labels.setdefault(key, sandbox_config.labels.get(key, ""))
        labels.setdefault(LABEL_CONTAINER_NAME, config.name)
        binds = [f"{m.host_path}:{m.container_path}:{'ro' if m.read_only else 'rw'}" for m in config.mounts]
        host_kwargs: dict[str, Any] = {
            "network_mode": f"container:{sandbox_id}", "ipc_mode": f"container:{sandbox_id}", "binds": binds,
        }
        if config.memory_limit_bytes:
            host_kwargs["mem_limit"] = config.memory_limit_bytes
            host_kwargs["memswap_limit"] = config.memory_limit_bytes
        if config.nano_cpus:
            host_kwargs["nano_cpus"] = config.nano_cpus
        if config.cpu_shares:
            host_kwargs["cpu_shares"] = config.cpu_shares
        try:
            host_config = self._api.create_host_config(**host_kwargs)
        except docker.errors.DockerException as exc:
            raise errors.ContainerConfigError(str(exc)) from exc
        name = (f"flt_{sandbox_config.namespace}_{sandbox_config.name}_{sandbox_config.uid[:8]}_{config.name}_"
                f"{secrets.token_hex(3)}")
        kwargs: dict[str, Any] = {
            "image": config.image, "name": name, "labels": labels, "host_config": host_config,
            "environment": [f"{k}={v}" for k, v in config.env.items()],
            "working_dir": config.working_dir or None, "tty": config.tty, "stdin_open": config.stdin,
            "stop_signal": config.stop_signal or image.stop_signal or None,
        }
        if config.command:
            kwargs["entrypoint"] = list(config.command)
        if config.args:
            kwargs["command"] = list(config.args)
        created = await self._call(f"create container {config.name}", self._api.create_container, **kwargs)
        return str(created["Id"])

    async def start_container(self, container_id: str) -> None:
        await self._call(f"start {container_id[:12]}", self._api.start, container_id)

    async def stop_container(self, container_id: str, timeout_s: float) -> None:
        try:
            await self._call(f"stop {container_id[:12]}", self._api.stop, container_id,
                             timeout=max(0, math.ceil(timeout_s)))
        except errors.NotFound:
            return

    async def remove_container(self, container_id: str) -> None:
        try:
            await self._call(f"remove {container_id[:12]}", self._api.remove_container, container_id,
                             force=True, v=True)
        except errors.NotFound:
            return
        except errors.ContainerConfigError as exc:
            if "already in progress" in str(exc):
                return
            raise

    async def container_status(self, container_id: str) -> ContainerStatus:
        attrs = await self._call(f"inspect {container_id[:12]}", self._api.inspect_container, container_id)
        return _container_from_inspect(attrs)

    async def list_containers(self, labels: Mapping[str, str] | None = None) -> list[ContainerStatus]:
        """State and labels from Docker's list (cheap); times and reasons need container_status."""
        items = await self._list({**(labels or {}), LABEL_KIND: KIND_CONTAINER})
        out = []
        for i in items:
            lab = i.get("Labels") or {}
            m = _EXITED_RE.search(i.get("Status") or "")
            out.append(ContainerStatus(
                id=i["Id"], name=lab.get(LABEL_CONTAINER_NAME, ""), state=_STATE.get(i.get("State", ""),
                                                                                     ContainerState.UNKNOWN),
                labels=lab, image=i.get("Image", ""), image_id=i.get("ImageID", ""),
                created_at=datetime.fromtimestamp(i.get("Created", 0), UTC),
                exit_code=int(m.group(1)) if m else 0,
            ))
        return out

    # ----------------------------------------------------------------- streams
    async def container_logs(self, container_id: str, *, follow: bool = False, tail_lines: int | None = None,
                             since: datetime | None = None, timestamps: bool = False) -> AsyncIterator[bytes]:
        kwargs: dict[str, Any] = {"stream": True, "follow": follow, "timestamps": timestamps,
                                  "tail": "all" if tail_lines is None else max(0, tail_lines)}
        if since is not None:
            kwargs["since"] = since.timestamp()
        stream = await self._call(f"logs {container_id[:12]}", self._api.logs, container_id, **kwargs)
        sentinel = object()

        def next_chunk() -> Any:
            try:
                return next(stream)
            except StopIteration:
                return sentinel

        loop = asyncio.get_running_loop()
        try:
            while True:
                # The log pool, not the Docker-call pool: a followed log can block a thread for hours.
                chunk = await loop.run_in_executor(self._log_pool, next_chunk)
                if chunk is sentinel:
                    return
                yield chunk
        finally:
            closer = getattr(stream, "close", None)
            if closer is not None:
                await asyncio.to_thread(closer)

    async def exec(self, container_id: str, cmd: list[str], *, stdin: bool, tty: bool) -> DockerExec:
        created = await self._call(f"exec in {container_id[:12]}", self._api.exec_create, container_id, cmd,
                                   stdin=stdin, tty=tty, stdout=True, stderr=True)
        return await start_exec(self, created["Id"], tty=tty)

    async def exec_resize(self, exec_id: str, *, width: int, height: int) -> None:
        await self._call("exec resize", self._api.exec_resize, exec_id, height=height, width=width)

    async def exec_exit_code(self, exec_id: str) -> int | None:
        """None while the exec'd process still runs."""
        info = await self._call("exec inspect", self._api.exec_inspect, exec_id)
        if info.get("Running"):
            return None
        code = info.get("ExitCode")
        return int(code) if code is not None else 0

    @property
    def socket_path(self) -> str:
        return self._socket_path


def _sandbox_from_inspect(attrs: dict[str, Any]) -> PodSandboxStatus:
    st = attrs.get("State") or {}
    pid = int(st.get("Pid") or 0)
    running = st.get("Status") == "running" and pid > 0
    return PodSandboxStatus(
        id=attrs["Id"], state=SandboxState.READY if running else SandboxState.NOTREADY,
        labels=(attrs.get("Config") or {}).get("Labels") or {}, created_at=parse_docker_time(attrs.get("Created")),
        netns_path=f"/proc/{pid}/ns/net" if running else "", pid=pid if running else 0,
    )


def _container_from_inspect(attrs: dict[str, Any]) -> ContainerStatus:
    st = attrs.get("State") or {}
    cfg = attrs.get("Config") or {}
    labels = cfg.get("Labels") or {}
    state = _STATE.get(st.get("Status", ""), ContainerState.UNKNOWN)
    exit_code = int(st.get("ExitCode") or 0)
    reason = ""
    if state == ContainerState.EXITED:
        reason = "OOMKilled" if st.get("OOMKilled") else ("Completed" if exit_code == 0 else "Error")
    return ContainerStatus(
        id=attrs["Id"], name=labels.get(LABEL_CONTAINER_NAME, ""), state=state, labels=labels,
        image=cfg.get("Image", ""), image_id=attrs.get("Image", ""),
        created_at=parse_docker_time(attrs.get("Created")), started_at=parse_docker_time(st.get("StartedAt")),
        finished_at=parse_docker_time(st.get("FinishedAt")), exit_code=exit_code, reason=reason,
        message=st.get("Error") or "", pid=int(st.get("Pid") or 0),
    )
