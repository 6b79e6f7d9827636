"""SchedulingQueue: ordering, per-pod backoff, and requeue on cluster change (FakeClock)."""

from __future__ import annotations

import asyncio

import pytest

from master.client.clock import FakeClock
from master.scheduler.queue import QueueClosed, SchedulingQueue


def q(clock: FakeClock) -> SchedulingQueue:
    return SchedulingQueue(clock=clock, initial_backoff_s=1.0, max_backoff_s=10.0, max_unschedulable_s=300.0)


async def test_priority_then_fifo() -> None:
    queue = q(FakeClock())
    queue.add("ns/low")
    queue.add("ns/high", priority=10)
    queue.add("ns/low2")
    assert [(await queue.pop())[0] for _ in range(3)] == ["ns/high", "ns/low", "ns/low2"]


@pytest.mark.parametrize(("attempts", "backoff_s"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (50, 10.0)])
def test_backoff_doubles_to_a_cap(attempts: int, backoff_s: float) -> None:
    assert q(FakeClock()).backoff_s(attempts) == backoff_s


async def test_unschedulable_waits_for_a_cluster_change_then_backoff() -> None:
    clock = FakeClock()
    queue = q(clock)
    queue.add("ns/p")
    key, cycle = await queue.pop()
    queue.add_unschedulable(key, cycle)
    assert queue.where("ns/p") == "unschedulable"
    clock.advance(60)
    queue.flush()
    assert queue.where("ns/p") == "unschedulable"  # time alone does not retry it (before 5 min)
    queue.move_all("NodeAdd")
    assert queue.where("ns/p") == "active"  # its 1 s backoff is long over
    key, cycle = await queue.pop()
    queue.add_unschedulable(key, cycle)  # second failure: 2 s backoff
    queue.move_all("NodeUpdate")
    assert queue.where("ns/p") == "backoff"
    popped = asyncio.create_task(queue.pop())
    await clock.wait_sleepers(1)
    assert not popped.done()
    clock.advance(1.9)
    await asyncio.sleep(0)
    assert not popped.done()
    clock.advance(0.2)
    assert (await popped)[0] == "ns/p"


async def test_change_during_the_cycle_is_not_lost() -> None:
    clock = FakeClock()
    queue = q(clock)
    queue.add("ns/p")
    key, cycle = await queue.pop()
    queue.move_all("NodeAdd")  # a node appeared while the pod was being scheduled
    queue.add_unschedulable(key, cycle)
    assert queue.where("ns/p") == "backoff"


async def test_update_in_flight_is_coalesced() -> None:
    clock = FakeClock()
    queue = q(clock)
    queue.add("ns/p")
    key, cycle = await queue.pop()
    queue.add("ns/p")
    assert queue.where("ns/p") == "in-flight" and queue.active == 0
    queue.add_unschedulable(key, cycle)
    assert queue.where("ns/p") == "backoff"


async def test_parked_too_long_is_retried() -> None:
    clock = FakeClock()
    queue = q(clock)
    queue.add("ns/p")
    key, cycle = await queue.pop()
    queue.add_unschedulable(key, cycle)
    popped = asyncio.create_task(queue.pop())
    await clock.wait_sleepers(1)
    clock.advance(300)
    assert (await popped)[0] == "ns/p"


async def test_bind_error_backs_off_and_delete_drops() -> None:
    clock = FakeClock()
    queue = q(clock)
    queue.add("ns/p")
    queue.add("ns/q")
    key, _ = await queue.pop()
    queue.add_backoff(key)
    assert queue.where("ns/p") == "backoff"
    queue.delete("ns/p")
    queue.delete("ns/q")
    assert (queue.active, queue.backoff, queue.unschedulable) == (0, 0, 0)
    queue.close()
    with pytest.raises(QueueClosed):
        await queue.pop()


async def test_add_wakes_a_waiting_pop() -> None:
    queue = q(FakeClock())
    popped = asyncio.create_task(queue.pop())
    await asyncio.sleep(0)
    queue.add("ns/p")
    assert (await asyncio.wait_for(popped, 5))[0] == "ns/p"


async def test_done_forgets_attempts() -> None:
    clock = FakeClock()
    queue = q(clock)
    queue.add("ns/p")
    key, _ = await queue.pop()
    queue.done(key)
    queue.add("ns/p")
    key, cycle = await queue.pop()
    queue.add_unschedulable(key, cycle)
    queue.move_all()
    assert queue.where("ns/p") == "backoff"  # 1 s: the first attempt again
    clock.advance(1)
    queue.flush()
    assert queue.where("ns/p") == "active"
