"""master.client: what every component uses to talk to the apiserver.

The one part of master/ that node_agent and netproxy may import (an
import-linter contract says so): it must not import master.apiserver or
master.storage. See README.md for the file map and the invariants.
"""

from master.client.client import Client, ClientListerWatcher, RetryPolicy
from master.client.clock import Clock, FakeClock, RealClock
from master.client.errors import (
    AlreadyExists,
    APIError,
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    InternalError,
    Invalid,
    NotFound,
    Timeout,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    from_rpc_error,
    from_status,
)
from master.client.informer import (
    ADDED,
    BOOKMARK,
    DELETED,
    ERROR,
    MODIFIED,
    Informer,
    InformerFactory,
    ListerWatcher,
    WatchEvent,
)
from master.client.kinds import KINDS, KindInfo, UnknownKind, kind_of
from master.client.store import Store, object_key, split_key
from master.client.workqueue import (
    ItemExponentialRateLimiter,
    RateLimiter,
    RateLimitingQueue,
    ShutDown,
    WorkQueue,
)

__all__ = [
    "ADDED",
    "BOOKMARK",
    "DELETED",
    "ERROR",
    "KINDS",
    "MODIFIED",
    "APIError",
    "AlreadyExists",
    "BadRequest",
    "Client",
    "ClientListerWatcher",
    "Clock",
    "Conflict",
    "FakeClock",
    "Forbidden",
    "Gone",
    "Informer",
    "InformerFactory",
    "InternalError",
    "Invalid",
    "ItemExponentialRateLimiter",
    "KindInfo",
    "ListerWatcher",
    "NotFound",
    "RateLimiter",
    "RateLimitingQueue",
    "RealClock",
    "RetryPolicy",
    "ShutDown",
    "Store",
    "Timeout",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "UnknownKind",
    "WatchEvent",
    "WorkQueue",
    "from_rpc_error",
    "from_status",
    "kind_of",
    "object_key",
    "split_key",
]
