"""The immutable view of the cluster one scheduling cycle sees.

`PodInfo` is a pod with what the plugins ask of it precomputed (requests,
host ports, owner, parsed affinity terms); `NodeInfo` is a node with the pods
on it and their sums; `Snapshot` is every NodeInfo, by name and in name
order. All three are frozen: a plugin can never change what the next plugin
sees, and the cache builds a new NodeInfo when a node or its pods change
(`NodeInfo.build`) rather than editing one. Pure: no I/O; the cache
(cache.py) decides which pods and nodes go in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from master.scheduler import resources
from master.scheduler.labels import match_label_selector
from master.scheduler.resources import Resources

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class AffinityTerm:
    """A PodAffinityTerm resolved against the pod that carries it."""

    selector: Any  # metav1.LabelSelector; None matches nothing (Kubernetes: a nil selector)
    namespaces: frozenset[str] | None  # None: every namespace
    topology_key: str
    weight: int = 0

    def matches(self, pod: PodInfo) -> bool:
        if self.selector is None:
            return False
        if self.namespaces is not None and pod.namespace not in self.namespaces:
            return False
        return match_label_selector(self.selector, pod.labels)


def _term(term: Any, namespace: str, weight: int = 0) -> AffinityTerm:
    if term.HasField("namespace_selector") and not (
        term.namespace_selector.match_labels or term.namespace_selector.match_expressions
    ):
        namespaces: frozenset[str] | None = None  # {} selects every namespace
    else:
        # A non-empty namespaceSelector would need namespace labels; the listed
        # namespaces (or the pod's own) are what this scheduler honours.
        namespaces = frozenset(term.namespaces) or frozenset({namespace})
    selector = term.label_selector if term.HasField("label_selector") else None
    return AffinityTerm(selector, namespaces, term.topology_key, weight)


@dataclass(frozen=True, slots=True)
class PodInfo:
    pod: Any  # core/v1 Pod, shared with the informer: never mutated
    key: str
    namespace: str
    name: str
    labels: Mapping[str, str]
    node_name: str
    requests: Resources
    non_zero_requests: Resources
    host_ports: frozenset[tuple[str, str, int]]
    owner_uid: str
    required_affinity: tuple[AffinityTerm, ...] = ()
    required_anti_affinity: tuple[AffinityTerm, ...] = ()
    preferred_affinity: tuple[AffinityTerm, ...] = ()
    preferred_anti_affinity: tuple[AffinityTerm, ...] = ()

    @property
    def has_affinity(self) -> bool:
        return bool(self.required_affinity or self.required_anti_affinity
                    or self.preferred_affinity or self.preferred_anti_affinity)

    @classmethod
    def of(cls, pod: Any, *, node_name: str | None = None) -> PodInfo:
        spec, meta = pod.spec, pod.metadata
        ns = meta.namespace
        aff = spec.affinity
        pa, paa = aff.pod_affinity, aff.pod_anti_affinity
        owner = next((o.uid for o in meta.owner_references if o.controller), "")
        return cls(
            pod=pod, key=f"{ns}/{meta.name}", namespace=ns, name=meta.name,
            labels=MappingProxyType(dict(meta.labels)) if meta.labels else _EMPTY,
            node_name=spec.node_name if node_name is None else node_name,
            requests=resources.compute_pod_requests(spec),
            non_zero_requests=resources.compute_pod_requests(spec, non_zero=True),
            host_ports=host_ports_of(spec),
            owner_uid=owner,
            required_affinity=tuple(_term(t, ns) for t in pa.required_during_scheduling_ignored_during_execution),
            required_anti_affinity=tuple(_term(t, ns) for t in paa.required_during_scheduling_ignored_during_execution),
            preferred_affinity=tuple(_term(w.pod_affinity_term, ns, w.weight)
                                     for w in pa.preferred_during_scheduling_ignored_during_execution),
            preferred_anti_affinity=tuple(_term(w.pod_affinity_term, ns, w.weight)
                                          for w in paa.preferred_during_scheduling_ignored_during_execution),
        )


def host_ports_of(spec: Any) -> frozenset[tuple[str, str, int]]:
    """(hostIP, protocol, hostPort) for every container port with a host port."""
    ports = set()
    for c in list(spec.init_containers) + list(spec.containers):
        for p in c.ports:
            if p.host_port > 0:
                ports.add((p.host_ip or "0.0.0.0", p.protocol or "TCP", p.host_port))
    return frozenset(ports)


def node_ready_status(node: Any) -> str:
    """The Ready condition's status ("True", "False", "Unknown"; "" when absent)."""
    return next((c.status for c in node.status.conditions if c.type == "Ready"), "")


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    node: Any  # core/v1 Node, shared with the informer: never mutated
    labels: Mapping[str, str]
    taints: tuple[Any, ...]
    unschedulable: bool
    ready: str
    allocatable: Resources
    requested: Resources
    non_zero_requested: Resources
    used_ports: frozenset[tuple[str, str, int]]
    pods: tuple[PodInfo, ...]
    owner_counts: Mapping[str, int]  # controller owner uid -> pods of it here
    free: Resources  # allocatable - requested

    @classmethod
    def build(cls, node: Any, pods: Iterable[PodInfo]) -> NodeInfo:
        pods = tuple(pods)
        requested, non_zero = Resources(), Resources()
        ports: set[tuple[str, str, int]] = set()
        owners: dict[str, int] = {}
        for p in pods:
            requested = requested + p.requests
            non_zero = non_zero + p.non_zero_requests
            ports |= p.host_ports
            if p.owner_uid:
                owners[p.owner_uid] = owners.get(p.owner_uid, 0) + 1
        allocatable = resources.from_map(node.status.allocatable or node.status.capacity)
        return cls(
            name=node.metadata.name, node=node,
            labels=MappingProxyType(dict(node.metadata.labels)),
            taints=tuple(node.spec.taints), unschedulable=bool(node.spec.unschedulable),
            ready=node_ready_status(node), allocatable=allocatable,
            requested=requested, non_zero_requested=non_zero,
            used_ports=frozenset(ports), pods=pods, owner_counts=MappingProxyType(owners),
            free=allocatable - requested,
        )

    def with_pod(self, pod: PodInfo) -> NodeInfo:
        return NodeInfo.build(self.node, (*self.pods, pod))


@dataclass(frozen=True)
class Snapshot:
    nodes: tuple[NodeInfo, ...]
    by_name: Mapping[str, NodeInfo] = field(default_factory=dict)
    # Placed pods that carry pod (anti-)affinity terms: InterPodAffinity's
    # symmetric checks scan only these.
    affinity_pods: tuple[tuple[NodeInfo, PodInfo], ...] = ()

    @classmethod
    def of(cls, nodes: Iterable[NodeInfo]) -> Snapshot:
        ordered = tuple(sorted(nodes, key=lambda n: n.name))
        with_affinity = tuple((n, p) for n in ordered for p in n.pods if p.has_affinity)
        return cls(ordered, MappingProxyType({n.name: n for n in ordered}), with_affinity)

    @classmethod
    def from_objects(cls, nodes: Iterable[Any], pods: Iterable[Any]) -> Snapshot:
        """Build from API objects (tests, benchmarks): pods go to spec.nodeName."""
        by_node: dict[str, list[PodInfo]] = {}
        for p in pods:
            if p.spec.node_name:
                by_node.setdefault(p.spec.node_name, []).append(PodInfo.of(p))
        return cls.of(NodeInfo.build(n, by_node.get(n.metadata.name, ())) for n in nodes)

    def all_pods(self) -> Iterable[tuple[NodeInfo, PodInfo]]:
        for n in self.nodes:
            for p in n.pods:
                yield n, p
