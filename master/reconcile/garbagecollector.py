"""Garbage collection by ownerReferences: the decisions, given the graph.

The garbage collector controller (master/controllers/garbagecollector.py)
keeps a uid -> object graph from one informer per kind and asks two
questions here:

* `plan_dependent`: an object with owners; is any owner still "solid"
  (exists and is not being deleted in the foreground)? If none is, delete
  it: in the foreground when it blocks an owner that waits for its
  dependents (blockOwnerDeletion), else with its own GC finalizer's policy,
  else in the background. The executor confirms an owner that looks absent
  with a live read first, so an informer that lags never costs a dependent.
* `plan_owner`: an object being deleted that carries `orphan` (take its uid
  out of every dependent's ownerReferences, then drop the finalizer) or
  `foregroundDeletion` (delete every dependent not yet being deleted,
  blocking ones first; drop the finalizer once no dependent that blocks
  owner deletion is left).

Pure: no I/O; views are plain data built by the controller.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"


class OwnerState(Enum):
    ABSENT = "absent"  # no object with this uid
    SOLID = "solid"  # exists, not waiting for its dependents
    WAITING = "waiting"  # being deleted with foregroundDeletion


@dataclass(frozen=True)
class Ref:
    """One ownerReference of a dependent."""

    uid: str
    block_owner_deletion: bool = False


@dataclass(frozen=True)
class DependentAction:
    delete: bool = False
    policy: str = ""  # "Background", "Foreground" or "Orphan"
    # Owners whose uid only looked absent; the executor re-reads them before deleting.
    verify: tuple[str, ...] = ()


def owner_state(exists: bool, *, deleting: bool, finalizers: Sequence[str]) -> OwnerState:
    if not exists:
        return OwnerState.ABSENT
    if deleting and FOREGROUND in finalizers:
        return OwnerState.WAITING
    return OwnerState.SOLID


def plan_dependent(refs: Sequence[Ref], states: Mapping[str, OwnerState], *,
                   deleting: bool, finalizers: Sequence[str] = ()) -> DependentAction:
    """What to do with a dependent, from the state of each of its owners."""
    if not refs or deleting:
        return DependentAction()
    state = {r.uid: states.get(r.uid, OwnerState.ABSENT) for r in refs}
    if any(s is OwnerState.SOLID for s in state.values()):
        return DependentAction()
    absent = tuple(sorted(uid for uid, s in state.items() if s is OwnerState.ABSENT))
    blocks_waiting = any(r.block_owner_deletion and state[r.uid] is OwnerState.WAITING for r in refs)
    if blocks_waiting or FOREGROUND in finalizers:
        policy = "Foreground"
    elif ORPHAN in finalizers:
        policy = "Orphan"
    else:
        policy = "Background"
    return DependentAction(delete=True, policy=policy, verify=absent)


@dataclass(frozen=True)
class DependentView:
    key: str  # how the executor finds it again
    deleting: bool
    blocks_owner: bool  # its reference to this owner has blockOwnerDeletion


@dataclass(frozen=True)
class OwnerPlan:
    orphan: list[str] = field(default_factory=list)  # dependents to drop the owner's reference from
    delete: list[tuple[str, str]] = field(default_factory=list)  # (dependent key, policy)
    remove_finalizer: str = ""  # the finalizer to drop from the owner now


def plan_owner(*, deleting: bool, finalizers: Sequence[str],
               dependents: Iterable[DependentView]) -> OwnerPlan:
    """What an owner being deleted with a GC finalizer needs done."""
    deps = list(dependents)
    if not deleting:
        return OwnerPlan()
    if ORPHAN in finalizers:
        if deps:
            return OwnerPlan(orphan=sorted(d.key for d in deps))
        return OwnerPlan(remove_finalizer=ORPHAN)
    if FOREGROUND in finalizers:
        pending = [d for d in deps if not d.deleting]
        # Blocking dependents first (stable by key), each in the foreground too,
        # so that their own dependents go before them.
        pending.sort(key=lambda d: (not d.blocks_owner, d.key))
        delete = [(d.key, "Foreground" if d.blocks_owner else "Background") for d in pending]
        blocking_left = any(d.blocks_owner for d in deps)
        return OwnerPlan(delete=delete, remove_finalizer="" if blocking_left else FOREGROUND)
    return OwnerPlan()
