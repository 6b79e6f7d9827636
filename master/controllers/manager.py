"""The controller manager: every enabled controller over one shared informer factory.

`ControllerManager.run(ready=...)` builds each controller (they register
their informers and handlers in their constructors), starts the informers,
waits until all have synced, sets `ready`, then runs every controller's
workers and the Event recorder in one TaskGroup until cancelled. It runs
inside `flotilla-master` (behind leader election) or alone against a remote
master; it only ever talks to the apiserver through the Client.

Adding a controller: write `master/controllers/<name>.py` with a
`Controller` subclass and add it to `CONTROLLERS` below.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from master.client.client import Client
from master.client.clock import Clock, RealClock
from master.client.events import EventRecorder
from master.client.informer import InformerFactory
from master.controllers.base import Controller, ControllerContext

log = logging.getLogger("flotilla.controllers")

ControllerFactory = Callable[[ControllerContext], Controller]


def _registry() -> dict[str, ControllerFactory]:
    """name -> controller class. Imported lazily so each module stays optional."""
    controllers: dict[str, ControllerFactory] = {}
    from master.controllers.cronjob import CronJobController
    from master.controllers.daemonset import DaemonSetController
    from master.controllers.job import JobController
    from master.controllers.statefulset import StatefulSetController
    controllers["daemonset"] = DaemonSetController
    controllers["statefulset"] = StatefulSetController
    controllers["job"] = JobController
    controllers["cronjob"] = CronJobController
    from master.controllers.deployment import DeploymentController
    from master.controllers.replicaset import ReplicaSetController
    from master.controllers.replicationcontroller import ReplicationControllerController

    controllers[ReplicaSetController.name] = ReplicaSetController
    controllers[ReplicationControllerController.name] = ReplicationControllerController
    controllers[DeploymentController.name] = DeploymentController
    from master.controllers.endpoints import EndpointsController

    controllers[EndpointsController.name] = EndpointsController
    from master.controllers.garbagecollector import GarbageCollector
    from master.controllers.namespace import NamespaceController
    from master.controllers.nodelifecycle import NodeLifecycleController
    from master.controllers.resourcequota import ResourceQuotaController

    controllers[NamespaceController.name] = NamespaceController
    controllers[GarbageCollector.name] = GarbageCollector
    controllers[NodeLifecycleController.name] = NodeLifecycleController
    controllers[ResourceQuotaController.name] = ResourceQuotaController
    return controllers


CONTROLLERS: dict[str, ControllerFactory] = _registry()


class ControllerManager:
    def __init__(
        self,
        client: Client,
        *,
        enabled: Iterable[str] | None = None,
        clock: Clock | None = None,
        options: dict[str, dict[str, Any]] | None = None,
        resync_period_s: float = 300.0,
        host: str = "",
    ) -> None:
        self.clock: Clock = clock or RealClock()
        self.informers = InformerFactory(
            client.lister_watcher, clock=self.clock, resync_period_s=resync_period_s
        )
        self.recorder = EventRecorder(client, "controller-manager", host=host, clock=self.clock)
        self.ctx = ControllerContext(client, self.informers, self.recorder, self.clock,
                                     options or {})
        names = list(CONTROLLERS) if enabled is None else list(enabled)
        unknown = [n for n in names if n not in CONTROLLERS]
        if unknown:
            raise ValueError(f"unknown controllers: {', '.join(unknown)}")
        self.controllers: list[Controller] = [CONTROLLERS[n](self.ctx) for n in names]

    async def run(self, *, ready: asyncio.Event | None = None) -> None:
        synced = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.informers.run(ready=synced))
            tg.create_task(self.recorder.run())
            await synced.wait()
            log.info("controllers starting", extra={"controllers": [c.name for c in self.controllers]})
            for c in self.controllers:
                tg.create_task(c.run(), name=f"controller-{c.name}")
            if ready is not None:
                ready.set()
