"""flotctl explain's pure parts: the annotation rendered as tables, errors worded as kubectl words them."""

from __future__ import annotations

import io
import json
import urllib.error
from email.message import Message
from typing import Any

import pytest

from flotctl.explain import _pod_name, _status_of, render

SCHEDULED: dict[str, Any] = {
    "v": 1, "result": "Scheduled", "node": "n2", "time": "2026-12-01T06:00:00Z", "nodes": 3, "evaluated": 3,
    "feasible": 2, "filters": ["NodeUnschedulable", "TaintToleration", "NodeResourcesFit"],
    "scores": [["NodeResourcesLeastAllocated", 1], ["SelectorSpread", 2]],
    "rows": [{"node": "n2", "failed": {}, "scores": [90, 100], "total": 290},
             {"node": "n3", "failed": {}, "scores": [80, 50], "total": 180},
             {"node": "n1", "failed": {"TaintToleration": "node(s) had untolerated taint {k: v}"},
              "scores": [], "total": 0}],
    "omitted": {"nodes": 0, "feasible": 0, "reasons": {}, "not_evaluated": 0}, "message": "",
}


def test_render_scheduled_lists_every_node_and_the_scores() -> None:
    out = render(SCHEDULED, "default/web-1")
    lines = out.splitlines()
    assert lines[0] == "Pod default/web-1: Scheduled on n2 at 2026-12-01T06:00:00Z"
    table = lines[lines.index("NODE  RESULT    FAILED FILTERS") + 1:]
    by_node = {ln.split()[0]: ln for ln in table[:3]}
    assert "chosen" in by_node["n2"] and "passed all 3" in by_node["n2"]
    assert "filtered" in by_node["n1"] and "TaintToleration: node(s) had untolerated taint {k: v}" in by_node["n1"]
    assert "LeastAllocated(x1)" in out and "SelectorSpread(x2)" in out and "TOTAL" in out
    score_rows = [ln.split() for ln in lines if ln.startswith(("n2 ", "n3 ")) and ln.split()[-1].isdigit()]
    assert ["n2", "90", "100", "290"] in score_rows and ["n3", "80", "50", "180"] in score_rows


def test_render_unschedulable_shows_the_message_and_what_was_left_out() -> None:
    doc = dict(SCHEDULED, result="Unschedulable", node=None, feasible=0, message="0/30 nodes are available: ...",
               nodes=30, rows=[SCHEDULED["rows"][2]],
               omitted={"nodes": 29, "feasible": 0, "reasons": {"Insufficient cpu": 29}, "not_evaluated": 0})
    out = render(doc, "default/big")
    assert "Unschedulable at" in out and "Message: 0/30 nodes are available: ..." in out
    assert "... and 29 more node(s) not listed (0 feasible; 29 Insufficient cpu)" in out
    assert "Scores" not in out  # no feasible node, no score table


@pytest.mark.parametrize(("target", "name"), [("pod/web", "web"), ("pods/web", "web"), ("po/web", "web"),
                                              ("web", "web")])
def test_pod_name(target: str, name: str) -> None:
    assert _pod_name(target) == name


def test_pod_name_rejects_other_kinds() -> None:
    with pytest.raises(SystemExit, match="only pods"):
        _pod_name("deploy/web")


def _http_error(code: int, phrase: str, body: bytes) -> urllib.error.HTTPError:
    return urllib.error.HTTPError("http://x", code, phrase, Message(), io.BytesIO(body))


@pytest.mark.parametrize(("body", "want"), [
    (json.dumps({"kind": "Status", "reason": "NotFound", "message": 'pods "nope" not found'}).encode(),
     ("NotFound", 'pods "nope" not found')),
    (b"<html>not a Status</html>", ("Not Found", "Not Found")),
    (json.dumps({"kind": "Status"}).encode(), ("Not Found", "Not Found")),
])
def test_status_of_uses_the_status_reason_like_kubectl(body: bytes, want: tuple[str, str]) -> None:
    assert _status_of(_http_error(404, "Not Found", body)) == want
