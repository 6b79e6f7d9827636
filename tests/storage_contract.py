"""The Store contract as a table, run against MemoryStore (unit) and EtcdStore (integration).

Each case is `async def case(store, prefix)`; it writes only under `prefix`
(so cases can share one etcd) and asserts the behaviour interface.py
documents. `ERROR_CASES` are scenarios whose last step must raise; `CASES`
holds the rest. Both test modules parametrize over `ALL_CASES`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from master.storage import errors
from master.storage.interface import EventType, KeyValue, Store, StoreEvent

Case = Callable[[Store, str], Awaitable[None]]
WAIT_S = 5.0


async def take(events: AsyncIterator[StoreEvent], n: int) -> list[StoreEvent]:
    """The next n events of a watch (fails the test if they do not come)."""
    return [await asyncio.wait_for(anext(events), WAIT_S) for _ in range(n)]


async def watch_first(s: Store, prefix: str, *, start_revision: int, n: int) -> list[StoreEvent]:
    """The first n events of a new watch, which is then closed."""
    events = s.watch(prefix, start_revision=start_revision)
    try:
        return await take(events, n)
    finally:
        await events.aclose()  # type: ignore[attr-defined]


# --- scenarios whose last step raises --------------------------------------------------


async def create_existing(s: Store, p: str) -> None:
    await s.create(p + "a", b"1")
    await s.create(p + "a", b"2")


async def update_stale(s: Store, p: str) -> None:
    r1 = await s.create(p + "a", b"1")
    await s.update(p + "a", b"2", expected_revision=r1)
    await s.update(p + "a", b"3", expected_revision=r1)


async def update_missing(s: Store, p: str) -> None:
    await s.update(p + "a", b"1", expected_revision=None)


async def update_missing_at_revision(s: Store, p: str) -> None:
    await s.update(p + "a", b"1", expected_revision=0)


async def update_deleted(s: Store, p: str) -> None:
    r1 = await s.create(p + "a", b"1")
    await s.delete(p + "a", expected_revision=r1)
    await s.update(p + "a", b"2", expected_revision=r1)


async def delete_missing(s: Store, p: str) -> None:
    await s.delete(p + "a", expected_revision=None)


async def delete_stale(s: Store, p: str) -> None:
    r1 = await s.create(p + "a", b"1")
    await s.update(p + "a", b"2", expected_revision=None)
    await s.delete(p + "a", expected_revision=r1)


async def watch_compacted(s: Store, p: str) -> None:
    r1 = await s.create(p + "a", b"1")
    await s.update(p + "a", b"2", expected_revision=None)
    r3 = await s.update(p + "a", b"3", expected_revision=None)
    await s.compact(r3)
    await watch_first(s, p, start_revision=r1, n=1)


@dataclass(frozen=True)
class ErrorCase:
    scenario: Case
    error: type[errors.StoreError]
    # what the exception must carry: current value for conflicts, etc.
    check: Callable[[errors.StoreError, str], bool] = lambda exc, prefix: True


def _current_value(value: bytes) -> Callable[[errors.StoreError, str], bool]:
    def check(exc: errors.StoreError, prefix: str) -> bool:
        assert isinstance(exc, errors.RevisionConflict)
        return exc.key == prefix + "a" and exc.current is not None and exc.current.value == value

    return check


def _key_is_a(exc: errors.StoreError, prefix: str) -> bool:
    return getattr(exc, "key", None) == prefix + "a"


def _compaction_known(exc: errors.StoreError, prefix: str) -> bool:
    assert isinstance(exc, errors.Compacted)
    return exc.compact_revision > exc.requested > 0


ERROR_CASES = [
    ErrorCase(create_existing, errors.KeyExists, _key_is_a),
    ErrorCase(update_stale, errors.RevisionConflict, _current_value(b"2")),
    ErrorCase(update_missing, errors.KeyNotFound, _key_is_a),
    ErrorCase(update_missing_at_revision, errors.KeyNotFound, _key_is_a),
    ErrorCase(update_deleted, errors.KeyNotFound, _key_is_a),
    ErrorCase(delete_missing, errors.KeyNotFound, _key_is_a),
    ErrorCase(delete_stale, errors.RevisionConflict, _current_value(b"2")),
    ErrorCase(watch_compacted, errors.Compacted, _compaction_known),
]


def _error_case(case: ErrorCase) -> Case:
    async def run(s: Store, p: str) -> None:
        try:
            await case.scenario(s, p)
        except case.error as exc:
            assert case.check(exc, p), f"{case.scenario.__name__}: {exc!r} lacks details"
        else:
            raise AssertionError(f"{case.scenario.__name__} did not raise {case.error.__name__}")

    run.__name__ = case.scenario.__name__
    return run


# --- scenarios that succeed -----------------------------------------------------------------


def _state(kv: KeyValue | None) -> tuple[bytes, int, int, int] | None:
    """(value, create_revision, mod_revision, version), or None when absent."""
    return None if kv is None else (kv.value, kv.create_revision, kv.mod_revision, kv.version)


async def create_get_update_delete(s: Store, p: str) -> None:
    r1 = await s.create(p + "a", b"1")
    assert _state(await s.get(p + "a")) == (b"1", r1, r1, 1)
    r2 = await s.update(p + "a", b"2", expected_revision=r1)
    r3 = await s.update(p + "a", b"3", expected_revision=None)
    assert r1 < r2 < r3
    assert _state(await s.get(p + "a")) == (b"3", r1, r3, 3)
    deleted, r4 = await s.delete(p + "a", expected_revision=r3)
    assert (deleted.value, deleted.mod_revision, r4 > r3) == (b"3", r3, True)
    assert await s.get(p + "a") is None


async def recreate_after_delete(s: Store, p: str) -> None:
    r1 = await s.create(p + "a", b"1")
    await s.delete(p + "a", expected_revision=None)
    r3 = await s.create(p + "a", b"again")
    kv = await s.get(p + "a")
    assert kv is not None and kv.create_revision == r3 > r1 and kv.version == 1


async def list_sorted_with_revision(s: Store, p: str) -> None:
    for name in ["b", "a/x", "c", "a"]:
        last = await s.create(p + name, name.encode())
    await s.create(p.rstrip("/") + "-sibling", b"not under prefix")
    kvs, revision = await s.list(p)
    assert [kv.key for kv in kvs] == [p + "a", p + "a/x", p + "b", p + "c"]
    assert [kv.value for kv in kvs] == [b"a", b"a/x", b"b", b"c"]
    assert revision > last and revision <= await s.current_revision()
    empty, _ = await s.list(p + "nothing/")
    assert empty == []


async def current_revision_follows_writes(s: Store, p: str) -> None:
    before = await s.current_revision()
    r1 = await s.create(p + "a", b"1")
    assert before < r1 <= await s.current_revision()


async def watch_replays_from_revision(s: Store, p: str) -> None:
    r1 = await s.create(p + "a", b"1")
    r2 = await s.update(p + "a", b"2", expected_revision=r1)
    await s.create(p.rstrip("/") + "-sibling", b"not under prefix")
    _, r3 = await s.delete(p + "a", expected_revision=None)
    r4 = await s.create(p + "b", b"b")
    events = await watch_first(s, p, start_revision=r2, n=3)
    assert events == [
        StoreEvent(EventType.PUT, p + "a", b"2", r2, prev_value=b"1", create_revision=r1),
        StoreEvent(EventType.DELETE, p + "a", b"2", r3, prev_value=b"2", create_revision=r1),
        StoreEvent(EventType.PUT, p + "b", b"b", r4, prev_value=None, create_revision=r4),
    ]


async def watch_follows_live_writes(s: Store, p: str) -> None:
    start = await s.current_revision() + 1
    events = s.watch(p, start_revision=start)
    first = asyncio.ensure_future(anext(events))
    r1 = await s.create(p + "a", b"1")
    r2 = await s.update(p + "a", b"2", expected_revision=r1)
    try:
        got = [await asyncio.wait_for(first, WAIT_S)] + await take(events, 1)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    assert [(e.type, e.value, e.revision) for e in got] == [
        (EventType.PUT, b"1", r1),
        (EventType.PUT, b"2", r2),
    ]


async def watch_from_compaction_point(s: Store, p: str) -> None:
    await s.create(p + "a", b"1")
    r2 = await s.update(p + "a", b"2", expected_revision=None)
    await s.compact(r2)
    await s.compact(r2 - 1)  # already compacted: a no-op
    events = await watch_first(s, p, start_revision=r2, n=1)
    assert (events[0].value, events[0].revision) == (b"2", r2)


CASES: list[Case] = [
    create_get_update_delete,
    recreate_after_delete,
    list_sorted_with_revision,
    current_revision_follows_writes,
    watch_replays_from_revision,
    watch_follows_live_writes,
    watch_from_compaction_point,
]

ALL_CASES: list[Case] = CASES + [_error_case(c) for c in ERROR_CASES]
