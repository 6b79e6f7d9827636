"""Nodes and pods for scheduler tests, written as Kubernetes JSON."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from master.scheduler.snapshot import PodInfo, Snapshot
from protos.core.v1 import core_pb2


def node(name: str, *, cpu: str = "4", memory: str = "8Gi", pods: str = "110",
         labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None,
         unschedulable: bool = False, ready: str = "True") -> core_pb2.Node:
    doc: dict[str, Any] = {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": taints or []},
        "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
                   "capacity": {"cpu": cpu, "memory": memory, "pods": pods},
                   "conditions": [{"type": "Ready", "status": ready}] if ready else []},
    }
    if unschedulable:
        doc["spec"]["unschedulable"] = True
    return json_format.ParseDict(doc, core_pb2.Node())


def pod(name: str, *, ns: str = "default", cpu: str = "", memory: str = "", node_name: str = "",
        labels: dict[str, str] | None = None, owner: str = "", spec: dict[str, Any] | None = None,
        host_port: int = 0) -> core_pb2.Pod:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    container: dict[str, Any] = {"name": "c", "image": "busybox", "resources": {"requests": requests}}
    if host_port:
        container["ports"] = [{"containerPort": 80, "hostPort": host_port}]
    doc: dict[str, Any] = {
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "spec": {"containers": [container], **(spec or {})},
    }
    if node_name:
        doc["spec"]["nodeName"] = node_name
    if owner:
        doc["metadata"]["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": f"uid-{owner}",
             "controller": True}]
    return json_format.ParseDict(doc, core_pb2.Pod())


def snap(nodes: list[core_pb2.Node], pods: list[core_pb2.Pod] = ()) -> Snapshot:  # type: ignore[assignment]
    return Snapshot.from_objects(nodes, pods)


def info(p: core_pb2.Pod) -> PodInfo:
    return PodInfo.of(p)
