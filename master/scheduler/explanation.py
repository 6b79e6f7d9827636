"""The decision, kept: a compact, bounded JSON document stored on the pod.

`render_explanation(decision, at=...)` turns a `Decision` into the value of
the pod annotation `scheduler.flotilla.dev/explanation` (the scheduler puts
it on the Binding, whose annotations the apiserver copies onto the pod, or
writes it beside PodScheduled=False). `flotctl explain` reads it; the format
is the contract between them:

    {"v": 1, "result": "Scheduled" | "Unschedulable", "node": "n2" | null,
     "time": "2026-12-01T06:00:00Z", "nodes": 3, "evaluated": 3, "feasible": 2,
     "filters": ["NodeUnschedulable", ...], "scores": [["NodeResourcesLeastAllocated", 1], ...],
     "rows": [{"node": "n2", "failed": {}, "scores": [87, 99, ...], "total": 412}, ...],
     "omitted": {"nodes": 0, "feasible": 0, "reasons": {}, "not_evaluated": 0},
     "message": "0/3 nodes are available: ..."}

"failed" maps each filter the node failed to its reasons ("; "-joined);
"scores" follow the "scores" plugin order (feasible nodes only). At most
`max_rows` nodes are listed (the chosen one, then the best feasible, then
the failing ones by name); the rest are counted in "omitted", with a
histogram of their first failure; "not_evaluated" counts the nodes the
search never reached (Kubernetes' percentageOfNodesToScore, large
clusters only). Pure.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from typing import Any

from master.scheduler.algorithm import Decision, NodeVerdict

ANNOTATION = "scheduler.flotilla.dev/explanation"
MAX_ROWS = 20


def _row(v: NodeVerdict, score_names: list[str]) -> dict[str, Any]:
    failed = {name: "; ".join(s.reasons) for name, s in v.failed}
    scores = [v.scores.get(n, 0) for n in score_names] if v.feasible else []
    return {"node": v.node, "failed": failed, "scores": scores, "total": v.total}


def _ordered(decision: Decision) -> list[NodeVerdict]:
    chosen = [v for v in decision.verdicts if v.node == decision.node]
    feasible = sorted((v for v in decision.verdicts if v.feasible and v.node != decision.node),
                      key=lambda v: (-v.total, v.node))
    failing = [v for v in decision.verdicts if not v.feasible]  # verdicts are in name order
    return chosen + feasible + failing


def render_explanation(decision: Decision, *, at: datetime, max_rows: int = MAX_ROWS) -> str:
    score_names = [n for n, _ in decision.score_weights]
    ordered = _ordered(decision)
    shown, rest = ordered[:max_rows], ordered[max_rows:]
    reasons: Counter[str] = Counter()
    for v in rest:
        first = v.first_failure()
        for r in (first.reasons if first else ()):
            reasons[r] += 1
    doc = {
        "v": 1,
        "result": "Scheduled" if decision.node else "Unschedulable",
        "node": decision.node,
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nodes": decision.nodes_total,
        "evaluated": len(decision.verdicts),
        "feasible": decision.feasible,
        "filters": list(decision.filter_names),
        "scores": [[n, w] for n, w in decision.score_weights],
        "rows": [_row(v, score_names) for v in shown],
        "omitted": {"nodes": len(rest), "feasible": sum(1 for v in rest if v.feasible),
                    "reasons": dict(sorted(reasons.items())),
                    "not_evaluated": decision.nodes_total - len(decision.verdicts)},
        "message": decision.message,
    }
    return json.dumps(doc, separators=(",", ":"))


def same_explanation(a: str, b: str) -> bool:
    """Equal apart from the time (so an unchanged verdict is not rewritten)."""
    try:
        da, db = json.loads(a), json.loads(b)
    except ValueError:
        return False
    if not isinstance(da, dict) or not isinstance(db, dict):
        return False
    da.pop("time", None)
    db.pop("time", None)
    return bool(da == db)
