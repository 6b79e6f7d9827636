"""Address and port ranges: which values a Service may be given.

Owns the arithmetic of the service CIDR (offset <-> address, the static
band kept for explicit choices such as 10.96.0.1 and 10.96.0.10) and of the
nodePort range. Pure: no I/O; the reservations live in `service.py`.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
DEFAULT_NODE_PORT_RANGE = (30000, 32767)


@dataclass(frozen=True)
class IPRange:
    """The usable addresses of a CIDR: network and broadcast are never handed out."""

    network: ipaddress.IPv4Network

    @classmethod
    def parse(cls, cidr: str) -> IPRange:
        net = ipaddress.ip_network(cidr, strict=True)
        if not isinstance(net, ipaddress.IPv4Network) or net.num_addresses < 8:
            raise ValueError(f"service CIDR {cidr!r} must be an IPv4 network of at least 8 addresses")
        return cls(net)

    @property
    def size(self) -> int:
        return self.network.num_addresses - 2

    @property
    def static_band(self) -> int:
        """Kubernetes keeps the low addresses for explicit choices: random
        allocation prefers offsets above min(max(16, size/16), 256)."""
        return min(max(16, self.size // 16), 256, self.size // 2)

    def address(self, offset: int) -> str:
        return str(self.network.network_address + 1 + offset)

    def offset(self, address: str) -> int | None:
        """The offset of address in the range, None when outside it."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        if ip not in self.network or ip in (self.network.network_address, self.network.broadcast_address):
            return None
        return int(ip) - int(self.network.network_address) - 1

    def nth(self, n: int) -> str:
        """10.96.0.0/12 -> nth(1) == 10.96.0.1 (the kubernetes service), nth(10) the DNS."""
        return str(self.network.network_address + n)

    def random_candidates(self, rng: random.Random, count: int) -> list[str]:
        lo = self.static_band if self.size > self.static_band else 0
        return [self.address(rng.randrange(lo, self.size)) for _ in range(count)]

    def free(self, taken: set[str], rng: random.Random) -> str | None:
        """One address not in taken (dynamic band first), None when full."""
        for lo, hi in ((self.static_band, self.size), (0, self.static_band)):
            start = rng.randrange(lo, hi) if hi > lo else lo
            for i in range(hi - lo):
                addr = self.address(lo + (start - lo + i) % (hi - lo))
                if addr not in taken:
                    return addr
        return None


@dataclass(frozen=True)
class PortRange:
    low: int
    high: int

    @classmethod
    def parse(cls, text: str) -> PortRange:
        """"30000-32767" (or a lone port)."""
        lo, _, hi = text.partition("-")
        low, high = int(lo), int(hi or lo)
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"invalid port range {text!r}")
        return cls(low, high)

    def __str__(self) -> str:
        return f"{self.low}-{self.high}"

    @property
    def size(self) -> int:
        return self.high - self.low + 1

    def contains(self, port: int) -> bool:
        return self.low <= port <= self.high

    def random_candidates(self, rng: random.Random, count: int) -> list[int]:
        return [rng.randint(self.low, self.high) for _ in range(count)]

    def free(self, taken: set[int], rng: random.Random) -> int | None:
        start = rng.randrange(self.size)
        for i in range(self.size):
            port = self.low + (start + i) % self.size
            if port not in taken:
                return port
        return None
