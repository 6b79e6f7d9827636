"""DefaultTolerationSeconds: every new pod tolerates a not-ready or unreachable
node for a while before the node lifecycle controller evicts it.

Kubernetes' admission plugin of that name adds, to a pod that has no
toleration for the taint already,
`{key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute,
tolerationSeconds: 300}` and the same for `node.kubernetes.io/unreachable`.
A toleration counts as "already there" when its key is the taint's key or
empty and its effect is NoExecute or empty (the plugin's own test).

The registry calls `add_default_tolerations` on pod create with the seconds
from APIServerConfig (300 by default; the lab sets it short). Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
DEFAULT_TOLERATION_SECONDS = 300


def add_default_tolerations(pod: Any, seconds: int) -> None:
    """Add the two NoExecute tolerations the pod lacks (in place)."""
    for key in (NOT_READY_TAINT, UNREACHABLE_TAINT):
        if any(_covers(t, key) for t in pod.spec.tolerations):
            continue
        pod.spec.tolerations.add(key=key, operator="Exists", effect="NoExecute",
                                 toleration_seconds=seconds)


def _covers(toleration: Any, key: str) -> bool:
    return toleration.key in (key, "") and toleration.effect in ("NoExecute", "")
