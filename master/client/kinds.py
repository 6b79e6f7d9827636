"""Which collection a message class lives in: proto full name -> (group, resource, namespaced).

The client addresses objects by ResourceRef (group, plural resource,
namespace) and is handed message classes, so it needs this small table. It
is a copy of the facts in master/apiserver/resources.py, which the client
must not import (node_agent and netproxy import master.client, and only
that, from master). A unit test checks the two agree; when the registry
moves to a shared module this file becomes a view of it.

Pure: no I/O, no generated-code imports (names only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple


class KindInfo(NamedTuple):
    group: str  # "" for the core group
    resource: str  # plural: "pods"
    namespaced: bool


KINDS: Mapping[str, KindInfo] = {
    # core/v1
    "flotilla.core.v1.Pod": KindInfo("", "pods", True),
    "flotilla.core.v1.Node": KindInfo("", "nodes", False),
    "flotilla.core.v1.Namespace": KindInfo("", "namespaces", False),
    "flotilla.core.v1.Service": KindInfo("", "services", True),
    "flotilla.core.v1.Endpoints": KindInfo("", "endpoints", True),
    "flotilla.core.v1.ConfigMap": KindInfo("", "configmaps", True),
    "flotilla.core.v1.Secret": KindInfo("", "secrets", True),
    "flotilla.core.v1.Event": KindInfo("", "events", True),
    "flotilla.core.v1.ReplicationController": KindInfo("", "replicationcontrollers", True),
    "flotilla.core.v1.ResourceQuota": KindInfo("", "resourcequotas", True),
    # apps/v1
    "flotilla.apps.v1.Deployment": KindInfo("apps", "deployments", True),
    "flotilla.apps.v1.ReplicaSet": KindInfo("apps", "replicasets", True),
    "flotilla.apps.v1.DaemonSet": KindInfo("apps", "daemonsets", True),
    "flotilla.apps.v1.StatefulSet": KindInfo("apps", "statefulsets", True),
    # batch/v1
    "flotilla.batch.v1.Job": KindInfo("batch", "jobs", True),
    "flotilla.batch.v1.CronJob": KindInfo("batch", "cronjobs", True),
    # coordination.k8s.io/v1
    "flotilla.coordination.v1.Lease": KindInfo("coordination.k8s.io", "leases", True),
}

POD = "flotilla.core.v1.Pod"
BINDING = "flotilla.core.v1.Binding"


class UnknownKind(LookupError):
    """The message class is not an API resource the client knows."""


def kind_of(cls: Any, *, kinds: Mapping[str, KindInfo] = KINDS) -> KindInfo:
    """The KindInfo for a generated message class (or an instance of one)."""
    full_name = cls.DESCRIPTOR.full_name
    try:
        return kinds[full_name]
    except KeyError:
        raise UnknownKind(f"{full_name} is not a known API resource") from None
