"""What every Flotilla binary's main does around its components.

`until_signalled(coro)` runs a process's top-level coroutine so that SIGTERM
and SIGINT cancel it: a clean stop, logged once, not an error. `forever(name,
coro)` wraps a long-lived component: one that returns is a bug, and raising
takes the TaskGroup, and with it the process, down (DESIGN 5) rather than
leaving it half alive. `tune_gc()` sets the garbage collector's thresholds
for a process that holds a large, long-lived heap (the master's caches).

Used by master.main, node_agent.main and netproxy.main; it imports nothing of
theirs.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable

log = logging.getLogger("flotilla.process")

# (generation 0, 1, 2) thresholds for tune_gc; CPython's defaults are (700, 10, 10).
GC_THRESHOLDS = (50_000, 20, 10)


def tune_gc() -> None:
    """Run the cyclic garbage collector about 70 times less often.

    With CPython's default thresholds a young collection runs every 700 net
    allocations and a full one every 100 young ones (when the heap has grown
    by a quarter since the last), and a full collection walks every object
    the process holds: in the master that is every watch cache, informer
    and scheduler snapshot. Measured with bench/api.py --only throughput
    (10,000 pod creates and 10,000 status updates): 1,460 young, 133 middle
    and 11 full collections took 1.7 s of the master's 23 s of CPU; with
    these thresholds, 4 collections took 0.1 s. Almost everything the API
    path allocates is freed by reference counting as soon as a request is
    answered; only reference cycles wait for a collection, and young cycles
    are still collected every 50,000 allocations.
    """
    gc.set_threshold(*GC_THRESHOLDS)


async def until_signalled(coro: Awaitable[None], *, stopping: str = "shutting down") -> None:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await coro
    except asyncio.CancelledError:
        if stopping:
            log.info(stopping)


async def forever(name: str, coro: Awaitable[object]) -> None:
    await coro
    raise RuntimeError(f"component {name} returned; a component runs until cancelled")
