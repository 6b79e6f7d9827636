"""What every Flotilla binary's main does around its components.

`until_signalled(coro)` runs a process's top-level coroutine so that SIGTERM
and SIGINT cancel it: a clean stop, logged once, not an error. `forever(name,
coro)` wraps a long-lived component: one that returns is a bug, and raising
takes the TaskGroup, and with it the process, down (DESIGN 5) rather than
leaving it half alive.

Used by master.main, node_agent.main and netproxy.main; it imports nothing of
theirs.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable

log = logging.getLogger("flotilla.process")


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
