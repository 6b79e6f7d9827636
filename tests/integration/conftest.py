"""Integration fixtures: one real three-member etcd cluster per test session.

- `etcd_cluster` (session): an `EtcdCluster` on free loopback ports in a
  temporary directory; stopped and removed at the end, even after failures.
  Tests that kill members must restart them before they return.
- `etcd_store`: an `EtcdStore` on every member, closed after the test.
- `key_prefix`: a fresh "/flotilla-test/<id>/" so tests sharing the cluster
  never see each other's keys.

If /usr/bin/etcd is missing the session fails loudly: these tests are the
proof that storage works, so they must not turn into silent skips.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from deploy.etcd_cluster import ETCD_BIN, EtcdCluster, free_port_block
from master.storage import EtcdStore


@pytest.fixture(scope="session")
def etcd_cluster() -> Iterator[EtcdCluster]:
    if not ETCD_BIN.exists():
        pytest.fail(f"{ETCD_BIN} is missing: install Debian's etcd-server", pytrace=False)
    data_dir = Path(tempfile.mkdtemp(prefix="flotilla-etcd-"))
    cluster = EtcdCluster(data_dir, base_port=free_port_block())
    # The cluster holds no event-loop state (processes and per-call HTTP
    # sessions), so a private loop here serves tests running in their own.
    try:
        asyncio.run(cluster.start())
        yield cluster
    finally:
        asyncio.run(cluster.stop())
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest_asyncio.fixture
async def etcd_store(etcd_cluster: EtcdCluster) -> AsyncIterator[EtcdStore]:
    store = await EtcdStore.open(etcd_cluster.endpoints)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def key_prefix() -> str:
    return f"/flotilla-test/{uuid.uuid4().hex[:12]}/"
