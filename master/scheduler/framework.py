"""The scheduler framework: plugin interfaces, statuses, score normalisation.

In shape this is Kubernetes' scheduling framework cut down to the extension
points Flotilla uses: a filter plugin says whether a pod may run on a node
(a `Status` with Kubernetes' reason strings), a score plugin ranks the
nodes that passed (raw score, then `normalize` to 0-100, then its weight).
Both may compute per-cycle state once in `prepare` (Kubernetes' PreFilter /
PreScore) from the immutable `Snapshot`. Plugins are pure: they must not do
I/O, keep state between cycles, or touch the pod or node objects.

Who does the rest: algorithm.py runs the plugins and picks a node,
message.py words the failure, scheduler.py does the I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from master.scheduler.snapshot import NodeInfo, PodInfo, Snapshot

MAX_NODE_SCORE = 100


class Code(enum.Enum):
    SUCCESS = "Success"
    # Might fit after something changes on the node (preemption could help).
    UNSCHEDULABLE = "Unschedulable"
    # Nothing that happens to the node's pods will help (taints, labels, names).
    UNRESOLVABLE = "UnschedulableAndUnresolvable"


@dataclass(frozen=True, slots=True)
class Status:
    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.code is Code.SUCCESS

    @classmethod
    def unschedulable(cls, *reasons: str) -> Status:
        return cls(Code.UNSCHEDULABLE, reasons)

    @classmethod
    def unresolvable(cls, *reasons: str) -> Status:
        return cls(Code.UNRESOLVABLE, reasons)


SUCCESS = Status()


class _Skip:
    """What `prepare` returns when the plugin has nothing to check for this pod."""

    def __repr__(self) -> str:
        return "SKIP"


# A filter that skips passes every node; a scorer that skips gives every node 0
# (what it would have computed anyway), and neither is called per node.
SKIP: Any = _Skip()


class FilterPlugin:
    """Decides, per node, whether the pod may run there."""

    name: ClassVar[str] = ""

    def prepare(self, pod: PodInfo, snapshot: Snapshot) -> Any:
        """Per-cycle state shared by every `filter` call of this cycle (or SKIP)."""
        return None

    def filter(self, state: Any, pod: PodInfo, node: NodeInfo) -> Status:
        """SUCCESS, or a Status with Kubernetes' reason(s)."""
        raise NotImplementedError


class ScorePlugin:
    """Ranks feasible nodes; `normalize` maps raw scores onto 0..MAX_NODE_SCORE."""

    name: ClassVar[str] = ""
    weight: ClassVar[int] = 1

    def prepare(self, pod: PodInfo, snapshot: Snapshot, feasible: Sequence[NodeInfo]) -> Any:
        """Per-cycle state shared by every `score` call of this cycle (or SKIP)."""
        return None

    def score(self, state: Any, pod: PodInfo, node: NodeInfo) -> int:
        raise NotImplementedError

    def normalize(self, state: Any, scores: Mapping[str, int]) -> dict[str, int]:
        return dict(scores)


def normalize_by_max(scores: Mapping[str, int], *, reverse: bool = False) -> dict[str, int]:
    """Kubernetes' DefaultNormalizeScore: scale so the best raw score is 100.

    With `reverse`, a high raw score is bad (a count of intolerable taints):
    the node with the highest raw score gets 0. All zeros: every node gets
    100 when reversed, 0 otherwise.
    """
    top = max(scores.values(), default=0)
    if top == 0:
        return {n: MAX_NODE_SCORE if reverse else 0 for n in scores}
    out = {}
    for n, s in scores.items():
        v = MAX_NODE_SCORE * s // top
        out[n] = MAX_NODE_SCORE - v if reverse else v
    return out


def normalize_min_max(scores: Mapping[str, int]) -> dict[str, int]:
    """Scale [min, max] onto [0, 100] (inter-pod affinity sums may be negative).

    All equal: every node gets 0, as Kubernetes' InterPodAffinity does.
    """
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    if hi == lo:
        return {n: 0 for n in scores}
    return {n: MAX_NODE_SCORE * (s - lo) // (hi - lo) for n, s in scores.items()}


@dataclass(frozen=True)
class Profile:
    """An ordered set of filters and weighted scorers (a scheduling profile)."""

    filters: tuple[FilterPlugin, ...]
    scorers: tuple[ScorePlugin, ...]

    @property
    def filter_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.filters)

    @property
    def score_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.scorers)
