"""MemoryStore against the shared Store contract, plus what only the fake has to show."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from master.storage import EventType, MemoryStore, errors
from tests.storage_contract import ALL_CASES, Case, watch_first

PREFIX = "/registry/things/default/"


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.__name__)
async def test_contract(case: Case) -> None:
    await case(MemoryStore(), PREFIX)


async def test_fresh_store_starts_at_revision_1_like_etcd() -> None:
    store = MemoryStore()
    assert await store.current_revision() == 1
    assert await store.create(PREFIX + "a", b"1") == 2


async def test_compacted_history_is_dropped_but_state_is_kept() -> None:
    store = MemoryStore()
    r1 = await store.create(PREFIX + "a", b"1")
    r2 = await store.update(PREFIX + "a", b"2", expected_revision=r1)
    await store.compact(r2)
    kvs, _ = await store.list(PREFIX)
    assert [kv.value for kv in kvs] == [b"2"]
    with pytest.raises(errors.Compacted) as info:
        await watch_first(store, PREFIX, start_revision=r1, n=1)
    assert (info.value.requested, info.value.compact_revision) == (r1, r2)


async def test_compacting_a_future_revision_is_an_error() -> None:
    store = MemoryStore()
    with pytest.raises(errors.StoreError):
        await store.compact(10)


async def test_close_ends_watches_and_refuses_calls() -> None:
    store = MemoryStore()
    r1 = await store.create(PREFIX + "a", b"1")
    events = store.watch(PREFIX, start_revision=r1)
    assert (await anext(events)).revision == r1  # the watch is now following
    await store.close()
    with pytest.raises(errors.Unavailable):
        await anext(events)
    with pytest.raises(errors.Unavailable):
        await store.get(PREFIX + "a")


async def test_list_revisions_maps_keys_to_mod_revisions() -> None:
    store = MemoryStore()
    ra = await store.create(PREFIX + "a", b"1")
    rb = await store.create(PREFIX + "b", b"1")
    assert await store.list_revisions(PREFIX) == ({PREFIX + "a": ra, PREFIX + "b": rb}, rb)


# --- a safety property: history is a faithful log of the state ----------------------------

KEYS = ["a", "b", "c"]
op_strategy = st.tuples(
    st.sampled_from(["create", "update", "update_at", "delete", "delete_at"]),
    st.sampled_from(KEYS),
    st.binary(max_size=3),
    st.integers(min_value=0, max_value=40),
)


@settings(max_examples=100, deadline=None)
@given(ops=st.lists(op_strategy, max_size=40))
async def test_replaying_the_watch_rebuilds_the_state(
    ops: list[tuple[str, str, bytes, int]],
) -> None:
    """Whatever sequence of writes (failing or not) runs, replaying the watch
    from revision 1 onto nothing gives exactly what list() returns, and each
    successful write consumed exactly one revision."""
    store = MemoryStore()
    successes = 0
    for verb, name, value, revision in ops:
        try:
            await _apply(store, verb, PREFIX + name, value, revision)
            successes += 1
        except (errors.KeyExists, errors.KeyNotFound, errors.RevisionConflict):
            pass
    current = await store.current_revision()
    assert current == 1 + successes
    rebuilt: dict[str, bytes] = {}
    if successes:
        for event in await watch_first(store, PREFIX, start_revision=1, n=successes):
            if event.type is EventType.PUT:
                rebuilt[event.key] = event.value
            else:
                assert rebuilt.pop(event.key) == event.value  # DELETE carries the last value
    kvs, revision = await store.list(PREFIX)
    assert revision == current
    assert rebuilt == {kv.key: kv.value for kv in kvs}


async def _apply(store: MemoryStore, verb: str, key: str, value: bytes, revision: int) -> None:
    if verb == "create":
        await store.create(key, value)
    elif verb == "update":
        await store.update(key, value, expected_revision=None)
    elif verb == "update_at":
        await store.update(key, value, expected_revision=revision)
    elif verb == "delete":
        await store.delete(key, expected_revision=None)
    else:
        await store.delete(key, expected_revision=revision)
