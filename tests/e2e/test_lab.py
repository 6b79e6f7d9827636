"""The local lab end to end, as a user runs it: `flotctl lab up`, kubectl
against it, `flotctl etcd status`, `flotctl lab down` -- and afterwards no
process of the lab is left.

Runs the real commands as subprocesses on free ports with a private lab
directory, so it never touches a lab someone already has on the default
ports.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from deploy.etcd_cluster import free_port_block
from tests.integration.harness import REPO, free_port


def _run(args: list[str], env: dict[str, str], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def _pids_of(lab_dir: Path) -> list[int]:
    """Every live process whose command line mentions the lab directory."""
    pids = []
    needle = str(lab_dir).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def test_lab_up_kubectl_down_leaves_nothing(tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"
    env = dict(os.environ, FLOTILLA_LAB_DIR=str(lab_dir), HOME=str(tmp_path))
    base, rest, grpc_port = free_port_block(), free_port(), free_port()
    flotctl = [sys.executable, "-m", "flotctl.main"]
    kubeconfig = tmp_path / "kubeconfig"
    try:
        up = _run(flotctl + ["lab", "up", "--nodes", "0", "--etcd-base-port", str(base), "--rest-port", str(rest),
                             "--grpc-port", str(grpc_port)], env)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "export KUBECONFIG=" in up.stdout
        master_pid = int((lab_dir / "master.pid").read_text())
        etcd_pids = [int(p) for p in (lab_dir / "etcd" / "pids").read_text().split()]
        assert len(etcd_pids) == 3

        kenv = dict(env, KUBECONFIG=str(kubeconfig))
        ns = _run(["kubectl", "get", "namespaces"], kenv, timeout=60)
        assert ns.returncode == 0, ns.stderr
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            assert name in ns.stdout
        created = _run(["kubectl", "create", "namespace", "lab-e2e"], kenv, timeout=60)
        assert created.returncode == 0, created.stderr

        status = _run(flotctl + ["etcd", "status", "--etcd-endpoints",
                                 ",".join(f"127.0.0.1:{base + 10 * i}" for i in range(3))], env)
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.count("healthy") >= 3 and "leader" in status.stdout

        version = _run(flotctl + ["--kubeconfig", str(kubeconfig), "version"], env)
        assert version.returncode == 0 and "v1.31" in version.stdout

        lab_status = _run(flotctl + ["lab", "status"], env)
        assert lab_status.returncode == 0, lab_status.stdout + lab_status.stderr
        assert f"pid {master_pid}" in lab_status.stdout
    finally:
        down = _run(flotctl + ["lab", "down"], env)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "no lab process is left" in down.stdout
    for pid in [master_pid, *etcd_pids]:
        assert not Path(f"/proc/{pid}").exists() or b"zombie" in Path(f"/proc/{pid}/status").read_bytes().lower()
    assert _pids_of(lab_dir) == []
    assert not lab_dir.exists()
