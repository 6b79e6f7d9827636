"""The gRPC face of the apiserver (DESIGN 3): flotilla.api.v1.Objects.

Agents, proxies, the scheduler and controllers talk to this. It calls the
same registry as REST, so admission, storage and the watch cache are
shared; objects travel as google.protobuf.Any holding the typed message,
and the bytes sent are the StoredObject's cached protobuf encoding.

Errors: every APIError becomes its gRPC status code (errors.grpc_code_name)
with the Kubernetes Status, serialized, in the trailing metadata key
`flotilla-status-bin`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast

import grpc
from google.protobuf import any_pb2

from master.apiserver import errors
from master.apiserver.metrics import Metrics
from master.apiserver.objects import StoredObject
from master.apiserver.registry import DeleteOptions, Registry
from master.apiserver.rest.handlers import bind_pod, make_filter
from master.apiserver.rest.query import propagation_policy
from master.apiserver.watchfanout import BOOKMARK, BOOKMARK_EVERY_S, follow
from protos.api.v1 import objects_pb2, objects_pb2_grpc
from protos.codec import from_dict
from protos.meta.v1 import meta_pb2
from protos.resources import ResourceInfo, lookup

log = logging.getLogger(__name__)
STATUS_TRAILER = "flotilla-status-bin"
TYPE_PREFIX = "type.googleapis.com/"
T = TypeVar("T")


def pack(obj: StoredObject) -> any_pb2.Any:
    return any_pb2.Any(type_url=TYPE_PREFIX + obj.info.proto, value=obj.to_pb())


def status_message(exc: errors.APIError) -> meta_pb2.Status:
    msg, _ = from_dict(meta_pb2.Status, exc.to_status())
    return msg  # type: ignore[return-value]


class ObjectsService(objects_pb2_grpc.ObjectsServicer):
    bookmark_every_s = BOOKMARK_EVERY_S

    def __init__(self, registry: Registry, *, metrics: Metrics) -> None:
        self.registry = registry
        self.metrics = metrics

    async def _call(self, verb: str, ref: Any, context: grpc.aio.ServicerContext, fn: Callable[[ResourceInfo], Awaitable[T]]) -> T:
        start = time.perf_counter()
        code = 200
        try:
            info = _resolve(ref)
            return await fn(info)
        except errors.APIError as exc:
            code = exc.code
            fail(context, exc)
        except asyncio.CancelledError:
            code = 499
            raise
        except Exception as exc:
            code = 500
            log.exception("internal error in gRPC %s", verb)
            fail(context, errors.InternalError(type(exc).__name__))
        finally:
            self.metrics.observe(verb, getattr(ref, "resource", ""), code, time.perf_counter() - start, face="grpc")
        return cast(T, None)  # grpc sends no message with a status that is not OK

    async def Get(self, request: objects_pb2.GetRequest, context: grpc.aio.ServicerContext) -> any_pb2.Any:
        async def run(info: ResourceInfo) -> any_pb2.Any:
            obj = await self.registry.get(info, request.ref.namespace, request.name)
            return pack(obj)

        return await self._call("GET", request.ref, context, run)

    async def List(self, request: objects_pb2.ListRequest, context: grpc.aio.ServicerContext) -> objects_pb2.ListResponse:
        async def run(info: ResourceInfo) -> objects_pb2.ListResponse:
            flt = make_filter(info, request.ref.namespace, _selectors(request))
            rv = "" if request.resource_version in ("",) else request.resource_version
            objs, list_rv = await self.registry.list(info, flt, resource_version=rv)
            return objects_pb2.ListResponse(resource_version=str(list_rv), items=[pack(o) for o in objs])

        return await self._call("LIST", request.ref, context, run)

    async def Create(self, request: objects_pb2.CreateRequest, context: grpc.aio.ServicerContext) -> any_pb2.Any:
        async def run(info: ResourceInfo) -> any_pb2.Any:
            if request.subresource == "binding":
                if info.resource != "pods":
                    raise errors.PathNotFound()
                from protos.core.v1 import core_pb2

                binding = _unpack(request.object, core_pb2.Binding, "flotilla.core.v1.Binding")
                pod = await bind_pod(self.registry, request.ref.namespace, request.name or binding.metadata.name,
                                     binding, dry_run=request.dry_run)
                return pack(pod)
            if request.subresource:
                raise errors.MethodNotAllowed(f"create is not supported on {info.resource}/{request.subresource}")
            msg = _unpack(request.object, info.message_class(), info.proto)
            obj = await self.registry.create(info, request.ref.namespace, msg, dry_run=request.dry_run)
            return pack(obj)

        return await self._call("POST", request.ref, context, run)

    async def _update(self, request: objects_pb2.UpdateRequest, context: grpc.aio.ServicerContext, sub: str) -> any_pb2.Any:
        async def run(info: ResourceInfo) -> any_pb2.Any:
            msg = _unpack(request.object, info.message_class(), info.proto)
            if sub == "status" and "status" not in info.subresources:
                raise errors.MethodNotAllowed(f"{info.resource} has no status subresource")
            obj = await self.registry.update(info, request.ref.namespace, msg.metadata.name, msg,
                                             subresource=sub, dry_run=request.dry_run)
            return pack(obj)

        return await self._call("PUT", request.ref, context, run)

    async def Update(self, request: objects_pb2.UpdateRequest, context: grpc.aio.ServicerContext) -> any_pb2.Any:
        return await self._update(request, context, "")

    async def UpdateStatus(self, request: objects_pb2.UpdateRequest, context: grpc.aio.ServicerContext) -> any_pb2.Any:
        return await self._update(request, context, "status")

    async def Delete(self, request: objects_pb2.DeleteRequest, context: grpc.aio.ServicerContext) -> any_pb2.Any:
        async def run(info: ResourceInfo) -> any_pb2.Any:
            o = request.options
            opts = DeleteOptions(
                grace_period_seconds=o.grace_period_seconds if o.HasField("grace_period_seconds") else None,
                propagation_policy=propagation_policy(o.propagation_policy),
                precondition_uid=o.preconditions.uid if o.preconditions.HasField("uid") else None,
                precondition_rv=o.preconditions.resource_version if o.preconditions.HasField("resource_version") else None,
                dry_run=list(o.dry_run) == ["All"],
            )
            obj, _ = await self.registry.delete(info, request.ref.namespace, request.name, opts)
            return pack(obj)

        return await self._call("DELETE", request.ref, context, run)

    async def Watch(self, request: objects_pb2.WatchRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[objects_pb2.WatchEvent]:
        start = time.perf_counter()
        code = 200
        try:
            info = _resolve(request.ref)
            flt = make_filter(info, request.ref.namespace, _selectors(request))
            try:
                watcher = self.registry.watch(info, flt, resource_version=request.resource_version)
            except errors.APIError as exc:
                if exc.code != 410:
                    raise
                status = any_pb2.Any(type_url=TYPE_PREFIX + "flotilla.meta.v1.Status",
                                     value=status_message(exc).SerializeToString())
                yield objects_pb2.WatchEvent(type="ERROR", object=status)
                return
            loop = asyncio.get_running_loop()
            deadline = loop.time() + request.timeout_seconds if request.timeout_seconds > 0 else None
            every = self.bookmark_every_s if request.allow_bookmarks else None
            try:
                async for item in follow(watcher, deadline=deadline, bookmark_every_s=every):
                    if isinstance(item, int):
                        yield objects_pb2.WatchEvent(type=BOOKMARK, resource_version=str(item))
                    else:
                        type_, obj = item
                        yield objects_pb2.WatchEvent(type=type_, object=pack(obj), resource_version=str(obj.rv))
            finally:
                watcher.stop()
        except errors.APIError as exc:
            code = exc.code
            fail(context, exc)
        finally:
            self.metrics.observe("WATCH", request.ref.resource, code, time.perf_counter() - start, face="grpc")


def _selectors(request: Any) -> dict[str, str]:
    return {"labelSelector": request.label_selector, "fieldSelector": request.field_selector}


def _resolve(ref: Any) -> ResourceInfo:
    info = lookup(ref.group, ref.resource)
    if info is None:
        raise errors.PathNotFound(f"the server could not find the requested resource ({ref.resource})")
    if info.namespaced is False and ref.namespace:
        raise errors.BadRequest(f"{ref.resource} is cluster-scoped: namespace must be empty")
    return info


def _unpack(value: any_pb2.Any, cls: Any, full_name: str) -> Any:
    if value.type_url != TYPE_PREFIX + full_name:
        raise errors.BadRequest(f"expected an object of type {full_name}, got {value.type_url or 'nothing'}")
    msg = cls()
    try:
        msg.ParseFromString(value.value)
    except Exception:
        raise errors.BadRequest(f"the {full_name} could not be decoded") from None
    return msg


def fail(context: grpc.aio.ServicerContext, exc: errors.APIError) -> None:
    """Give the call exc's gRPC status, its Status in the trailer; the handler then returns.

    Not context.abort(): abort raises, and the raised error, its traceback's
    frames and grpc's call state form a reference cycle that only a full
    collection frees. Controllers' optimistic updates meet Conflicts all the
    time; thousands of such cycles, each holding its request, piled up in the
    master's oldest generation.
    """
    code = getattr(grpc.StatusCode, exc.grpc_code_name(), grpc.StatusCode.UNKNOWN)
    context.set_trailing_metadata(((STATUS_TRAILER, status_message(exc).SerializeToString()),))
    context.set_code(code)
    context.set_details(exc.message)
