"""The endpoints controller: one Endpoints object per Service with a selector.

Watches Services, Pods and Endpoints through the shared informers. A pod
change enqueues every Service in its namespace whose selector matches the
pod's old or new labels; a Service change enqueues that Service; a deleted
Endpoints enqueues its Service (so it is recreated). `sync` asks
master/reconcile/endpoints.py for the Endpoints and writes only when they
differ. Services without a selector are left alone (their Endpoints are
somebody else's: the apiserver's `kubernetes` Service, manual endpoints); the
Endpoints of a deleted Service are deleted, also those left from a Service
deleted while no controller ran (every Endpoints is checked once at start).
"""

from __future__ import annotations

import logging
from typing import Any

from master.client.errors import NotFound
from master.client.store import split_key
from master.controllers.base import Controller, ControllerContext
from master.reconcile.endpoints import plan_endpoints, selector_matches
from protos.core.v1 import core_pb2

log = logging.getLogger("flotilla.controllers.endpoints")
NS_INDEX = "endpoints/namespace"  # index names are per shared informer: ours never clash
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"


class EndpointsController(Controller):
    name = "endpoints"
    workers = 2

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        f = ctx.informers
        self.services = f.informer(core_pb2.Service)
        self.pods = f.informer(core_pb2.Pod)
        self.endpoints = f.informer(core_pb2.Endpoints)
        self.pods.add_index(NS_INDEX, lambda p: [p.metadata.namespace])
        self.services.add_index(NS_INDEX, lambda s: [s.metadata.namespace])
        self.services.add_handler(**self.enqueue_handlers())
        self.pods.add_handler(
            on_add=self._pod_changed,
            on_update=lambda old, new: self._pod_changed(new, old),
            on_delete=self._pod_changed,
        )
        self.endpoints.add_handler(on_delete=self.enqueue)

    def _pod_changed(self, pod: Any, old: Any | None = None) -> None:
        for svc in self.services.by_index(NS_INDEX, pod.metadata.namespace):
            if selector_matches(svc.spec.selector, pod.metadata.labels) or (
                old is not None and selector_matches(svc.spec.selector, old.metadata.labels)
            ):
                self.enqueue(svc)

    async def run(self) -> None:
        # Kubernetes' checkLeftoverEndpoints: Endpoints whose Service went while no
        # controller ran get no Service event; every Endpoints is looked at once
        # (sync deletes those without a Service), leader-election records aside.
        for ep in self.endpoints.list():
            if LEADER_ANNOTATION not in ep.metadata.annotations:
                self.enqueue(ep)
        await super().run()

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        svc = self.services.get(key)
        current = self.endpoints.get(key)
        if svc is None:
            if current is not None:
                try:
                    await self.client.delete(core_pb2.Endpoints, name, namespace=namespace)
                except NotFound:
                    pass
            return
        if not svc.spec.selector:
            return
        pods = self.pods.by_index(NS_INDEX, namespace)
        wanted = plan_endpoints(svc, pods, current, now=self.clock.wall())
        if wanted is None:
            return
        if current is None:
            # AlreadyExists (the informer is behind) is an APIError: the worker retries.
            await self.client.create(wanted)
        else:
            await self.client.update(wanted)
