"""PodManager: the pods bound to this node, one serialized worker per pod.

Owns: the set of desired pods (from the node API's pod stream: `set_pods`
after a (re)list, `upsert_pod`, `remove_pod`), one PodWorker task per pod uid,
recovery at start (state rebuilt from Docker labels), a relist loop that
wakes a worker when its containers change (kubelet's PLEG), and garbage
collection of Flotilla containers that no pod claims (only this node's).
Must not: plan or run containers itself (node_agent.pods.worker does, with
node_agent.pods.actions deciding), or talk to the master except through NodeAPI.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from master.client.clock import Clock, RealClock
from node_agent.network.interface import PodNetwork
from node_agent.pods.api import NodeAPI, Pod
from node_agent.runtime.interface import ContainerRuntime

log = logging.getLogger(__name__)


class PodManager:
    def __init__(
        self,
        runtime: ContainerRuntime,
        network: PodNetwork,
        api: NodeAPI,
        *,
        node_name: str,
        clock: Clock | None = None,
        backoff_initial_s: float = 10.0,
        backoff_max_s: float = 300.0,
        backoff_reset_s: float = 600.0,
        relist_period_s: float = 1.0,
        volume_resync_s: float = 10.0,
        root_dir: str = "/var/lib/flotilla",
        host_ip: str = "",
    ) -> None:
        self.runtime = runtime
        self.network = network
        self.api = api
        self.node_name = node_name
        self.clock = clock or RealClock()
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.backoff_reset_s = backoff_reset_s
        self.relist_period_s = relist_period_s
        self.volume_resync_s = volume_resync_s
        self.root_dir = root_dir
        self.host_ip = host_ip
        self._pods: dict[str, Pod] = {}
        self._listed = False

    async def run(self, *, ready: asyncio.Event | None = None) -> None:
        """Recover from Docker labels, set `ready`, then keep workers in step until cancelled."""
        raise NotImplementedError

    def set_pods(self, pods: Iterable[Pod]) -> None:
        """The full set bound to this node (after a (re)list); pods not in it are removed."""
        raise NotImplementedError

    def upsert_pod(self, pod: Pod) -> None:
        raise NotImplementedError

    def remove_pod(self, uid: str) -> None:
        """The pod object is gone from the API: stop its containers and forget it."""
        raise NotImplementedError

    def pods(self) -> list[Pod]:
        """The pods this node runs, with the status the agent last computed (for /pods)."""
        raise NotImplementedError
