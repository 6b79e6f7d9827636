"""Table tests for master/reconcile/endpoints.py."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import pytest

from master.reconcile.endpoints import TRIGGER_TIME_ANNOTATION, compute_subsets, plan_endpoints
from protos.core.v1 import core_pb2

NOW = _dt.datetime(2026, 1, 1, tzinfo=_dt.UTC)


def svc(target: Any = 8080, *, publish: bool = False, name: str = "web") -> core_pb2.Service:
    s = core_pb2.Service()
    s.metadata.name, s.metadata.namespace = name, "default"
    s.spec.selector["app"] = "web"
    p = s.spec.ports.add(name="http", port=80, protocol="TCP")
    if isinstance(target, str):
        p.target_port.string_value = target
    else:
        p.target_port.number_value = target
    s.spec.publish_not_ready_addresses = publish
    return s


def pod(name: str, ip: str, *, ready: bool = True, port_name: str = "http", port: int = 9000,
        labels: dict[str, str] | None = None, deleting: bool = False, phase: str = "Running",
        hostname: str = "", subdomain: str = "") -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.name, p.metadata.namespace, p.metadata.uid = name, "default", f"uid-{name}"
    p.metadata.labels.update(labels if labels is not None else {"app": "web"})
    if deleting:
        p.metadata.deletion_timestamp.FromDatetime(NOW)
    p.spec.node_name = "n1"
    p.spec.hostname, p.spec.subdomain = hostname, subdomain
    p.spec.containers.add(name="c").ports.add(name=port_name, container_port=port, protocol="TCP")
    p.status.phase, p.status.pod_ip = phase, ip
    p.status.conditions.add(type="Ready", status="True" if ready else "False")
    return p


def summary(subsets: list[Any]) -> list[tuple[list[str], list[str], list[int]]]:
    return [([a.ip for a in s.addresses], [a.ip for a in s.not_ready_addresses], [p.port for p in s.ports])
            for s in subsets]


CASES = [
    ("ready and not ready", svc(), [pod("a", "10.0.0.2"), pod("b", "10.0.0.1", ready=False)],
     [(["10.0.0.2"], ["10.0.0.1"], [8080])]),
    ("sorted by ip", svc(), [pod("a", "10.0.0.10"), pod("b", "10.0.0.9")],
     [(["10.0.0.9", "10.0.0.10"], [], [8080])]),
    ("named port per pod", svc("http"), [pod("a", "10.0.0.1", port=9000), pod("b", "10.0.0.2", port=9001)],
     [(["10.0.0.1"], [], [9000]), (["10.0.0.2"], [], [9001])]),
    ("pod without the named port", svc("http"), [pod("a", "10.0.0.1", port_name="other")], []),
    ("no ip yet", svc(), [pod("a", "")], []),
    ("other labels", svc(), [pod("a", "10.0.0.1", labels={"app": "db"})], []),
    ("deleting pod leaves", svc(), [pod("a", "10.0.0.1", deleting=True)], []),
    ("finished pod leaves", svc(), [pod("a", "10.0.0.1", phase="Succeeded")], []),
    ("publishNotReadyAddresses", svc(publish=True), [pod("a", "10.0.0.1", ready=False)],
     [(["10.0.0.1"], [], [8080])]),
]


@pytest.mark.parametrize("name,service,pods,want", CASES, ids=[c[0] for c in CASES])
def test_compute_subsets(name: str, service: Any, pods: list[Any], want: Any) -> None:
    assert summary(compute_subsets(service, pods)) == want


def test_address_details() -> None:
    [subset] = compute_subsets(svc(name="db"), [pod("db-0", "10.0.0.1", hostname="db-0", subdomain="db")])
    a = subset.addresses[0]
    assert (a.hostname, a.node_name, a.target_ref.kind, a.target_ref.name, a.target_ref.uid) == (
        "db-0", "n1", "Pod", "db-0", "uid-db-0")


def test_plan_writes_only_changes() -> None:
    pods = [pod("a", "10.0.0.1")]
    first = plan_endpoints(svc(), pods, None, now=NOW)
    assert first is not None and first.metadata.annotations[TRIGGER_TIME_ANNOTATION] == "2026-01-01T00:00:00.000000000Z"
    assert plan_endpoints(svc(), pods, first, now=NOW) is None
    changed = plan_endpoints(svc(), pods + [pod("b", "10.0.0.2")], first, now=NOW + _dt.timedelta(seconds=1))
    assert changed is not None and len(changed.subsets[0].addresses) == 2
    assert changed.metadata.annotations[TRIGGER_TIME_ANNOTATION].startswith("2026-01-01T00:00:01")
