"""`flotctl explain pod/NAME [-n NS] [-o table|json]`: why a pod went where it went.

Reads the pod over the REST API and prints the scheduler's explanation
annotation (scheduler.flotilla.dev/explanation, written by master/scheduler;
its format is documented in master/scheduler/explanation.py) as two tables:
every listed node with the filters it failed and their reasons, then the
score of every plugin on every feasible node with the weighted total. It
only reads; it never imports the master's internals (the annotation's JSON
is the contract), so it works against any master, local or remote.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
from typing import Any

ANNOTATION = "scheduler.flotilla.dev/explanation"
_SHORT = {"NodeResourcesLeastAllocated": "LeastAllocated",
          "NodeResourcesBalancedAllocation": "BalancedAllocation"}


def add_commands(sub: Any) -> None:
    p = sub.add_parser("explain", help="show the scheduler's decision for a pod, node by node")
    p.add_argument("target", help="pod/NAME (or NAME)")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")
    p.set_defaults(fn=cmd_explain)


def _pod_name(target: str) -> str:
    kind, sep, name = target.partition("/")
    if not sep:
        return target
    if kind not in ("pod", "pods", "po"):
        raise SystemExit(f"flotctl explain: only pods are explained, not {kind!r}")
    return name


def cmd_explain(args: argparse.Namespace) -> int:
    from flotctl.main import http_json, kubeconfig_path, server_url

    name = _pod_name(args.target)
    ns = args.namespace
    url = (f"{server_url(kubeconfig_path(args.kubeconfig))}/api/v1/namespaces/"
           f"{urllib.parse.quote(ns)}/pods/{urllib.parse.quote(name)}")
    try:
        pod = http_json(url)
    except urllib.error.HTTPError as exc:
        reason, message = _status_of(exc)
        print(f"Error from server ({reason}): {message}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"flotctl explain: cannot reach the master: {exc}", file=sys.stderr)
        return 1
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
    if not raw:
        node = (pod.get("spec") or {}).get("nodeName")
        why = f"bound to {node} without the scheduler" if node else "not attempted by the scheduler yet"
        print(f"pod {ns}/{name} has no scheduling explanation ({why})", file=sys.stderr)
        return 1
    try:
        doc = json.loads(raw)
    except ValueError:
        print(f"pod {ns}/{name}: the explanation annotation is not JSON", file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps(doc, indent=2))
    else:
        print(render(doc, f"{ns}/{name}"), end="")
    return 0


def _status_of(exc: urllib.error.HTTPError) -> tuple[str, str]:
    """The Status body's reason and message, as kubectl prints them
    ("Error from server (NotFound): pods "x" not found"); the HTTP reason
    phrase when the body is not a Status."""
    try:
        status = json.loads(exc.read())
        return str(status.get("reason") or exc.reason), str(status.get("message") or exc.reason)
    except (ValueError, AttributeError, OSError):
        return str(exc.reason), str(exc.reason)


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n"
                   for r in rows)


def render(doc: dict[str, Any], pod: str) -> str:
    """The explanation as text: a header, the filter table, the score table."""
    chosen = doc.get("node")
    out = []
    if doc.get("result") == "Scheduled":
        out.append(f"Pod {pod}: Scheduled on {chosen} at {doc.get('time')}\n")
    else:
        out.append(f"Pod {pod}: Unschedulable at {doc.get('time')}\n")
        out.append(f"Message: {doc.get('message')}\n")
    filters = doc.get("filters", [])
    total, evaluated = doc.get("nodes", 0), doc.get("evaluated", doc.get("nodes", 0))
    sampled = f", {evaluated} evaluated" if evaluated != total else ""
    out.append(f"{total} node(s){sampled}, {doc.get('feasible', 0)} feasible; "
               f"filters in order: {', '.join(filters)}\n\n")
    rows = [["NODE", "RESULT", "FAILED FILTERS"]]
    for r in doc.get("rows", []):
        failed = r.get("failed") or {}
        result = "chosen" if r["node"] == chosen else ("feasible" if not failed else "filtered")
        reasons = "; ".join(f"{f}: {why}" for f, why in failed.items()) or f"passed all {len(filters)}"
        rows.append([r["node"], result, reasons])
    out.append(_table(rows))
    omitted = doc.get("omitted") or {}
    if omitted.get("nodes"):
        hist = ", ".join(f"{n} {why}" for why, n in (omitted.get("reasons") or {}).items())
        out.append(f"... and {omitted['nodes']} more node(s) not listed "
                   f"({omitted.get('feasible', 0)} feasible{'; ' + hist if hist else ''})\n")
    if omitted.get("not_evaluated"):
        out.append(f"... and {omitted['not_evaluated']} node(s) not evaluated: enough feasible nodes "
                   "were found first (percentageOfNodesToScore)\n")
    scores = doc.get("scores", [])
    feasible = [r for r in doc.get("rows", []) if not r.get("failed")]
    if feasible and scores:
        head = ["NODE"] + [f"{_SHORT.get(n, n)}(x{w})" for n, w in scores] + ["TOTAL"]
        srows = [head] + [[r["node"]] + [str(s) for s in r.get("scores", [])] + [str(r.get("total", 0))]
                          for r in feasible]
        out.append("\nScores (0-100 per plugin; TOTAL = sum of weight x score; ties broken at random):\n")
        out.append(_table(srows))
    return "".join(out)
