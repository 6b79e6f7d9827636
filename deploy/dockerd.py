"""Make sure the machine's dockerd is running; start it in the background when not.

Owns: the one decision "is dockerd up, and if not, start it" (LAB-NOTES: dockerd
starts fine as `dockerd > log 2>&1 &`). Several engineers and the lab share one
dockerd, so a file lock keeps two callers from starting two daemons, and the
daemon started here is left running for everyone (it is machine
infrastructure, like the kernel's bridge module, not a test's process).

Used by: the lab (`flotctl lab up`), e2e tests (tests/e2e/conftest.py), the agent.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path

DEFAULT_SOCKET = "/var/run/docker.sock"
LOCK_PATH = "/run/flotilla-dockerd.lock"
LOG_PATH = "/var/log/flotilla-dockerd.log"


class DockerdError(Exception):
    pass


def dockerd_responds(socket_path: str = DEFAULT_SOCKET, *, timeout_s: float = 2.0) -> bool:
    """True when the daemon answers `GET /_ping` on its unix socket."""
    import socket

    if not os.path.exists(socket_path):
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout_s)
            s.connect(socket_path)
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            head = s.recv(64)
            return head.startswith(b"HTTP/1.") and b" 200 " in head
    except OSError:
        return False


def ensure_dockerd(*, socket_path: str = DEFAULT_SOCKET, timeout_s: float = 60.0) -> int | None:
    """Return when dockerd answers; start it first if nothing does.

    Returns the PID of the daemon this call started, or None when one was
    already running. Raises DockerdError when dockerd is not installed or does
    not come up within `timeout_s` (the log path is in the message).
    """
    if dockerd_responds(socket_path):
        return None
    binary = shutil.which("dockerd")
    if binary is None:
        raise DockerdError("dockerd is not installed: apt-get install docker.io (scripts/bootstrap.sh does)")
    Path(LOCK_PATH).parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_PATH, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if dockerd_responds(socket_path):
            return None
        with open(LOG_PATH, "ab") as log:
            proc = subprocess.Popen(
                [binary], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if dockerd_responds(socket_path):
                return proc.pid
            if proc.poll() is not None:
                raise DockerdError(f"dockerd exited with {proc.returncode}; see {LOG_PATH}")
            time.sleep(0.2)
        raise DockerdError(f"dockerd did not answer on {socket_path} within {timeout_s:.0f} s; see {LOG_PATH}")


def main() -> None:
    pid = ensure_dockerd()
    print("dockerd already running" if pid is None else f"started dockerd (pid {pid}), log {LOG_PATH}")


if __name__ == "__main__":
    main()
