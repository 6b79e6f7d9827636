"""Kubernetes' aggregate FailedScheduling message.

Chosen format (kube-scheduler 1.27-1.33, FitError.Error plus
DefaultPreemption's PostFilter message):

    0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: },
    2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for
    scheduling, 2 No preemption victims found for incoming pod.

(one line). Each node contributes the reasons of the first filter it fails;
"N reason" strings are sorted as strings and joined by ", ". Flotilla does
not preempt, so the preemption part says what Kubernetes says when it finds
nothing to evict: nodes failing an UnschedulableAndUnresolvable filter are
"not helpful", the rest have "no victims". Pure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from master.scheduler.framework import Code, Status

NO_NODES = "no nodes available to schedule pods"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"


def _histogram(counts: Counter[str]) -> str:
    return ", ".join(sorted(f"{n} {reason}" for reason, n in counts.items()))


def compute_fit_message(total_nodes: int, failures: Iterable[Status | None]) -> str:
    if total_nodes == 0:
        return NO_NODES
    reasons: Counter[str] = Counter()
    preemption: Counter[str] = Counter()
    for status in failures:
        if status is None:
            continue
        for r in status.reasons:
            reasons[r] += 1
        preemption[NOT_HELPFUL if status.code is Code.UNRESOLVABLE else NO_VICTIMS] += 1
    head = f"0/{total_nodes} nodes are available: {_histogram(reasons)}."
    tail = f" preemption: 0/{total_nodes} nodes are available: {_histogram(preemption)}."
    return head + tail
