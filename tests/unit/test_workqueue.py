"""master.client.workqueue: client-go queue semantics, timed by a FakeClock."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from master.client.clock import FakeClock
from master.client.workqueue import (
    ItemExponentialRateLimiter,
    RateLimitingQueue,
    ShutDown,
    WorkQueue,
)

R = TypeVar("R")


def run_now(coro: Coroutine[Any, Any, R]) -> R:
    """Run a coroutine that must finish without suspending (a get on a non-empty queue)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("coroutine suspended")


async def settle() -> None:
    # Let woken tasks run; these are loop turns, not waits on time.
    for _ in range(5):
        await asyncio.sleep(0)


async def test_fifo_and_coalescing_of_queued_keys() -> None:
    q: WorkQueue[str] = WorkQueue()
    for key in ["a", "b", "a", "c", "b"]:
        q.add(key)
    assert len(q) == 3
    assert [await q.get() for _ in range(3)] == ["a", "b", "c"]


async def test_a_processing_key_is_never_handed_out_twice() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    assert await q.get() == "a"
    q.add("a")  # changed while a worker syncs it
    assert len(q) == 0
    assert q.is_processing("a")
    second = asyncio.create_task(q.get())
    await settle()
    assert not second.done()
    q.done("a")  # dirty: re-queued now
    assert await second == "a"


async def test_done_without_readd_does_not_requeue() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    key = await q.get()
    q.done(key)
    assert len(q) == 0
    assert not q.is_processing("a")


async def test_readds_while_processing_coalesce_into_one() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    await q.get()
    for _ in range(3):
        q.add("a")
    q.done("a")
    assert len(q) == 1


async def test_blocked_getter_wakes_on_add() -> None:
    q: WorkQueue[str] = WorkQueue()
    getter = asyncio.create_task(q.get())
    await settle()
    assert not getter.done()
    q.add("x")
    assert await getter == "x"


async def test_shutdown_wakes_getters_and_drains_first() -> None:
    q: WorkQueue[str] = WorkQueue()
    getters = [asyncio.create_task(q.get()) for _ in range(2)]
    await settle()
    q.shutdown()
    for getter in getters:
        with pytest.raises(ShutDown):
            await getter

    q2: WorkQueue[str] = WorkQueue()
    q2.add("left")
    q2.shutdown()
    q2.add("ignored")
    assert q2.shutting_down
    assert await q2.get() == "left"
    with pytest.raises(ShutDown):
        await q2.get()


async def test_a_cancelled_woken_getter_passes_the_key_on() -> None:
    q: WorkQueue[str] = WorkQueue()
    first = asyncio.create_task(q.get())
    await settle()
    second = asyncio.create_task(q.get())
    await settle()
    q.add("k")  # wakes `first` ...
    first.cancel()  # ... which is cancelled before it runs
    assert await second == "k"
    with pytest.raises(asyncio.CancelledError):
        await first


@pytest.mark.parametrize(
    ("base_s", "max_s", "expected"),
    [
        (0.005, 1000.0, [0.005, 0.01, 0.02, 0.04, 0.08, 0.16]),
        (1.0, 5.0, [1.0, 2.0, 4.0, 5.0, 5.0]),
        (2.0, 2.0, [2.0, 2.0]),
    ],
)
def test_exponential_backoff_sequence(base_s: float, max_s: float, expected: list[float]) -> None:
    limiter: ItemExponentialRateLimiter[str] = ItemExponentialRateLimiter(
        base_delay_s=base_s, max_delay_s=max_s
    )
    assert [limiter.when("k") for _ in expected] == pytest.approx(expected)
    assert limiter.num_requeues("k") == len(expected)
    assert limiter.when("other") == base_s  # per key
    limiter.forget("k")
    assert limiter.num_requeues("k") == 0
    assert limiter.when("k") == base_s


def test_backoff_caps_without_overflow_after_many_failures() -> None:
    limiter: ItemExponentialRateLimiter[str] = ItemExponentialRateLimiter()
    delays = [limiter.when("k") for _ in range(3000)]
    assert delays[-1] == 1000.0
    assert delays == sorted(delays)


def test_limiter_rejects_nonsense_bounds() -> None:
    with pytest.raises(ValueError):
        ItemExponentialRateLimiter(base_delay_s=0)
    with pytest.raises(ValueError):
        ItemExponentialRateLimiter(base_delay_s=2, max_delay_s=1)


async def test_add_rate_limited_waits_out_the_backoff_on_the_clock() -> None:
    clock = FakeClock()
    q: RateLimitingQueue[str] = RateLimitingQueue(clock=clock)
    q.add_rate_limited("k")  # 5 ms
    q.add_rate_limited("k")  # now 10 ms; the earlier 5 ms wins
    assert q.num_requeues("k") == 2
    assert len(q) == 0
    clock.advance(0.004)
    assert len(q) == 0
    clock.advance(0.001)
    assert len(q) == 1
    assert await q.get() == "k"
    q.forget("k")
    q.done("k")
    assert q.num_requeues("k") == 0


async def test_add_after_keeps_the_earliest_time_and_immediate_when_not_positive() -> None:
    clock = FakeClock()
    q: RateLimitingQueue[str] = RateLimitingQueue(clock=clock)
    q.add_after("a", 10)
    q.add_after("a", 3)  # earlier: wins
    q.add_after("a", 20)  # later: ignored
    q.add_after("now", 0)
    assert len(q) == 1
    clock.advance(3)
    assert len(q) == 2
    assert [await q.get(), await q.get()] == ["now", "a"]
    clock.advance(20)
    assert len(q) == 0  # the superseded entries never fire


async def test_blocked_getter_wakes_when_a_delayed_key_comes_due() -> None:
    clock = FakeClock()
    q: RateLimitingQueue[str] = RateLimitingQueue(clock=clock)
    q.add_after("late", 10)
    getter = asyncio.create_task(q.get())
    await clock.wait_sleepers(1)
    q.add_after("soon", 1)  # earlier than what the getter sleeps for
    await clock.advance_to_next()
    assert await getter == "soon"
    clock.advance(9)
    assert await q.get() == "late"


async def test_a_delayed_key_being_processed_is_not_handed_out_twice() -> None:
    clock = FakeClock()
    q: RateLimitingQueue[str] = RateLimitingQueue(clock=clock)
    q.add("k")
    assert await q.get() == "k"
    q.add_after("k", 1)
    clock.advance(1)
    assert len(q) == 0  # promoted, but dirty while processing
    q.done("k")
    assert await q.get() == "k"


async def test_shutdown_drops_waiting_keys_and_wakes_timed_getters() -> None:
    clock = FakeClock()
    q: RateLimitingQueue[str] = RateLimitingQueue(clock=clock)
    q.add_after("k", 5)
    getter = asyncio.create_task(q.get())
    await clock.wait_sleepers(1)
    q.shutdown()
    with pytest.raises(ShutDown):
        await getter
    await settle()
    assert clock.sleepers == 0  # the getter's timer was cancelled
    q.add_after("x", 1)
    clock.advance(5)
    assert len(q) == 0


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from("abcd")),
        st.tuples(st.just("get"), st.just("")),
        st.tuples(st.just("done"), st.sampled_from("abcd")),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(_ops)
def test_queue_never_hands_out_a_key_twice_and_loses_no_add(ops: list[tuple[str, str]]) -> None:
    q: WorkQueue[str] = WorkQueue()
    processing: set[str] = set()
    owed: set[str] = set()  # added since last handed out: must be handed out again
    for op, key in ops:
        if op == "add":
            q.add(key)
            owed.add(key)
        elif op == "get" and len(q):
            got = run_now(q.get())
            assert got not in processing
            processing.add(got)
            owed.discard(got)
        elif op == "done" and key in processing:
            processing.discard(key)
            q.done(key)
    for key in sorted(processing):
        q.done(key)
    drained: list[str] = []
    while len(q):
        drained.append(run_now(q.get()))
    assert len(drained) == len(set(drained))
    assert set(drained) == owed
