"""`flotctl lab`: the local lab on this machine.

Today the lab is the control plane only: a three-member etcd cluster on
loopback and one `flotilla-master` against it, both in the background, with
their PIDs and logs in the lab directory. Hosts in network namespaces, node
agents and proxies join it with the node-agent issue.

`lab down` stops exactly the processes `lab up` recorded (checking each PID
is still what it started) and removes the lab directory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

LAB_DIR = Path(os.environ.get("FLOTILLA_LAB_DIR", str(Path.home() / ".flotilla" / "lab")))
ETCD_BASE_PORT = 2379


def _endpoints(base_port: int) -> str:
    # deploy/etcd_cluster.py's scheme: member i serves clients on base + 10*i.
    return ",".join(f"127.0.0.1:{base_port + 10 * i}" for i in range(3))


def add_commands(sub: Any) -> None:
    lab = sub.add_parser("lab", help="the local lab (etcd + master on this machine)")
    lab_sub = lab.add_subparsers(dest="lab_command", required=True)
    up = lab_sub.add_parser("up", help="start etcd and the master")
    up.add_argument("--rest-port", type=int, default=6443)
    up.add_argument("--grpc-port", type=int, default=6444)
    up.add_argument("--etcd-base-port", type=int, default=ETCD_BASE_PORT,
                    help="first etcd client port; members use base, base+10, base+20")
    up.set_defaults(fn=cmd_up)
    lab_sub.add_parser("down", help="stop everything the lab started").set_defaults(fn=cmd_down)
    lab_sub.add_parser("status", help="what runs").set_defaults(fn=cmd_status)


def _step(text: str) -> None:
    print(f"==> {text}", flush=True)


def _etcd(*args: str) -> int:
    return subprocess.call([sys.executable, "-m", "deploy.etcd_cluster", *args, "--data-dir", str(LAB_DIR / "etcd")])


def _master_pid() -> int | None:
    try:
        pid = int((LAB_DIR / "master.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return None
    return pid if b"master.main" in cmdline else None


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def cmd_up(args: argparse.Namespace) -> int:
    LAB_DIR.mkdir(parents=True, exist_ok=True)
    endpoints = _endpoints(args.etcd_base_port)
    _step(f"etcd: three members on {endpoints} (data in {LAB_DIR / 'etcd'})")
    if _etcd("start", "--base-port", str(args.etcd_base_port)) != 0:
        return 1
    kubeconfig = LAB_DIR.parent / "kubeconfig"
    if _master_pid() is None:
        _step(f"master: REST :{args.rest_port}, gRPC :{args.grpc_port} (log {LAB_DIR / 'master.log'})")
        log = open(LAB_DIR / "master.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            [sys.executable, "-m", "master.main", "--etcd-endpoints", endpoints,
             "--rest-port", str(args.rest_port), "--grpc-port", str(args.grpc_port),
             "--kubeconfig-out", str(kubeconfig)],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        (LAB_DIR / "master.pid").write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + 30
        while not _ready(f"http://127.0.0.1:{args.rest_port}/readyz"):
            if proc.poll() is not None or time.monotonic() > deadline:
                print(f"master did not become ready; see {LAB_DIR / 'master.log'}", file=sys.stderr)
                return 1
            time.sleep(0.2)
    else:
        _step("master: already running")
    _step("ready")
    print(f"\n  export KUBECONFIG={kubeconfig}\n  kubectl get namespaces\n\n"
          "Node agents and the demo app arrive with the node-agent issue; `flotctl lab down` stops it all.")
    return 0


def cmd_down(_: argparse.Namespace) -> int:
    pid = _master_pid()
    if pid is not None:
        _step(f"master: stopping pid {pid}")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _master_pid() is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        if _master_pid() is not None:
            os.kill(pid, signal.SIGKILL)
    if (LAB_DIR / "etcd").exists():
        _step("etcd: stopping")
        _etcd("stop")
    if LAB_DIR.exists():
        shutil.rmtree(LAB_DIR)
        _step(f"removed {LAB_DIR}")
    _step("lab down: no lab process is left")
    return 0


def cmd_status(_: argparse.Namespace) -> int:
    pid = _master_pid()
    print(f"master: {'running, pid ' + str(pid) if pid else 'stopped'}")
    if (LAB_DIR / "etcd").exists():
        return _etcd("status") or (0 if pid else 1)
    print("etcd: not started")
    return 1
