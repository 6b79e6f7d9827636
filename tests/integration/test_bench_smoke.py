"""bench/api.py --quick runs end to end and cleans up after itself.

It starts a real etcd cluster and a master subprocess, so it lives here. No
figure is asserted (timings are never pass/fail, and this machine is
shared): the test proves that the benchmark still runs against today's API,
prints every table, writes its JSON, and leaves no process or temp dir behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEADINGS = (
    "## Flotilla apiserver benchmark",
    "### Single-object latency",
    "### Write throughput",
    "### LIST of",
    "### Watch fan-out",
    "### Master memory",
    "| figure | flotilla | baseline | target |",
)


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # the process ended while we looked
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def test_quick_bench_prints_every_table_and_cleans_up(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    # The bench's temp dir (etcd data, master log, kubeconfig) lands in scratch,
    # so "nothing left behind" can be checked exactly.
    env = {**os.environ, "TMPDIR": str(scratch)}
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "api.py"), "--quick", "--json", str(figures)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=150,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    for heading in HEADINGS:
        assert heading in proc.stdout, f"{heading!r} missing from:\n{proc.stdout}"

    doc = json.loads(figures.read_text())
    sections = {row["section"].split(" ")[0] for row in doc["rows"]}
    assert {"Single-object", "Write", "LIST", "Watch", "Master"} <= sections
    assert all(row["value"] for row in doc["rows"])

    assert list(scratch.iterdir()) == []
    assert _processes_mentioning(str(scratch)) == []
