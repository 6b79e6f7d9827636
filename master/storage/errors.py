"""Storage errors: the one exception tree of the etcd boundary.

The etcd adapter translates aetcd/gRPC failures into these, once; the
apiserver's registry translates these into API errors (404, 409, 410, 503).

    StoreError
      KeyExists            create found the key already there
      KeyNotFound          update/delete found no key
      RevisionConflict     update/delete: mod_revision differs (carries current)
      Compacted            watch/list at a revision etcd has compacted away
      Unavailable          no quorum / every endpoint down / timeout (retryable)
      TooLarge             the value is larger than etcd accepts (--max-request-bytes)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from master.storage.interface import KeyValue


class StoreError(Exception):
    retryable = False


class KeyExists(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key exists: {key}")
        self.key = key


class KeyNotFound(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key not found: {key}")
        self.key = key


class RevisionConflict(StoreError):
    def __init__(self, key: str, current: KeyValue | None) -> None:
        super().__init__(f"revision conflict on {key}")
        self.key = key
        self.current = current


class Compacted(StoreError):
    def __init__(self, requested: int, compact_revision: int) -> None:
        super().__init__(
            f"required revision {requested} has been compacted (compacted up to {compact_revision})"
        )
        self.requested = requested
        self.compact_revision = compact_revision


class Unavailable(StoreError):
    retryable = True


class TooLarge(StoreError):
    pass
