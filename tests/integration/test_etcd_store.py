"""EtcdStore on a real three-member etcd: the shared contract, then failures.

The failure tests kill members with SIGKILL and always restart them (in a
finally) so the session's cluster is whole for the next test.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from deploy.etcd_cluster import EtcdCluster
from master.storage import EtcdStore, StoreEvent, errors
from master.storage import etcd as etcd_module
from tests.storage_contract import ALL_CASES, Case

CLIENTS = 5
CREATES = 500
KILL_AFTER = 150


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.__name__)
async def test_contract(case: Case, etcd_store: EtcdStore, key_prefix: str) -> None:
    await case(etcd_store, key_prefix)


async def test_target_names_every_member(etcd_cluster: EtcdCluster) -> None:
    target = await etcd_module.grpc_target(etcd_cluster.endpoints)
    assert target == "ipv4:" + ",".join(etcd_cluster.endpoints)
    named = [e.replace("127.0.0.1", "localhost") for e in etcd_cluster.endpoints]
    assert await etcd_module.grpc_target(named) == target


async def test_close_ends_watches_with_unavailable(
    etcd_cluster: EtcdCluster, key_prefix: str
) -> None:
    store = await EtcdStore.open(etcd_cluster.endpoints)
    r1 = await store.create(key_prefix + "a", b"1")
    events = store.watch(key_prefix, start_revision=r1)
    assert (await anext(events)).revision == r1
    pending = asyncio.ensure_future(anext(events))
    await store.close()
    with pytest.raises(errors.Unavailable):
        await asyncio.wait_for(pending, 5)
    with pytest.raises(errors.Unavailable):
        await store.get(key_prefix + "a")


async def test_list_reads_pages_at_one_revision(
    etcd_store: EtcdStore, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(etcd_module, "_PAGE_SIZE", 3)
    keys = [f"{key_prefix}{i:02d}" for i in range(10)]
    for key in keys:
        last = await etcd_store.create(key, key.encode())
    kvs, revision = await etcd_store.list(key_prefix)
    assert [kv.key for kv in kvs] == keys and revision >= last
    revisions, _ = await etcd_store.list_revisions(key_prefix)
    assert list(revisions) == keys


async def test_timed_out_writes_apply_once(etcd_cluster: EtcdCluster, key_prefix: str) -> None:
    """Attempts whose deadline is shorter than a write: many time out after landing.

    Every write must still be answered once, and consume exactly one revision.
    """
    n = 60
    async with EtcdStore(etcd_cluster.endpoints, attempt_timeout_s=0.002) as store:
        before = await store.current_revision()
        keys = [f"{key_prefix}{i}" for i in range(n)]
        revisions = [await store.create(k, b"v1") for k in keys]
        for k, r in zip(keys, revisions, strict=True):
            await store.update(k, b"v2", expected_revision=r)
            await store.update(k, b"v3", expected_revision=None)
        for k in keys:
            await store.delete(k, expected_revision=None)
        after = await store.current_revision()
        print(f"timed-out attempts found landed: {store.recovered_writes} of {4 * n} writes")
        assert after - before == 4 * n
        assert (await store.list(key_prefix))[0] == []


async def test_store_opens_with_a_member_down(etcd_cluster: EtcdCluster, key_prefix: str) -> None:
    etcd_cluster.kill_member(0)
    try:
        async with EtcdStore(etcd_cluster.endpoints) as store:
            rev = await store.create(key_prefix + "a", b"1")
            kv = await store.get(key_prefix + "a")
            assert kv is not None and kv.mod_revision == rev
    finally:
        await etcd_cluster.restart_member(0)


async def test_leader_kill_during_creates(etcd_cluster: EtcdCluster, key_prefix: str) -> None:
    """5 clients, 500 creates, the leader SIGKILLed after 150: no answered create is lost."""
    loop = asyncio.get_running_loop()
    answered: dict[str, tuple[bytes, int]] = {}
    success_times: list[float] = []
    unavailable: list[errors.Unavailable] = []

    async def client(i: int) -> None:
        async with EtcdStore(etcd_cluster.endpoints) as store:
            for j in range(CREATES // CLIENTS):
                key, value = f"{key_prefix}{i}-{j:03d}", uuid.uuid4().bytes
                try:
                    revision = await store.create(key, value)
                except errors.Unavailable as exc:
                    unavailable.append(exc)
                    continue
                answered[key] = (value, revision)
                success_times.append(loop.time())

    async def kill_leader() -> int:
        while len(answered) < KILL_AFTER:
            await asyncio.sleep(0.002)
        leader = await etcd_cluster.leader_index()
        etcd_cluster.kill_member(leader)
        return leader

    killer = asyncio.create_task(kill_leader())
    try:
        await asyncio.gather(*(client(i) for i in range(CLIENTS)))
        killed = await killer
    finally:
        if not killer.done():
            killer.cancel()
        elif killer.exception() is None:
            await etcd_cluster.restart_member(killer.result())

    gaps = [b - a for a, b in zip(success_times, success_times[1:], strict=False)]
    print(
        f"leader {killed} killed; answered {len(answered)}/{CREATES}, "
        f"unavailable {len(unavailable)}; longest gap between successful writes {max(gaps):.3f} s"
    )
    assert len(answered) + len(unavailable) == CREATES
    assert max(gaps) < 5.0  # the bound for writes to resume
    async with EtcdStore(etcd_cluster.endpoints) as reader:
        kvs, _ = await reader.list(key_prefix)
    stored = {kv.key: (kv.value, kv.mod_revision) for kv in kvs}
    assert {k: stored.get(k) for k in answered} == answered


async def test_watch_delivers_every_event_across_member_kills(
    etcd_cluster: EtcdCluster, etcd_store: EtcdStore, key_prefix: str
) -> None:
    """Each member is killed once, so the watch's stream breaks at least once."""
    start = await etcd_store.current_revision() + 1
    written: list[int] = []
    received: list[StoreEvent] = []
    events = etcd_store.watch(key_prefix, start_revision=start)

    async def consume() -> None:
        async for event in events:
            received.append(event)

    consumer = asyncio.create_task(consume())
    try:
        for member in range(len(etcd_cluster.members)):
            etcd_cluster.kill_member(member)
            try:
                for j in range(10):
                    written.append(await etcd_store.create(f"{key_prefix}{member}-{j}", b"x"))
            finally:
                await etcd_cluster.restart_member(member)
        await _wait_for(lambda: len(received) >= len(written))
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await events.aclose()  # type: ignore[attr-defined]
    assert [e.revision for e in received] == written


async def _wait_for(predicate: object, *, timeout_s: float = 10) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
