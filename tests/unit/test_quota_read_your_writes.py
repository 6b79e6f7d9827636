"""Quota admission sees this apiserver's own quota writes at once.

The registry runs over a MemoryStore whose watch holds back resourcequota
events until the test lets them through, so the watch cache lags exactly
as it may behind a busy etcd. A quota created (or deleted) a moment ago
through this registry must still decide the very next create.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from master.apiserver import errors
from master.apiserver.registry import NAMESPACES, DeleteOptions, Registry, resource_info
from master.storage.interface import StoreEvent
from master.storage.memory import MemoryStore
from protos.core.v1 import core_pb2

QUOTAS = resource_info("", "resourcequotas")
CONFIGMAPS = resource_info("", "configmaps")


class HeldQuotaEvents(MemoryStore):
    """A MemoryStore whose watches on resourcequotas deliver only while `flowing` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.flowing = asyncio.Event()
        self.flowing.set()

    async def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[StoreEvent]:  # type: ignore[override]
        async for ev in super().watch(prefix, start_revision=start_revision):
            if "/resourcequotas/" in prefix:
                await self.flowing.wait()
            yield ev


@contextlib.asynccontextmanager
async def registry(store: HeldQuotaEvents) -> AsyncIterator[Registry]:
    reg = Registry(store, consistent_list_timeout_s=5.0)
    ready = asyncio.Event()
    task = asyncio.create_task(reg.run(ready=ready))
    try:
        await ready.wait()
        ns = core_pb2.Namespace()
        ns.metadata.name = "q"
        await reg.create(NAMESPACES, "", ns)
        yield reg
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def config_map(name: str) -> Any:
    cm = core_pb2.ConfigMap()
    cm.metadata.name = name
    return cm


def quota(hard: dict[str, str]) -> Any:
    q = core_pb2.ResourceQuota()
    q.metadata.name = "objects"
    q.spec.hard.update(hard)
    return q


async def release_later(store: HeldQuotaEvents) -> None:
    """Lets the held events through once the create under test is waiting for them."""
    for _ in range(10):
        await asyncio.sleep(0)
    store.flowing.set()


async def test_a_quota_created_a_moment_ago_limits_the_next_create() -> None:
    store = HeldQuotaEvents()
    async with registry(store) as reg:
        store.flowing.clear()
        await reg.create(QUOTAS, "q", quota({"configmaps": "1"}))
        release = asyncio.create_task(release_later(store))
        await reg.create(CONFIGMAPS, "q", config_map("one"))
        await release
        # Admitted under the quota: it was charged for.
        charged = await reg.get(QUOTAS, "q", "objects")
        assert dict(charged.msg.status.used) == {"configmaps": "1"}
        with pytest.raises(errors.APIError) as refused:
            await reg.create(CONFIGMAPS, "q", config_map("two"))
        assert refused.value.code == 403
        assert "exceeded quota: objects" in str(refused.value)


async def test_creates_wait_for_nothing_in_a_namespace_without_quota_writes() -> None:
    store = HeldQuotaEvents()
    async with registry(store) as reg:
        other = core_pb2.Namespace()
        other.metadata.name = "other"
        await reg.create(NAMESPACES, "", other)
        store.flowing.clear()
        await reg.create(QUOTAS, "q", quota({"configmaps": "1"}))
        # Held quota events in "q" do not delay creates in "other".
        for i in range(3):
            await asyncio.wait_for(reg.create(CONFIGMAPS, "other", config_map(f"cm-{i}")), 5)
        store.flowing.set()


async def test_a_quota_deleted_a_moment_ago_limits_nothing() -> None:
    store = HeldQuotaEvents()
    async with registry(store) as reg:
        await reg.create(QUOTAS, "q", quota({"configmaps": "0"}))
        with pytest.raises(errors.APIError):
            await reg.create(CONFIGMAPS, "q", config_map("refused"))
        store.flowing.clear()
        await reg.delete(QUOTAS, "q", "objects", DeleteOptions())
        release = asyncio.create_task(release_later(store))
        await reg.create(CONFIGMAPS, "q", config_map("allowed"))
        await release
