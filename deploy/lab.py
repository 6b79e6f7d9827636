"""The local multi-host lab (issue 3 part 7, DESIGN 10): `flotctl lab up/status/down`.

What `up` makes, in order, recording each piece in `<lab dir>/state.json`
before it makes the next (so `down` removes exactly what exists, even after
a failed `up`):
1. the three-member etcd and the master, in the root namespace: etcd on
   loopback ports, the master on 0.0.0.0 (REST + gRPC);
2. with --nodes N > 0: the lab network (deploy/labnet.py) — a switch bridge
   in its own namespace, one host namespace per node, and a leg from the
   root namespace into the switch (the subnet's .254);
3. dockerd, when it is not running (deploy/dockerd.py, shared by everyone);
4. one `flotilla-agent` per host namespace, started with
   `nsenter --net=/var/run/netns/<host>` (not `ip netns exec`, which hides
   cgroup v1 mounts — LAB-NOTES), against the master's gRPC port on the root
   leg's address, and beside it a `flotilla-proxy` once the proxy is built
   (`--proxy auto`); then it waits until every Node is Ready.

Why the master runs in the root namespace rather than on a host namespace
of its own: kubectl, flotctl and `flotctl etcd status` in the machine's shell
reach it and etcd on 127.0.0.1 exactly as on a control-plane-only lab, with
no extra routes or forwarding; agents reach it on the root leg's address
through the switch, as they would reach a master's address on a real
network; and the master reaches every agent (logs/exec on 10250) the same
way. The cost: its ports are machine-wide, so a second lab needs other ports.

Names: `--lab-id` prefixes every namespace and interface, node names are
`<node-prefix><i>`, and containers carry `flotilla.node=<node name>`, so a
test lab (random id, prefix and subnet) never touches a developer's lab.
Iptables rules the agents make (masquerade) live inside the host namespaces
and go with them; the lab adds none to the root namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deploy.labnet import LabNetPlan, create_lab_net, destroy_lab_net, netns_exec, plan_lab_hosts
from protos import resources

Say = Callable[[str], None]
LABEL_NODE = "flotilla.node"  # node_agent.runtime.interface.LABEL_NODE
LABEL_LAB = "flotilla.io/lab"


@dataclass
class LabConfig:
    lab_dir: Path
    nodes: int = 3
    lab_id: str = "flot"
    subnet: str = "172.28.0.0/24"
    node_prefix: str = "node"
    rest_port: int = 6443
    grpc_port: int = 6444
    etcd_base_port: int = 2379
    runtime: str = "docker"
    heartbeat_period_s: int = 10
    # The node-failure window: a host whose lease is older than this is
    # Ready=Unknown and tainted unreachable, and pods without a longer
    # toleration leave it this many seconds later (Kubernetes: 40 s, 300 s;
    # the lab is meant to show failover, so both are short).
    node_grace_period_s: int = 20
    default_toleration_seconds: int = 30
    proxy: str = "auto"  # auto: start flotilla-proxy per host when it is built; on; off
    demo: str = ""  # a manifest applied once the hosts are Ready (`make up`: deploy/demo.yaml)
    ready_timeout_s: float = 90.0


@dataclass
class LabState:
    lab_id: str = ""
    subnet: str = ""
    nodes: list[str] = field(default_factory=list)
    agents: dict[str, int] = field(default_factory=dict)
    proxies: dict[str, int] = field(default_factory=dict)
    master_pid: int = 0
    rest_port: int = 0
    grpc_port: int = 0
    etcd_base_port: int = 0
    network: bool = False

    @classmethod
    def load(cls, lab_dir: Path) -> LabState:
        try:
            return cls(**json.loads((lab_dir / "state.json").read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return cls()

    def save(self, lab_dir: Path) -> None:
        lab_dir.mkdir(parents=True, exist_ok=True)
        tmp = lab_dir / "state.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        tmp.replace(lab_dir / "state.json")

    def plan(self) -> LabNetPlan:
        return plan_lab_hosts(self.lab_id, self.nodes, subnet=self.subnet)


def etcd_endpoints(base_port: int) -> str:
    # deploy/etcd_cluster.py's scheme: member i serves clients on base + 10*i.
    return ",".join(f"127.0.0.1:{base_port + 10 * i}" for i in range(3))


def _etcd(lab_dir: Path, *args: str) -> int:
    return subprocess.call([sys.executable, "-m", "deploy.etcd_cluster", *args, "--data-dir", str(lab_dir / "etcd")],
                           stdout=sys.stdout, stderr=sys.stderr)


def _alive(pid: int, needle: bytes) -> bool:
    """True when `pid` runs and its command line holds `needle` (never signal a reused PID)."""
    if pid <= 0:
        return False
    try:
        return needle in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _stop(pid: int, needle: bytes, *, timeout_s: float = 10.0) -> bool:
    if not _alive(pid, needle):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(pid, needle) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid, needle):
        os.kill(pid, signal.SIGKILL)
    return True


def _get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def node_ready(rest_port: int, name: str) -> bool:
    node = _get_json(f"http://127.0.0.1:{rest_port}/api/v1/nodes/{name}")
    if not isinstance(node, dict):
        return False
    conds = node.get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


# ---- up -----------------------------------------------------------------------------


def up(cfg: LabConfig, say: Say) -> int:
    lab_dir = cfg.lab_dir
    lab_dir.mkdir(parents=True, exist_ok=True)
    state = LabState.load(lab_dir)
    if state.lab_id and (state.lab_id != cfg.lab_id or state.subnet != cfg.subnet):
        say(f"a lab {state.lab_id!r} ({state.subnet}) already lives in {lab_dir}: `flotctl lab down` first")
        return 1
    names = [f"{cfg.node_prefix}{i + 1}" for i in range(cfg.nodes)]
    state.lab_id, state.subnet = cfg.lab_id, cfg.subnet
    state.nodes = list(dict.fromkeys(state.nodes + names))  # keep earlier hosts' order (and addresses)
    state.rest_port, state.grpc_port, state.etcd_base_port = cfg.rest_port, cfg.grpc_port, cfg.etcd_base_port
    state.save(lab_dir)

    endpoints = etcd_endpoints(cfg.etcd_base_port)
    say(f"etcd: three members on {endpoints} (data in {lab_dir / 'etcd'})")
    if _etcd(lab_dir, "start", "--base-port", str(cfg.etcd_base_port)) != 0:
        return 1
    kubeconfig = lab_dir.parent / "kubeconfig"
    if not _alive(state.master_pid, b"master.main"):
        say(f"master: REST :{cfg.rest_port}, gRPC :{cfg.grpc_port} (log {lab_dir / 'master.log'})")
        log = open(lab_dir / "master.log", "ab")  # noqa: SIM115 - handed to the child
        # With hosts, the master advertises the root leg's address: the
        # `kubernetes` Service's endpoint must be reachable from pods, and the
        # kubeconfig works from the root shell all the same.
        advertise = ["--advertise-address", state.plan().root_address] if names else []
        proc = subprocess.Popen(
            [sys.executable, "-m", "master.main", "--etcd-endpoints", endpoints,
             "--rest-port", str(cfg.rest_port), "--grpc-port", str(cfg.grpc_port),
             "--node-heartbeat-period-s", str(cfg.heartbeat_period_s),
             "--default-toleration-seconds", str(cfg.default_toleration_seconds),
             "--controller-option", f"nodelifecycle.grace_period_s={cfg.node_grace_period_s}",
             "--kubeconfig-out", str(kubeconfig), "--log-format", "text", *advertise],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        state.master_pid = proc.pid
        state.save(lab_dir)
        (lab_dir / "master.pid").write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + 30
        while not _ready(f"http://127.0.0.1:{cfg.rest_port}/readyz"):
            if proc.poll() is not None or time.monotonic() > deadline:
                say(f"master did not become ready; see {lab_dir / 'master.log'}")
                return 1
            time.sleep(0.2)
    else:
        say(f"master: already running (pid {state.master_pid})")
    if names and _up_hosts(cfg, state, names, say) != 0:
        return 1
    if cfg.demo and apply_manifest(cfg.rest_port, Path(cfg.demo), say) != 0:
        return 1
    say("ready")
    print(f"\n  export KUBECONFIG={kubeconfig}\n  kubectl get nodes -o wide\n  kubectl get pods -A -o wide\n\n"
          f"Hosts are network namespaces: `nsenter --net=/var/run/netns/{cfg.lab_id}-<node> sh` enters one.\n"
          "`flotctl lab status` shows what runs; `flotctl lab down` removes it all.", flush=True)
    return 0


def _ensure_local_images(say: Say) -> None:
    """No registry is reachable: build the images the agent and the demo use (docker import)."""
    import asyncio

    from node_agent.runtime.docker import DockerRuntime
    from node_agent.runtime.interface import PAUSE_IMAGE, TEST_IMAGE

    async def build() -> None:
        runtime = DockerRuntime()
        try:
            for image in (PAUSE_IMAGE, TEST_IMAGE):
                await runtime.ensure_image(image)
        finally:
            await runtime.close()

    asyncio.run(build())
    say(f"images: {PAUSE_IMAGE}, {TEST_IMAGE} (built locally from busybox-static when missing)")


def collection_path(doc: dict[str, Any]) -> str:
    """The REST collection an object is POSTed to, from the resource registry."""
    api_version, kind = doc["apiVersion"], doc["kind"]
    group = api_version.rpartition("/")[0]
    info = resources.by_kind(group, kind)
    if info is None:
        raise ValueError(f"{api_version} {kind} is not a kind Flotilla serves")
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if not info.namespaced:
        return f"{base}/{info.resource}"
    return f"{base}/namespaces/{doc.get('metadata', {}).get('namespace', 'default')}/{info.resource}"


def apply_manifest(rest_port: int, path: Path, say: Say) -> int:
    """Create every object of a YAML manifest through the REST API; existing ones are left as they are."""
    import yaml

    for doc in yaml.safe_load_all(path.read_text()):
        if not doc:
            continue
        kind, name = doc.get("kind", "?"), doc.get("metadata", {}).get("name", "?")
        try:
            collection = collection_path(doc)
        except (KeyError, ValueError) as exc:
            say(f"demo: {kind.lower()}/{name}: {exc}")
            return 1
        req = urllib.request.Request(f"http://127.0.0.1:{rest_port}{collection}",
                                     data=json.dumps(doc).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10):
                say(f"demo: {kind.lower()}/{name} created")
        except urllib.error.HTTPError as exc:
            if exc.code != 409:
                say(f"demo: {kind.lower()}/{name}: {exc.code} {exc.read()[:300].decode(errors='replace')}")
                return 1
            say(f"demo: {kind.lower()}/{name} already exists")
    return 0


def _up_hosts(cfg: LabConfig, state: LabState, names: list[str], say: Say) -> int:
    lab_dir = cfg.lab_dir
    plan = state.plan()
    say(f"network: switch {plan.switch_netns}, hosts {', '.join(h.netns for h in plan.hosts)} on {plan.subnet}, "
        f"root leg {plan.root_leg} {plan.root_address}")
    state.network = True
    state.save(lab_dir)
    create_lab_net(plan)
    if cfg.runtime == "docker":
        from deploy.dockerd import ensure_dockerd

        pid = ensure_dockerd()
        say("dockerd: running" if pid is None else f"dockerd: started (pid {pid}); it stays up for everyone")
        _ensure_local_images(say)
    master = f"{plan.root_address}:{cfg.grpc_port}"
    (lab_dir / "agents").mkdir(exist_ok=True)
    for host in plan.hosts:
        if host.name not in names:
            continue
        if _alive(state.agents.get(host.name, 0), b"node_agent.main"):
            say(f"agent {host.name}: already running (pid {state.agents[host.name]})")
            continue
        log_path = lab_dir / "agents" / f"{host.name}.log"
        say(f"agent {host.name}: in {host.netns} at {host.address} (log {log_path})")
        log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
        cmd = netns_exec(host.netns, sys.executable, "-m", "node_agent.main", "--master", master,
                         "--node-name", host.name, "--advertise-address", host.address,
                         "--state-dir", str(lab_dir / "agents" / host.name), "--runtime", cfg.runtime,
                         "--labels", f"{LABEL_LAB}={cfg.lab_id}", "--log-format", "text")
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        state.agents[host.name] = proc.pid  # nsenter execs the agent: same PID
        state.save(lab_dir)
    if cfg.proxy == "on" or (cfg.proxy == "auto" and proxy_built()):
        _up_proxies(cfg, state, plan, names, master, say)
    say(f"waiting for {len(names)} node(s) to be Ready")
    deadline = time.monotonic() + cfg.ready_timeout_s
    pending = list(names)
    while pending:
        pending = [n for n in pending if not node_ready(cfg.rest_port, n)]
        for n in pending:
            if not _alive(state.agents.get(n, 0), b"node_agent.main"):
                tail = (lab_dir / "agents" / f"{n}.log").read_text(errors="replace")[-2000:]
                say(f"agent {n} exited; the end of its log:\n{tail}")
                return 1
        if pending and time.monotonic() > deadline:
            say(f"not Ready after {cfg.ready_timeout_s:.0f} s: {', '.join(pending)} (logs in {lab_dir / 'agents'})")
            return 1
        if pending:
            time.sleep(0.3)
    for n in names:
        say(f"node {n}: Ready")
    return 0


def proxy_built() -> bool:
    """netproxy.main is the real proxy (it has a parser), not the placeholder."""
    try:
        import netproxy.main as proxy_main
    except ImportError:
        return False
    return hasattr(proxy_main, "parse_args")


def _up_proxies(cfg: LabConfig, state: LabState, plan: LabNetPlan, names: list[str], master: str,
                say: Say) -> None:
    for host in plan.hosts:
        if host.name not in names or _alive(state.proxies.get(host.name, 0), b"netproxy.main"):
            continue
        log_path = cfg.lab_dir / "agents" / f"{host.name}-proxy.log"
        say(f"proxy {host.name}: in {host.netns} (log {log_path})")
        log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
        cmd = netns_exec(host.netns, sys.executable, "-m", "netproxy.main", "--master", master,
                         "--hostname-override", host.name, "--cluster-cidr", "10.244.0.0/16",
                         "--iptables-backend", "legacy",
                         "--cluster-dns", "10.96.0.10")  # cluster DNS on the Node's InternalIP:53
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        state.proxies[host.name] = proc.pid
        state.save(cfg.lab_dir)


# ---- down ---------------------------------------------------------------------------


def remove_lab_containers(nodes: list[str]) -> list[str]:
    """Every container labelled with one of the lab's node names (pods' sandboxes and apps)."""
    if not nodes:
        return []
    try:
        import docker
    except ImportError:
        return []
    from deploy.dockerd import dockerd_responds

    if not dockerd_responds():
        return []
    api = docker.APIClient(version="auto", timeout=60)
    removed = []
    try:
        for node in nodes:
            for c in api.containers(all=True, filters={"label": f"{LABEL_NODE}={node}"}):
                api.remove_container(c["Id"], force=True)
                removed.append(f"container {c['Id'][:12]} ({node})")
    finally:
        api.close()
    return removed


def down(lab_dir: Path, say: Say) -> int:
    state = LabState.load(lab_dir)
    for name, pid in sorted(state.proxies.items()):
        if _stop(pid, b"netproxy.main"):
            say(f"proxy {name}: stopped pid {pid}")
    for name, pid in sorted(state.agents.items()):
        if _stop(pid, b"node_agent.main"):
            say(f"agent {name}: stopped pid {pid}")
    for item in remove_lab_containers(state.nodes):
        say(f"removed {item}")
    pid = state.master_pid or _pid_file(lab_dir / "master.pid")
    if _stop(pid, b"master.main"):
        say(f"master: stopped pid {pid}")
    if (lab_dir / "etcd").exists():
        say("etcd: stopping")
        _etcd(lab_dir, "stop")
    if state.network and state.lab_id:
        for item in destroy_lab_net(state.plan()):
            say(f"removed {item} (with its bridges, veths and iptables rules)")
    if lab_dir.exists():
        # Memory emptyDirs of pods that were running are tmpfs mounts under the
        # agents' state dirs (the agents made them in this mount namespace, and
        # removing the containers does not undo them): rmtree would fail on them.
        from node_agent.pods.volumes import mounts_under

        for point in mounts_under(lab_dir):
            subprocess.run(["umount", "-l", point], capture_output=True)
            say(f"unmounted {point}")
        shutil.rmtree(lab_dir)
        say(f"removed {lab_dir}")
    say("lab down: no lab process is left")
    return 0


def _pid_file(path: Path) -> int:
    try:
        return int(path.read_text())
    except (FileNotFoundError, ValueError):
        return 0


# ---- status -------------------------------------------------------------------------


def status(lab_dir: Path, say: Say) -> int:
    state = LabState.load(lab_dir)
    pid = state.master_pid or _pid_file(lab_dir / "master.pid")
    master_up = _alive(pid, b"master.main")
    rest = state.rest_port or 6443
    ready = master_up and _ready(f"http://127.0.0.1:{rest}/readyz")
    say(f"master: {'running, pid ' + str(pid) if master_up else 'stopped'}"
        + (f", REST :{rest} {'ready' if ready else 'NOT ready'}" if master_up else ""))
    ok = master_up and ready
    if state.network and state.lab_id:
        plan = state.plan()
        say(f"network: {plan.subnet}, switch {plan.switch_netns} "
            f"{'present' if Path('/var/run/netns', plan.switch_netns).exists() else 'MISSING'}")
        for host in plan.hosts:
            ns_ok = Path("/var/run/netns", host.netns).exists()
            apid = state.agents.get(host.name, 0)
            alive = _alive(apid, b"node_agent.main")
            nready = ready and node_ready(rest, host.name)
            ok = ok and ns_ok and alive and nready
            proxy = ""
            if host.name in state.proxies:
                ppid = state.proxies[host.name]
                palive = _alive(ppid, b"netproxy.main")
                ok = ok and palive
                proxy = f", proxy {'pid ' + str(ppid) if palive else 'NOT running'}"
            say(f"host {host.name}: netns {host.netns} {'present' if ns_ok else 'MISSING'}, {host.address}, "
                f"agent {'pid ' + str(apid) if alive else 'NOT running'}{proxy}, "
                f"node {'Ready' if nready else 'NOT Ready'}")
    if (lab_dir / "etcd").exists():
        return _etcd(lab_dir, "status") or (0 if ok else 1)
    say("etcd: not started")
    return 1
