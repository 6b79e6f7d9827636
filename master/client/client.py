"""The typed async client over the apiserver's gRPC face (protos/api/v1/objects.proto).

Callers hand in message classes and get messages back:
`await client.get(Pod, "web-0", namespace="default")`. This module owns the
wire: packing objects into google.protobuf.Any and out again, naming the
collection (ResourceRef) from the class through `kinds`, translating every
grpc.aio.AioRpcError into `master.client.errors` (once, here), and retrying
reads on retryable errors with backoff on the Clock. Writes are never
retried: a write that timed out may have happened, and only the caller (the
worker loop, with a fresh read) can decide.

Every message returned is a fresh object the caller owns. The Client keeps no
cache; informers (master.client.informer) do, through `lister_watcher()`.

It must not import master.apiserver or master.storage: node agents and
proxies use it from other hosts.
"""

from __future__ import annotations

import asyncio
import builtins
import importlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message

from master.client.clock import Clock, RealClock
from master.client.errors import InternalError, Unavailable, from_rpc_error, from_status
from master.client.informer import BOOKMARK, ERROR, WatchEvent
from master.client.kinds import BINDING, KINDS, POD, KindInfo, kind_of
from protos.api.v1 import objects_pb2, objects_pb2_grpc
from protos.meta.v1 import meta_pb2

M = TypeVar("M", bound=Message)

# A LIST of a few thousand pods is larger than gRPC's 4 MiB default.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
DEFAULT_CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
)


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts for a read, and the exponential backoff between them."""

    attempts: int = 5
    base_delay_s: float = 0.1
    max_delay_s: float = 5.0

    def delay_s(self, failures: int) -> float:
        return min(math.ldexp(self.base_delay_s, min(failures - 1, 32)), self.max_delay_s)


class Client:
    """Typed async access to the object service. Use `await Client.connect(target)`."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        extra_kinds: Mapping[str, KindInfo] | None = None,
        clock: Clock | None = None,
        timeout_s: float | None = 30.0,
        read_retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        self._channel = channel
        self._stub = objects_pb2_grpc.ObjectsStub(channel)
        # extra_kinds adds message classes the built-in table lacks (tests, new kinds).
        self.kinds: Mapping[str, KindInfo] = {**KINDS, **(extra_kinds or {})}
        self.clock: Clock = clock or RealClock()
        self.timeout_s = timeout_s  # per unary call; watches are bounded by the server
        self.read_retry = read_retry

    @classmethod
    async def connect(
        cls,
        target: str,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        channel_options: Sequence[tuple[str, Any]] = DEFAULT_CHANNEL_OPTIONS,
        wait_ready_s: float | None = None,
        extra_kinds: Mapping[str, KindInfo] | None = None,
        clock: Clock | None = None,
        timeout_s: float | None = 30.0,
        read_retry: RetryPolicy = RetryPolicy(),
    ) -> Client:
        """Open a channel to `target` ("host:port" or "unix:/path").

        With `wait_ready_s`, wait that long for the connection and raise
        Unavailable otherwise; without, connect lazily on the first call.
        """
        options = list(channel_options)
        if credentials is None:
            channel = grpc.aio.insecure_channel(target, options=options)
        else:
            channel = grpc.aio.secure_channel(target, credentials, options=options)
        if wait_ready_s is not None:
            try:
                await asyncio.wait_for(channel.channel_ready(), wait_ready_s)
            except TimeoutError:
                await channel.close()
                raise Unavailable(f"{target}: not reachable within {wait_ready_s}s") from None
        return cls(
            channel, extra_kinds=extra_kinds, clock=clock, timeout_s=timeout_s,
            read_retry=read_retry,
        )

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # Reads (retried) ------------------------------------------------------------

    async def get(self, cls: type[M], name: str, *, namespace: str = "") -> M:
        request = objects_pb2.GetRequest(ref=self._ref(cls, namespace), name=name)
        response = await self._read(self._stub.Get, request)
        return _unpack(response, cls)

    async def list(
        self,
        cls: type[M],
        *,
        namespace: str = "",
        label_selector: str = "",
        field_selector: str = "",
        resource_version: str = "",
    ) -> tuple[builtins.list[M], str]:
        """Every matching object and the list's resourceVersion (to watch from)."""
        request = objects_pb2.ListRequest(
            ref=self._ref(cls, namespace),
            label_selector=label_selector,
            field_selector=field_selector,
            resource_version=resource_version,
        )
        response = await self._read(self._stub.List, request)
        return [_unpack(item, cls) for item in response.items], response.resource_version

    # Writes (never retried) -------------------------------------------------------

    async def create(self, obj: M, *, dry_run: bool = False) -> M:
        request = objects_pb2.CreateRequest(
            ref=self._ref(type(obj), _meta(obj).namespace), object=_pack(obj), dry_run=dry_run
        )
        return _unpack(await self._write(self._stub.Create, request), type(obj))

    async def update(self, obj: M, *, dry_run: bool = False) -> M:
        """Replace spec and metadata; metadata.resourceVersion, when set, must be current."""
        request = self._update_request(obj, dry_run)
        return _unpack(await self._write(self._stub.Update, request), type(obj))

    async def update_status(self, obj: M, *, dry_run: bool = False) -> M:
        """Replace status only (the status subresource)."""
        request = self._update_request(obj, dry_run)
        return _unpack(await self._write(self._stub.UpdateStatus, request), type(obj))

    async def delete(
        self,
        cls: type[M],
        name: str,
        *,
        namespace: str = "",
        grace_period_seconds: int | None = None,
        propagation_policy: str = "",
        precondition_uid: str | None = None,
        precondition_resource_version: str | None = None,
        dry_run: bool = False,
    ) -> M | None:
        """Delete; return the object when it still exists (finalizers, grace), else None."""
        options = meta_pb2.DeleteOptions(propagation_policy=propagation_policy)
        if grace_period_seconds is not None:
            options.grace_period_seconds = grace_period_seconds
        if precondition_uid is not None:
            options.preconditions.uid = precondition_uid
        if precondition_resource_version is not None:
            options.preconditions.resource_version = precondition_resource_version
        if dry_run:
            options.dry_run.append("All")
        request = objects_pb2.DeleteRequest(
            ref=self._ref(cls, namespace), name=name, options=options
        )
        response = await self._write(self._stub.Delete, request)
        return _unpack(response, cls) if response.Is(cls.DESCRIPTOR) else None

    async def bind(
        self, namespace: str, pod_name: str, *, node_name: str, dry_run: bool = False,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        """Bind a pod to a node (POST pods/<name>/binding with a Binding).

        `annotations` ride on the Binding's metadata; the apiserver copies
        them onto the pod, as Kubernetes' binding subresource does.
        """
        binding = _binding(namespace, pod_name, node_name)
        for key, value in (annotations or {}).items():
            binding.metadata.annotations[key] = value
        pods = self.kinds[POD]
        request = objects_pb2.CreateRequest(
            ref=objects_pb2.ResourceRef(group=pods.group, resource=pods.resource, namespace=namespace),
            object=_pack(binding),
            subresource="binding",
            name=pod_name,
            dry_run=dry_run,
        )
        await self._write(self._stub.Create, request)

    # Watch --------------------------------------------------------------------------

    async def watch(
        self,
        cls: type[M],
        *,
        namespace: str = "",
        label_selector: str = "",
        field_selector: str = "",
        resource_version: str = "",
        timeout_seconds: int = 0,
        allow_bookmarks: bool = False,
    ) -> AsyncIterator[WatchEvent[M]]:
        """Changes after `resource_version` ("" or "0": the current state first, as ADDED).

        Ends when the server closes the stream (after `timeout_seconds`). An
        ERROR event raises its error (Gone for 410: relist); a broken stream
        raises Unavailable. Not retried: informers resume from their last
        resourceVersion themselves. Leaving the loop early cancels the stream.
        """
        request = objects_pb2.WatchRequest(
            ref=self._ref(cls, namespace),
            label_selector=label_selector,
            field_selector=field_selector,
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
            allow_bookmarks=allow_bookmarks,
        )
        call = self._stub.Watch(request)
        try:
            async for event in call:
                yield _watch_event(event, cls)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc
        finally:
            call.cancel()

    def lister_watcher(
        self,
        cls: type[M],
        *,
        namespace: str = "",
        label_selector: str = "",
        field_selector: str = "",
    ) -> ClientListerWatcher[M]:
        """The ListerWatcher an Informer (or InformerFactory) needs for `cls`."""
        return ClientListerWatcher(
            self, cls, namespace=namespace, label_selector=label_selector,
            field_selector=field_selector,
        )

    # Plumbing -----------------------------------------------------------------------

    def _ref(self, cls: type[Message], namespace: str) -> objects_pb2.ResourceRef:
        info = kind_of(cls, kinds=self.kinds)
        return objects_pb2.ResourceRef(
            group=info.group,
            resource=info.resource,
            namespace=namespace if info.namespaced else "",
        )

    def _update_request(self, obj: Message, dry_run: bool) -> objects_pb2.UpdateRequest:
        return objects_pb2.UpdateRequest(
            ref=self._ref(type(obj), _meta(obj).namespace), object=_pack(obj), dry_run=dry_run
        )

    async def _read(self, method: Callable[..., Awaitable[Any]], request: Message) -> Any:
        failures = 0
        while True:
            try:
                return await method(request, timeout=self.timeout_s)
            except grpc.aio.AioRpcError as exc:
                failures += 1
                if failures >= self.read_retry.attempts or not from_rpc_error(exc).retryable:
                    # Raised unnamed: an error held in a local of the frame its
                    # traceback holds is a cycle only a full collection frees.
                    raise from_rpc_error(exc) from exc
            await self.clock.sleep(self.read_retry.delay_s(failures))

    async def _write(self, method: Callable[..., Awaitable[Any]], request: Message) -> Any:
        try:
            return await method(request, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc


class ClientListerWatcher(Generic[M]):
    """Lists and watches one class through a Client, for an Informer."""

    def __init__(
        self,
        client: Client,
        cls: type[M],
        *,
        namespace: str = "",
        label_selector: str = "",
        field_selector: str = "",
        watch_timeout_s: int = 300,
    ) -> None:
        self.client = client
        self.cls = cls
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        # The server ends each watch after this; the informer resumes it. A
        # bounded watch also recovers from a connection that died silently.
        self.watch_timeout_s = watch_timeout_s

    async def list(self) -> tuple[builtins.list[M], str]:
        return await self.client.list(
            self.cls, namespace=self.namespace, label_selector=self.label_selector,
            field_selector=self.field_selector,
        )

    def watch(self, resource_version: str) -> AsyncIterator[WatchEvent[M]]:
        return self.client.watch(
            self.cls,
            namespace=self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            resource_version=resource_version,
            timeout_seconds=self.watch_timeout_s,
            allow_bookmarks=True,
        )


def _meta(obj: Any) -> meta_pb2.ObjectMeta:
    return obj.metadata  # type: ignore[no-any-return]


def _pack(obj: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(obj)
    return packed


def _unpack(packed: any_pb2.Any, cls: type[M]) -> M:
    if not packed.Is(cls.DESCRIPTOR):
        raise InternalError(
            f"server answered {packed.type_url or 'nothing'}, expected {cls.DESCRIPTOR.full_name}"
        )
    obj = cls()
    packed.Unpack(obj)
    return obj


def _watch_event(event: objects_pb2.WatchEvent, cls: type[M]) -> WatchEvent[M]:
    if event.type == ERROR:
        status = meta_pb2.Status()
        if not event.object.Unpack(status):
            status.code, status.reason, status.message = 500, "InternalError", "watch ERROR event"
        raise from_status(status)
    if event.type == BOOKMARK and not event.object.Is(cls.DESCRIPTOR):
        # A bookmark only carries a resourceVersion; give the caller a typed shell.
        obj = cls()
        _meta(obj).resource_version = event.resource_version
    else:
        obj = _unpack(event.object, cls)
    return WatchEvent(event.type, obj, event.resource_version or _meta(obj).resource_version)


def _binding(namespace: str, pod_name: str, node_name: str) -> Message:
    # core_pb2 is imported when first needed: the core protos are generated
    # separately, and importing the client must not depend on them.
    name = BINDING.rpartition(".")[2]
    module = importlib.import_module("protos.core.v1.core_pb2")
    binding: Any = getattr(module, name)()
    _set_if_present(binding, api_version="v1", kind="Binding")
    binding.metadata.name = pod_name
    binding.metadata.namespace = namespace
    binding.target.kind = "Node"
    binding.target.name = node_name
    _set_if_present(binding.target, api_version="v1")
    return binding


def _set_if_present(msg: Any, **values: str) -> None:
    for field, value in values.items():
        if field in msg.DESCRIPTOR.fields_by_name:
            setattr(msg, field, value)
