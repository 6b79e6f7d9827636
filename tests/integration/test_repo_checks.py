"""The repository's own rules, checked on every `make test`: lint, types,
import contracts (pure modules do no I/O; agents and proxies use only
master.client) and generated protobuf code that matches its .proto files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

CHECKS = {
    "ruff": [str(BIN / "ruff"), "check", "."],
    "mypy": [str(BIN / "mypy"), "master", "flotctl", "deploy", "node_agent", "protos/codec.py"],
    "import-contracts": [str(BIN / "lint-imports")],
    "verify-protos": ["./scripts/verify-protos.sh"],
}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_repository_check(name: str) -> None:
    out = subprocess.run(CHECKS[name], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{name} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
