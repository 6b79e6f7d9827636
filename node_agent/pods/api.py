"""NodeAPI: what the pod workers need from the master, as a protocol, plus two
implementations: `ClientNodeAPI` over the generic master.client.Client (for
integration tests and as a fallback) and `FakeNodeAPI` (unit tests).

The gRPC node API (branch agent-node) implements the same protocol.
Must not: decide anything about pods; it only carries writes and reads.
"""

from __future__ import annotations

from typing import Any, Protocol

from protos.core.v1 import core_pb2

Pod = core_pb2.Pod


class NodeAPI(Protocol):
    async def update_pod_status(self, pod: Pod) -> None:
        """Write pod.status through the status subresource."""
        ...

    async def delete_pod(self, pod: Pod) -> None:
        """Remove the pod object (grace 0, uid precondition) after graceful termination."""
        ...

    async def get_config_map(self, namespace: str, name: str) -> core_pb2.ConfigMap | None: ...

    async def get_secret(self, namespace: str, name: str) -> core_pb2.Secret | None: ...


class ClientNodeAPI:
    """NodeAPI over master.client.Client (gRPC Objects service)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    async def update_pod_status(self, pod: Pod) -> None:
        from master.client.errors import Conflict, NotFound

        for attempt in range(5):
            try:
                current = await self._client.get(Pod, pod.metadata.name, namespace=pod.metadata.namespace)
            except NotFound:
                return
            if current.metadata.uid != pod.metadata.uid:
                return  # a new pod with the same name: not ours to write
            current.status.CopyFrom(pod.status)
            try:
                await self._client.update_status(current)
                return
            except NotFound:
                return
            except Conflict:
                if attempt == 4:
                    raise
                continue  # someone wrote in between: read again and write ours on top

    async def delete_pod(self, pod: Pod) -> None:
        from master.client.errors import Conflict, NotFound

        try:
            await self._client.delete(
                Pod,
                pod.metadata.name,
                namespace=pod.metadata.namespace,
                grace_period_seconds=0,
                precondition_uid=pod.metadata.uid,
            )
        except (NotFound, Conflict):
            return  # gone already, or a new pod of the same name (uid precondition)

    async def get_config_map(self, namespace: str, name: str) -> core_pb2.ConfigMap | None:
        from master.client.errors import NotFound

        try:
            cm: core_pb2.ConfigMap = await self._client.get(core_pb2.ConfigMap, name, namespace=namespace)
            return cm
        except NotFound:
            return None

    async def get_secret(self, namespace: str, name: str) -> core_pb2.Secret | None:
        from master.client.errors import NotFound

        try:
            s: core_pb2.Secret = await self._client.get(core_pb2.Secret, name, namespace=namespace)
            return s
        except NotFound:
            return None


class FakeNodeAPI:
    """In-memory NodeAPI: records statuses and deletions; serves config maps and secrets."""

    def __init__(self) -> None:
        self.statuses: dict[str, list[core_pb2.PodStatus]] = {}
        self.deleted: list[str] = []
        self.config_maps: dict[tuple[str, str], core_pb2.ConfigMap] = {}
        self.secrets: dict[tuple[str, str], core_pb2.Secret] = {}

    def last_status(self, uid: str) -> core_pb2.PodStatus | None:
        got = self.statuses.get(uid)
        return got[-1] if got else None

    async def update_pod_status(self, pod: Pod) -> None:
        st = core_pb2.PodStatus()
        st.CopyFrom(pod.status)
        self.statuses.setdefault(pod.metadata.uid, []).append(st)

    async def delete_pod(self, pod: Pod) -> None:
        self.deleted.append(pod.metadata.uid)

    async def get_config_map(self, namespace: str, name: str) -> core_pb2.ConfigMap | None:
        return self.config_maps.get((namespace, name))

    async def get_secret(self, namespace: str, name: str) -> core_pb2.Secret | None:
        return self.secrets.get((namespace, name))
