"""Pod IP allocation for one node's /24, persisted in the agent's state dir.

Owns: which pod uid holds which address of the node's pod CIDR. The choice
of the next address is the pure `compute_next_ip`; `HostLocalIPAM` is the
thin store around it: one file per address under `<state_dir>/ipam/`, named
after the address and holding the pod uid (as CNI's host-local plugin does),
created with O_EXCL so two allocations can never take the same address, and
read back at start so a restarted agent never hands out an address in use.

Must not: touch links or routes (bridge.py does), or talk to the apiserver.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path

from node_agent.network.errors import IPAMError


def gateway_ip(cidr: str) -> str:
    """The bridge's address: the first host address of the node's CIDR (.1 of a /24)."""
    net = ipaddress.ip_network(cidr)
    return str(net.network_address + 1)


def compute_next_ip(cidr: str, allocated: Iterable[str], *, last: str | None = None) -> str | None:
    """The next free pod address after `last` (round robin, so a released address
    is reused as late as possible), skipping the network address, the gateway (.1)
    and the broadcast address. None when every address is taken."""
    net = ipaddress.ip_network(cidr)
    taken = {ipaddress.ip_address(a) for a in allocated}
    first = int(net.network_address) + 2
    end = int(net.broadcast_address) - 1
    if end < first:
        return None
    size = end - first + 1
    start = first
    if last is not None:
        last_int = int(ipaddress.ip_address(last))
        if first <= last_int <= end:
            start = last_int + 1 if last_int < end else first
    for step in range(size):
        candidate = ipaddress.ip_address(first + (start - first + step) % size)
        if candidate not in taken:
            return str(candidate)
    return None


class HostLocalIPAM:
    """Addresses of one pod CIDR, each a file `<dir>/<ip>` holding the pod uid."""

    def __init__(self, state_dir: Path, cidr: str) -> None:
        self.cidr = cidr
        self.dir = state_dir / "ipam"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._by_uid: dict[str, str] = {}
        self._last_file = self.dir / "last_reserved_ip"
        self._load()

    def _load(self) -> None:
        net = ipaddress.ip_network(self.cidr)
        for path in self.dir.iterdir():
            if path.name == self._last_file.name:
                continue
            try:
                ip = ipaddress.ip_address(path.name)
            except ValueError:
                continue
            if ip not in net:
                # Left from an earlier CIDR (the node was re-created): not ours any more.
                path.unlink(missing_ok=True)
                continue
            uid = path.read_text().strip()
            if uid:
                self._by_uid[uid] = str(ip)
            else:
                # Created but never written (the agent died in between): nobody holds it.
                path.unlink(missing_ok=True)

    def get(self, pod_uid: str) -> str | None:
        return self._by_uid.get(pod_uid)

    def allocations(self) -> dict[str, str]:
        """pod uid -> address (a copy)."""
        return dict(self._by_uid)

    def allocate(self, pod_uid: str) -> str:
        """The pod's address: the one it already holds, else a new one."""
        held = self._by_uid.get(pod_uid)
        if held is not None:
            return held
        last = self._read_last()
        while True:
            ip = compute_next_ip(self.cidr, self._taken(), last=last)
            if ip is None:
                raise IPAMError(f"no free pod address left in {self.cidr}")
            try:
                fd = os.open(self.dir / ip, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                last = ip  # someone else took it since we looked: try the next one
                continue
            with os.fdopen(fd, "w") as f:
                f.write(pod_uid + "\n")
            self._last_file.write_text(ip + "\n")
            self._by_uid[pod_uid] = ip
            return ip

    def release(self, pod_uid: str) -> str | None:
        """Free the pod's address (idempotent); returns it, or None if it held none."""
        ip = self._by_uid.pop(pod_uid, None)
        if ip is not None:
            (self.dir / ip).unlink(missing_ok=True)
        return ip

    def _taken(self) -> set[str]:
        on_disk = {p.name for p in self.dir.iterdir() if p.name != self._last_file.name}
        return on_disk | set(self._by_uid.values())

    def _read_last(self) -> str | None:
        try:
            return self._last_file.read_text().strip() or None
        except FileNotFoundError:
            return None
