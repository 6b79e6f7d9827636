"""`flotctl lab down` removes the lab directory even when pods' memory emptyDirs
(tmpfs mounts the agents made under their state dirs) are still mounted: the
containers going does not undo those mounts, and rmtree alone fails on them.
A real tmpfs in the test's own tmp dir; unmounted at the end whatever happens."""

from __future__ import annotations

import subprocess
from pathlib import Path

from deploy import lab
from node_agent.pods.volumes import mounts_under


def test_lab_down_unmounts_memory_empty_dirs(tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"
    ram = lab_dir / "agents" / "n1" / "pods" / "some-uid" / "volumes" / "ram"
    ram.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(ram)], check=True)
    try:
        (ram / "data").write_text("in memory\n")
        said: list[str] = []
        assert lab.down(lab_dir, said.append) == 0
        assert not lab_dir.exists()
        assert f"unmounted {ram}" in said and said[-1] == "lab down: no lab process is left"
    finally:
        for point in mounts_under(tmp_path):
            subprocess.run(["umount", "-l", point], capture_output=True)
    assert mounts_under(tmp_path) == []
