"""The controller framework: what every controller in master/controllers shares.

A controller is a class with a `name`, built from a `ControllerContext`. Its
constructor asks the shared `InformerFactory` for the informers it reads and
adds handlers that only enqueue keys ("namespace/name") on `self.queue`; its
`sync(key)` re-reads the object from the informer (None means deleted), asks
its pure reconciler in master/reconcile for a plan and applies the plan with
the client. `sync` must be safe to run any number of times.

`run_workers` is the one worker loop (client-go's processNextWorkItem):
a key is synced by one worker at a time (the queue guarantees it); an
APIError (Conflict included) is an ordinary retry with per-key backoff; any
other exception is a bug, logged with its traceback and retried with backoff
too, so that one bad object cannot take the apiserver in the same process
down with it. Success forgets the key's backoff.

Controllers never mutate objects from an informer: copy, then change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from master.client.client import Client
from master.client.clock import Clock, RealClock
from master.client.errors import APIError
from master.client.events import EventRecorder
from master.client.informer import InformerFactory
from master.client.store import object_key
from master.client.workqueue import RateLimitingQueue, ShutDown

log = logging.getLogger("flotilla.controllers")


@dataclass
class ControllerContext:
    """What a controller is given: one client, shared informers, a clock, Events."""

    client: Client
    informers: InformerFactory
    recorder: EventRecorder
    clock: Clock = field(default_factory=RealClock)
    # Per-controller knobs (e.g. {"nodelifecycle": {"grace_period_s": 40}}),
    # from flags or tests; each controller documents the keys it reads.
    options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def option(self, controller: str, key: str, default: Any) -> Any:
        return self.options.get(controller, {}).get(key, default)


class Controller:
    """Base class: a queue of keys, handlers that enqueue, and `sync(key)`."""

    name: ClassVar[str] = ""
    workers: ClassVar[int] = 2

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.clock = ctx.clock
        self.recorder = ctx.recorder
        self.queue: RateLimitingQueue[str] = RateLimitingQueue(clock=ctx.clock, name=self.name)

    def enqueue(self, obj: Any) -> None:
        self.queue.add(object_key(obj))

    def enqueue_handlers(self) -> dict[str, Callable[..., None]]:
        """Handlers that enqueue the object's own key on add, update and delete."""
        return {
            "on_add": self.enqueue,
            "on_update": lambda _old, new: self.enqueue(new),
            "on_delete": self.enqueue,
        }

    async def sync(self, key: str) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        """Workers until cancelled (informers are run by the manager)."""
        try:
            await run_workers(self.name, self.queue, self.sync, workers=self.workers)
        finally:
            self.queue.shutdown()


async def run_workers(
    name: str,
    queue: RateLimitingQueue[str],
    sync: Callable[[str], Any],
    *,
    workers: int = 2,
) -> None:
    """Run `workers` loops that take keys from `queue` and sync them."""
    async with asyncio.TaskGroup() as tg:
        for i in range(workers):
            tg.create_task(_worker(name, queue, sync), name=f"{name}-worker-{i}")


async def _worker(name: str, queue: RateLimitingQueue[str], sync: Callable[[str], Any]) -> None:
    while True:
        try:
            key = await queue.get()
        except ShutDown:
            return
        try:
            await sync(key)
            queue.forget(key)
        except APIError as exc:
            log.info("sync failed, retrying", extra={"controller": name, "key": key,
                                                    "error": str(exc),
                                                    "requeues": queue.num_requeues(key)})
            queue.add_rate_limited(key)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sync crashed, retrying", extra={"controller": name, "key": key})
            queue.add_rate_limited(key)
        finally:
            queue.done(key)
