"""The pod network protocol the pod workers use (DESIGN 8).

Owns: the contract only. The real implementation (bridge, veth, IPAM, routes)
is node_agent.network's job (branch agent-node); node_agent.network.fake is the
in-memory stand-in for tests. Callers: node_agent.pods.executor.
"""

from __future__ import annotations

from typing import Protocol


class PodNetwork(Protocol):
    async def setup_pod(self, *, pod_uid: str, namespace: str, name: str, netns_path: str) -> str:
        """Plumb the pod's network namespace and return its IP. Idempotent for one uid."""
        ...

    async def teardown_pod(self, *, pod_uid: str) -> None:
        """Release the pod's address and links. Idempotent; unknown uids are fine."""
        ...

    def pod_ip(self, pod_uid: str) -> str | None:
        """The pod's address if it has one (also after an agent restart)."""
        ...
