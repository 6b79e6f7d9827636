"""bench/churn.py still runs: a few rollout rounds on its own three-host lab, then
its table, and nothing of the lab left behind.

No figure is asserted but the ones that are correctness, not timing: every
rollout finished and every NodePort request was answered.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.labkit import docker_ready, leftovers

REPO = Path(__file__).resolve().parents[2]


def test_a_short_churn_soak(tmp_path: Path) -> None:
    api = docker_ready()
    out = tmp_path / "churn.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "churn.py"), "--seconds", "10", "--settle", "5",
                           "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "| NodePort requests not answered |" in proc.stdout, proc.stdout
    r = json.loads(out.read_text())
    assert r["rounds"] >= 1 and r["unfinished_rollouts"] == 0 and r["unanswered"] == 0, r
    lab = r["lab"]
    assert len(lab["nodes"]) == 3
    assert leftovers(lab["id"], Path(lab["dir"]), lab["nodes"], api, lab["subnet"]) == []
