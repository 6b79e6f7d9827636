"""The ReplicationController controller: the ReplicaSet controller for core/v1 RCs.

Owns only what differs from master/controllers/replicaset.py: the kind, and
the selector, which on an RC is a plain label map (an RC without one selects
by its template's labels, which admission fills in as Kubernetes does).
Everything else, expectations, ranking and status included, is shared.
"""

from __future__ import annotations

from typing import Any, ClassVar

from master.controllers.replicaset import ReplicaSetController
from protos.core.v1 import core_pb2
from protos.meta.v1 import meta_pb2


class ReplicationControllerController(ReplicaSetController):
    name: ClassVar[str] = "replicationcontroller"
    owner_cls: ClassVar[type[Any]] = core_pb2.ReplicationController
    owner_api_version: ClassVar[str] = "v1"
    owner_kind: ClassVar[str] = "ReplicationController"

    def selector_of(self, owner: Any) -> meta_pb2.LabelSelector:
        labels = owner.spec.selector or owner.spec.template.metadata.labels
        return meta_pb2.LabelSelector(match_labels=dict(labels))
