"""Namespace deletion: what to delete in a Terminating namespace, the status
conditions Kubernetes shows while it empties, and when the `kubernetes`
finalizer may go.

The namespace controller (master/controllers/namespace.py) lists every
namespaced kind in the namespace and hands the objects here as
`ContentItem`s; `plan_content` says which to delete (those not already being
deleted) and what remains, `compute_conditions` turns that into the five
conditions `kubectl describe ns` prints (NamespaceDeletionDiscoveryFailure,
NamespaceDeletionGroupVersionParsingFailure, NamespaceDeletionContentFailure,
NamespaceContentRemaining, NamespaceFinalizersRemaining), and
`merge_conditions` keeps lastTransitionTime for conditions whose status did
not change.

Pure: no I/O.
"""

from __future__ import annotations

import datetime as _dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

FINALIZER = "kubernetes"
DISCOVERY = "NamespaceDeletionDiscoveryFailure"
PARSING = "NamespaceDeletionGroupVersionParsingFailure"
CONTENT_FAILURE = "NamespaceDeletionContentFailure"
CONTENT_REMAINING = "NamespaceContentRemaining"
FINALIZERS_REMAINING = "NamespaceFinalizersRemaining"
CONDITION_ORDER = (DISCOVERY, PARSING, CONTENT_FAILURE, CONTENT_REMAINING, FINALIZERS_REMAINING)


@dataclass(frozen=True)
class ContentItem:
    """One object found in the namespace."""

    resource: str  # group-qualified plural: "pods", "deployments.apps"
    name: str
    deleting: bool = False
    finalizers: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContentPlan:
    delete: list[ContentItem] = field(default_factory=list)
    remaining: dict[str, int] = field(default_factory=dict)  # resource -> objects left
    finalizers: dict[str, int] = field(default_factory=dict)  # finalizer -> objects holding it

    @property
    def empty(self) -> bool:
        return not self.remaining


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str
    message: str
    last_transition_time: _dt.datetime | None = None


def plan_content(items: Iterable[ContentItem]) -> ContentPlan:
    """Delete what is not being deleted yet; count what is still there."""
    delete: list[ContentItem] = []
    remaining: Counter[str] = Counter()
    finalizers: Counter[str] = Counter()
    for item in items:
        remaining[item.resource] += 1
        if not item.deleting:
            delete.append(item)
        for f in item.finalizers:
            finalizers[f] += 1
    return ContentPlan(delete, dict(remaining), dict(finalizers))


def compute_conditions(plan: ContentPlan, failures: Sequence[str]) -> list[Condition]:
    """Kubernetes' namespace deletion conditions for this pass (failures: delete errors)."""
    out = [
        Condition(DISCOVERY, "False", "ResourcesDiscovered", "All resources successfully discovered"),
        Condition(PARSING, "False", "ParsedGroupVersions", "All legacy kube types successfully parsed"),
    ]
    if failures:
        out.append(Condition(CONTENT_FAILURE, "True", "ContentDeletionFailed",
                             f"Failed to delete all resource types, {len(failures)} remaining: "
                             + ", ".join(failures)))
    else:
        out.append(Condition(CONTENT_FAILURE, "False", "ContentDeleted",
                             "All content successfully deleted, may be waiting on finalization"))
    if plan.remaining:
        parts = [f"{r} has {n} resource instances" for r, n in sorted(plan.remaining.items())]
        out.append(Condition(CONTENT_REMAINING, "True", "SomeResourcesRemain",
                             "Some resources are remaining: " + ", ".join(parts)))
    else:
        out.append(Condition(CONTENT_REMAINING, "False", "ContentRemoved", "All content successfully removed"))
    if plan.finalizers:
        parts = [f"{f} in {n} resource instances" for f, n in sorted(plan.finalizers.items())]
        out.append(Condition(FINALIZERS_REMAINING, "True", "SomeFinalizersRemain",
                             "Some content in the namespace has finalizers remaining: " + ", ".join(parts)))
    else:
        out.append(Condition(FINALIZERS_REMAINING, "False", "ContentHasNoFinalizers",
                             "All content-preserving finalizers finished"))
    return out


def merge_conditions(existing: Iterable[Condition], wanted: Iterable[Condition], *,
                     now: _dt.datetime) -> list[Condition]:
    """The wanted conditions, keeping lastTransitionTime where the status is unchanged."""
    old = {c.type: c for c in existing}
    out = []
    for c in wanted:
        prev = old.get(c.type)
        since = prev.last_transition_time if prev is not None and prev.status == c.status else now
        out.append(Condition(c.type, c.status, c.reason, c.message, since))
    return out


def without_finalizer(finalizers: Iterable[str]) -> list[str]:
    return [f for f in finalizers if f != FINALIZER]
