"""Events: the recorder every component uses to tell people what it did.

`EventRecorder.event(obj, type_, reason, message)` writes a core/v1 Event in
the object's namespace (or `default` for cluster-scoped objects), the way
client-go's recorder does: the first occurrence creates
`<object-name>.<hex>` with count 1; a repeat of the same (object, type,
reason, message) within `aggregate_window_s` updates that Event's count and
lastTimestamp instead of creating another one (`kubectl describe` shows
"x3 over 2m"). It keeps a small LRU of the Events it wrote so repeats need
no read.

Recording never raises and never blocks the caller's decision: an Event is
advice to people, so a failed write is logged and dropped (client-go does the
same). Writes happen on a background task owned by `run()`; `event()` only
enqueues (bounded; the oldest unsent record is dropped when full).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from master.client.clock import Clock, RealClock
from master.client.errors import APIError, NotFound
from master.client.kinds import kind_of
from protos.core.v1 import core_pb2

log = logging.getLogger("flotilla.events")

NORMAL = "Normal"
WARNING = "Warning"


@dataclass(frozen=True, slots=True)
class _Key:
    namespace: str
    kind: str
    name: str
    uid: str
    type: str
    reason: str
    message: str
    component: str = ""  # overrides the recorder's (several controllers share one recorder)


def involved_reference(obj: Any) -> core_pb2.ObjectReference:
    """An ObjectReference to an API object (kind and apiVersion from the kinds table)."""
    info = kind_of(type(obj))
    kind = type(obj).DESCRIPTOR.name
    api_version = f"{info.group}/v1" if info.group else "v1"
    m = obj.metadata
    return core_pb2.ObjectReference(
        kind=kind, namespace=m.namespace, name=m.name, uid=m.uid,
        api_version=api_version, resource_version=m.resource_version,
    )


class EventRecorder:
    """Aggregating Event writer for one component (`source.component`)."""

    def __init__(
        self,
        client: Any,  # master.client.client.Client (duck-typed: create/update/get)
        component: str,
        *,
        host: str = "",
        clock: Clock | None = None,
        aggregate_window_s: float = 600.0,
        max_pending: int = 1000,
        cache_size: int = 4096,
    ) -> None:
        self._client = client
        self.component = component
        self.host = host
        self.clock: Clock = clock or RealClock()
        self.aggregate_window_s = aggregate_window_s
        self._pending: collections.deque[tuple[_Key, core_pb2.ObjectReference, float]] = (
            collections.deque(maxlen=max_pending)
        )
        self._wake = asyncio.Event()
        # key -> (event name, first seen (clock), count)
        self._written: collections.OrderedDict[_Key, tuple[str, float, int]] = (
            collections.OrderedDict()
        )
        self._cache_size = cache_size

    def event(self, obj: Any, type_: str, reason: str, message: str, *, component: str = "") -> None:
        """Record that `reason: message` happened to `obj`. Never raises, never waits.

        `component` names the source when it is not the recorder's own (Kubernetes
        shows e.g. "node-controller" in kubectl describe's From column)."""
        try:
            ref = involved_reference(obj)
        except Exception:  # noqa: BLE001 - an unknown kind must not break the caller
            log.warning("event for an object of unknown kind dropped", extra={"reason": reason})
            return
        namespace = ref.namespace or "default"
        key = _Key(namespace, ref.kind, ref.name, ref.uid, type_, reason, message, component)
        self._pending.append((key, ref, self.clock.now()))
        self._wake.set()

    async def run(self, *, ready: asyncio.Event | None = None) -> None:
        """Write pending Events until cancelled."""
        if ready is not None:
            ready.set()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                key, ref, at = self._pending.popleft()
                with contextlib.suppress(APIError):
                    await self._write(key, ref, at)

    async def flush(self) -> None:
        """Write everything pending now (tests, shutdown)."""
        while self._pending:
            key, ref, at = self._pending.popleft()
            with contextlib.suppress(APIError):
                await self._write(key, ref, at)

    async def _write(self, key: _Key, ref: core_pb2.ObjectReference, at: float) -> None:
        now = Timestamp()
        now.GetCurrentTime()
        seen = self._written.get(key)
        if seen is not None and at - seen[1] <= self.aggregate_window_s:
            name, first, count = seen
            try:
                current = await self._client.get(core_pb2.Event, name, namespace=key.namespace)
                updated = core_pb2.Event()
                updated.CopyFrom(current)
                updated.count = max(current.count, count) + 1
                updated.last_timestamp.CopyFrom(now)
                await self._client.update(updated)
                self._remember(key, (name, first, updated.count))
                return
            except NotFound:
                pass  # deleted (TTL or by hand): start a new one
            except APIError as exc:
                log.info("event update failed", extra={"event": name, "error": str(exc)})
                return
        event = core_pb2.Event(
            involved_object=ref, reason=key.reason, message=key.message, type=key.type,
            count=1, reporting_component=key.component or self.component, reporting_instance=self.host,
        )
        event.metadata.name = f"{key.name}.{secrets.token_hex(8)}"
        event.metadata.namespace = key.namespace
        event.source.component = key.component or self.component
        if self.host:
            event.source.host = self.host
        event.first_timestamp.CopyFrom(now)
        event.last_timestamp.CopyFrom(now)
        try:
            created = await self._client.create(event)
        except APIError as exc:
            log.info("event create failed", extra={"reason": key.reason, "error": str(exc)})
            return
        self._remember(key, (created.metadata.name, at, 1))

    def _remember(self, key: _Key, value: tuple[str, float, int]) -> None:
        self._written[key] = value
        self._written.move_to_end(key)
        while len(self._written) > self._cache_size:
            self._written.popitem(last=False)
