"""The `Store` protocol: what the apiserver needs from its key-value store.

Semantics (DESIGN 2): keys are `/registry/<resource>/<namespace>/<name>`;
values are opaque bytes (the registry decides the encoding); every write
returns the new etcd revision, which becomes the object's resourceVersion
(its mod_revision). Create is a transaction on "key absent"; update and
delete may compare the key's mod_revision. A watch starts at a revision and
replays everything after it; a revision compacted away raises `Compacted`.

Implementations: `etcd.EtcdStore` (real, aetcd, every member of the
cluster as endpoint) and `memory.MemoryStore` (unit tests). Neither knows
about API objects.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int  # number of writes since the key was created (1 after create)


class EventType(enum.Enum):
    PUT = "PUT"
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class StoreEvent:
    type: EventType
    key: str
    # PUT: the new value. DELETE: the value before deletion (prev_kv).
    value: bytes
    # The revision at which this event happened (the new mod_revision for a
    # PUT, the deleting revision for a DELETE).
    revision: int
    # Value before this event, when the store knows it (None on create).
    prev_value: bytes | None = None
    # create_revision of the key (0 for DELETE when unknown)
    create_revision: int = 0


class Store(Protocol):
    async def get(self, key: str) -> KeyValue | None:
        """A linearizable read of one key; None when absent."""
        ...

    async def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Every key under prefix, sorted by key, and the revision of the read."""
        ...

    async def list_revisions(self, prefix: str) -> tuple[dict[str, int], int]:
        """Every key under prefix mapped to its mod_revision (no values), and
        the revision of the read. The watch cache uses it to prove that its
        state equals etcd's at that revision when the prefix is idle."""
        ...

    async def current_revision(self) -> int:
        """The store's current revision (a linearizable read)."""
        ...

    async def create(self, key: str, value: bytes) -> int:
        """Put if absent; returns the new revision. Raises KeyExists."""
        ...

    async def update(self, key: str, value: bytes, *, expected_revision: int | None) -> int:
        """Put over an existing key; with expected_revision, only if its
        mod_revision equals it. Raises KeyNotFound or RevisionConflict."""
        ...

    async def delete(self, key: str, *, expected_revision: int | None) -> tuple[KeyValue, int]:
        """Delete an existing key (compared as in update); returns the deleted
        key-value and the deleting revision. Raises KeyNotFound or RevisionConflict."""
        ...

    def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[StoreEvent]:
        """Every change under prefix at revision >= start_revision, in order.

        Raises Compacted (from the iterator) when start_revision is gone.
        The iterator survives the loss of one etcd member (it re-watches from
        the last revision it delivered); closing it (aclose) stops the watch.
        """
        ...

    async def compact(self, revision: int) -> None:
        """Compact history up to revision (tests and maintenance)."""
        ...

    async def close(self) -> None: ...
