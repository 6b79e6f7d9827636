"""TEMPORARY stand-in for tests/integration/hollow.py until it lands on main."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from master.client.errors import APIError
from protos.core.v1 import core_pb2

OUTCOME_ANNOTATION = "hollow.flotilla.dev/outcome"


class HC:
    def __init__(self, client: Any, binder: bool) -> None:
        self.client, self.binder, self.node_names = client, binder, []  # type: list[str]
        self._i = 0

    async def add_node(self) -> str:
        name = f"hollow-{uuid.uuid4().hex[:6]}"
        n = core_pb2.Node(api_version="v1", kind="Node")
        n.metadata.name = name
        await self.client.create(n)
        self.node_names.append(name)
        return name

    async def remove_node(self, name: str) -> None:
        await self.client.delete(core_pb2.Node, name)
        self.node_names.remove(name)

    async def loop(self) -> None:
        while True:
            with contextlib.suppress(APIError):
                await self.tick()
            await asyncio.sleep(0.1)

    async def tick(self) -> None:
        pods, _ = await self.client.list(core_pb2.Pod)
        for p in pods:
            if p.metadata.HasField("deletion_timestamp"):
                await self.client.delete(core_pb2.Pod, p.metadata.name, namespace=p.metadata.namespace,
                                         grace_period_seconds=0)
                continue
            if not p.spec.node_name:
                if self.binder and self.node_names:
                    self._i += 1
                    await self.client.bind(p.metadata.namespace, p.metadata.name,
                                           node_name=self.node_names[self._i % len(self.node_names)])
                continue
            if p.spec.node_name not in self.node_names:
                continue
            now = Timestamp()
            now.GetCurrentTime()
            if p.status.phase == "Pending":
                p.status.phase = "Running"
                p.status.pod_ip = "10.244.0.9"
                c = p.status.conditions.add(type="Ready", status="True")
                c.last_transition_time.CopyFrom(now)
                await self.client.update_status(p)
            elif p.status.phase == "Running" and p.metadata.annotations.get(OUTCOME_ANNOTATION):
                p.status.phase = p.metadata.annotations[OUTCOME_ANNOTATION]
                del p.status.conditions[:]
                await self.client.update_status(p)


@contextlib.asynccontextmanager
async def hollow_cluster(client: Any, *, nodes: int = 3, binder: bool = False) -> AsyncIterator[HC]:
    hc = HC(client, binder)
    for _ in range(nodes):
        await hc.add_node()
    task = asyncio.create_task(hc.loop())
    try:
        yield hc
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
