"""bench/proxy.py still runs: its rule-programming table at the smallest size,
with real iptables-legacy in a namespace of its own, and nothing left behind.

No figure is asserted (timings are never pass/fail on this shared machine);
the latency part (a master, etcd and a proxy) is left to full bench runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _bench_namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.startswith("flt-bench-")}


def test_programming_table_at_100_services() -> None:
    before = _bench_namespaces()  # other engineers' benches may be running
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "proxy.py"), "--sizes", "100", "--endpoints", "1",
         "--latency-sizes", ""],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = [ln for ln in proc.stdout.splitlines() if ln.startswith("| 100 | 1 |")]
    assert len(rows) == 1, proc.stdout
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    # 100 one-endpoint services: no chain of their own (the dispatch rule DNATs), 6 shared chains;
    # rules: 100 dispatch + the nodePort jump + 5 masquerade/mark + the hairpin jump and 254 hairpin rules
    assert cells[2] == "6" and cells[3] == "361", rows
    assert _bench_namespaces() <= before
