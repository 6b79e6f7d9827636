"""Builders for the workload reconciler tests: owners, nodes and pods in given states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from master.reconcile.workloadpods import Plan
from protos.apps.v1 import apps_pb2
from protos.batch.v1 import batch_pb2
from protos.core.v1 import core_pb2

NOW = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def ts(moment: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(moment)
    return t


def template(image: str = "nginx:1", labels: dict[str, str] | None = None) -> core_pb2.PodTemplateSpec:
    t = core_pb2.PodTemplateSpec()
    t.metadata.labels.update(labels or {"app": "x"})
    t.spec.containers.add(name="c", image=image)
    t.spec.restart_policy = "Always"
    return t


def node(name: str, *, labels: dict[str, str] | None = None,
         taints: list[tuple[str, str]] = ()) -> core_pb2.Node:  # type: ignore[assignment]
    n = core_pb2.Node()
    n.metadata.name = name
    n.metadata.labels.update(labels or {})
    for key, effect in taints:
        n.spec.taints.add(key=key, effect=effect)
    return n


def daemonset(*, image: str = "nginx:1", strategy: str = "RollingUpdate",
              max_unavailable: Any = 1, max_surge: Any = 0, generation: int = 1) -> apps_pb2.DaemonSet:
    ds = apps_pb2.DaemonSet()
    ds.metadata.name, ds.metadata.namespace, ds.metadata.uid = "ds", "ns", "ds-uid"
    ds.metadata.generation = generation
    ds.spec.selector.match_labels["app"] = "x"
    ds.spec.template.CopyFrom(template(image))
    ds.spec.update_strategy.type = strategy
    if strategy == "RollingUpdate":
        for field, value in (("max_unavailable", max_unavailable), ("max_surge", max_surge)):
            target = getattr(ds.spec.update_strategy.rolling_update, field)
            if isinstance(value, str):
                target.string_value = value
            else:
                target.number_value = value
    return ds


def statefulset(replicas: int = 3, *, image: str = "nginx:1", policy: str = "OrderedReady",
                strategy: str = "RollingUpdate", partition: int = 0) -> apps_pb2.StatefulSet:
    s = apps_pb2.StatefulSet()
    s.metadata.name, s.metadata.namespace, s.metadata.uid = "web", "ns", "sts-uid"
    s.metadata.generation = 1
    s.spec.replicas = replicas
    s.spec.service_name = "nginx"
    s.spec.selector.match_labels["app"] = "x"
    s.spec.template.CopyFrom(template(image))
    s.spec.pod_management_policy = policy
    s.spec.update_strategy.type = strategy
    if strategy == "RollingUpdate":
        s.spec.update_strategy.rolling_update.partition = partition
    return s


def job(*, completions: int | None = 1, parallelism: int = 1, backoff_limit: int = 6,
        restart_policy: str = "Never", mode: str = "NonIndexed", **extra: Any) -> batch_pb2.Job:
    j = batch_pb2.Job()
    j.metadata.name, j.metadata.namespace, j.metadata.uid = "pi", "ns", "job-uid"
    if completions is not None:
        j.spec.completions = completions
    j.spec.parallelism = parallelism
    j.spec.backoff_limit = backoff_limit
    j.spec.completion_mode = mode
    j.spec.template.CopyFrom(template())
    j.spec.template.spec.restart_policy = restart_policy
    for key, value in extra.items():
        setattr(j.spec, key, value)
    return j


def owned_pod(owner: Any, name: str, *, kind: str, phase: str = "Running", ready: bool = True,
              node_name: str = "", labels: dict[str, str] | None = None,
              terminating: bool = False, ready_since: datetime | None = None) -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.name, p.metadata.namespace = name, owner.metadata.namespace
    p.metadata.uid = f"uid-{name}"
    p.metadata.labels.update({"app": "x", **(labels or {})})
    p.metadata.owner_references.add(kind=kind, name=owner.metadata.name, uid=owner.metadata.uid,
                                    controller=True)
    p.spec.node_name = node_name
    p.status.phase = phase
    cond = p.status.conditions.add(type="Ready", status="True" if ready else "False")
    cond.last_transition_time.CopyFrom(ts(ready_since or NOW - timedelta(hours=1)))
    if terminating:
        p.metadata.deletion_timestamp.CopyFrom(ts(NOW))
    return p


def created_names(plan: Plan) -> list[str]:
    return [p.metadata.name or p.metadata.generate_name for p in plan.creates]
