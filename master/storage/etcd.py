"""EtcdStore: the `Store` protocol on etcd v3, through aetcd's gRPC bindings.

Owns the gRPC channel to the etcd cluster, the translation of every gRPC
failure into master.storage.errors (`_translate`, called from `_unary`,
`watch` and `_first_event` only; a call cancelled by our own close() becomes
Unavailable),
retries, and watch resumption. It knows nothing about API objects; the
apiserver's registry decides what the bytes mean.

Why aetcd's bindings and not its `Client`: the Client builds its target as
f"{host}:{port}", has one timeout for every call, maps errors lossily, and its
watcher shares one stream whose failure ends every watch. We use the same
generated stubs (`aetcd.rpc`) with one channel whose target lists every
member ("ipv4:127.0.0.1:2379,127.0.0.1:2389,...") under gRPC's round_robin
policy: a dead member drops out of the rotation when its connection breaks,
and each retry goes to the next live member.

Retries. Each operation has a budget (`timeout_s`), each attempt a deadline
(`attempt_timeout_s`, doubled per retry so that a large read still fits).
UNAVAILABLE, DEADLINE_EXCEEDED and etcd's "context deadline exceeded" are
transient; reads retry freely. A write that failed that way may have been
applied, so it is retried only in a form that cannot apply twice, and a
retry that finds the state our write would have produced reports success
(counted in `recovered_writes`). `floor` is the highest revision this client
had seen before the first attempt: whatever our write did is above it.

- create: compare version == 0, so once one attempt lands every other
  fails. A retry that finds the key at version 1 with our exact bytes and
  create_revision > floor returns its revision; otherwise KeyExists.
- update/delete with expected_revision: compare mod_revision == expected,
  which can hold only once: exact. An update retry that finds our bytes at a
  mod_revision > floor succeeds.
- update with expected_revision=None: retried as "exists and mod_revision
  <= floor" (nobody, us included, wrote it since we started); our bytes
  above floor is success; anything else raises Unavailable (outcome
  unknown) rather than risk writing twice.
- delete with expected_revision=None: retried as "exists and
  create_revision <= floor" (the incarnation we meant is still there).
- delete, either form, finding the key gone (or re-created after floor):
  etcd's history says whether the key's first change after floor was that
  delete (a one-key watch from floor + 1); if so that is our result.

Accepted residual risks: our create lands, a third party deletes the key
and our retry creates it again (a window of one attempt, during failover);
an unconditional update's timed-out attempt still queued in the leader lands
after its retry. Identical bytes from two writers count as ours, which is
harmless: the state is what each asked for, and API objects carry a uid.

Watch: one gRPC stream per `watch()` with prev_kv (DELETE events carry the
deleted value), progress notifications (so a quiet watch's resume point
advances) and etcd's "require leader" flag (a member cut off from the leader
closes the stream instead of going silent). On a broken stream it re-watches
from the last delivered revision + 1, through whichever member is alive;
etcd then replays what was missed. A compacted resume point raises
`Compacted`. Re-watching gives up with `Unavailable` after timeout_s without
a successful re-creation.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from aetcd import rpc

from master.storage import errors
from master.storage.interface import EventType, KeyValue, StoreEvent

T = TypeVar("T")
# The class defines a `list` method, which shadows the builtin in its body.
_Raws = list[Any]

_TRANSIENT = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,  # a member shutting down cancels in-flight calls
}
# etcd answers UNKNOWN when our deadline, propagated to it, expires while it
# waits (e.g. for a read index), and RESOURCE_EXHAUSTED when apply lags.
# "Internal error from Core" is grpc-core's answer to a write on a stream the
# member has already ended (a watch created while it lost its leader): the
# stream is broken, not the request.
_TRANSIENT_DETAILS = ("context deadline exceeded", "context canceled", "too many requests",
                      "Internal error from Core")
_FIRST_BACKOFF_S = 0.02
_MAX_BACKOFF_S = 0.25
_PAGE_SIZE = 1000
# How long a history lookup may wait for an event known to exist.
_MIN_WATCH_WAIT_S = 0.5
# etcd's rpctypes.MetadataRequireLeaderKey / MetadataHasLeader.
_REQUIRE_LEADER = (("hasleader", "true"),)
_CHANNEL_OPTIONS = [
    ("grpc.lb_policy_name", "round_robin"),
    # A restarted member rejoins the rotation within a second, not gRPC's 1-120 s.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # Find a silently dead member under a long-lived watch. etcd refuses pings
    # more often than every 5 s (--grpc-keepalive-min-time).
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", -1),
]


class _Transient(Exception):
    """A failure a retry may cure; a write that raised it may have been applied."""


class EtcdStore:
    """The Store on an etcd cluster, given every member's "host:port"."""

    def __init__(
        self,
        endpoints: list[str],
        *,
        timeout_s: float = 5.0,
        attempt_timeout_s: float = 0.5,
    ) -> None:
        if not endpoints:
            raise ValueError("EtcdStore needs at least one endpoint")
        self.endpoints = list(endpoints)
        self.timeout_s = timeout_s
        self.attempt_timeout_s = attempt_timeout_s
        self._channel: grpc.aio.Channel | None = None
        self._kv: Any = None
        self._watch: Any = None
        self._closed = False
        self._seen_revision = 0
        # Writes whose timed-out attempt turned out to have landed (see the
        # module docstring): for metrics and tests.
        self.recovered_writes = 0
        # Unary RPCs sent by request type ("RangeRequest", "TxnRequest", ...)
        # and watch events received: the apiserver's /metrics shows them, so
        # that what one API request costs in etcd round trips can be counted.
        self.requests: dict[str, int] = {}
        self.watch_events = 0

    @classmethod
    async def open(cls, endpoints: list[str], **kwargs: float) -> EtcdStore:
        store = cls(endpoints, **kwargs)
        await store.connect()
        return store

    async def connect(self) -> None:
        """Open the channel and prove a member answers (Unavailable otherwise)."""
        if self._channel is None:
            target = await grpc_target(self.endpoints)
            self._channel = rpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
            self._kv = rpc.KVStub(self._channel)
            self._watch = rpc.WatchStub(self._channel)
        await self.current_revision()

    async def close(self) -> None:
        self._closed = True
        if self._channel is not None:
            await self._channel.close()

    async def __aenter__(self) -> EtcdStore:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- reads -----------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        request = rpc.RangeRequest(key=key.encode())
        resp = await self._retrying(lambda t, _: self._unary(self._kv.Range, request, t))
        return _kv(resp.kvs[0]) if resp.kvs else None

    async def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        raw, revision = await self._range_all(prefix, keys_only=False)
        return [_kv(kv) for kv in raw], revision

    async def list_revisions(self, prefix: str) -> tuple[dict[str, int], int]:
        """{key: mod_revision} under prefix (sorted by key) and the read's revision.

        A keys-only range: what a watch cache needs to check it is current.
        """
        raw, revision = await self._range_all(prefix, keys_only=True)
        return {kv.key.decode(): kv.mod_revision for kv in raw}, revision

    async def current_revision(self) -> int:
        request = rpc.RangeRequest(key=b"\0", count_only=True)
        resp = await self._retrying(lambda t, _: self._unary(self._kv.Range, request, t))
        return int(resp.header.revision)

    async def _range_all(self, prefix: str, *, keys_only: bool) -> tuple[_Raws, int]:
        """Every key under prefix, read in pages pinned to the first page's revision."""

        async def attempt(timeout: float, _: int) -> tuple[_Raws, int]:
            start, end = prefix.encode(), _prefix_end(prefix.encode())
            kvs: _Raws = []
            revision = 0  # 0: "latest" for the first page, then pinned
            while True:
                request = rpc.RangeRequest(
                    key=start,
                    range_end=end,
                    limit=_PAGE_SIZE,
                    revision=revision,
                    keys_only=keys_only,
                )
                try:
                    resp = await self._unary(self._kv.Range, request, timeout)
                except errors.Compacted as exc:
                    # The pinned revision went away between pages: read again.
                    raise _Transient(str(exc)) from exc
                kvs.extend(resp.kvs)
                revision = revision or int(resp.header.revision)
                if not resp.more:
                    return kvs, revision
                start = resp.kvs[-1].key + b"\0"

        return await self._retrying(attempt)

    # --- writes ------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> int:
        k, floor = key.encode(), self._seen_revision
        request = _txn([_cmp(k, "version", "==", 0)], _put(k, value), _get(k))

        async def attempt(timeout: float, n: int) -> int:
            resp = await self._unary(self._kv.Txn, request, timeout)
            if resp.succeeded:
                return int(resp.header.revision)
            current = _failure_kv(resp)
            if n > 0 and current is not None and _is_our_create(current, value, floor):
                self.recovered_writes += 1
                return current.mod_revision
            raise errors.KeyExists(key)

        return await self._retrying(attempt)

    async def update(self, key: str, value: bytes, *, expected_revision: int | None) -> int:
        k, floor = key.encode(), self._seen_revision
        first, retry = _write_compares(
            k, expected_revision, floor_cmp=_cmp(k, "mod", "<", floor + 1)
        )

        async def attempt(timeout: float, n: int) -> int:
            request = _txn(retry if n > 0 else first, _put(k, value), _get(k))
            resp = await self._unary(self._kv.Txn, request, timeout)
            if resp.succeeded:
                return int(resp.header.revision)
            current = _failure_kv(resp)
            if current is None:
                raise errors.KeyNotFound(key)
            if n > 0 and current.mod_revision > floor and current.value == value:
                self.recovered_writes += 1  # an earlier attempt landed
                return current.mod_revision
            if expected_revision is None:  # only a retry's floor compare fails here
                raise errors.Unavailable(f"update of {key}: outcome unknown, key written since")
            raise errors.RevisionConflict(key, current)

        return await self._retrying(attempt)

    async def delete(self, key: str, *, expected_revision: int | None) -> tuple[KeyValue, int]:
        k, floor = key.encode(), self._seen_revision
        first, retry = _write_compares(
            k, expected_revision, floor_cmp=_cmp(k, "create", "<", floor + 1)
        )
        delete_op = rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=k, prev_kv=True))

        async def attempt(timeout: float, n: int) -> tuple[KeyValue, int]:
            request = _txn(retry if n > 0 else first, delete_op, _get(k))
            resp = await self._unary(self._kv.Txn, request, timeout)
            if resp.succeeded:
                prev = resp.responses[0].response_delete_range.prev_kvs[0]
                return _kv(prev), int(resp.header.revision)
            current = _failure_kv(resp)
            if n > 0 and (current is None or current.create_revision > floor):
                landed = await self._landed_delete(k, floor, expected_revision, timeout)
                if landed is not None:
                    self.recovered_writes += 1
                    return landed
            if current is None:
                raise errors.KeyNotFound(key)
            if expected_revision is None:  # a newer incarnation: ours may be gone by our hand
                raise errors.Unavailable(f"delete of {key}: outcome unknown, key re-created since")
            raise errors.RevisionConflict(key, current)

        return await self._retrying(attempt)

    async def _landed_delete(
        self, key: bytes, floor: int, expected_revision: int | None, timeout: float
    ) -> tuple[KeyValue, int] | None:
        """After a timed-out delete: (deleted kv, revision) if the key's first
        change after floor is the delete we asked for, else None.

        Only asked when the key existed at floor and is gone (or re-created)
        now, so that first change is in etcd's history and a watch from
        floor + 1 returns it at once. A compacted floor gives None.
        """
        at_floor = rpc.RangeRequest(key=key, revision=floor, count_only=True)
        try:
            if (await self._unary(self._kv.Range, at_floor, timeout)).count == 0:
                return None
        except errors.Compacted:
            return None
        event = await self._first_event(key, start_revision=floor + 1, timeout=timeout)
        if event is None or event.type != rpc.Event.DELETE or not event.HasField("prev_kv"):
            return None
        prev = _kv(event.prev_kv)
        if expected_revision is not None and prev.mod_revision != expected_revision:
            return None
        return prev, int(event.kv.mod_revision)

    async def _first_event(self, key: bytes, *, start_revision: int, timeout: float) -> Any:
        """The first event on exactly `key` at or after start_revision (None if none comes)."""
        call = self._watch.Watch()
        create = rpc.WatchCreateRequest(key=key, start_revision=start_revision, prev_kv=True)
        try:
            await call.write(rpc.WatchRequest(create_request=create))
            async with asyncio.timeout(max(timeout * 4, _MIN_WATCH_WAIT_S)):
                while (resp := await call.read()) is not grpc.aio.EOF:
                    if resp.canceled or resp.compact_revision:
                        return None
                    if resp.events:
                        return resp.events[0]
            return None
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc) from exc
        except TimeoutError:
            return None
        finally:
            call.cancel()

    async def compact(self, revision: int) -> None:
        """Compact history before revision; an already compacted revision is a no-op."""
        request = rpc.CompactionRequest(revision=revision)
        try:
            await self._retrying(lambda t, _: self._unary(self._kv.Compact, request, t))
        except errors.Compacted:
            return

    # --- the one place where gRPC errors become ours -----------------------------------

    async def _unary(self, method: Any, request: Any, timeout: float) -> Any:
        self._check_open()
        name = type(request).__name__
        self.requests[name] = self.requests.get(name, 0) + 1
        try:
            resp = await method(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc) from exc
        except grpc.aio.UsageError as exc:  # the channel was closed under the call
            raise errors.Unavailable("etcd store closed") from exc
        except asyncio.CancelledError:
            self._raise_if_closed_under_us()
            raise
        self._seen_revision = max(self._seen_revision, int(resp.header.revision))
        return resp

    async def _retrying(self, attempt: Callable[[float, int], Awaitable[T]]) -> T:
        """Run attempt(deadline_s, n) until it returns, a non-transient error, or the budget ends."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        n = 0
        while True:
            remaining = deadline - loop.time()
            try:
                return await attempt(max(min(self.attempt_timeout_s * 2**n, remaining), 0.001), n)
            except _Transient as exc:
                pause = min(_FIRST_BACKOFF_S * 2**n, _MAX_BACKOFF_S)
                if loop.time() + pause >= deadline:
                    raise errors.Unavailable(f"etcd: {exc} ({n + 1} attempts)") from exc
                await asyncio.sleep(pause)
                n += 1

    def _raise_if_closed_under_us(self) -> None:
        """grpc.aio raises CancelledError in calls whose channel was closed;
        that is our Unavailable unless our own task is being cancelled."""
        task = asyncio.current_task()
        if self._closed and task is not None and not task.cancelling():
            raise errors.Unavailable("etcd store closed") from None

    def _check_open(self) -> None:
        if self._closed:
            raise errors.Unavailable("etcd store closed")
        if self._channel is None:
            raise RuntimeError("EtcdStore used before connect()")

    # --- watch -----------------------------------------------------------------------

    async def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[StoreEvent]:
        loop = asyncio.get_running_loop()
        failing_since: float | None = None
        next_revision = start_revision
        while True:
            self._check_open()
            call = self._watch.Watch(metadata=_REQUIRE_LEADER)
            try:
                next_revision = await self._create_watch(call, prefix, next_revision)
                failing_since = None
                while (resp := await call.read()) is not grpc.aio.EOF:
                    _raise_if_cancelled(resp, next_revision)
                    self.watch_events += len(resp.events)
                    for raw in resp.events:
                        event = _event(raw)
                        yield event
                        next_revision = event.revision + 1
                    if not resp.events:  # progress notice: nothing under prefix up to it
                        next_revision = max(next_revision, int(resp.header.revision) + 1)
            except grpc.aio.AioRpcError as exc:
                translated = _translate(exc)
                if not isinstance(translated, _Transient):
                    raise translated from exc
            except (_Transient, TimeoutError):
                pass  # a broken stream: resume below from next_revision
            except asyncio.CancelledError:
                self._raise_if_closed_under_us()
                raise
            finally:
                call.cancel()
            failing_since = failing_since if failing_since is not None else loop.time()
            if loop.time() - failing_since > self.timeout_s:
                raise errors.Unavailable(f"etcd watch on {prefix} could not be re-established")
            await asyncio.sleep(_FIRST_BACKOFF_S)

    async def _create_watch(self, call: Any, prefix: str, start_revision: int) -> int:
        """Send the create request; returns the first revision the stream will deliver."""
        key = prefix.encode()
        create = rpc.WatchCreateRequest(
            key=key,
            range_end=_prefix_end(key),
            start_revision=start_revision,
            prev_kv=True,
            progress_notify=True,
        )
        await call.write(rpc.WatchRequest(create_request=create))
        resp = await asyncio.wait_for(call.read(), self.attempt_timeout_s * 4)
        if resp is grpc.aio.EOF:
            raise _Transient("watch stream ended before creation")
        _raise_if_cancelled(resp, start_revision)
        self._seen_revision = max(self._seen_revision, int(resp.header.revision))
        # start_revision 0 means "from now": pin it so a resume does not skip.
        return start_revision or int(resp.header.revision) + 1


def _raise_if_cancelled(resp: Any, start_revision: int) -> None:
    if resp.compact_revision:
        raise errors.Compacted(start_revision, int(resp.compact_revision))
    if resp.canceled:
        # etcd cancels a "require leader" watch on a member that lost its leader.
        raise _Transient(f"watch cancelled by etcd: {resp.cancel_reason}")


# --- translation and message builders (pure) ----------------------------------------------


def _translate(exc: grpc.aio.AioRpcError) -> Exception:
    code, details = exc.code(), exc.details() or ""
    if code in _TRANSIENT or any(text in details for text in _TRANSIENT_DETAILS):
        return _Transient(f"{code.name}: {details}")
    if code == grpc.StatusCode.OUT_OF_RANGE and "compacted" in details:
        # Only revision-pinned requests (paged reads, compaction) can get here.
        return errors.Compacted(0, 0)
    if "request is too large" in details:
        return errors.TooLarge(f"etcd: {details}")
    return errors.StoreError(f"etcd: {code.name}: {details}")


def _kv(kv: Any) -> KeyValue:
    return KeyValue(
        key=kv.key.decode(),
        value=kv.value,
        create_revision=kv.create_revision,
        mod_revision=kv.mod_revision,
        version=kv.version,
    )


def _event(event: Any) -> StoreEvent:
    kv = event.kv
    prev = event.prev_kv if event.HasField("prev_kv") else None
    if event.type == rpc.Event.PUT:
        return StoreEvent(
            type=EventType.PUT,
            key=kv.key.decode(),
            value=kv.value,
            revision=kv.mod_revision,
            prev_value=prev.value if prev is not None else None,
            create_revision=kv.create_revision,
        )
    # A DELETE's kv holds only the key and the deleting revision; the value
    # comes from prev_kv (missing only if that version was compacted away).
    return StoreEvent(
        type=EventType.DELETE,
        key=kv.key.decode(),
        value=prev.value if prev is not None else b"",
        revision=kv.mod_revision,
        prev_value=prev.value if prev is not None else None,
        create_revision=prev.create_revision if prev is not None else 0,
    )


def _is_our_create(current: KeyValue, value: bytes, floor: int) -> bool:
    return current.version == 1 and current.create_revision > floor and current.value == value


def _write_compares(
    key: bytes, expected_revision: int | None, *, floor_cmp: Any
) -> tuple[list[Any], list[Any]]:
    """(first attempt's compares, a retry's compares) for an update or delete.

    "Exists" is always there: a mod_revision compare alone would match an
    absent key when expected_revision is 0.
    """
    exists = _cmp(key, "version", ">", 0)
    if expected_revision is not None:
        cas = [exists, _cmp(key, "mod", "==", expected_revision)]
        return cas, cas
    return [exists], [exists, floor_cmp]


def _failure_kv(resp: Any) -> KeyValue | None:
    kvs = resp.responses[0].response_range.kvs if resp.responses else []
    return _kv(kvs[0]) if kvs else None


_RESULTS = {"==": rpc.Compare.EQUAL, "<": rpc.Compare.LESS, ">": rpc.Compare.GREATER}
_TARGETS = {
    "version": (rpc.Compare.VERSION, "version"),
    "mod": (rpc.Compare.MOD, "mod_revision"),
    "create": (rpc.Compare.CREATE, "create_revision"),
}


def _cmp(key: bytes, target: str, op: str, value: int) -> Any:
    """rpc.Compare for `target(key) op value`, e.g. _cmp(k, "mod", "==", 7)."""
    enum, field = _TARGETS[target]
    return rpc.Compare(key=key, target=enum, result=_RESULTS[op], **{field: value})


def _put(key: bytes, value: bytes) -> Any:
    return rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value))


def _get(key: bytes) -> Any:
    return rpc.RequestOp(request_range=rpc.RangeRequest(key=key))


def _txn(compare: list[Any], success: Any, failure: Any) -> Any:
    return rpc.TxnRequest(compare=compare, success=[success], failure=[failure])


def _prefix_end(prefix: bytes) -> bytes:
    """The range_end that covers every key starting with prefix."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"\0"  # etcd: "every key >= key"
    return stripped[:-1] + bytes([stripped[-1] + 1])


async def grpc_target(endpoints: list[str]) -> str:
    """One gRPC target naming every member: "ipv4:A:p,B:q" (or ipv6:[A]:p,...).

    Host names are resolved once, here; gRPC's static-address resolvers need
    literals, and a target with one DNS name would pin us to one member.
    """
    loop = asyncio.get_running_loop()
    v4: list[str] = []
    v6: list[str] = []
    for endpoint in endpoints:
        host, _, port = endpoint.removeprefix("http://").rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit():
            raise ValueError(f"etcd endpoint {endpoint!r} is not host:port")
        for family, address in await _addresses(loop, host, int(port)):
            (v4 if family == socket.AF_INET else v6).append(address)
    if v4 and v6:
        raise ValueError("etcd endpoints mix IPv4 and IPv6; gRPC takes one family per target")
    return "ipv4:" + ",".join(v4) if v4 else "ipv6:" + ",".join(v6)


async def _addresses(
    loop: asyncio.AbstractEventLoop, host: str, port: int
) -> list[tuple[int, str]]:
    """(family, "addr:port") for a literal, or every address of a name (IPv4 first)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
            except socket.gaierror:
                continue
            ips = sorted({str(info[4][0]) for info in infos})
            return [(family, _address(family, ip, port)) for ip in ips]
        raise errors.Unavailable(f"etcd endpoint host {host!r} does not resolve") from None
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    return [(family, _address(family, str(ip), port))]


def _address(family: int, ip: str, port: int) -> str:
    return f"{ip}:{port}" if family == socket.AF_INET else f"[{ip}]:{port}"
