"""MemoryStore: the `Store` protocol in memory, with etcd's semantics, for tests.

Owns a dict of keys, one global revision counter (starting at 1 like a fresh
etcd), and the list of every event since the last compaction, so that a
watch from an old revision replays exactly what etcd would and a compacted
revision raises `Compacted`. Live watchers are fed through asyncio queues.
Every operation runs without awaiting between its check and its write, so
each is atomic with respect to the others, as an etcd transaction is.

It does no I/O and knows nothing about API objects. The etcd adapter is
`etcd.EtcdStore`; tests/storage_contract.py holds both to the same table.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from master.storage import errors
from master.storage.interface import EventType, KeyValue, StoreEvent


class MemoryStore:
    def __init__(self) -> None:
        self._data: dict[str, KeyValue] = {}
        self._revision = 1
        self._compact_revision = 0
        self._history: list[StoreEvent] = []
        # queue -> prefix; None in a queue tells its watcher the store closed.
        self._watchers: dict[asyncio.Queue[StoreEvent | None], str] = {}
        self._closed = False

    # --- reads -----------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        self._check_open()
        return self._data.get(key)

    async def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        self._check_open()
        kvs = [kv for key, kv in sorted(self._data.items()) if key.startswith(prefix)]
        return kvs, self._revision

    async def list_revisions(self, prefix: str) -> tuple[dict[str, int], int]:
        """{key: mod_revision} under prefix (sorted by key) and the read's revision."""
        kvs, revision = await self.list(prefix)
        return {kv.key: kv.mod_revision for kv in kvs}, revision

    async def current_revision(self) -> int:
        self._check_open()
        return self._revision

    # --- writes ----------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> int:
        self._check_open()
        if key in self._data:
            raise errors.KeyExists(key)
        return self._put(key, value, prev=None)

    async def update(self, key: str, value: bytes, *, expected_revision: int | None) -> int:
        self._check_open()
        prev = self._existing(key, expected_revision)
        return self._put(key, value, prev=prev)

    async def delete(self, key: str, *, expected_revision: int | None) -> tuple[KeyValue, int]:
        self._check_open()
        prev = self._existing(key, expected_revision)
        self._revision += 1
        del self._data[key]
        self._publish(
            StoreEvent(
                type=EventType.DELETE,
                key=key,
                value=prev.value,
                revision=self._revision,
                prev_value=prev.value,
                create_revision=prev.create_revision,
            )
        )
        return prev, self._revision

    async def compact(self, revision: int) -> None:
        """Forget history before `revision`; an already compacted revision is a no-op."""
        self._check_open()
        if revision > self._revision:
            raise errors.StoreError(f"cannot compact to future revision {revision}")
        if revision <= self._compact_revision:
            return
        self._compact_revision = revision
        self._history = [e for e in self._history if e.revision >= revision]

    def _existing(self, key: str, expected_revision: int | None) -> KeyValue:
        current = self._data.get(key)
        if current is None:
            raise errors.KeyNotFound(key)
        if expected_revision is not None and current.mod_revision != expected_revision:
            raise errors.RevisionConflict(key, current)
        return current

    def _put(self, key: str, value: bytes, *, prev: KeyValue | None) -> int:
        self._revision += 1
        kv = KeyValue(
            key=key,
            value=value,
            create_revision=prev.create_revision if prev else self._revision,
            mod_revision=self._revision,
            version=prev.version + 1 if prev else 1,
        )
        self._data[key] = kv
        self._publish(
            StoreEvent(
                type=EventType.PUT,
                key=key,
                value=value,
                revision=self._revision,
                prev_value=prev.value if prev else None,
                create_revision=kv.create_revision,
            )
        )
        return self._revision

    def _publish(self, event: StoreEvent) -> None:
        self._history.append(event)
        for queue, prefix in self._watchers.items():
            if event.key.startswith(prefix):
                queue.put_nowait(event)

    # --- watch -----------------------------------------------------------------

    async def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[StoreEvent]:
        """Replay history from start_revision, then follow live writes.

        start_revision 0 means "after the revision current when iteration
        starts", as for etcd.
        """
        self._check_open()
        first = start_revision if start_revision > 0 else self._revision + 1
        if first < self._compact_revision:
            raise errors.Compacted(first, self._compact_revision)
        # Snapshot the backlog and register the queue with no await in between:
        # every event lands in exactly one of the two.
        backlog = [e for e in self._history if e.revision >= first and e.key.startswith(prefix)]
        queue: asyncio.Queue[StoreEvent | None] = asyncio.Queue()
        self._watchers[queue] = prefix
        try:
            for event in backlog:
                yield event
            while (event_or_end := await queue.get()) is not None:
                yield event_or_end
            raise errors.Unavailable("store closed")
        finally:
            self._watchers.pop(queue, None)

    # --- lifecycle ---------------------------------------------------------------

    async def close(self) -> None:
        self._closed = True
        for queue in self._watchers:
            queue.put_nowait(None)

    def _check_open(self) -> None:
        if self._closed:
            raise errors.Unavailable("store closed")
