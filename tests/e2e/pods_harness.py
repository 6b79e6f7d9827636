"""A one-host node agent for e2e tests: real dockerd, the real bridge network in a
network namespace of the test's own, a PodManager with a FakeNodeAPI, the agent's
HTTP servers on 127.0.0.1 in that namespace.

The test's main thread enters the host namespace (setns on the thread only, undone
at the end) so that the agent's probes, the pod IPs and the agent's ports are
reachable from the test exactly as from an agent running on that host; Docker is a
unix socket and does not care. Cleanup, even on failure: every container labelled
with this test's node name, the bridge network, the namespace, the state dirs.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from deploy.dockerd import ensure_dockerd
from node_agent.network.bridge import BridgeConfig, BridgeNetwork
from node_agent.pods.api import FakeNodeAPI
from node_agent.pods.manager import PodManager
from node_agent.pods.volumes import mounts_under
from node_agent.runtime.docker import DockerRuntime
from node_agent.runtime.interface import LABEL_NODE, TEST_IMAGE
from node_agent.server import AgentServer
from protos.core.v1 import core_pb2

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextmanager
def thread_in_netns(path: str) -> Iterator[None]:
    """Move the calling thread (only) into a network namespace, and back."""
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(path, os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(original)
    finally:
        os.close(target)
        os.close(original)


def remove_node_containers(node: str) -> int:
    """Force-remove every container labelled with this node (sync, for finalizers)."""
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={LABEL_NODE}={node}"], capture_output=True,
                         text=True, timeout=60).stdout.split()
    if out:
        subprocess.run(["docker", "rm", "-f", "-v", *out], capture_output=True, timeout=120)
    return len(out)


@dataclass
class AgentHost:
    node: str
    netns: str
    runtime: DockerRuntime
    network: BridgeNetwork
    api: FakeNodeAPI
    manager: PodManager
    server: AgentServer
    state_dir: Path
    pod_cidr: str
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.bound["main"]

    @property
    def read_only_port(self) -> int:
        return self.server.bound["read_only"]

    def status(self, pod: core_pb2.Pod) -> core_pb2.PodStatus:
        return self.api.last_status(pod.metadata.uid) or core_pb2.PodStatus()

    def cstatus(self, pod: core_pb2.Pod, name: str) -> core_pb2.ContainerStatus:
        return next((c for c in self.status(pod).container_statuses if c.name == name), core_pb2.ContainerStatus())

    def condition(self, pod: core_pb2.Pod, type_: str) -> str:
        return next((c.status for c in self.status(pod).conditions if c.type == type_), "")

    async def wait(self, pred: Callable[[], object], *, timeout_s: float = 60, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if pred():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")

    async def start_manager(self) -> None:
        self.manager = PodManager(self.runtime, self.network, self.api, node_name=self.node,
                                  root_dir=str(self.state_dir / "pods"), host_ip="192.0.2.10", relist_period_s=0.5,
                                  volume_resync_s=1.0, backoff_initial_s=2.0, backoff_max_s=8.0,
                                  registry_configured=bool(self.runtime.registry), cluster_dns=("10.96.0.10",))
        self.server = AgentServer(self.manager, self.runtime, host="127.0.0.1", port=0, read_only_port=0)
        ready, served = asyncio.Event(), asyncio.Event()
        self.tasks = [asyncio.create_task(self.manager.run(ready=ready)),
                      asyncio.create_task(self.server.run(ready=served))]
        await asyncio.wait_for(ready.wait(), 60)
        await asyncio.wait_for(served.wait(), 30)

    async def stop_manager(self) -> None:
        """Like kill -9 of the agent: tasks end, containers stay."""
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []

    async def exec(self, pod: core_pb2.Pod, container: str, command: list[str], *, stdin: bytes | None = None,
                   protocol: str = "v5.channel.k8s.io", tty: bool = False) -> tuple[bytes, bytes, dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/exec/{pod.metadata.namespace}/{pod.metadata.name}/{container}"
        return await ws_exec(url, command, stdin=stdin, protocol=protocol, tty=tty)


async def ws_exec(url: str, command: list[str], *, stdin: bytes | None = None, protocol: str = "v5.channel.k8s.io",
                  headers: dict[str, str] | None = None, tty: bool = False) -> tuple[bytes, bytes, dict[str, Any]]:
    params = [("command", c) for c in command] + [("stdout", "true"), ("stderr", "true")]
    if tty:
        params.append(("tty", "true"))
    if stdin is not None:
        params.append(("stdin", "true"))
    out, err, status = b"", b"", {}
    async with aiohttp.ClientSession() as s, s.ws_connect(url, params=params, protocols=(protocol,),
                                                          headers=headers or {}) as ws:
        assert ws.protocol == protocol
        if tty:
            await ws.send_bytes(b"\x04" + json.dumps({"Width": 100, "Height": 30}).encode())
        if stdin is not None:
            await ws.send_bytes(b"\x00" + stdin)
            if protocol.startswith("v5"):
                await ws.send_bytes(b"\xff\x00")
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.BINARY:
                break
            ch, data = msg.data[0], msg.data[1:]
            if ch == 1:
                out += data
            elif ch == 2:
                err += data
            elif ch == 3:
                status = json.loads(data)
    return out, err, status


@asynccontextmanager
async def agent_host(tmp_path: Path, *, registry: str = "") -> AsyncIterator[AgentHost]:
    await asyncio.to_thread(ensure_dockerd)
    suffix = uuid.uuid4().hex[:6]
    node = f"e2e-pods-{suffix}"
    netns = f"fpods-{suffix}"
    third = int(suffix, 16) % 200 + 20
    pod_cidr = f"10.244.{third}.0/24"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    runtime = DockerRuntime(node_name=node, registry=registry)
    network = BridgeNetwork(BridgeConfig(pod_cidr=pod_cidr, state_dir=tmp_path / "network", host_netns=netns,
                                         masquerade=False))
    host: AgentHost | None = None
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        await runtime.ensure_image(TEST_IMAGE)
        await network.ensure()
        with thread_in_netns(f"/var/run/netns/{netns}"):
            host = AgentHost(node=node, netns=netns, runtime=runtime, network=network, api=FakeNodeAPI(),
                             manager=None, server=None, state_dir=tmp_path, pod_cidr=pod_cidr)  # type: ignore[arg-type]
            await host.start_manager()
            try:
                yield host
            finally:
                await host.stop_manager()
    finally:
        await asyncio.to_thread(remove_node_containers, node)
        # Memory emptyDirs of pods still running at the end are tmpfs mounts under the state dir.
        for point in mounts_under(tmp_path):
            subprocess.run(["umount", "-l", point], capture_output=True)
        with suppress(Exception):
            await network.remove()
        await runtime.close()
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)


@contextmanager
def local_registry(tmp_path: Path) -> Iterator[str]:
    """A Debian docker-registry on a free loopback port, stopped by PID at the end."""
    from tests.integration.harness import free_port

    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'registry'}\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    log = open(tmp_path / "registry.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=log)
    try:
        import urllib.request

        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "registry.log").read_text()
            assert time.monotonic() < deadline, "docker-registry did not come up"
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
