"""Helpers shared by the lab end-to-end tests (test_lab_nodes, test_lab_failover,
test_lab_services): run a command from the repository, call the REST API, wait
for a condition, fetch a URL from a host namespace, start and stop a private lab
and list what a lab left behind.

A test lab never touches anyone else's: `Lab` picks a random lab id (namespace
and interface prefix), node prefix, /24 subnet, etcd port block and REST/gRPC
ports, and keeps its state in the test's tmp_path (FLOTILLA_LAB_DIR).
Must not: assert anything about the product; the tests do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

from deploy.dockerd import ensure_dockerd
from deploy.etcd_cluster import free_port_block
from tests.integration.harness import REPO, free_port


def docker_ready() -> docker.APIClient:
    """dockerd running (started when it is not) and the test image built: a client to it."""
    import asyncio

    from node_agent.runtime.docker import DockerRuntime
    from node_agent.runtime.interface import TEST_IMAGE

    ensure_dockerd()
    asyncio.run(DockerRuntime().ensure_image(TEST_IMAGE))
    return docker.APIClient(version="auto", timeout=60)


def run_cmd(args: list[str], env: dict[str, str], *, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def api_json(rest: int, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{rest}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def pod_ready(pod: dict[str, Any]) -> bool:
    st = pod.get("status", {})
    return st.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions", []))


def wait_for(what: str, fn: Any, *, timeout_s: float, period_s: float = 0.5) -> Any:
    """Poll `fn` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = fn()
        except OSError:  # one slow or refused API call on a busy machine is not the answer
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s waiting for {what}"
        time.sleep(period_s)


def fetch_from_host(netns: str, url: str) -> str:
    # busybox 1.35's `wget -T` segfaults (LAB-NOTES): bound it with timeout instead.
    res = subprocess.run(["nsenter", f"--net=/var/run/netns/{netns}", "timeout", "3", "busybox", "wget", "-qO-",
                          url], capture_output=True, text=True, timeout=30)
    return res.stdout if res.returncode == 0 else ""


def node_address(rest: int, node: str) -> str:
    addresses = api_json(rest, "GET", f"/api/v1/nodes/{node}")["status"]["addresses"]
    return str([a["address"] for a in addresses if a["type"] == "InternalIP"][0])


def lab_process_alive(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        zombie = b"zombie" in Path(f"/proc/{pid}/status").read_bytes()
    except OSError:
        return False
    return not zombie and any(m in cmdline for m in (b"master.main", b"node_agent.main", b"netproxy.main"))


def leftovers(lab_id: str, lab_dir: Path, nodes: list[str], api: docker.APIClient, subnet: str = "") -> list[str]:
    left = [f"netns {p.name}" for p in Path("/var/run/netns").iterdir() if p.name.startswith(lab_id + "-")]
    # Rules inside host namespaces go with them; none may be left in the root namespace.
    net = subnet.rsplit(".", 1)[0] + "." if subnet else lab_id
    for save in ("iptables-legacy-save", "iptables-nft-save"):
        rules = subprocess.run([save], capture_output=True, text=True).stdout
        left += [f"{save}: {line}" for line in rules.splitlines()
                 if not line.startswith("#") and (net in line or lab_id in line)]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    left += [f"link {line.split(':')[1].strip()}" for line in links.splitlines()
             if line.split(":")[1].strip().split("@")[0].startswith(lab_id)]
    for node in nodes:
        left += [f"container {c['Id'][:12]}" for c in api.containers(all=True, filters={"label": f"flotilla.node={node}"})]
    needle = str(lab_dir).encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    left.append(f"process {entry.name}")
            except OSError:
                pass
    return left


@dataclass
class Lab:
    """A private `flotctl lab up --nodes N` in `tmp`: its own id, subnet and ports."""

    tmp: Path
    prefix: str  # one letter starting the lab id, so a leftover names the test that made it
    octet2: int  # the subnet is 172.<octet2>.<random>.0/24
    nodes_n: int = 3
    lab_id: str = field(init=False)
    subnet: str = field(init=False)
    rest: int = field(init=False)
    grpc: int = field(init=False)
    etcd_base: int = field(init=False)

    def __post_init__(self) -> None:
        self.lab_id = self.prefix + uuid.uuid4().hex[:5]
        self.subnet = f"172.{self.octet2}.{uuid.uuid4().int % 200 + 20}.0/24"
        self.rest, self.grpc, self.etcd_base = free_port(), free_port(), free_port_block()

    @property
    def lab_dir(self) -> Path:
        return self.tmp / "lab"

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, FLOTILLA_LAB_DIR=str(self.lab_dir), HOME=str(self.tmp))

    @property
    def kenv(self) -> dict[str, str]:
        return dict(self.env, KUBECONFIG=str(self.tmp / "kubeconfig"))

    @property
    def nodes(self) -> list[str]:
        return [f"{self.lab_id}-n{i}" for i in range(1, self.nodes_n + 1)]

    def netns(self, node: str) -> str:
        return f"{self.lab_id}-{node}"

    def flotctl(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return run_cmd([sys.executable, "-m", "flotctl.main", *args], self.env, timeout=timeout)

    def up(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.flotctl("lab", "up", "--nodes", str(self.nodes_n), "--lab-id", self.lab_id,
                            "--subnet", self.subnet, "--node-prefix", f"{self.lab_id}-n",
                            "--etcd-base-port", str(self.etcd_base), "--rest-port", str(self.rest),
                            "--grpc-port", str(self.grpc), *extra)

    def recorded_pids(self) -> list[int]:
        """Every process the lab recorded (the master's and the proxies' command
        lines do not name the lab dir, so a /proc scan for it alone misses them)."""
        try:
            recorded = json.loads((self.lab_dir / "state.json").read_text())
        except (OSError, ValueError):
            recorded = {}
        pids = [recorded.get("master_pid", 0), *recorded.get("agents", {}).values(),
                *recorded.get("proxies", {}).values()]
        return [int(p) for p in pids if p]

    def down(self, api: docker.APIClient) -> tuple[subprocess.CompletedProcess[str], list[str]]:
        """`flotctl lab down`, then whatever of the lab is still there."""
        pids = self.recorded_pids()
        down = self.flotctl("lab", "down")
        left = leftovers(self.lab_id, self.lab_dir, self.nodes, api, self.subnet)
        left += [f"process {pid}" for pid in pids if lab_process_alive(pid)]
        return down, left
