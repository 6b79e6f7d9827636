"""`flotilla-agent`: the node agent.

Composition (DESIGN 5): connect to the master's gRPC port, register (the
master answers with this node's pod CIDR), set up the pod network (bridge,
masquerade, sysctls), then run in one asyncio.TaskGroup: the PodManager
(recovers pods from Docker labels first), the pod stream feeding it, the
heartbeat, the Node informer keeping host-gw routes in step, and the HTTP
servers (node_agent.server, from the pods side, when present).

SIGTERM/SIGINT cancel the group: the agent exits and leaves pods running
(as kubelet does) — a restarted agent finds them through Docker labels and
its IPAM state under --state-dir.

Must not: decide pod actions (node_agent.pods), plumb links
(node_agent.network), or talk to the master other than through
node_agent.apiclient.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

from master.client.events import EventRecorder
from master.client.informer import InformerFactory
from master.logs import setup_logging
from master.process import forever, until_signalled
from node_agent.apiclient import NodeClient
from node_agent.network.bridge import BridgeConfig, BridgeNetwork
from node_agent.registration import (
    NodeIdentity,
    RegistrationRefused,
    build_register_request,
    host_facts,
    register,
    run_heartbeat,
    run_pod_stream,
    run_route_sync,
)
from protos.core.v1 import core_pb2

log = logging.getLogger("flotilla.agent")


def parse_labels(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"label {item!r}: use key=value")
        out[key] = value
    return out


def parse_taints(text: str) -> list[core_pb2.Taint]:
    """kubelet's --register-with-taints syntax: key[=value]:Effect, comma-separated."""
    taints = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        kv, sep, effect = item.rpartition(":")
        if not sep or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise argparse.ArgumentTypeError(f"taint {item!r}: use key[=value]:NoSchedule|PreferNoSchedule|NoExecute")
        key, _, value = kv.partition("=")
        taints.append(core_pb2.Taint(key=key, value=value, effect=effect))
    return taints


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="flotilla-agent", description=__doc__.splitlines()[0])
    p.add_argument("--master", default=os.environ.get("FLOTILLA_MASTER", "127.0.0.1:6444"),
                   help="the master's gRPC address HOST:PORT (default %(default)s)")
    p.add_argument("--node-name", default=socket.gethostname().lower(), help="default: the hostname")
    p.add_argument("--advertise-address", default="",
                   help="the address other nodes and the master reach this host on (required)")
    p.add_argument("--force-advertise-address", action="store_true",
                   help="accept an address the master would refuse as shared (10.0.2.15 on Vagrant)")
    p.add_argument("--runtime", choices=("docker", "fake"), default="docker")
    p.add_argument("--docker-url", default="unix:///var/run/docker.sock")
    p.add_argument("--bridge-name", default="flot0", help="the pod bridge (unique per host namespace)")
    p.add_argument("--iptables", default="iptables-legacy",
                   help="iptables binary for the masquerade rule; the proxy must use the same backend")
    p.add_argument("--no-masquerade", action="store_true")
    p.add_argument("--heartbeat-period-s", type=float, default=None,
                   help="seconds between heartbeats (default: what the master answers, 10 s by default)")
    p.add_argument("--read-only-port", type=int, default=10255)
    p.add_argument("--port", type=int, default=10250)
    p.add_argument("--state-dir", default="", help="default /var/lib/flotilla-agent/<node-name>")
    p.add_argument("--labels", type=parse_labels, default={}, help="key=value,... for the Node")
    p.add_argument("--register-with-taints", type=parse_taints, default=[], help="key[=value]:Effect,...")
    p.add_argument("--control-plane", action="store_true",
                   help="label node-role.kubernetes.io/control-plane and taint it NoSchedule")
    p.add_argument("--registry", default="",
                   help="host:port of the image registry to pull from (none: only images already loaded)")
    p.add_argument("--cluster-dns", default="10.96.0.10",
                   help="comma-separated nameservers for pods' resolv.conf ('' : the host's)")
    p.add_argument("--cluster-domain", default="cluster.local")
    p.add_argument("--log-format", choices=("json", "text"), default="json")
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    if not args.advertise_address:
        p.error("--advertise-address is required: the address other nodes reach this host on")
    if not args.state_dir:
        args.state_dir = f"/var/lib/flotilla-agent/{args.node_name}"
    if args.control_plane:
        args.labels = {**args.labels, "node-role.kubernetes.io/control-plane": ""}
        args.register_with_taints = [*args.register_with_taints, core_pb2.Taint(
            key="node-role.kubernetes.io/control-plane", effect="NoSchedule")]
    return args


def _runtime(args: argparse.Namespace) -> Any:
    if args.runtime == "fake":
        from node_agent.runtime.fake import FakeRuntime

        return FakeRuntime()
    from node_agent.runtime.docker import DockerRuntime

    return DockerRuntime(base_url=args.docker_url, node_name=args.node_name, registry=args.registry)


async def _runtime_version(runtime: Any) -> str:
    version = getattr(runtime, "version", None)
    return str(await version()) if version is not None else "fake://0"


async def run(args: argparse.Namespace) -> None:
    state_dir = Path(args.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    api = await NodeClient.connect(args.master, node_name=args.node_name)
    runtime = _runtime(args)
    try:
        identity = NodeIdentity(node_name=args.node_name, advertise_address=args.advertise_address,
                                force_address=args.force_advertise_address, labels=args.labels,
                                taints=args.register_with_taints, kubelet_port=args.port)
        request = build_register_request(identity, host_facts(), runtime_version=await _runtime_version(runtime))
        resp = await register(api, request)
        network = _network(args, resp, state_dir)
        if isinstance(network, BridgeNetwork):
            await network.ensure()
            await _release_unclaimed(network, runtime, args.node_name)
        events = EventRecorder(api.client, "kubelet", host=args.node_name)
        manager = _pod_manager(args, runtime, network, api, state_dir, events)
        factory = InformerFactory(api.client.lister_watcher)
        period = args.heartbeat_period_s or float(resp.heartbeat_period_seconds or 10)

        async def reregister() -> None:
            await register(api, request, expect_pod_cidr=resp.pod_cidr)

        async with asyncio.TaskGroup() as tg:
            manager_ready = asyncio.Event()
            tg.create_task(forever("events", events.run()))
            tg.create_task(forever("pod manager", manager.run(ready=manager_ready)))
            tg.create_task(forever("heartbeat", run_heartbeat(api, period_s=period, reregister=reregister,
                                                               follow_master=args.heartbeat_period_s is None)))
            if isinstance(network, BridgeNetwork):
                nodes = factory.informer(core_pb2.Node)
                tg.create_task(forever("informers", factory.run()))
                tg.create_task(forever("routes", run_route_sync(nodes, network, own_node=args.node_name)))
            tg.create_task(forever("http", _http_server(args, manager, runtime)))
            await manager_ready.wait()
            tg.create_task(forever("pod stream", run_pod_stream(api, manager)))
            log.info("agent running", extra={"node": args.node_name, "pod_cidr": resp.pod_cidr,
                                             "master": args.master})
    finally:
        close = getattr(runtime, "close", None)
        if close is not None:
            await close()
        await api.close()


def _network(args: argparse.Namespace, resp: Any, state_dir: Path) -> Any:
    if args.runtime == "fake":
        from node_agent.network.fake import FakePodNetwork

        return FakePodNetwork(resp.pod_cidr)
    return BridgeNetwork(BridgeConfig(pod_cidr=resp.pod_cidr, state_dir=state_dir / "network",
                                      cluster_cidr=resp.cluster_cidr or "10.244.0.0/16",
                                      bridge_name=args.bridge_name, masquerade=not args.no_masquerade,
                                      iptables=args.iptables))


async def _release_unclaimed(network: BridgeNetwork, runtime: Any, node_name: str) -> None:
    from node_agent.runtime.interface import LABEL_NODE, LABEL_POD_UID

    sandboxes = await runtime.list_pod_sandboxes({LABEL_NODE: node_name})
    released = await network.release_unclaimed({s.labels.get(LABEL_POD_UID, "") for s in sandboxes})
    if released:
        log.info("released addresses of pods without a sandbox", extra={"pods": released})


def _pod_manager(args: argparse.Namespace, runtime: Any, network: Any, api: Any, state_dir: Path,
                 events: EventRecorder) -> Any:
    from node_agent.pods.manager import PodManager

    dns = tuple(s.strip() for s in args.cluster_dns.split(",") if s.strip())
    return PodManager(runtime, network, api, node_name=args.node_name, root_dir=str(state_dir / "pods"),
                      host_ip=args.advertise_address, registry_configured=bool(args.registry),
                      cluster_dns=dns, cluster_domain=args.cluster_domain, events=events)


def _http_server(args: argparse.Namespace, manager: Any, runtime: Any) -> Any:
    """The agent's HTTP servers: read-only /healthz /spec /pods, and logs/exec (node_agent.server)."""
    from node_agent import server as http

    return http.serve(manager=manager, runtime=runtime, node_name=args.node_name,
                      read_only_port=args.read_only_port, port=args.port)



def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging(level=args.log_level, fmt=args.log_format)

    try:
        asyncio.run(until_signalled(run(args), stopping="shutting down; pods keep running"))
    except* RegistrationRefused as refused:
        for refusal in refused.exceptions:
            log.error("%s", refusal)
        sys.exit(3)
    except* Exception as group:
        for failure in group.exceptions:
            log.error("agent failed: %s", failure, exc_info=failure)
        sys.exit(1)


if __name__ == "__main__":
    main()
