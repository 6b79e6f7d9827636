"""`flotilla-master`: apiserver, controllers and (soon) the scheduler in one process.

Composition (DESIGN 5, k3s-style): one asyncio.TaskGroup owns every
component; readiness gates in order (etcd reachable -> apiserver ready ->
the rest); a component that returns or fails takes the process down. SIGTERM
and SIGINT cancel the group and the process exits once every listener is
closed.

Every master serves the API. The led components (the ControllerManager with
the chosen controllers, and the scheduler) run only while this master holds
the leader Lease (master/leaderelection.py); they talk to the API through a
Client on this master's own gRPC face, or on `--server` when the apiserver
is disabled here. Each is switchable: --disable-apiserver / -scheduler /
-controllers, `--controllers=a,b` (or `*`) and `--disable-controllers=a,b`
choose controllers, `--controller-option name.key=value` reaches
`ControllerContext.options`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from master.apiserver.server import APIServer, APIServerConfig
from master.client.client import Client
from master.controllers.manager import CONTROLLERS, ControllerManager
from master.kubeconfig import write_kubeconfig
from master.leaderelection import LeaderElectionConfig, LeaderElector, default_identity
from master.logs import setup_logging
from master.nodeapi.service import NodeAPIConfig
from master.nodeapi.service import add_to_server as add_node_api
from master.process import forever, tune_gc, until_signalled
from master.scheduler.scheduler import Scheduler
from master.storage.etcd import EtcdStore
from master.storage.interface import Store
from master.storage.prefixed import PrefixedStore

log = logging.getLogger("flotilla.master")

DEFAULT_ETCD = "127.0.0.1:2379,127.0.0.1:2389,127.0.0.1:2399"
COMPONENTS = ("apiserver", "scheduler", "controllers")
NOT_BUILT_YET: tuple[str, ...] = ()


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
    p.add_argument("--service-cluster-ip-range", default="10.96.0.0/12",
                   help="CIDR Service clusterIPs are allocated from (default %(default)s)")
    p.add_argument("--service-node-port-range", default="30000-32767",
                   help="port range nodePorts are allocated from (default %(default)s)")
    p.add_argument("--log-format", choices=("json", "text"), default="json")
    p.add_argument("--log-level", default="info")
    for c in COMPONENTS:
        if c != "controllers":
            p.add_argument(f"--disable-{c}", action="store_true", help=f"do not run the {c}")
    p.add_argument("--server", default="",
                   help="gRPC host:port of the master whose API the led components use "
                        "(default: this process's own gRPC face)")
    p.add_argument("--controllers", default="*",
                   help="comma-separated controllers to run, '*' for all: " + ",".join(CONTROLLERS))
    p.add_argument("--disable-controllers", default="", metavar="NAMES", nargs="?", const="*",
                   help="comma-separated controllers not to run; alone, no controllers at all")
    p.add_argument("--controller-option", action="append", default=[], metavar="NAME.KEY=VALUE",
                   help="an option for one controller, e.g. nodelifecycle.grace_period_s=40 (repeatable)")
    p.add_argument("--leader-elect", default=True, action=argparse.BooleanOptionalAction,
                   help="run the led components only while holding the leader Lease (default on)")
    p.add_argument("--leader-elect-identity", default="", help="this master's holder identity")
    p.add_argument("--leader-elect-lease-duration", type=float, default=15.0, metavar="SECONDS")
    p.add_argument("--leader-elect-renew-deadline", type=float, default=10.0, metavar="SECONDS")
    p.add_argument("--leader-elect-retry-period", type=float, default=2.0, metavar="SECONDS")
    p.add_argument("--scheduler-seed", type=int, default=None, help="seed for the scheduler's tie-breaks")
    p.add_argument("--default-toleration-seconds", type=int, default=300, metavar="SECONDS",
                   help="tolerationSeconds new pods get for not-ready:NoExecute and unreachable:NoExecute "
                        "(Kubernetes' DefaultTolerationSeconds; default %(default)s)")
    args = p.parse_args(argv)
    try:
        args.enabled_controllers = enabled_controllers(args.controllers, args.disable_controllers)
        args.controller_options = parse_controller_options(args.controller_option)
    except ValueError as exc:
        p.error(str(exc))
    return args


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def enabled_controllers(chosen: str, disabled: str) -> list[str]:
    """`--controllers` minus `--disable-controllers`, checked against the registry."""
    names = list(CONTROLLERS) if chosen.strip() in ("", "*") else _names(chosen)
    if disabled.strip() == "*":
        return []
    off = _names(disabled)
    unknown = [n for n in [*names, *off] if n not in CONTROLLERS]
    if unknown:
        raise ValueError(f"unknown controllers: {', '.join(unknown)} (known: {', '.join(CONTROLLERS)})")
    return [n for n in names if n not in off]


def _option_value(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def parse_controller_options(items: list[str]) -> dict[str, dict[str, Any]]:
    """["nodelifecycle.grace_period_s=40"] -> {"nodelifecycle": {"grace_period_s": 40}}."""
    options: dict[str, dict[str, Any]] = {}
    for item in items:
        name_key, sep, value = item.partition("=")
        name, dot, key = name_key.partition(".")
        if not sep or not dot or not name or not key:
            raise ValueError(f"--controller-option {item!r}: expected NAME.KEY=VALUE")
        options.setdefault(name.strip(), {})[key.strip()] = _option_value(value.strip())
    return options


async def run_led(args: argparse.Namespace, client: Client, *, host: str = "") -> None:
    """Everything that runs only on the leader, in one TaskGroup, until cancelled."""
    async with asyncio.TaskGroup() as tg:
        manager: ControllerManager | None = None
        if args.enabled_controllers:
            manager = ControllerManager(client, enabled=args.enabled_controllers,
                                        options=args.controller_options, host=host)
            tg.create_task(forever("controllers", manager.run()))
        if not args.disable_scheduler:
            # One pod and one node informer per process: the scheduler shares
            # the controller manager's (which runs them) when there is one.
            scheduler = Scheduler(client, seed=args.scheduler_seed,
                                  informers=manager.informers if manager is not None else None)
            tg.create_task(forever("scheduler", scheduler.run(ready=asyncio.Event())))
        # An empty group would return at once: leading with nothing to run is waiting.
        tg.create_task(asyncio.Event().wait())


async def run_components(args: argparse.Namespace, target: str) -> None:
    """The led components behind leader election, on a Client to `target`."""
    async with await Client.connect(target) as client:
        if not args.leader_elect:
            await run_led(args, client)
            return
        config = LeaderElectionConfig(
            identity=args.leader_elect_identity or default_identity(),
            lease_duration_s=args.leader_elect_lease_duration,
            renew_deadline_s=args.leader_elect_renew_deadline,
            retry_period_s=args.leader_elect_retry_period,
        )
        await LeaderElector(client, config).run(lambda: run_led(args, client, host=config.identity))


def _wants_led(args: argparse.Namespace) -> bool:
    return bool(args.enabled_controllers) or not args.disable_scheduler


async def run(args: argparse.Namespace) -> None:
    endpoints = [e.strip() for e in args.etcd_endpoints.split(",") if e.strip()]
    for c in NOT_BUILT_YET:
        if not getattr(args, f"disable_{c.replace('-', '_')}"):
            log.info("component not built yet, skipping", extra={"component": c})
    if args.disable_apiserver:
        if not args.server or not _wants_led(args):
            log.error("nothing to run: with the apiserver disabled, give --server and a led component")
            raise SystemExit(2)
        await forever("led", run_components(args, args.server))
        return
    etcd = await EtcdStore.open(endpoints)
    store: Store = PrefixedStore(etcd, args.etcd_prefix) if args.etcd_prefix else etcd
    try:
        advertise = args.advertise_address or (
            "127.0.0.1" if args.bind_address in ("0.0.0.0", "::") else args.bind_address
        )
        server = APIServer(
            APIServerConfig(args.bind_address, args.rest_port, args.grpc_port, advertise=f"{advertise}:{args.rest_port}",
                            service_cidr=args.service_cluster_ip_range,
                            node_port_range=args.service_node_port_range, advertise_ip=advertise,
                            default_toleration_seconds=args.default_toleration_seconds),
            store,
            grpc_services=[_node_api(args)],
        )
        ready = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(forever("apiserver", server.run(ready=ready)))
            await ready.wait()
            if args.kubeconfig_out:
                write_kubeconfig(Path(args.kubeconfig_out), f"http://{advertise}:{server.rest_port}")
            if _wants_led(args):
                local = "127.0.0.1" if args.bind_address in ("0.0.0.0", "::") else args.bind_address
                target = args.server or f"{local}:{server.grpc_port}"
                led = tg.create_task(forever("led", run_components(args, target)))
            log.info("master ready", extra={"rest": f"http://{advertise}:{server.rest_port}",
                                            "grpc": f"{advertise}:{server.grpc_port}",
                                            "kubeconfig": args.kubeconfig_out})
            if _wants_led(args):
                await _stop_first(led)
    finally:
        await etcd.close()


async def _stop_first(led: asyncio.Task[None]) -> None:
    """Wait until cancelled, then stop the led components before the
    apiserver: their informers would otherwise start new watches on a gRPC
    server that is stopping, which leaves RPC tasks behind at exit."""
    try:
        await asyncio.Future()
    except asyncio.CancelledError:
        led.cancel()
        with contextlib.suppress(BaseException):
            await led
        raise


def _node_api(args: argparse.Namespace) -> Callable[[Any, Any], object]:
    config = NodeAPIConfig(cluster_cidr=args.cluster_cidr, node_cidr_mask=args.node_cidr_mask_size,
                           heartbeat_period_s=args.node_heartbeat_period_s,
                           lease_duration_s=args.node_lease_duration_s)
    return lambda server, registry: add_node_api(server, registry, config)



def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging(level=args.log_level, fmt=args.log_format)
    tune_gc()

    try:
        asyncio.run(until_signalled(run(args)))
    except* Exception as group:
        for exc in group.exceptions:
            log.error("master failed: %s", exc, exc_info=exc)
        sys.exit(1)


if __name__ == "__main__":
    main()
