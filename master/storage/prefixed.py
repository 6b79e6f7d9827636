"""`PrefixedStore`: a Store that lives under a key prefix of another Store.

Several Flotilla clusters (or test cases) can share one etcd cluster without
seeing each other's keys: every key is stored as `<prefix><key>`, and the
prefix is removed again from everything read back. Revisions are the
underlying store's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

from master.storage.interface import KeyValue, Store, StoreEvent


class PrefixedStore:
    def __init__(self, inner: Store, prefix: str) -> None:
        if not prefix or prefix.endswith("/"):
            raise ValueError("prefix must be non-empty and must not end with '/'")
        self.inner = inner
        self.prefix = prefix

    def _kv(self, kv: KeyValue) -> KeyValue:
        return replace(kv, key=kv.key[len(self.prefix):])

    async def get(self, key: str) -> KeyValue | None:
        kv = await self.inner.get(self.prefix + key)
        return None if kv is None else self._kv(kv)

    async def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        kvs, rev = await self.inner.list(self.prefix + prefix)
        return [self._kv(kv) for kv in kvs], rev

    async def list_revisions(self, prefix: str) -> tuple[dict[str, int], int]:
        revs, rev = await self.inner.list_revisions(self.prefix + prefix)
        n = len(self.prefix)
        return {k[n:]: v for k, v in revs.items()}, rev

    async def current_revision(self) -> int:
        return await self.inner.current_revision()

    async def create(self, key: str, value: bytes) -> int:
        return await self.inner.create(self.prefix + key, value)

    async def update(self, key: str, value: bytes, *, expected_revision: int | None) -> int:
        return await self.inner.update(self.prefix + key, value, expected_revision=expected_revision)

    async def delete(self, key: str, *, expected_revision: int | None) -> tuple[KeyValue, int]:
        kv, rev = await self.inner.delete(self.prefix + key, expected_revision=expected_revision)
        return self._kv(kv), rev

    async def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[StoreEvent]:
        n = len(self.prefix)
        async for ev in self.inner.watch(self.prefix + prefix, start_revision=start_revision):
            yield replace(ev, key=ev.key[n:])

    async def compact(self, revision: int) -> None:
        await self.inner.compact(revision)

    async def close(self) -> None:
        """The inner store belongs to whoever made it."""
