"""conntrack entries of UDP services whose endpoints went away.

A UDP "connection" that keeps sending keeps its old DNAT decision in
conntrack (LAB-NOTES), so when an endpoint leaves a UDP service the proxy
deletes the entries that were NATed to it: `conntrack -D -p udp --orig-dst
VIP --dst-nat EP` (and `--orig-port-dst NODEPORT` for nodePorts). "Nothing
to delete" (exit 1, "0 flow entries") is success. A fake (recording the
calls) is in fake.py.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import Protocol

from netproxy.errors import ConntrackError


class Conntrack(Protocol):
    def flush_udp(self, *, vip: str = "", node_port: int = 0, endpoint_ip: str) -> None: ...


class ConntrackTool:
    def __init__(self, *, prefix: Sequence[str] = (), timeout_s: float = 10.0) -> None:
        self.prefix = list(prefix)
        self.timeout_s = timeout_s

    def flush_udp(self, *, vip: str = "", node_port: int = 0, endpoint_ip: str) -> None:
        args = ["conntrack", "-D", "-p", "udp", "--dst-nat", endpoint_ip]
        args += ["--orig-dst", vip] if vip else ["--orig-port-dst", str(node_port)]
        try:
            proc = subprocess.run(self.prefix + args, capture_output=True, text=True,
                                  timeout=self.timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConntrackError(f"conntrack could not run: {exc}") from exc
        if proc.returncode not in (0, 1):
            raise ConntrackError(f"conntrack -D exited {proc.returncode}: {proc.stderr.strip()}")
