"""The apiserver component: registry + REST face + gRPC face.

`run(config, *, ready)` is the component shape every Flotilla component
has (DESIGN 5): it owns its tasks in one TaskGroup, sets `ready` once the
watch caches are listed, the initial namespaces exist and both faces
listen, and returns only when cancelled (a face that dies takes the
component, and so the process, down).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from aiohttp import web

from master.apiserver.allocators.kubernetes import run_master_service
from master.apiserver.allocators.ranges import DEFAULT_SERVICE_CIDR
from master.apiserver.allocators.service import ServiceAllocator
from master.apiserver.grpc_face import ObjectsService
from master.apiserver.metrics import Metrics
from master.apiserver.registry import Registry
from master.apiserver.rest.app import make_app
from master.storage.interface import Store
from protos.api.v1 import objects_pb2_grpc

log = logging.getLogger(__name__)


@dataclass
class APIServerConfig:
    bind_address: str = "0.0.0.0"
    rest_port: int = 6443
    grpc_port: int = 6444
    # What discovery tells clients the server's address is ("" = the Host header).
    advertise: str = ""
    # DefaultTolerationSeconds admission: the tolerationSeconds new pods get for
    # not-ready:NoExecute and unreachable:NoExecute (Kubernetes: 300; None: off).
    default_toleration_seconds: int | None = 300
    # Services (issue 5): clusterIPs from service_cidr, nodePorts from the range.
    service_cidr: str = DEFAULT_SERVICE_CIDR
    node_port_range: str = "30000-32767"
    # The address the `kubernetes` Service's Endpoints name ("" = keep none).
    advertise_ip: str = ""
    # How often this master renews its lease and rewrites those Endpoints; the
    # lease lasts three periods (allocators/kubernetes.py).
    master_lease_interval_s: float = 5.0


@dataclass
class APIServer:
    """Handles to a running apiserver (ports are the bound ones, even for port 0)."""

    config: APIServerConfig
    store: Store
    metrics: Metrics = field(default_factory=Metrics)
    rest_port: int = 0
    grpc_port: int = 0
    # Extra gRPC services beside Objects (e.g. master.nodeapi's Nodes): each is
    # called once with the gRPC server and the registry before the server starts.
    grpc_services: list[Callable[[grpc.aio.Server, Registry], object]] = field(default_factory=list)
    registry: Registry = field(init=False)
    allocator: ServiceAllocator = field(init=False)

    def __post_init__(self) -> None:
        self.allocator = ServiceAllocator(self.store, service_cidr=self.config.service_cidr,
                                          node_port_range=self.config.node_port_range)
        self.registry = Registry(self.store, hooks={"Service": self.allocator},
                                 default_toleration_seconds=self.config.default_toleration_seconds)
        self.metrics.count_store(self.store)

    async def run(self, *, ready: asyncio.Event) -> None:
        cfg = self.config
        registry_ready = asyncio.Event()
        app = make_app(self.registry, metrics=self.metrics, ready=registry_ready, server_address=cfg.advertise)
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        sock = _listen(cfg.bind_address, cfg.rest_port)
        self.rest_port = sock.getsockname()[1]
        try:
            site = web.SockSite(runner, sock)
            await site.start()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.registry.run(ready=registry_ready), name="registry")
                grpc_started = asyncio.Event()
                tg.create_task(self._grpc(grpc_started), name="grpc")
                await registry_ready.wait()
                await grpc_started.wait()
                tg.create_task(run_master_service(self.registry, self.allocator, advertise_ip=cfg.advertise_ip,
                                                  port=self.rest_port, interval_s=cfg.master_lease_interval_s),
                               name="kubernetes-service")
                log.info("apiserver ready", extra={"rest_port": self.rest_port, "grpc_port": self.grpc_port})
                ready.set()
        finally:
            await runner.cleanup()

    async def _grpc(self, started: asyncio.Event) -> None:
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", 4 * 1024 * 1024),
                                          ("grpc.max_send_message_length", 256 * 1024 * 1024)])
        objects_pb2_grpc.add_ObjectsServicer_to_server(ObjectsService(self.registry, metrics=self.metrics), server)
        for add_service in self.grpc_services:
            add_service(server, self.registry)
        port = server.add_insecure_port(f"{_grpc_host(self.config.bind_address)}:{self.config.grpc_port}")
        if port == 0:
            raise OSError(f"cannot listen for gRPC on {self.config.bind_address}:{self.config.grpc_port}")
        self.grpc_port = port
        await server.start()
        started.set()
        try:
            await server.wait_for_termination()
        finally:
            await server.stop(grace=1.0)


def _grpc_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


__all__ = ["APIServer", "APIServerConfig"]
