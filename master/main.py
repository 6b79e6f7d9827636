"""`flotilla-master`: the apiserver now; the scheduler and controllers join it
as they are built (issue 4), each switchable with --disable-<component>.

Composition (DESIGN 5, k3s-style): one asyncio.TaskGroup owns every
component; readiness gates in order (etcd reachable -> apiserver ready ->
the rest); a component that returns or fails takes the process down. SIGTERM
and SIGINT cancel the group and the process exits once every listener is
closed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from master.apiserver.server import APIServer, APIServerConfig
from master.kubeconfig import write_kubeconfig
from master.logs import setup_logging
from master.nodeapi.service import NodeAPIConfig
from master.nodeapi.service import add_to_server as add_node_api
from master.storage.etcd import EtcdStore
from master.storage.interface import Store
from master.storage.prefixed import PrefixedStore

log = logging.getLogger("flotilla.master")

DEFAULT_ETCD = "127.0.0.1:2379,127.0.0.1:2389,127.0.0.1:2399"
COMPONENTS = ("apiserver", "scheduler", "controllers")
NOT_BUILT_YET = ("scheduler", "controllers")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="flotilla-master", description=__doc__.splitlines()[0])
    p.add_argument("--etcd-endpoints", default=os.environ.get("FLOTILLA_ETCD", DEFAULT_ETCD),
                   help="comma-separated host:port of every etcd member (default %(default)s)")
    p.add_argument("--bind-address", default="0.0.0.0", help="address the REST and gRPC faces listen on")
    p.add_argument("--rest-port", type=int, default=6443, help="Kubernetes REST API port (plain HTTP for now)")
    p.add_argument("--grpc-port", type=int, default=6444, help="gRPC port for agents, proxies and components")
    p.add_argument("--advertise-address", default="",
                   help="address clients use to reach this master (default: 127.0.0.1 when bound to all)")
    p.add_argument("--kubeconfig-out", default=str(Path.home() / ".flotilla" / "kubeconfig"),
                   help="where to write a kubeconfig for kubectl ('' to skip)")
    p.add_argument("--etcd-prefix", default="",
                   help="keep every key under this prefix, so several clusters can share one etcd")
    p.add_argument("--cluster-cidr", default="10.244.0.0/16", help="pod CIDR of the cluster (default %(default)s)")
    p.add_argument("--node-cidr-mask-size", type=int, default=24, help="prefix length of each node's pod CIDR")
    p.add_argument("--node-heartbeat-period-s", type=int, default=10, help="how often agents renew their lease")
    p.add_argument("--node-lease-duration-s", type=int, default=40, help="spec.leaseDurationSeconds of node leases")
    p.add_argument("--log-format", choices=("json", "text"), default="json")
    p.add_argument("--log-level", default="info")
    for c in COMPONENTS:
        p.add_argument(f"--disable-{c}", action="store_true", help=f"do not run the {c}")
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    endpoints = [e.strip() for e in args.etcd_endpoints.split(",") if e.strip()]
    for c in NOT_BUILT_YET:
        if not getattr(args, f"disable_{c.replace('-', '_')}"):
            log.info("component not built yet, skipping", extra={"component": c})
    if args.disable_apiserver:
        log.error("nothing to run: the apiserver is disabled and no other component exists yet")
        raise SystemExit(2)
    etcd = await EtcdStore.open(endpoints)
    store: Store = PrefixedStore(etcd, args.etcd_prefix) if args.etcd_prefix else etcd
    try:
        advertise = args.advertise_address or (
            "127.0.0.1" if args.bind_address in ("0.0.0.0", "::") else args.bind_address
        )
        server = APIServer(
            APIServerConfig(args.bind_address, args.rest_port, args.grpc_port, advertise=f"{advertise}:{args.rest_port}"),
            store,
            grpc_services=[_node_api(args)],
        )
        ready = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(_component("apiserver", server.run(ready=ready)))
            await ready.wait()
            if args.kubeconfig_out:
                write_kubeconfig(Path(args.kubeconfig_out), f"http://{advertise}:{server.rest_port}")
            log.info("master ready", extra={"rest": f"http://{advertise}:{server.rest_port}",
                                            "grpc": f"{advertise}:{server.grpc_port}",
                                            "kubeconfig": args.kubeconfig_out})
    finally:
        await etcd.close()


def _node_api(args: argparse.Namespace) -> Callable[[Any, Any], object]:
    config = NodeAPIConfig(cluster_cidr=args.cluster_cidr, node_cidr_mask=args.node_cidr_mask_size,
                           heartbeat_period_s=args.node_heartbeat_period_s,
                           lease_duration_s=args.node_lease_duration_s)
    return lambda server, registry: add_node_api(server, registry, config)


async def _component(name: str, coro: object) -> None:
    await coro  # type: ignore[misc]
    raise RuntimeError(f"component {name} returned; a component runs until cancelled")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging(level=args.log_level, fmt=args.log_format)

    async def supervised() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await run(args)
        except asyncio.CancelledError:
            log.info("shutting down")

    try:
        asyncio.run(supervised())
    except* Exception as group:
        for exc in group.exceptions:
            log.error("master failed: %s", exc, exc_info=exc)
        sys.exit(1)


if __name__ == "__main__":
    main()
