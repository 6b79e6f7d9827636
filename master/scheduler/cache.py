"""The scheduler's view of where pods are: nodes, placed pods and assumed pods.

Fed by the informer handlers (scheduler.py) and by the scheduling loop:
`assume` puts a pod on its chosen node at once, so the next cycle counts
it before the bind has even been sent (Kubernetes' assume/bind split);
`forget` takes it back when the bind fails; the informer's add of the bound
pod confirms it; an assumed pod whose bind succeeded but that the informer
never shows is dropped after `assume_ttl_s`. `snapshot()` returns an
immutable `Snapshot`, rebuilding only the NodeInfos that changed.
No I/O; the caller owns the Clock.
"""

from __future__ import annotations

import bisect
from types import MappingProxyType
from typing import Any

from master.scheduler.snapshot import NodeInfo, PodInfo, Snapshot


class SchedulerCache:
    def __init__(self, *, assume_ttl_s: float = 30.0) -> None:
        self.assume_ttl_s = assume_ttl_s
        self._nodes: dict[str, Any] = {}
        self._pods: dict[str, PodInfo] = {}  # placed and assumed, by key
        self._node_pods: dict[str, dict[str, PodInfo]] = {}
        self._assumed: dict[str, float | None] = {}  # key -> expiry (None: bind in flight)
        self._infos: dict[str, NodeInfo] = {}
        self._order: list[str] = []  # node names, sorted (kept, not re-sorted per snapshot)
        self._affinity: dict[str, PodInfo] = {}  # placed pods with pod (anti-)affinity terms
        self._dirty: set[str] = set()
        self._membership_changed = True  # a node came or went: rebuild the node list
        self._list: list[NodeInfo] = []  # NodeInfos in _order
        self._index: dict[str, int] = {}
        self._snapshot: Snapshot | None = None

    # Nodes -------------------------------------------------------------------------

    def set_node(self, node: Any) -> None:
        name = node.metadata.name
        if name not in self._nodes:
            bisect.insort(self._order, name)
            self._membership_changed = True
        self._nodes[name] = node
        self._touch(name)

    def remove_node(self, name: str) -> None:
        if self._nodes.pop(name, None) is not None:
            del self._order[bisect.bisect_left(self._order, name)]
            self._membership_changed = True
        self._infos.pop(name, None)
        self._touch(name)

    # Pods ---------------------------------------------------------------------------

    def set_pod(self, pod: Any) -> None:
        """A pod the informer shows on a node (confirms an assumed one)."""
        key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        assumed = self._pods.get(key) if key in self._assumed else None
        if (assumed is not None and assumed.node_name == pod.spec.node_name
                and assumed.labels == pod.metadata.labels):
            # The bind we sent, confirmed: it changed nothing a plugin reads
            # (nodeName, annotations, status), so the node needs no rebuild.
            del self._assumed[key]
            return
        info = PodInfo.of(pod)
        self._remove(info.key)
        self._assumed.pop(info.key, None)
        self._put(info)

    def remove_pod(self, key: str) -> None:
        self._assumed.pop(key, None)
        self._remove(key)

    def assume(self, pod: Any, node_name: str) -> None:
        info = PodInfo.of(pod, node_name=node_name)
        self._remove(info.key)
        self._put(info)
        self._assumed[info.key] = None

    def finish_binding(self, key: str, *, now: float) -> None:
        if key in self._assumed:
            self._assumed[key] = now + self.assume_ttl_s

    def forget(self, key: str) -> None:
        if key in self._assumed:
            del self._assumed[key]
            self._remove(key)

    def is_assumed(self, key: str) -> bool:
        return key in self._assumed

    def node_of(self, key: str) -> str | None:
        info = self._pods.get(key)
        return info.node_name if info else None

    def cleanup_expired(self, *, now: float) -> list[str]:
        expired = [k for k, t in self._assumed.items() if t is not None and t <= now]
        for key in expired:
            self.forget(key)
        return expired

    # Snapshot -----------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        if self._snapshot is not None and not self._dirty:
            return self._snapshot
        infos = self._infos
        for name in self._dirty:
            node = self._nodes.get(name)
            if node is not None:
                infos[name] = NodeInfo.build(node, self._node_pods.get(name, {}).values())
                if not self._membership_changed:
                    self._list[self._index[name]] = infos[name]
        self._dirty.clear()
        if self._membership_changed:
            self._list = [infos[n] for n in self._order]
            self._index = {n: i for i, n in enumerate(self._order)}
            self._membership_changed = False
        with_affinity = tuple((infos[p.node_name], p) for p in self._affinity.values()
                              if p.node_name in infos)
        # Copies: the snapshot must not change when the cache does.
        self._snapshot = Snapshot(tuple(self._list), MappingProxyType(dict(infos)), with_affinity)
        return self._snapshot

    def _put(self, info: PodInfo) -> None:
        self._pods[info.key] = info
        if info.has_affinity:
            self._affinity[info.key] = info
        self._node_pods.setdefault(info.node_name, {})[info.key] = info
        self._touch(info.node_name)

    def _remove(self, key: str) -> None:
        info = self._pods.pop(key, None)
        if info is None:
            return
        self._affinity.pop(key, None)
        on_node = self._node_pods.get(info.node_name, {})
        on_node.pop(key, None)
        if not on_node:
            self._node_pods.pop(info.node_name, None)
        self._touch(info.node_name)

    def _touch(self, node_name: str) -> None:
        self._dirty.add(node_name)
        self._snapshot = None
