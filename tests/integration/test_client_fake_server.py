"""master.client.Client against an in-process gRPC server with a fake Objects servicer.

The servicer keeps meta.v1.Scale objects (any message with ObjectMeta
serves) in a dict, answers errors the way the apiserver does (gRPC code plus
a Status in the `flotilla-status-bin` trailer) and streams watch events.
It tests the wire: Any packing, ResourceRef naming, error translation,
read retries, watch streams and an informer fed by the Client.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2

from master.client import (
    ADDED,
    DELETED,
    MODIFIED,
    AlreadyExists,
    Client,
    Conflict,
    Gone,
    InformerFactory,
    Invalid,
    KindInfo,
    NotFound,
    RetryPolicy,
    Unavailable,
)
from master.client.errors import STATUS_TRAILER
from protos.api.v1 import objects_pb2, objects_pb2_grpc
from protos.meta.v1 import meta_pb2

Scale = meta_pb2.Scale
EXTRA_KINDS = {"flotilla.meta.v1.Scale": KindInfo("autoscaling", "scales", True)}


def pack(msg: Any) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(msg)
    return out


def scale(name: str, *, ns: str = "default", replicas: int = 1, rv: str = "") -> Scale:
    out = Scale()
    out.metadata.name, out.metadata.namespace = name, ns
    out.metadata.resource_version = rv
    out.spec.replicas = replicas
    return out


class FakeObjects(objects_pb2_grpc.ObjectsServicer):
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], Scale] = {}
        self.rv = 10
        self.compacted_below = 0
        self.calls: Counter[str] = Counter()
        self.failures: dict[str, list[grpc.StatusCode]] = {}
        self.history: list[objects_pb2.WatchEvent] = []
        self.changed = asyncio.Condition()
        self.refs: list[objects_pb2.ResourceRef] = []
        self.last_create: objects_pb2.CreateRequest | None = None

    async def _enter(self, method: str, ref: objects_pb2.ResourceRef, context: Any) -> None:
        self.calls[method] += 1
        self.refs.append(ref)
        pending = self.failures.get(method)
        if pending:
            await context.abort(pending.pop(0), f"injected {method} failure")

    async def _fail(self, context: Any, code: grpc.StatusCode, http: int, reason: str,
                    message: str, **details: Any) -> None:
        st = meta_pb2.Status(kind="Status", api_version="v1", status="Failure", code=http,
                             reason=reason, message=message,
                             details=meta_pb2.StatusDetails(**details))
        await context.abort(code, message, trailing_metadata=((STATUS_TRAILER, st.SerializeToString()),))

    async def _record(self, kind: str, obj: Scale) -> None:
        self.history.append(objects_pb2.WatchEvent(
            type=kind, object=pack(obj), resource_version=obj.metadata.resource_version))
        async with self.changed:
            self.changed.notify_all()

    def _bump(self, obj: Scale) -> Scale:
        self.rv += 1
        obj.metadata.resource_version = str(self.rv)
        return obj

    async def Get(self, request: objects_pb2.GetRequest, context: Any) -> any_pb2.Any:
        await self._enter("Get", request.ref, context)
        found = self.objects.get((request.ref.namespace, request.name))
        if found is None:
            await self._fail(context, grpc.StatusCode.NOT_FOUND, 404, "NotFound",
                             f'scales.autoscaling "{request.name}" not found')
        return pack(found)

    async def List(self, request: objects_pb2.ListRequest, context: Any) -> objects_pb2.ListResponse:
        await self._enter("List", request.ref, context)
        items = [pack(o) for (ns, _), o in sorted(self.objects.items())
                 if not request.ref.namespace or ns == request.ref.namespace]
        return objects_pb2.ListResponse(resource_version=str(self.rv), items=items)

    async def Create(self, request: objects_pb2.CreateRequest, context: Any) -> any_pb2.Any:
        await self._enter("Create", request.ref, context)
        self.last_create = request
        obj = Scale()
        request.object.Unpack(obj)
        if not obj.metadata.name:
            cause = meta_pb2.StatusCause(reason="FieldValueRequired", message="Required value",
                                         field="metadata.name")
            await self._fail(context, grpc.StatusCode.INVALID_ARGUMENT, 422, "Invalid",
                             'Scale "" is invalid: metadata.name: Required value', causes=[cause])
        key = (request.ref.namespace, obj.metadata.name)
        if key in self.objects:
            await self._fail(context, grpc.StatusCode.ALREADY_EXISTS, 409, "AlreadyExists",
                             f'scales.autoscaling "{obj.metadata.name}" already exists')
        self.objects[key] = self._bump(obj)
        await self._record(ADDED, obj)
        return pack(obj)

    async def _replace(self, request: objects_pb2.UpdateRequest, context: Any, *,
                       status_only: bool) -> any_pb2.Any:
        obj = Scale()
        request.object.Unpack(obj)
        key = (request.ref.namespace, obj.metadata.name)
        current = self.objects.get(key)
        if current is None:
            await self._fail(context, grpc.StatusCode.NOT_FOUND, 404, "NotFound", "not found")
        assert current is not None
        rv = obj.metadata.resource_version
        if rv and rv != current.metadata.resource_version:
            await self._fail(context, grpc.StatusCode.ABORTED, 409, "Conflict",
                             "the object has been modified")
        if status_only:
            new = Scale()
            new.CopyFrom(current)
            new.status.CopyFrom(obj.status)
            obj = new
        self.objects[key] = self._bump(obj)
        await self._record(MODIFIED, obj)
        return pack(obj)

    async def Update(self, request: objects_pb2.UpdateRequest, context: Any) -> any_pb2.Any:
        await self._enter("Update", request.ref, context)
        return await self._replace(request, context, status_only=False)

    async def UpdateStatus(self, request: objects_pb2.UpdateRequest, context: Any) -> any_pb2.Any:
        await self._enter("UpdateStatus", request.ref, context)
        return await self._replace(request, context, status_only=True)

    async def Delete(self, request: objects_pb2.DeleteRequest, context: Any) -> any_pb2.Any:
        await self._enter("Delete", request.ref, context)
        key = (request.ref.namespace, request.name)
        current = self.objects.get(key)
        if current is None:
            await self._fail(context, grpc.StatusCode.NOT_FOUND, 404, "NotFound", "not found")
        assert current is not None
        if request.options.HasField("grace_period_seconds") and request.options.grace_period_seconds:
            current.metadata.deletion_grace_period_seconds = request.options.grace_period_seconds
            return pack(current)  # graceful: still there
        del self.objects[key]
        await self._record(DELETED, self._bump(current))
        return pack(meta_pb2.Status(kind="Status", status="Success", code=200))

    def _newer_than(self, count: int) -> Callable[[], bool]:
        return lambda: len(self.history) > count

    async def Watch(self, request: objects_pb2.WatchRequest,
                    context: Any) -> AsyncIterator[objects_pb2.WatchEvent]:
        await self._enter("Watch", request.ref, context)
        since = int(request.resource_version or 0)
        if since < self.compacted_below:
            st = meta_pb2.Status(code=410, reason="Expired", message="too old resource version")
            yield objects_pb2.WatchEvent(type="ERROR", object=pack(st))
            return
        sent = 0
        while True:
            for event in self.history[sent:]:
                sent += 1
                if int(event.resource_version) > since:
                    yield event
            async with self.changed:
                await self.changed.wait_for(self._newer_than(sent))


@pytest.fixture
async def server() -> AsyncIterator[tuple[FakeObjects, str]]:
    servicer = FakeObjects()
    srv = grpc.aio.server()
    objects_pb2_grpc.add_ObjectsServicer_to_server(servicer, srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        await srv.stop(None)


@pytest.fixture
async def client(server: tuple[FakeObjects, str]) -> AsyncIterator[Client]:
    _, target = server
    retry = RetryPolicy(attempts=4, base_delay_s=0.001, max_delay_s=0.002)
    async with await Client.connect(target, extra_kinds=EXTRA_KINDS, read_retry=retry, timeout_s=10) as c:
        yield c


async def test_crud_round_trip_returns_fresh_objects(server: tuple[FakeObjects, str],
                                                     client: Client) -> None:
    servicer, _ = server
    created = await client.create(scale("web", replicas=2))
    assert created.metadata.resource_version == "11"
    assert (servicer.refs[-1].group, servicer.refs[-1].resource, servicer.refs[-1].namespace) == (
        "autoscaling", "scales", "default")
    got = await client.get(Scale, "web", namespace="default")
    got.spec.replicas = 99  # ours to change: the next read is unaffected
    assert (await client.get(Scale, "web", namespace="default")).spec.replicas == 2

    items, rv = await client.list(Scale, namespace="default")
    assert [i.metadata.name for i in items] == ["web"] and rv == "11"

    got.spec.replicas = 3
    updated = await client.update(got)
    assert updated.spec.replicas == 3 and updated.metadata.resource_version == "12"
    updated.status.replicas = 3
    updated.spec.replicas = 50  # ignored by the status subresource
    with_status = await client.update_status(updated)
    assert (with_status.status.replicas, with_status.spec.replicas) == (3, 3)

    assert await client.delete(Scale, "web", namespace="default", grace_period_seconds=30) is not None
    assert await client.delete(Scale, "web", namespace="default") is None
    with pytest.raises(NotFound):
        await client.get(Scale, "web", namespace="default")


async def test_errors_arrive_translated(client: Client) -> None:
    await client.create(scale("web"))
    with pytest.raises(AlreadyExists):
        await client.create(scale("web"))
    with pytest.raises(Conflict):
        await client.update(scale("web", rv="1"))
    with pytest.raises(Invalid) as caught:
        await client.create(scale(""))
    assert [c.field for c in caught.value.causes] == ["metadata.name"]
    with pytest.raises(NotFound) as missing:
        await client.get(Scale, "nope", namespace="default")
    assert missing.value.message == 'scales.autoscaling "nope" not found'


async def test_reads_retry_unavailable_and_give_up_after_the_policy(
    server: tuple[FakeObjects, str], client: Client
) -> None:
    servicer, _ = server
    await client.create(scale("web"))
    servicer.failures["Get"] = [grpc.StatusCode.UNAVAILABLE] * 2
    assert (await client.get(Scale, "web", namespace="default")).metadata.name == "web"
    assert servicer.calls["Get"] == 3
    servicer.failures["List"] = [grpc.StatusCode.UNAVAILABLE] * 4
    with pytest.raises(Unavailable):
        await client.list(Scale)
    assert servicer.calls["List"] == 4


async def test_writes_are_never_retried(server: tuple[FakeObjects, str], client: Client) -> None:
    servicer, _ = server
    servicer.failures["Create"] = [grpc.StatusCode.UNAVAILABLE]
    with pytest.raises(Unavailable):
        await client.create(scale("web"))
    assert servicer.calls["Create"] == 1


async def test_watch_streams_changes_after_the_list(client: Client) -> None:
    await client.create(scale("a"))
    _, rv = await client.list(Scale, namespace="default")
    stream = client.watch(Scale, namespace="default", resource_version=rv)
    first = asyncio.ensure_future(anext(stream))
    await client.create(scale("b"))
    b = await client.get(Scale, "b", namespace="default")
    b.spec.replicas = 4
    await client.update(b)
    await client.delete(Scale, "a", namespace="default")
    events = [await first] + [await anext(stream) for _ in range(2)]
    await stream.aclose()  # type: ignore[attr-defined]
    assert [(e.type, e.object.metadata.name, e.resource_version) for e in events] == [
        (ADDED, "b", "12"), (MODIFIED, "b", "13"), (DELETED, "a", "14")]
    assert events[1].object.spec.replicas == 4


async def test_watch_error_event_410_raises_gone(server: tuple[FakeObjects, str],
                                                 client: Client) -> None:
    servicer, _ = server
    servicer.compacted_below = 100
    with pytest.raises(Gone):
        async for _ in client.watch(Scale, resource_version="5"):
            pass
    servicer.failures["Watch"] = [grpc.StatusCode.UNAVAILABLE]
    with pytest.raises(Unavailable):
        async for _ in client.watch(Scale, resource_version="500"):
            pass


async def test_an_informer_fed_by_the_client_follows_the_server(client: Client) -> None:
    await client.create(scale("a"))
    factory = InformerFactory(client.lister_watcher)
    informer = factory.informer(Scale, namespace="default")
    added: asyncio.Queue[str] = asyncio.Queue()
    informer.add_handler(on_add=lambda o: added.put_nowait(o.metadata.name))
    ready = asyncio.Event()
    task = asyncio.create_task(factory.run(ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        assert await added.get() == "a"
        await client.create(scale("b"))
        assert await asyncio.wait_for(added.get(), 10) == "b"
        assert informer.keys() == ["default/a", "default/b"]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_bind_sends_a_binding_to_the_pod_subresource(server: tuple[FakeObjects, str],
                                                           client: Client) -> None:
    core_pb2 = pytest.importorskip("protos.core.v1.core_pb2")
    servicer, _ = server
    with pytest.raises(Invalid):  # the fake only stores Scales: an empty one is invalid
        await client.bind("default", "web-0", node_name="n1")
    request = servicer.last_create
    assert request is not None
    assert (request.ref.resource, request.subresource, request.name) == ("pods", "binding", "web-0")
    binding = core_pb2.Binding()
    assert request.object.Unpack(binding)
    assert (binding.target.kind, binding.target.name) == ("Node", "n1")
    assert (binding.metadata.namespace, binding.metadata.name) == ("default", "web-0")


async def test_connect_waiting_for_a_dead_target_raises_unavailable() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(Unavailable):
        await Client.connect(f"127.0.0.1:{port}", wait_ready_s=0.2)
