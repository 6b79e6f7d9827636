"""The agent's side of the node API (flotilla.node.v1.Nodes) over gRPC.

`NodeClient` implements node_agent.pods.api.NodeAPI (update_pod_status,
delete_pod, get_config_map, get_secret) for the pod workers, plus what
registration needs (register, heartbeat, watch_pods). Every call carries
the node's name in the `flotilla-node-name` metadata — the identity the
master checks (not authenticated yet; node credentials come later).

ConfigMaps and Secrets are read through the generic Objects service (the
shared master.client.Client); restricting them to pods of this node arrives
with node credentials.

Errors: every gRPC failure becomes a master.client.errors.APIError, once,
here (from_rpc_error). Must not: decide anything about pods or retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from master.client.client import DEFAULT_CHANNEL_OPTIONS, Client
from master.client.errors import Conflict, NotFound, Unavailable, from_rpc_error
from protos.core.v1 import core_pb2
from protos.node.v1 import node_pb2, node_pb2_grpc

NODE_METADATA_KEY = "flotilla-node-name"


class NodeClient:
    def __init__(self, client: Client, channel: grpc.aio.Channel, *, node_name: str,
                 timeout_s: float = 30.0) -> None:
        self.client = client  # generic objects (informers, ConfigMaps, Secrets)
        self._stub = node_pb2_grpc.NodesStub(channel)
        self.node_name = node_name
        self.timeout_s = timeout_s
        self._metadata = ((NODE_METADATA_KEY, node_name),)

    @classmethod
    async def connect(cls, target: str, *, node_name: str, wait_ready_s: float | None = None) -> NodeClient:
        channel = grpc.aio.insecure_channel(target, options=list(DEFAULT_CHANNEL_OPTIONS))
        if wait_ready_s is not None:
            try:
                await asyncio.wait_for(channel.channel_ready(), wait_ready_s)
            except TimeoutError:
                await channel.close()
                raise Unavailable(f"{target}: not reachable within {wait_ready_s}s") from None
        return cls(Client(channel), channel, node_name=node_name)

    async def close(self) -> None:
        await self.client.close()

    async def _unary(self, method: Any, request: Any) -> Any:
        try:
            return await method(request, metadata=self._metadata, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc

    # ---- registration ----------------------------------------------------------

    async def register(self, request: node_pb2.RegisterRequest) -> node_pb2.RegisterResponse:
        return await self._unary(self._stub.Register, request)  # type: ignore[no-any-return]

    async def heartbeat(self) -> node_pb2.HeartbeatResponse:
        return await self._unary(self._stub.Heartbeat, node_pb2.HeartbeatRequest())  # type: ignore[no-any-return]

    async def watch_pods(self, resource_version: str = "") -> AsyncIterator[node_pb2.PodEvent]:
        call = self._stub.WatchPods(node_pb2.WatchPodsRequest(resource_version=resource_version,
                                                              allow_bookmarks=True), metadata=self._metadata)
        try:
            async for event in call:
                yield event
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc
        finally:
            call.cancel()

    # ---- NodeAPI (node_agent.pods.api) ---------------------------------------------

    # Like ClientNodeAPI (node_agent.pods.api): a pod that is gone, or replaced by a
    # new pod of the same name (the master answers NOT_FOUND for a status write
    # whose uid is not the current pod's), is not an error for the worker; any
    # other failure of a status write (a Conflict the master gave up retrying,
    # an unreachable master) is raised, so the worker writes it again. A
    # ConfigMap or Secret that does not exist is None, which the worker turns
    # into CreateContainerConfigError rather than a failed sync.

    async def update_pod_status(self, pod: core_pb2.Pod) -> core_pb2.Pod | None:
        try:
            return await self._unary(self._stub.UpdatePodStatus,  # type: ignore[no-any-return]
                                     node_pb2.UpdatePodStatusRequest(pod=pod))
        except NotFound:
            return None

    async def delete_pod(self, pod: core_pb2.Pod) -> None:
        meta = pod.metadata
        try:
            await self._unary(self._stub.DeletePod, node_pb2.DeletePodRequest(
                namespace=meta.namespace, name=meta.name, uid=meta.uid))
        except (NotFound, Conflict):
            return  # gone already, or a new pod of the same name

    async def get_config_map(self, namespace: str, name: str) -> core_pb2.ConfigMap | None:
        try:
            return await self.client.get(core_pb2.ConfigMap, name, namespace=namespace)
        except NotFound:
            return None

    async def get_secret(self, namespace: str, name: str) -> core_pb2.Secret | None:
        try:
            return await self.client.get(core_pb2.Secret, name, namespace=namespace)
        except NotFound:
            return None
