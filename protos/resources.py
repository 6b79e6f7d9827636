"""The resource registry: every kind the API serves, and its facts.

One `ResourceInfo` per resource (plural) names its group/version, kind,
scope, discovery short names and categories, subresources, the fields a field
selector may use, the protobuf message that holds it, and where the apiserver
keeps it in etcd (`etcd_prefix`, `key`). The apiserver's REST routing,
discovery, gRPC face, watch cache and admission read this table, and so does
master.client (`kinds.py`, proto full name -> group/resource/scope); nothing
else keeps a list of kinds.

It lives in protos/, beside the schema it describes, because both sides need
it and node_agent and netproxy must not import master.apiserver. So it must
not import anything from master/ (an import-linter contract says so), and it
must not import the generated protobuf modules at import time: callers that
only need names (the client, discovery) never load them, and
`message_class()` imports lazily.

Pure: no I/O.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import Any


@dataclass(frozen=True)
class ResourceInfo:
    group: str  # "" for the core group
    version: str
    resource: str  # plural, the path segment: "pods"
    kind: str  # "Pod"
    namespaced: bool
    proto: str  # full protobuf name: "flotilla.core.v1.Pod"
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # "status", "scale", "binding", "log", "exec"
    # Field selector paths beyond metadata.name / metadata.namespace.
    selectable_fields: tuple[str, ...] = ()
    # True when spec and status are written separately (the status subresource).
    has_status_subresource: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def group_resource(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource

    def etcd_prefix(self) -> str:
        """`/registry/<resource>/` for core, `/registry/<group>/<resource>/` otherwise.

        Keys are `<prefix><namespace>/<name>` or `<prefix><name>` (cluster scope).
        """
        if self.group:
            return f"/registry/{self.group}/{self.resource}/"
        return f"/registry/{self.resource}/"

    def key(self, namespace: str, name: str) -> str:
        if self.namespaced:
            return f"{self.etcd_prefix()}{namespace}/{name}"
        return f"{self.etcd_prefix()}{name}"

    def message_class(self) -> Any:
        return message_class(self.proto)

    def all_field_selectors(self) -> tuple[str, ...]:
        base = ("metadata.name", "metadata.namespace") if self.namespaced else ("metadata.name",)
        return base + self.selectable_fields


_PROTO_MODULES = {
    "flotilla.meta.v1": "protos.meta.v1.meta_pb2",
    "flotilla.core.v1": "protos.core.v1.core_pb2",
    "flotilla.apps.v1": "protos.apps.v1.apps_pb2",
    "flotilla.batch.v1": "protos.batch.v1.batch_pb2",
    "flotilla.coordination.v1": "protos.coordination.v1.coordination_pb2",
}


@cache
def message_class(full_name: str) -> Any:
    package, _, name = full_name.rpartition(".")
    module = importlib.import_module(_PROTO_MODULES[package])
    return getattr(module, name)


_ALL = ("all",)
_STATUS = ("status",)

RESOURCES: tuple[ResourceInfo, ...] = (
    # core/v1
    ResourceInfo("", "v1", "pods", "Pod", True, "flotilla.core.v1.Pod", ("po",), _ALL,
                 ("status", "binding", "log", "exec"),
                 ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                  "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
                  "status.podIP", "status.nominatedNodeName"),
                 has_status_subresource=True),
    ResourceInfo("", "v1", "nodes", "Node", False, "flotilla.core.v1.Node", ("no",), (),
                 _STATUS, ("spec.unschedulable",), has_status_subresource=True),
    ResourceInfo("", "v1", "namespaces", "Namespace", False, "flotilla.core.v1.Namespace",
                 ("ns",), (), ("status", "finalize"), ("status.phase",),
                 has_status_subresource=True),
    ResourceInfo("", "v1", "services", "Service", True, "flotilla.core.v1.Service", ("svc",),
                 _ALL, _STATUS, (), has_status_subresource=True),
    ResourceInfo("", "v1", "endpoints", "Endpoints", True, "flotilla.core.v1.Endpoints",
                 ("ep",)),
    ResourceInfo("", "v1", "configmaps", "ConfigMap", True, "flotilla.core.v1.ConfigMap",
                 ("cm",)),
    ResourceInfo("", "v1", "secrets", "Secret", True, "flotilla.core.v1.Secret", (), (), (),
                 ("type",)),
    ResourceInfo("", "v1", "events", "Event", True, "flotilla.core.v1.Event", ("ev",), (), (),
                 ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                  "involvedObject.uid", "involvedObject.apiVersion",
                  "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
                  "reportingComponent", "source", "type")),
    ResourceInfo("", "v1", "replicationcontrollers", "ReplicationController", True,
                 "flotilla.core.v1.ReplicationController", ("rc",), _ALL, ("status", "scale"),
                 ("status.replicas",), has_status_subresource=True),
    ResourceInfo("", "v1", "resourcequotas", "ResourceQuota", True,
                 "flotilla.core.v1.ResourceQuota", ("quota",), (), _STATUS,
                 has_status_subresource=True),
    # apps/v1
    ResourceInfo("apps", "v1", "deployments", "Deployment", True, "flotilla.apps.v1.Deployment",
                 ("deploy",), _ALL, ("status", "scale"), has_status_subresource=True),
    ResourceInfo("apps", "v1", "replicasets", "ReplicaSet", True, "flotilla.apps.v1.ReplicaSet",
                 ("rs",), _ALL, ("status", "scale"), ("status.replicas",),
                 has_status_subresource=True),
    ResourceInfo("apps", "v1", "daemonsets", "DaemonSet", True, "flotilla.apps.v1.DaemonSet",
                 ("ds",), _ALL, _STATUS, has_status_subresource=True),
    ResourceInfo("apps", "v1", "statefulsets", "StatefulSet", True,
                 "flotilla.apps.v1.StatefulSet", ("sts",), _ALL, ("status", "scale"),
                 has_status_subresource=True),
    # batch/v1
    ResourceInfo("batch", "v1", "jobs", "Job", True, "flotilla.batch.v1.Job", (), _ALL,
                 _STATUS, ("status.successful",), has_status_subresource=True),
    ResourceInfo("batch", "v1", "cronjobs", "CronJob", True, "flotilla.batch.v1.CronJob",
                 ("cj",), _ALL, _STATUS, has_status_subresource=True),
    # coordination.k8s.io/v1 (node heartbeats, leader election)
    ResourceInfo("coordination.k8s.io", "v1", "leases", "Lease", True,
                 "flotilla.coordination.v1.Lease"),
)

_BY_GROUP_RESOURCE = {(r.group, r.resource): r for r in RESOURCES}
_BY_GROUP_KIND = {(r.group, r.kind): r for r in RESOURCES}

GROUP_VERSIONS: tuple[tuple[str, str], ...] = tuple(
    dict.fromkeys((r.group, r.version) for r in RESOURCES)
)


def lookup(group: str, resource: str) -> ResourceInfo | None:
    return _BY_GROUP_RESOURCE.get((group, resource))


def by_kind(group: str, kind: str) -> ResourceInfo | None:
    return _BY_GROUP_KIND.get((group, kind))


def by_proto(full_name: str) -> ResourceInfo | None:
    for r in RESOURCES:
        if r.proto == full_name:
            return r
    return None


def in_group_version(group: str, version: str) -> list[ResourceInfo]:
    return [r for r in RESOURCES if r.group == group and r.version == version]
