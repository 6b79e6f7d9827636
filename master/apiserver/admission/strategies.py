"""Per-kind admission strategies: defaults, validation, immutable fields.

`strategy_for(kind)` returns the kind's `Strategy` (the base class is in
`base.py`, re-exported here). The base strategy clears status on create and
validates nothing beyond metadata; every served kind registers its own
subclass in `STRATEGIES`. File map:

    base.py        the Strategy hooks
    pod.py         Pod, pod templates, QoS class, pod update rules
    podspec.py     the pod spec (shared by Pod and every template)
    containers.py  containers: ports, env, resources, probes, mounts
    volumes.py     volumes and their sources
    scheduling.py  nodeSelector, affinity, tolerations, topology spread
    workloads.py   Deployment, ReplicaSet, ReplicationController, DaemonSet, StatefulSet
    batch.py       Job, CronJob (cron.py: schedules and time zones)
    service.py     Service, Endpoints
    misc.py        Namespace, Node, ConfigMap, Secret, Event, ResourceQuota, Lease
    common.py      shared field rules; quantity.py: resource quantities

Pure: no I/O.
"""

from __future__ import annotations

from master.apiserver.admission.base import Strategy
from master.apiserver.admission.batch import CronJobStrategy, JobStrategy
from master.apiserver.admission.misc import (
    ConfigMapStrategy,
    EventStrategy,
    LeaseStrategy,
    NamespaceStrategy,
    NodeStrategy,
    ResourceQuotaStrategy,
    SecretStrategy,
)
from master.apiserver.admission.pod import PodStrategy
from master.apiserver.admission.service import EndpointsStrategy, ServiceStrategy
from master.apiserver.admission.workloads import (
    DaemonSetStrategy,
    DeploymentStrategy,
    ReplicaSetStrategy,
    ReplicationControllerStrategy,
    StatefulSetStrategy,
)

__all__ = ["STRATEGIES", "Strategy", "strategy_for"]

STRATEGIES: dict[str, Strategy] = {
    "Pod": PodStrategy(),
    "Node": NodeStrategy(),
    "Namespace": NamespaceStrategy(),
    "Service": ServiceStrategy(),
    "Endpoints": EndpointsStrategy(),
    "ConfigMap": ConfigMapStrategy(),
    "Secret": SecretStrategy(),
    "Event": EventStrategy(),
    "ReplicationController": ReplicationControllerStrategy(),
    "ResourceQuota": ResourceQuotaStrategy(),
    "Deployment": DeploymentStrategy(),
    "ReplicaSet": ReplicaSetStrategy(),
    "DaemonSet": DaemonSetStrategy(),
    "StatefulSet": StatefulSetStrategy(),
    "Job": JobStrategy(),
    "CronJob": CronJobStrategy(),
    "Lease": LeaseStrategy(),
}
_BASE = Strategy()


def strategy_for(kind: str) -> Strategy:
    return STRATEGIES.get(kind, _BASE)
