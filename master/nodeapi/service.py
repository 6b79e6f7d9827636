"""The master side of the node API: flotilla.node.v1.Nodes over the registry.

Owns: registration (address checks, pod CIDR reservation by compare-and-swap,
the Node object), the node Lease and Ready on heartbeat, the pod stream of a
node (from the pods watch cache), and the node-restricted pod writes (status,
final delete).

Identity is the `flotilla-node-name` request metadata, NOT authenticated yet
(node credentials come later, DESIGN "Still to come"); the per-node checks
here are the authorization those credentials will make real.

Must not: decide anything itself (allocation.py and nodeobject.py are the
pure decisions), or bypass the registry (admission and the watch cache must
see every write).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import grpc

from master.apiserver import errors
from master.apiserver.grpc_face import fail
from master.apiserver.objects import StoredObject
from master.apiserver.registry import DeleteOptions, Registry
from master.apiserver.rest.handlers import make_filter
from master.apiserver.watchcache import Filter
from master.apiserver.watchfanout import BOOKMARK, BOOKMARK_EVERY_S, follow
from master.nodeapi.allocation import (
    check_advertise_address,
    check_node_name,
    parse_reservations,
    plan_reservation,
    still_held,
)
from master.nodeapi.errors import NodeRefusal, refuse
from master.nodeapi.nodeobject import render_node, set_ready
from protos.coordination.v1 import coordination_pb2
from protos.core.v1 import core_pb2
from protos.node.v1 import node_pb2, node_pb2_grpc
from protos.resources import ResourceInfo, lookup

log = logging.getLogger(__name__)
T = TypeVar("T")
NODE_METADATA_KEY = "flotilla-node-name"
ALLOCATIONS_NAMESPACE = "kube-system"
ALLOCATIONS_NAME = "flotilla-node-allocations"
LEASE_NAMESPACE = "kube-node-lease"


def _info(group: str, resource: str) -> ResourceInfo:
    info = lookup(group, resource)
    assert info is not None, resource
    return info


NODES = _info("", "nodes")
PODS = _info("", "pods")
CONFIGMAPS = _info("", "configmaps")
LEASES = _info("coordination.k8s.io", "leases")


@dataclass
class NodeAPIConfig:
    cluster_cidr: str = "10.244.0.0/16"
    node_cidr_mask: int = 24
    heartbeat_period_s: int = 10
    lease_duration_s: int = 40
    # A reservation whose Node does not exist is released after this long.
    stale_reservation_s: float = 60.0


def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def node_identity(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == NODE_METADATA_KEY:
            return str(value)
    return ""


class NodesService(node_pb2_grpc.NodesServicer):
    bookmark_every_s = BOOKMARK_EVERY_S

    def __init__(self, registry: Registry, config: NodeAPIConfig | None = None, *,
                 clock: Callable[[], _dt.datetime] = utcnow) -> None:
        self.registry = registry
        self.config = config or NodeAPIConfig()
        self.now = clock

    # ---- plumbing ----------------------------------------------------------------

    async def _call(self, context: grpc.aio.ServicerContext, what: str, fn: Callable[[str], Awaitable[T]]) -> T:
        try:
            node = node_identity(context)
            bad = check_node_name(node)
            if bad is not None:
                raise bad
            return await fn(node)
        except errors.APIError as exc:
            fail(context, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("internal error in node API %s", what)
            fail(context, errors.InternalError(type(exc).__name__))
        return cast(T, None)  # grpc sends no message with a status that is not OK

    # ---- Register ----------------------------------------------------------------

    async def Register(self, request: node_pb2.RegisterRequest, context: grpc.aio.ServicerContext) -> node_pb2.RegisterResponse:
        return await self._call(context, "Register", lambda node: self._register(node, request))

    async def _register(self, node: str, request: node_pb2.RegisterRequest) -> node_pb2.RegisterResponse:
        if request.node_name and request.node_name != node:
            raise refuse("INVALID_ARGUMENT", f"node_name {request.node_name!r} differs from the caller's "
                         f"identity {node!r}: send the same name in both")
        address = check_advertise_address(request.advertise_address, force=request.force_address)
        existing = await self._get_or_none(NODES, "", node)
        existing_msg = existing.msg if existing is not None else None
        cidr = await self._reserve(node, address, existing_msg.spec.pod_cidr if existing_msg else "")
        desired = render_node(request, name=node, pod_cidr=cidr, address=address, now=self.now(),
                              existing=existing_msg)  # type: ignore[arg-type]
        if existing is None:
            try:
                await self.registry.create(NODES, "", _copy(desired))
            except errors.APIError as exc:
                if exc.reason != "AlreadyExists":
                    raise
        stored = await self._write_node(node, desired)
        await self._renew_lease(node, stored)
        log.info("node registered", extra={"node": node, "address": address, "pod_cidr": cidr})
        return node_pb2.RegisterResponse(pod_cidr=cidr, cluster_cidr=self.config.cluster_cidr,
                                         heartbeat_period_seconds=self.config.heartbeat_period_s,
                                         lease_duration_seconds=self.config.lease_duration_s, node=stored.msg)

    async def _write_node(self, node: str, desired: core_pb2.Node) -> StoredObject:
        async def spec_and_meta(current: StoredObject) -> Any:
            new = current.copy_msg()
            new.metadata.labels.clear()
            new.metadata.labels.update(desired.metadata.labels)
            if not new.spec.pod_cidr:
                new.spec.pod_cidr = desired.spec.pod_cidr
                del new.spec.pod_cidrs[:]
                new.spec.pod_cidrs.extend(desired.spec.pod_cidrs)
            return new

        async def status(current: StoredObject) -> Any:
            new = current.copy_msg()
            new.status.CopyFrom(desired.status)
            return new

        await self.registry.guaranteed_update(NODES, "", node, spec_and_meta)
        return await self.registry.guaranteed_update(NODES, "", node, status, subresource="status")

    async def _reserve(self, node: str, address: str, existing_cidr: str) -> str:
        cfg = self.config
        nodes, _ = await self.registry.list(NODES, Filter(), resource_version="0")
        live = {o.name for o in nodes}

        refused: list[NodeRefusal] = []  # the refusal of the last plan, raised once its stamps are written

        def plan(data: Any) -> dict[str, str]:
            now = self.now()
            held = parse_reservations(dict(data))
            refused.clear()
            try:
                res = plan_reservation(held, node, address=address,
                                       cluster_cidr=cfg.cluster_cidr, node_mask=cfg.node_cidr_mask,
                                       live_nodes=live, now=now, existing_cidr=existing_cidr,
                                       stale_after_s=cfg.stale_reservation_s)
            except NodeRefusal as exc:
                refused.append(exc)
                res = still_held(held, node, live, now, cfg.stale_reservation_s)
                if res == held:
                    raise  # nothing to record: refuse without a write
            return {n: r.to_json() for n, r in res.items()}

        async def mutate(current: StoredObject) -> Any:
            new = current.copy_msg()
            data = plan(new.data)
            new.data.clear()
            new.data.update(data)
            return new

        for _ in range(20):
            try:
                obj = await self.registry.guaranteed_update(CONFIGMAPS, ALLOCATIONS_NAMESPACE, ALLOCATIONS_NAME, mutate)
            except errors.APIError as exc:
                if exc.reason != "NotFound":
                    raise
                cm = core_pb2.ConfigMap()
                cm.metadata.name, cm.metadata.namespace = ALLOCATIONS_NAME, ALLOCATIONS_NAMESPACE
                cm.metadata.labels["app.kubernetes.io/managed-by"] = "flotilla-nodeapi"
                cm.data.update(plan({}))
                try:
                    obj = await self.registry.create(CONFIGMAPS, ALLOCATIONS_NAMESPACE, cm)
                except errors.APIError as exc2:
                    if exc2.reason == "AlreadyExists":
                        continue  # another registration created it first: update it instead
                    raise
            if refused:
                raise refused[0]  # the missingSince stamps are written; this node is still refused
            return parse_reservations(dict(obj.msg.data))[node].pod_cidr
        raise errors.APIError("could not reserve a pod CIDR: too many concurrent registrations; retry",
                              code=503, reason="ServiceUnavailable")

    # ---- Heartbeat -----------------------------------------------------------------

    async def Heartbeat(self, request: node_pb2.HeartbeatRequest, context: grpc.aio.ServicerContext) -> node_pb2.HeartbeatResponse:
        async def run(node: str) -> node_pb2.HeartbeatResponse:
            current = await self._get_or_none(NODES, "", node)
            if current is None:
                raise refuse("FAILED_PRECONDITION", f"node {node!r} is not registered (or was deleted): "
                             "call Register first (restarting the agent does)")
            await self._renew_lease(node, current)
            if not any(c.type == "Ready" and c.status == "True" for c in current.msg.status.conditions):
                async def ready(cur: StoredObject) -> Any:
                    new = cur.copy_msg()
                    set_ready(new, self.now())
                    return new

                await self.registry.guaranteed_update(NODES, "", node, ready, subresource="status")
            return node_pb2.HeartbeatResponse(heartbeat_period_seconds=self.config.heartbeat_period_s)

        return await self._call(context, "Heartbeat", run)

    async def _renew_lease(self, node: str, node_obj: StoredObject) -> None:
        now = self.now()

        def fill(lease: coordination_pb2.Lease) -> None:
            lease.spec.holder_identity = node
            lease.spec.lease_duration_seconds = self.config.lease_duration_s
            lease.spec.renew_time.FromDatetime(now.astimezone(_dt.UTC).replace(tzinfo=None))

        async def renew(current: StoredObject) -> Any:
            new = current.copy_msg()
            fill(new)
            return new

        try:
            await self.registry.guaranteed_update(LEASES, LEASE_NAMESPACE, node, renew)
            return
        except errors.APIError as exc:
            if exc.reason != "NotFound":
                raise
        lease = coordination_pb2.Lease()
        lease.metadata.name, lease.metadata.namespace = node, LEASE_NAMESPACE
        lease.metadata.owner_references.add(api_version="v1", kind="Node", name=node, uid=node_obj.msg.metadata.uid)
        fill(lease)
        lease.spec.acquire_time.CopyFrom(lease.spec.renew_time)
        try:
            await self.registry.create(LEASES, LEASE_NAMESPACE, lease)
        except errors.APIError as exc:
            if exc.reason != "AlreadyExists":
                raise
            await self.registry.guaranteed_update(LEASES, LEASE_NAMESPACE, node, renew)

    # ---- WatchPods -----------------------------------------------------------------

    async def WatchPods(self, request: node_pb2.WatchPodsRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[node_pb2.PodEvent]:
        node = node_identity(context)
        bad = check_node_name(node)
        if bad is not None:
            fail(context, bad)
            return
        flt = make_filter(PODS, "", {"fieldSelector": f"spec.nodeName={node}"})
        try:
            rv = request.resource_version
            if not rv:
                objs, list_rv = await self.registry.list(PODS, flt, resource_version="")
                for obj in objs:
                    yield node_pb2.PodEvent(type="ADDED", pod=obj.msg, resource_version=str(obj.rv))
                rv = str(list_rv)
                yield node_pb2.PodEvent(type="SYNCED", resource_version=rv)
            try:
                watcher = self.registry.watch(PODS, flt, resource_version=rv)
            except errors.APIError as exc:
                if exc.code != 410:
                    raise
                yield node_pb2.PodEvent(type="ERROR", code=410, message=exc.message)
                return
        except errors.APIError as exc:
            fail(context, exc)
            return
        every = self.bookmark_every_s if request.allow_bookmarks else None
        try:
            # It ends when the watcher falls behind or the cache restarts: the
            # agent re-watches from its last version.
            async for item in follow(watcher, bookmark_every_s=every):
                if isinstance(item, int):
                    yield node_pb2.PodEvent(type=BOOKMARK, resource_version=str(item))
                else:
                    type_, obj = item
                    yield node_pb2.PodEvent(type=type_, pod=obj.msg, resource_version=str(obj.rv))
        finally:
            watcher.stop()

    # ---- pod writes -------------------------------------------------------------------

    async def _own_pod(self, node: str, namespace: str, name: str, uid: str) -> StoredObject:
        if not namespace or not name:
            raise refuse("INVALID_ARGUMENT", "the pod's namespace and name are required")
        current = await self.registry.get(PODS, namespace, name)
        bound = current.msg.spec.node_name
        if bound != node:
            raise refuse("PERMISSION_DENIED", f"pod {namespace}/{name} is bound to "
                         f"{bound or 'no node'}, not to {node}: a node may only write its own pods")
        if uid and uid != current.msg.metadata.uid:
            # the agent's pod is gone: another pod has its name now
            raise errors.APIError(f'pods "{name}" with UID {uid} not found (the pod of that name has UID '
                                  f"{current.msg.metadata.uid})", 404, "NotFound", name=name, kind="pods")
        return current

    async def UpdatePodStatus(self, request: node_pb2.UpdatePodStatusRequest, context: grpc.aio.ServicerContext) -> core_pb2.Pod:
        async def run(node: str) -> core_pb2.Pod:
            meta = request.pod.metadata
            await self._own_pod(node, meta.namespace, meta.name, meta.uid)
            # The node is the one writer of its pods' status (one worker per
            # pod), so its status applies to the current object, as kubelet's
            # status patch does: the agent's copy is usually a version behind
            # (the scheduler's binding, the controllers' labels), and pinning
            # it would turn every such write into a Conflict.
            # The uid is checked again against the object the write replaces: a pod
            # deleted and created anew under this name since _own_pod read it must
            # not get the old pod's status. That is "not found" for the agent (its
            # pod is gone), not a Conflict, which it retries.

            async def status_of_this_pod(current: StoredObject) -> Any:
                if meta.uid and current.msg.metadata.uid != meta.uid:
                    raise errors.APIError(f'pods "{meta.name}" with UID {meta.uid} not found', 404, "NotFound",
                                          name=meta.name, kind="pods")
                pod = _copy(request.pod)
                pod.metadata.resource_version = ""
                return pod

            obj = await self.registry.guaranteed_update(PODS, meta.namespace, meta.name, status_of_this_pod,
                                                        subresource="status")
            return obj.msg  # type: ignore[no-any-return]

        return await self._call(context, "UpdatePodStatus", run)

    async def DeletePod(self, request: node_pb2.DeletePodRequest, context: grpc.aio.ServicerContext) -> node_pb2.DeletePodResponse:
        async def run(node: str) -> node_pb2.DeletePodResponse:
            current = await self._own_pod(node, request.namespace, request.name, request.uid)
            await self.registry.delete(PODS, request.namespace, request.name, DeleteOptions(
                grace_period_seconds=0, precondition_uid=request.uid or current.msg.metadata.uid))
            return node_pb2.DeletePodResponse()

        return await self._call(context, "DeletePod", run)

    # ---- helpers ----------------------------------------------------------------------

    async def _get_or_none(self, info: ResourceInfo, namespace: str, name: str) -> StoredObject | None:
        try:
            return await self.registry.get(info, namespace, name)
        except errors.APIError as exc:
            if exc.reason == "NotFound":
                return None
            raise


def _copy(msg: Any) -> Any:
    new = type(msg)()
    new.CopyFrom(msg)
    return new


def add_to_server(server: grpc.aio.Server, registry: Registry, config: NodeAPIConfig | None = None) -> NodesService:
    """The hook master/apiserver calls: serve flotilla.node.v1.Nodes beside Objects."""
    service = NodesService(registry, config)
    node_pb2_grpc.add_NodesServicer_to_server(service, server)
    return service
