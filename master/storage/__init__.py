"""The cluster store: the `Store` protocol, its etcd and in-memory implementations, its errors.

Import from here: `from master.storage import Store, EtcdStore, MemoryStore, errors`.
"""

from master.storage import errors
from master.storage.errors import (
    Compacted,
    KeyExists,
    KeyNotFound,
    RevisionConflict,
    StoreError,
    TooLarge,
    Unavailable,
)
from master.storage.etcd import EtcdStore
from master.storage.interface import EventType, KeyValue, Store, StoreEvent
from master.storage.memory import MemoryStore

__all__ = [
    "Compacted",
    "EtcdStore",
    "EventType",
    "KeyExists",
    "KeyNotFound",
    "KeyValue",
    "MemoryStore",
    "RevisionConflict",
    "Store",
    "StoreError",
    "TooLarge",
    "StoreEvent",
    "Unavailable",
    "errors",
]
