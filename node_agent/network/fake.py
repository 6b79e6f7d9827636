"""FakePodNetwork: hands out addresses from one /24 without touching the kernel.

For unit and integration tests (and e2e runs that do not need pod-to-pod
traffic). It keeps allocations in memory only; the real network persists them.
"""

from __future__ import annotations

import ipaddress


class FakePodNetwork:
    def __init__(self, cidr: str = "10.244.0.0/24") -> None:
        net = ipaddress.ip_network(cidr)
        # .1 is the bridge's address on a real node.
        self._free = [str(h) for h in list(net.hosts())[1:]]
        self._by_uid: dict[str, str] = {}
        self.setup_calls: list[tuple[str, str]] = []  # (uid, netns_path)
        self.fail_setup: Exception | None = None

    async def setup_pod(self, *, pod_uid: str, namespace: str, name: str, netns_path: str) -> str:
        if self.fail_setup is not None:
            raise self.fail_setup
        self.setup_calls.append((pod_uid, netns_path))
        ip = self._by_uid.get(pod_uid)
        if ip is None:
            if not self._free:
                raise RuntimeError("pod network: no free address")
            ip = self._free.pop(0)
            self._by_uid[pod_uid] = ip
        return ip

    async def teardown_pod(self, *, pod_uid: str) -> None:
        ip = self._by_uid.pop(pod_uid, None)
        if ip is not None:
            self._free.append(ip)

    def pod_ip(self, pod_uid: str) -> str | None:
        return self._by_uid.get(pod_uid)
