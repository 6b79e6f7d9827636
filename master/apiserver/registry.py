"""The registry: get, list, create, update, patch, delete and watch for every
resource, over the Store, admission and the watch cache.

Both faces of the apiserver (REST and gRPC) call this and only this, so an
object means the same thing whichever way it arrives. It owns:
* the etcd encoding of objects (objects.encode_for_store/decode_from_store);
* optimistic concurrency: a resourceVersion in the request is a
  precondition (409 Conflict); without one, updates and patches retry on
  conflict against the latest version (Kubernetes' GuaranteedUpdate);
* the namespace lifecycle checks (the namespace must exist and not be
  terminating), generateName, dry runs;
* graceful deletion of pods and finalizers (deletionTimestamp first, the
  key removed once nothing holds it), and the garbage collector's
  finalizers a DELETE's propagationPolicy asks for (orphan,
  foregroundDeletion; the garbage collector controller acts on them);
* the admission steps that read other objects: ResourceQuota
  (master/apiserver/quota.py) and DefaultTolerationSeconds on pods;
* translation of storage errors into API errors, once.

It does not parse HTTP or protobuf requests: callers hand it decoded
messages, patches as Python objects, and parsed selectors. It does not
empty deleted namespaces: the namespace controller does that and then
removes the `kubernetes` finalizer (master/controllers/namespace.py).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import functools
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from master.apiserver import errors
from master.apiserver.admission import admit_create, admit_update
from master.apiserver.admission.tolerations import (
    DEFAULT_TOLERATION_SECONDS,
    add_default_tolerations,
)
from master.apiserver.objects import StoredObject, decode_from_store, encode_for_store
from master.apiserver.quota import QuotaAdmission
from master.apiserver.watchcache import CacheWatcher, Filter, NotReady, TooOld, WatchCaches
from master.storage import errors as store_errors
from master.storage.interface import Store
from protos.resources import RESOURCES, ResourceInfo, lookup

log = logging.getLogger(__name__)

def resource_info(group: str, resource: str) -> ResourceInfo:
    info = lookup(group, resource)
    if info is None:
        raise LookupError(f"{resource} is not in the resource registry")
    return info


NAMESPACES = resource_info("", "namespaces")
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# Conflicting writers retry until this deadline (Kubernetes: the request timeout).
UPDATE_RETRY_DEADLINE_S = 30.0
# The garbage collector's finalizers (metav1.FinalizerOrphanDependents / DeleteDependents).
ORPHAN_FINALIZER = "orphan"
FOREGROUND_FINALIZER = "foregroundDeletion"


@dataclass
class DeleteOptions:
    grace_period_seconds: int | None = None
    propagation_policy: str = ""
    precondition_uid: str | None = None
    precondition_rv: str | None = None
    dry_run: bool = False


class WriteHook(Protocol):
    """Runs around the store writes of one kind (Service: allocators/service.py).

    before_write runs after admission, may fill fields of `new` and returns a
    token; after_write(token, ok=...) runs once the object's transaction
    answered; after_delete once the object's key is gone."""

    async def before_write(self, new: Any, old: Any | None) -> Any: ...

    async def after_write(self, token: Any, *, ok: bool) -> None: ...

    async def after_delete(self, old: Any) -> None: ...


def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


class Registry:
    def __init__(
        self,
        store: Store,
        *,
        now: Callable[[], _dt.datetime] = utcnow,
        consistent_list_timeout_s: float = 3.0,
        default_toleration_seconds: int | None = DEFAULT_TOLERATION_SECONDS,
        hooks: Mapping[str, WriteHook] | None = None,
    ) -> None:
        self.store = store
        self.hooks: dict[str, WriteHook] = dict(hooks or {})  # kind -> hook
        self.now = now
        self.caches = WatchCaches(store, RESOURCES, decode_for=self._decoder)
        self.consistent_timeout_s = consistent_list_timeout_s
        # DefaultTolerationSeconds admission (None switches it off).
        self.default_toleration_seconds = default_toleration_seconds
        self.quota = QuotaAdmission(self)
        # Namespaces this registry marked Terminating: creates in them are
        # refused even before the watch cache shows the deletion.
        self._terminating: dict[str, str] = {}  # name -> uid of the namespace deleted

    @staticmethod
    def _decoder(info: ResourceInfo) -> Callable[[str, bytes, int], StoredObject]:
        return lambda key, value, rv: decode_from_store(info, key, value, rv)

    # --- lifecycle ---------------------------------------------------------

    async def run(self, *, ready: asyncio.Event) -> None:
        """Runs the watch caches; sets ready once they are listed and the
        initial namespaces exist."""
        caches_ready = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.caches.run(ready=caches_ready), name="watch-caches")
            await caches_ready.wait()
            await self.ensure_initial_namespaces()
            ready.set()

    async def ensure_initial_namespaces(self) -> None:
        cls = NAMESPACES.message_class()
        for name in INITIAL_NAMESPACES:
            ns = cls()
            ns.metadata.name = name
            try:
                await self.create(NAMESPACES, "", ns)
            except errors.APIError as exc:
                if exc.reason != "AlreadyExists":
                    raise

    # --- reads ---------------------------------------------------------------

    async def get(self, info: ResourceInfo, namespace: str, name: str) -> StoredObject:
        key = info.key(namespace, name)
        kv = await _store_call(info, name, self.store.get(key))
        if kv is None:
            raise errors.NotFound(info.resource, name, group=info.group)
        # A key's mod_revision names one value: when the cache holds that
        # version, it is this object, already decoded and encoded.
        cached = self.caches[info].get(key)
        if cached is not None and cached.rv == kv.mod_revision:
            return cached
        return decode_from_store(info, key, kv.value, kv.mod_revision)

    async def list(
        self, info: ResourceInfo, flt: Filter, *, resource_version: str = ""
    ) -> tuple[list[StoredObject], int]:
        """Matching objects and the list's resourceVersion.

        "" is a consistent read (at least as new as etcd now); "0" is whatever
        the cache holds; N is "not older than N".
        """
        cache = self.caches[info]
        if not cache.ready:
            raise errors.ServiceUnavailable(f"the watch cache for {info.resource} is not ready yet")
        if resource_version in ("", None):
            try:
                rv = await _store_call(info, "", cache.wait_consistent(timeout_s=self.consistent_timeout_s))
            except TimeoutError as exc:
                raise errors.Timeout(str(exc)) from exc
            return cache.list(flt), rv
        wanted = parse_resource_version(resource_version)
        if wanted and not await cache.wait_rv(wanted, timeout_s=self.consistent_timeout_s):
            raise errors.Timeout(f"Too large resource version: {wanted}, current: {cache.rv}")
        return cache.list(flt), max(cache.rv, wanted)

    def watch(self, info: ResourceInfo, flt: Filter, *, resource_version: str = "") -> CacheWatcher:
        cache = self.caches[info]
        rv = parse_resource_version(resource_version) if resource_version else None
        try:
            return cache.watch(flt, resource_version=rv)
        except TooOld as exc:
            raise errors.Gone(str(exc)) from exc
        except NotReady as exc:
            raise errors.ServiceUnavailable(f"the watch cache for {info.resource} is not ready yet") from exc

    # --- writes --------------------------------------------------------------

    async def create(
        self, info: ResourceInfo, namespace: str, msg: Any, *, dry_run: bool = False
    ) -> StoredObject:
        """Admits and stores a new object. `msg` is owned by the registry from here."""
        meta = msg.metadata
        if info.namespaced:
            if meta.namespace and meta.namespace != namespace:
                raise errors.BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta.namespace = namespace
            await self._check_namespace(namespace)
        else:
            meta.namespace = ""
        generated = not meta.name and bool(meta.generate_name)
        for _ in range(3 if generated else 1):
            if generated:
                meta.name = meta.generate_name + "".join(random.choices(_GENERATE_ALPHABET, k=5))
            admit_create(info, msg, now=self.now())
            if info.kind == "Namespace":
                _namespace_defaults(msg)
            if info.kind == "Pod" and self.default_toleration_seconds is not None:
                add_default_tolerations(msg, self.default_toleration_seconds)
            if dry_run:
                await self.quota.check(info, namespace, msg)
                return StoredObject(info, msg, 0)
            key = info.key(namespace, meta.name)
            create = functools.partial(_create, self.store, key, msg)
            try:
                # Quota runs last (Kubernetes: a validating admission plugin),
                # around the write: it holds its namespace lock until then.
                rev = await self.quota.create(info, namespace, msg, functools.partial(
                    self._write_new, info, msg, create))
            except errors.APIError as exc:
                if exc.reason == "AlreadyExists" and generated:
                    continue
                raise
            if info.kind == "Namespace":
                self._terminating.pop(meta.name, None)
            return self._written(info, key, msg, rev)
        raise errors.AlreadyExists(info.resource, meta.name, group=info.group)

    async def update(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        msg: Any,
        *,
        subresource: str = "",
        dry_run: bool = False,
    ) -> StoredObject:
        """PUT: replace the object (or its status) with `msg`.

        msg.metadata.resourceVersion, when set, must be the current version.
        """
        meta = msg.metadata
        if meta.name and meta.name != name:
            raise errors.BadRequest(
                f"the name of the object ({meta.name}) does not match the name on the URL ({name})"
            )
        if info.namespaced and meta.namespace and meta.namespace != namespace:
            raise errors.BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        precondition = meta.resource_version
        if precondition:
            parse_resource_version(precondition, field="metadata.resourceVersion")

        async def mutate(current: StoredObject) -> Any:
            if precondition and precondition != str(current.rv):
                raise errors.Conflict(info.resource, name, errors.STALE, group=info.group)
            new = type(msg)()
            new.CopyFrom(msg)
            return new

        return await self.guaranteed_update(
            info, namespace, name, mutate, subresource=subresource, dry_run=dry_run,
            retry_conflicts=not precondition,
        )

    async def guaranteed_update(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        mutate: Callable[[StoredObject], Awaitable[Any]],
        *,
        subresource: str = "",
        dry_run: bool = False,
        retry_conflicts: bool = True,
        start: StoredObject | None = None,
    ) -> StoredObject:
        """Read, mutate (returns the new message), admit, compare-and-swap.

        On a conflict the whole cycle runs again against the new version,
        unless the caller pinned a version (then the conflict is the answer).
        `start`: a copy the caller knows to be newer than the cache's (its own
        last write), tried first like a cached one.
        """
        key = info.key(namespace, name)
        cache = self.caches[info]
        # The first attempt starts from the watch cache (no etcd read); the
        # compare-and-swap on mod_revision catches a stale start, and every
        # conclusion drawn from a cached copy (a conflict, "nothing changed")
        # is re-checked against etcd before it is answered.
        cached = cache.get(key) if cache.ready else None
        if start is not None and (cached is None or start.rv > cached.rv):
            cached = start
        async for _ in _attempts():
            from_cache = cached is not None
            current = cached if cached is not None else await self.get(info, namespace, name)
            cached = None
            try:
                new = await mutate(current)
                admit_update(info, new, current.msg, subresource=subresource)
            except errors.APIError:
                # A cached copy may be behind this client's own last write
                # (a JSON patch naming a label it just added): any refusal
                # drawn from it is re-checked against etcd.
                if from_cache:
                    continue
                raise
            new.metadata.resource_version = ""
            if encode_for_store(new) == encode_for_store(current.msg):
                if from_cache:
                    continue
                return current  # nothing changed: no write, same resourceVersion
            if dry_run:
                if from_cache:
                    continue
                new.metadata.resource_version = str(current.rv)
                return StoredObject(info, new, current.rv, key=key)
            finalized = self._finalized(info, new)
            try:
                if finalized:
                    # The last finalizer went: the object goes with it.
                    _, rev = await self.store.delete(key, expected_revision=current.rv)
                    await self._deleted(info, current.msg, rev)
                    new.metadata.resource_version = str(rev)
                    return StoredObject(info, new, rev, key=key)
                write = lambda new=new, rv=current.rv: self.store.update(  # noqa: E731
                    key, encode_for_store(new), expected_revision=rv)
                rev = await (write() if subresource else self._hooked(info, new, current.msg, write))
            except store_errors.RevisionConflict:
                if retry_conflicts or from_cache:
                    continue
                raise errors.Conflict(info.resource, name, errors.STALE, group=info.group) from None
            except store_errors.KeyNotFound:
                raise errors.NotFound(info.resource, name, group=info.group) from None
            except store_errors.StoreError as exc:
                raise _translate(info, name, exc) from exc
            return self._written(info, key, new, rev, status_only=subresource == "status")
        raise errors.Conflict(info.resource, name, "too many concurrent writers; try again", group=info.group)

    async def delete(
        self, info: ResourceInfo, namespace: str, name: str, opts: DeleteOptions
    ) -> tuple[StoredObject, bool]:
        """Deletes, or starts a graceful deletion. Returns the object and
        whether it is gone (False: it carries deletionTimestamp now)."""
        key = info.key(namespace, name)
        async for _ in _attempts():
            current = await self.get(info, namespace, name)
            meta = current.msg.metadata
            if opts.precondition_uid is not None and opts.precondition_uid != meta.uid:
                raise errors.Conflict(
                    info.resource, name,
                    f"Precondition failed: UID in precondition: {opts.precondition_uid}, UID in object meta: {meta.uid}",
                    group=info.group,
                )
            if opts.precondition_rv is not None and opts.precondition_rv != str(current.rv):
                raise errors.Conflict(
                    info.resource, name,
                    f"Precondition failed: ResourceVersion in precondition: {opts.precondition_rv}, "
                    f"ResourceVersion in object meta: {current.rv}",
                    group=info.group,
                )
            graceful = self._graceful_deletion(info, current, opts)
            if graceful is None:
                if opts.dry_run:
                    return current, True
                try:
                    _, rev = await self.store.delete(key, expected_revision=current.rv)
                except store_errors.RevisionConflict:
                    continue
                except store_errors.KeyNotFound:
                    raise errors.NotFound(info.resource, name, group=info.group) from None
                except store_errors.StoreError as exc:
                    raise _translate(info, name, exc) from exc
                await self._deleted(info, current.msg, rev)
                return current.with_rv(rev), True
            if opts.dry_run:
                return StoredObject(info, graceful, current.rv, key=key), False
            if encode_for_store(graceful) == encode_for_store(current.msg):
                return current, False
            try:
                rev = await self.store.update(key, encode_for_store(graceful), expected_revision=current.rv)
            except store_errors.RevisionConflict:
                continue
            except store_errors.StoreError as exc:
                raise _translate(info, name, exc) from exc
            if info.kind == "Namespace":
                self._terminating[name] = meta.uid
            return self._written(info, key, graceful, rev), False
        raise errors.Conflict(info.resource, name, "too many concurrent writers; try again", group=info.group)

    # --- helpers -----------------------------------------------------------

    async def _write_new(self, info: ResourceInfo, msg: Any, create: Callable[[], Awaitable[int]]) -> int:
        rev: int = await _store_call(info, msg.metadata.name, self._hooked(info, msg, None, create))
        return rev

    async def _hooked(self, info: ResourceInfo, new: Any, old: Any | None,
                      write: Callable[[], Awaitable[int]]) -> int:
        """The store write wrapped in the kind's WriteHook, when it has one."""
        hook = self.hooks.get(info.kind)
        if hook is None:
            return await write()
        token = await hook.before_write(new, old)
        try:
            rev = await write()
        except BaseException:
            await hook.after_write(token, ok=False)
            raise
        await hook.after_write(token, ok=True)
        return rev

    async def _deleted(self, info: ResourceInfo, old: Any, rev: int) -> None:
        self.caches[info].note_write(old.metadata.namespace, rev)
        hook = self.hooks.get(info.kind)
        if hook is not None:
            await hook.after_delete(old)

    def _graceful_deletion(self, info: ResourceInfo, current: StoredObject, opts: DeleteOptions) -> Any | None:
        """The object with deletionTimestamp set when it must linger, else None."""
        msg = current.msg
        meta = msg.metadata
        grace: int | None = None
        if info.kind == "Pod":
            # A pod on a node lingers for its grace period so the agent can stop
            # it; one that never reached a node goes at once.
            default = msg.spec.termination_grace_period_seconds if msg.spec.HasField("termination_grace_period_seconds") else 30
            grace = opts.grace_period_seconds if opts.grace_period_seconds is not None else default
            grace = max(grace, 0)
            if not msg.spec.node_name or grace == 0 or msg.status.phase in ("Succeeded", "Failed"):
                grace = None
        finalizers = gc_finalizers(info, list(meta.finalizers), opts.propagation_policy)
        lingers = grace is not None or bool(finalizers) or (
            info.kind == "Namespace" and bool(msg.spec.finalizers))
        if not lingers:
            return None
        new = current.copy_msg()
        nm = new.metadata
        if finalizers != list(nm.finalizers):
            nm.ClearField("finalizers")
            nm.finalizers.extend(finalizers)
        now = self.now().replace(microsecond=0)
        if grace is not None:
            deadline = now + _dt.timedelta(seconds=grace)
            if not nm.HasField("deletion_timestamp") or nm.deletion_grace_period_seconds > grace:
                nm.deletion_timestamp.FromDatetime(deadline)
                nm.deletion_grace_period_seconds = grace
        else:
            # Nothing to wait for but finalizers: a pod already counting down
            # its grace period is cut short (an agent's grace-0 delete), so
            # that it goes as soon as the last finalizer does.
            shortened = info.kind == "Pod" and nm.deletion_grace_period_seconds != 0
            if not nm.HasField("deletion_timestamp") or shortened:
                nm.deletion_timestamp.FromDatetime(now)
            nm.deletion_grace_period_seconds = 0
        if info.kind == "Namespace":
            new.status.phase = "Terminating"
        return new

    def _finalized(self, info: ResourceInfo, new: Any) -> bool:
        """An update that clears the last finalizer of a deleted object removes it."""
        meta = new.metadata
        if not meta.HasField("deletion_timestamp") or meta.finalizers:
            return False
        if info.kind == "Pod":
            # A pod goes once its agent has deleted it with grace 0 (or it
            # never needed a grace period) and no finalizer holds it.
            return meta.deletion_grace_period_seconds == 0
        if info.kind == "Namespace":
            return not list(new.spec.finalizers)
        return True

    def _written(self, info: ResourceInfo, key: str, msg: Any, rev: int, *, status_only: bool = False) -> StoredObject:
        msg.metadata.resource_version = str(rev)
        obj = StoredObject(info, msg, rev, key=key)
        self.caches[info].remember_write(obj, status_only=status_only)
        return obj

    async def _check_namespace(self, namespace: str) -> None:
        if not namespace:
            raise errors.BadRequest("a namespace is required for this resource")
        ns = self.caches[NAMESPACES].get(NAMESPACES.key("", namespace))
        if ns is None:
            kv = await _store_call(NAMESPACES, namespace, self.store.get(NAMESPACES.key("", namespace)))
            if kv is None:
                raise errors.NotFound("namespaces", namespace)
            ns = decode_from_store(NAMESPACES, NAMESPACES.key("", namespace), kv.value, kv.mod_revision)
        if ns.msg.metadata.HasField("deletion_timestamp") or (
                self._terminating.get(namespace) == ns.msg.metadata.uid):
            raise errors.APIError(
                f"unable to create new content in namespace {namespace} because it is being terminated",
                403, "Forbidden", name=namespace, kind="namespaces",
            )


def gc_finalizers(info: ResourceInfo, finalizers: list[str], policy: str) -> list[str]:
    """The finalizers a DELETE with `policy` leaves on the object (Kubernetes'
    deletionFinalizersForGarbageCollection).

    Orphan puts `orphan`, Foreground puts `foregroundDeletion` (each drops the
    other); no policy keeps whichever is there; Background drops both.
    Namespaces are emptied by their own controller and take neither.
    """
    if info.kind == "Namespace":
        return finalizers
    orphan = policy == "Orphan" or (not policy and ORPHAN_FINALIZER in finalizers)
    foreground = policy == "Foreground" or (not policy and FOREGROUND_FINALIZER in finalizers)
    kept = [f for f in finalizers if f not in (ORPHAN_FINALIZER, FOREGROUND_FINALIZER)]
    if orphan:
        kept.append(ORPHAN_FINALIZER)
    if foreground:
        kept.append(FOREGROUND_FINALIZER)
    if set(kept) == set(finalizers):
        return finalizers
    return kept


def _namespace_defaults(msg: Any) -> None:
    if not msg.spec.finalizers:
        msg.spec.finalizers.append("kubernetes")
    msg.status.phase = "Active"


async def _create(store: Store, key: str, msg: Any) -> int:
    return await store.create(key, encode_for_store(msg))  # encoded after the hook filled msg


async def _attempts() -> AsyncIterator[int]:
    """Attempt numbers until the retry deadline; after a few quick retries,
    back off a little (with jitter) so that many writers of one key spread out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + UPDATE_RETRY_DEADLINE_S
    attempt = 0
    while loop.time() < deadline:
        if attempt >= 3:
            await asyncio.sleep(random.uniform(0, min(0.001 * 2**attempt, 0.1)))
        yield attempt
        attempt += 1


def parse_resource_version(text: str, *, field: str = "resourceVersion") -> int:
    """A resourceVersion is etcd's revision: a non-negative decimal integer."""
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise errors.BadRequest(f'invalid {field} "{text}": must be a non-negative integer')
    return int(text)


def _translate(info: ResourceInfo, name: str, exc: store_errors.StoreError) -> errors.APIError:
    if isinstance(exc, store_errors.KeyExists):
        return errors.AlreadyExists(info.resource, name, group=info.group)
    if isinstance(exc, store_errors.KeyNotFound):
        return errors.NotFound(info.resource, name, group=info.group)
    if isinstance(exc, store_errors.RevisionConflict):
        return errors.Conflict(info.resource, name, errors.STALE, group=info.group)
    if isinstance(exc, store_errors.Compacted):
        return errors.Gone(str(exc))
    if isinstance(exc, store_errors.TooLarge):
        return errors.TooLarge(f"Request entity too large: {exc}")
    if isinstance(exc, store_errors.Unavailable):
        return errors.ServiceUnavailable(f"etcd is unavailable: {exc}")
    return errors.InternalError(str(exc))


async def _store_call(info: ResourceInfo, name: str, aw: Awaitable[Any]) -> Any:
    try:
        return await aw
    except store_errors.StoreError as exc:
        raise _translate(info, name, exc) from exc
