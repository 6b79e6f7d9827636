"""bench/scheduler.py --quick runs end to end and leaves nothing behind.

No figure is asserted (timings are never pass/fail on a shared machine):
the test proves the benchmark still runs against today's API and prints
its tables.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_scheduler_bench_quick(tmp_path: Path) -> None:
    out_json = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "bench/scheduler.py", "--quick", "--json", str(out_json)],
                          cwd=REPO, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "## Flotilla scheduler benchmark" in proc.stdout
    assert "### Time per plugin" in proc.stdout
    (result,) = json.loads(out_json.read_text())
    assert result["nodes"] == 20 and result["pods"] == 100
    assert result["bound_per_s"] > 0 and result["decisions_per_s"] > 0
    assert "filter NodeResourcesFit" in result["plugin_ms"]
