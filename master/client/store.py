"""The informer's local cache: objects by key, with secondary indices.

`Store[T]` maps `namespace/name` (or `name`, cluster scope) to the last
object seen, and keeps named indices (value -> keys) current on every put
and remove, so `by_index("node", "n1")` is a dict lookup, not a scan.

Only the informer writes to a Store; everyone else reads through the
informer. Stored objects are shared and never mutated (DESIGN 1).

Pure: no I/O; asyncio code only, so no locks.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

IndexFunc = Callable[[T], Iterable[str]]


def object_key(obj: Any) -> str:
    """`namespace/name`, or `name` for cluster-scoped objects (client-go's key)."""
    meta = obj.metadata
    return f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name


def split_key(key: str) -> tuple[str, str]:
    """(namespace, name) from an `object_key`; namespace is "" for cluster scope."""
    namespace, _, name = key.rpartition("/")
    return namespace, name


def resource_version_of(obj: Any) -> str:
    return str(obj.metadata.resource_version)


class Store(Generic[T]):
    """Objects by key, plus named secondary indices (value -> keys)."""

    def __init__(self) -> None:
        self._items: dict[str, T] = {}
        self._index_funcs: dict[str, IndexFunc[T]] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: str) -> T | None:
        return self._items.get(key)

    def keys(self) -> builtins.list[str]:
        return sorted(self._items)

    def list(self) -> builtins.list[T]:
        return [self._items[k] for k in sorted(self._items)]

    def add_index(self, name: str, fn: IndexFunc[T]) -> None:
        if name in self._index_funcs:
            raise ValueError(f"index {name!r} already exists")
        self._index_funcs[name] = fn
        self._indices[name] = {}
        for key, obj in self._items.items():
            self._index_one(name, key, obj)

    def by_index(self, name: str, value: str) -> builtins.list[T]:
        keys = self._indices[name].get(value, set())
        return [self._items[k] for k in sorted(keys)]

    def put(self, key: str, obj: T) -> T | None:
        """Store `obj` under `key`; return the object it replaced."""
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name in self._index_funcs:
            self._index_one(name, key, obj)
        return old

    def remove(self, key: str) -> T | None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def _index_one(self, name: str, key: str, obj: T) -> None:
        index = self._indices[name]
        for value in self._index_funcs[name](obj):
            index.setdefault(value, set()).add(key)

    def _unindex(self, key: str, obj: T) -> None:
        for name, fn in self._index_funcs.items():
            index = self._indices[name]
            for value in fn(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]
