"""The `kubernetes` Service's Endpoints follow the live masters (allocators/kubernetes.py).

Two apiservers share one store (as two masters share etcd), each advertising
its own address, with a short lease interval: both addresses appear; a
master that vanished without a word (its lease written by the test, already
expired, its address planted in the Endpoints) is dropped; a fresh lease of
a third master brings it in; a clean stop removes that master's address and
lease at once.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from master.apiserver.allocators.kubernetes import (
    ENDPOINTS,
    LEASE_NAMESPACE,
    LEASES,
    lease_name,
    master_lease,
    with_addresses,
)
from master.apiserver.errors import APIError
from master.apiserver.registry import DeleteOptions
from master.apiserver.server import APIServer, APIServerConfig
from master.storage.etcd import EtcdStore
from master.storage.prefixed import PrefixedStore
from tests.integration.harness import eventually, running

INTERVAL_S = 0.3  # the lease lasts 1 s


def _config(ip: str) -> APIServerConfig:
    return APIServerConfig("127.0.0.1", 0, 0, advertise_ip=ip, master_lease_interval_s=INTERVAL_S)


async def _addresses(server: APIServer) -> list[str]:
    try:
        ep = (await server.registry.get(ENDPOINTS, "default", "kubernetes")).msg
    except APIError:
        return []
    return [a.ip for s in ep.subsets for a in s.addresses]


async def _lease_exists(server: APIServer, ip: str) -> bool:
    try:
        await server.registry.get(LEASES, LEASE_NAMESPACE, lease_name(ip))
    except APIError:
        return False
    return True


async def test_endpoints_follow_the_live_masters(etcd_cluster: Any) -> None:
    etcd = await EtcdStore.open(etcd_cluster.endpoints)
    store = PrefixedStore(etcd, f"/test-{uuid.uuid4().hex[:12]}")
    a, b = APIServer(_config("10.1.0.1"), store), APIServer(_config("10.1.0.2"), store)
    try:
        async with running(lambda ready: a.run(ready=ready), what="master a"):
            async with running(lambda ready: b.run(ready=ready), what="master b"):

                async def both() -> bool:
                    return await _addresses(a) == ["10.1.0.1", "10.1.0.2"]

                await eventually(both, what="both masters in the Endpoints", timeout_s=20)
                assert await _lease_exists(a, "10.1.0.1") and await _lease_exists(a, "10.1.0.2")

                # a master that died long ago: an expired lease, its address left behind
                await a.registry.create(LEASES, LEASE_NAMESPACE,
                                        master_lease("10.1.0.9", duration_s=1, now=time.time() - 60))

                async def plant(cur: Any) -> Any:
                    return with_addresses(cur.msg, ["10.1.0.1", "10.1.0.2", "10.1.0.9"], a.rest_port)

                await a.registry.guaranteed_update(ENDPOINTS, "default", "kubernetes", plant)
                # and one gone for good (expired long ago): its lease is deleted
                await a.registry.create(LEASES, LEASE_NAMESPACE,
                                        master_lease("10.1.0.8", duration_s=1, now=time.time() - 3600))
                # and a live one that this test renews by hand
                await a.registry.create(LEASES, LEASE_NAMESPACE,
                                        master_lease("10.1.0.3", duration_s=30, now=time.time()))

                async def dead_out_live_in() -> bool:
                    return await _addresses(a) == ["10.1.0.1", "10.1.0.2", "10.1.0.3"]

                await eventually(dead_out_live_in, what="the dead master out, the live one in", timeout_s=20)

                async def forgotten() -> bool:
                    return not await _lease_exists(a, "10.1.0.8") and await _lease_exists(a, "10.1.0.9")

                await eventually(forgotten, what="the long-expired lease deleted, the recent one kept", timeout_s=20)
            # b stopped cleanly: gone at once, not after its lease
            t0 = time.monotonic()
            assert "10.1.0.2" not in await _addresses(a) and not await _lease_exists(a, "10.1.0.2")
            assert time.monotonic() - t0 < 5
            await a.registry.delete(LEASES, LEASE_NAMESPACE, lease_name("10.1.0.3"), DeleteOptions())

            async def alone() -> bool:
                return await _addresses(a) == ["10.1.0.1"]

            await eventually(alone, what="only master a left", timeout_s=20)
    finally:
        await etcd.close()
