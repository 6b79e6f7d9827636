"""Server-side printing: column sets, cells per kind and status shape, Table assembly."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from master.apiserver import tables
from protos import resources

NOW = datetime(2024, 5, 2, 12, 0, 0, tzinfo=UTC)
CREATED = "2024-05-02T11:55:00Z"  # five minutes before NOW


def meta(name: str = "x", **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "default", "creationTimestamp": CREATED,
            "resourceVersion": "42", "uid": "u-1", **extra}


# --- human_duration -------------------------------------------------------------

@pytest.mark.parametrize(("seconds", "text"), [
    (-3, "<invalid>"), (-2, "<invalid>"), (-1.5, "0s"), (-1, "0s"), (-0.2, "0s"),
    (0, "0s"), (0.9, "0s"), (1, "1s"), (70, "70s"), (119.9, "119s"),
    (120, "2m"), (150, "2m30s"), (190, "3m10s"), (599, "9m59s"), (600, "10m"),
    (70 * 60, "70m"), (179 * 60 + 59, "179m"), (3 * 3600, "3h"), (3 * 3600 + 5 * 60, "3h5m"),
    (7 * 3600 + 59 * 60 + 59, "7h59m"), (8 * 3600, "8h"), (47 * 3600, "47h"),
    (48 * 3600, "2d"), (49 * 3600, "2d1h"), ((8 * 24 - 1) * 3600, "7d23h"),
    ((8 * 24 + 2) * 3600, "8d"), (367 * 24 * 3600, "367d"), (365 * 2 * 24 * 3600, "2y"),
    ((365 * 2 * 24 + 25) * 3600, "2y1d"), ((365 * 8 * 24 + 2) * 3600, "8y"),
    (365 * 20 * 24 * 3600, "20y"), (math.nan, "<invalid>"), (math.inf, "<invalid>"),
])
def test_human_duration(seconds: float, text: str) -> None:
    assert tables.human_duration(seconds) == text


@given(st.floats(min_value=-1e10, max_value=1e10))
def test_human_duration_is_total(seconds: float) -> None:
    assert tables.human_duration(seconds)


# --- column sets ----------------------------------------------------------------

def wide(names: list[str]) -> list[tuple[str, int]]:
    return [(n[1:-1], 1) if n.startswith("[") else (n, 0) for n in names]


COLUMNS = {
    ("", "pods"): ["Name", "Ready", "Status", "Restarts", "Age", "[IP]", "[Node]",
                   "[Nominated Node]", "[Readiness Gates]"],
    ("apps", "deployments"): ["Name", "Ready", "Up-to-date", "Available", "Age", "[Containers]",
                              "[Images]", "[Selector]"],
    ("apps", "replicasets"): ["Name", "Desired", "Current", "Ready", "Age", "[Containers]",
                              "[Images]", "[Selector]"],
    ("", "replicationcontrollers"): ["Name", "Desired", "Current", "Ready", "Age",
                                     "[Containers]", "[Images]", "[Selector]"],
    ("apps", "daemonsets"): ["Name", "Desired", "Current", "Ready", "Up-to-date", "Available",
                             "Node Selector", "Age", "[Containers]", "[Images]", "[Selector]"],
    ("apps", "statefulsets"): ["Name", "Ready", "Age", "[Containers]", "[Images]"],
    ("batch", "jobs"): ["Name", "Status", "Completions", "Duration", "Age", "[Containers]",
                        "[Images]", "[Selector]"],
    ("batch", "cronjobs"): ["Name", "Schedule", "Timezone", "Suspend", "Active", "Last Schedule",
                            "Age", "[Containers]", "[Images]", "[Selector]"],
    ("", "services"): ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age",
                       "[Selector]"],
    ("", "endpoints"): ["Name", "Endpoints", "Age"],
    ("", "nodes"): ["Name", "Status", "Roles", "Age", "Version", "[Internal-IP]",
                    "[External-IP]", "[OS-Image]", "[Kernel-Version]", "[Container-Runtime]"],
    ("", "namespaces"): ["Name", "Status", "Age"],
    ("", "configmaps"): ["Name", "Data", "Age"],
    ("", "secrets"): ["Name", "Type", "Data", "Age"],
    ("", "events"): ["Last Seen", "Type", "Reason", "Object", "[Subobject]", "[Source]",
                     "Message", "[First Seen]", "[Count]", "[Name]"],
    ("", "resourcequotas"): ["Name", "Age", "Request", "Limit"],
    ("coordination.k8s.io", "leases"): ["Name", "Holder", "Age"],
    ("example.com", "widgets"): ["Name", "Created At"],
    ("apps", "pods"): ["Name", "Created At"],  # the group matters, not just the plural
}


@pytest.mark.parametrize(("group", "resource"), list(COLUMNS))
def test_column_definitions(group: str, resource: str) -> None:
    columns = tables.column_definitions(resource, group)
    assert [(c["name"], c["priority"]) for c in columns] == wide(COLUMNS[(group, resource)])
    for c in columns:
        assert set(c) == {"name", "type", "format", "description", "priority"}
        assert c["type"] in ("string", "integer", "boolean", "date")
        assert c["format"] == ("name" if c["name"] == "Name" else "")
        assert c["description"]


def test_every_registry_resource_has_its_own_columns() -> None:
    for info in resources.RESOURCES:
        assert (info.group, info.resource) in COLUMNS


def test_default_columns_created_at_is_a_date() -> None:
    assert tables.column_definitions("widgets", "example.com")[1]["type"] == "date"


def test_column_definitions_returns_copies() -> None:
    tables.column_definitions("pods", "")[0]["name"] = "Mangled"
    assert tables.column_definitions("pods", "")[0]["name"] == "Name"


@pytest.mark.parametrize("info", resources.RESOURCES, ids=lambda i: i.resource)
@pytest.mark.parametrize("obj", [{}, {"metadata": {"name": "x"}}, {"metadata": meta(),
                                                                   "spec": {}, "status": {}}])
def test_cells_match_columns_for_every_registry_resource(info: resources.ResourceInfo,
                                                         obj: dict[str, Any]) -> None:
    cells = tables.row_cells(info.resource, info.group, obj, now=NOW)
    assert len(cells) == len(tables.column_definitions(info.resource, info.group))


# --- pods -----------------------------------------------------------------------

def running(name: str = "app", *, ready: bool = True, restarts: int = 0,
            **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "nginx", "imageID": "", "ready": ready,
            "restartCount": restarts, "state": {"running": {"startedAt": CREATED}}, **extra}


def waiting(reason: str, *, name: str = "app", restarts: int = 0,
            **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "nginx", "imageID": "", "ready": False,
            "restartCount": restarts, "state": {"waiting": {"reason": reason}}, **extra}


def terminated(name: str = "app", *, reason: str = "", exit_code: int = 0, signal: int = 0,
               restarts: int = 0) -> dict[str, Any]:
    state: dict[str, Any] = {"exitCode": exit_code}
    if reason:
        state["reason"] = reason
    if signal:
        state["signal"] = signal
    return {"name": name, "image": "nginx", "imageID": "", "ready": False,
            "restartCount": restarts, "state": {"terminated": state}}


def pod(statuses: list[dict[str, Any]] | None = None, *, phase: str = "Running",
        containers: int = 1, init: list[dict[str, Any]] | None = None,
        init_statuses: list[dict[str, Any]] | None = None, ready: bool | None = None,
        status_extra: dict[str, Any] | None = None, spec_extra: dict[str, Any] | None = None,
        meta_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": f"c{i}", "image": "nginx"}
                                           for i in range(containers)],
                            "nodeName": "node1", **(spec_extra or {})}
    if init is not None:
        spec["initContainers"] = init
    status: dict[str, Any] = {"phase": phase, "podIPs": [{"ip": "10.244.0.5"}],
                              **(status_extra or {})}
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    if statuses is not None:
        status["containerStatuses"] = statuses
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    return {"metadata": meta("p", **(meta_extra or {})), "spec": spec, "status": status}


LAST_EXIT: dict[str, Any] = {"lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                          "finishedAt": "2024-05-02T11:58:00Z"}}}
INIT = [{"name": "setup", "image": "busybox"}]
SIDECAR = [{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}]

POD_CASES: dict[str, tuple[dict[str, Any], list[Any]]] = {
    "running": (pod([running()]), ["1/1", "Running", "0"]),
    "pending-unscheduled": (pod(phase="Pending", spec_extra={"nodeName": ""}),
                            ["0/1", "Pending", "0"]),
    "container-creating": (pod([waiting("ContainerCreating")], phase="Pending"),
                           ["0/1", "ContainerCreating", "0"]),
    "crashloop-with-last-restart": (pod([waiting("CrashLoopBackOff", restarts=5, **LAST_EXIT)]),
                                    ["0/1", "CrashLoopBackOff", "5 (2m ago)"]),
    "restarts-without-finish-time": (pod([running(restarts=3)]), ["1/1", "Running", "3"]),
    "err-image-pull": (pod([waiting("ErrImagePull")], phase="Pending"),
                       ["0/1", "ErrImagePull", "0"]),
    "completed": (pod([terminated(reason="Completed")], phase="Succeeded"),
                  ["0/1", "Completed", "0"]),
    "error": (pod([terminated(reason="Error", exit_code=1)], phase="Failed"),
              ["0/1", "Error", "0"]),
    "oom-killed": (pod([terminated(reason="OOMKilled", exit_code=137)], phase="Failed"),
                   ["0/1", "OOMKilled", "0"]),
    "exit-code-without-reason": (pod([terminated(exit_code=3)], phase="Failed"),
                                 ["0/1", "ExitCode:3", "0"]),
    "signal-without-reason": (pod([terminated(exit_code=137, signal=9)], phase="Failed"),
                              ["0/1", "Signal:9", "0"]),
    "two-containers-one-ready": (pod([running("c0"), running("c1", ready=False)], containers=2),
                                 ["1/2", "Running", "0"]),
    "first-container-state-wins": (pod([waiting("ImagePullBackOff", name="c0"),
                                        waiting("ErrImagePull", name="c1")], containers=2),
                                   ["0/2", "ImagePullBackOff", "0"]),
    "completed-but-one-running-ready": (pod([running("c0"), terminated("c1", reason="Completed")],
                                            containers=2, ready=True),
                                        ["1/2", "Running", "0"]),
    "completed-but-one-running-not-ready": (
        pod([running("c0"), terminated("c1", reason="Completed")], containers=2, ready=False),
        ["1/2", "NotReady", "0"]),
    "init-running": (pod([waiting("PodInitializing")], phase="Pending", init=INIT,
                         init_statuses=[running("setup", ready=False)]),
                     ["0/1", "Init:0/1", "0"]),
    "init-crashloop": (pod([waiting("PodInitializing")], phase="Pending", init=INIT,
                           init_statuses=[waiting("CrashLoopBackOff", name="setup", restarts=2)]),
                       ["0/1", "Init:CrashLoopBackOff", "2"]),
    "init-error": (pod(phase="Pending", init=INIT,
                       init_statuses=[terminated("setup", reason="Error", exit_code=1)]),
                   ["0/1", "Init:Error", "0"]),
    "init-exit-code": (pod(phase="Pending", init=INIT,
                           init_statuses=[terminated("setup", exit_code=2)]),
                       ["0/1", "Init:ExitCode:2", "0"]),
    "init-waiting-pod-initializing": (pod(phase="Pending", init=INIT,
                                          init_statuses=[waiting("PodInitializing",
                                                                 name="setup")]),
                                      ["0/1", "Init:0/1", "0"]),
    "init-done-app-running": (pod([running()], init=INIT,
                                  init_statuses=[terminated("setup", reason="Completed",
                                                            restarts=4)]),
                              ["1/1", "Running", "0"]),
    "sidecar-counts-as-container": (pod([running()], init=SIDECAR,
                                        init_statuses=[running("proxy", started=True,
                                                               restarts=1)]),
                                    ["2/2", "Running", "1"]),
    "terminating": (pod([running()], meta_extra={"deletionTimestamp": "2024-05-02T11:59:00Z"}),
                    ["1/1", "Terminating", "0"]),
    "terminating-node-lost": (pod([running()], status_extra={"reason": "NodeLost"},
                                  meta_extra={"deletionTimestamp": "2024-05-02T11:59:00Z"}),
                              ["1/1", "Unknown", "0"]),
    "deleted-but-finished": (pod([terminated(reason="Completed")], phase="Succeeded",
                                 meta_extra={"deletionTimestamp": "2024-05-02T11:59:00Z"}),
                             ["0/1", "Completed", "0"]),
    "evicted": (pod(phase="Failed", status_extra={"reason": "Evicted"}), ["0/1", "Evicted", "0"]),
    "scheduling-gated": (pod(phase="Pending", status_extra={"conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
        ["0/1", "SchedulingGated", "0"]),
}


@pytest.mark.parametrize("case", list(POD_CASES))
def test_pod_status_shapes(case: str) -> None:
    obj, expected = POD_CASES[case]
    cells = tables.row_cells("pods", "", obj, now=NOW)
    assert cells[0] == "p"
    assert cells[1:4] == expected
    assert cells[4] == "5m"


@pytest.mark.parametrize(("obj", "wide_cells"), [
    (pod([running()]), ["10.244.0.5", "node1", "<none>", "<none>"]),
    (pod(phase="Pending", spec_extra={"nodeName": ""}, status_extra={"podIPs": []}),
     ["<none>", "<none>", "<none>", "<none>"]),
    (pod([running()], status_extra={"podIPs": None, "podIP": "10.244.1.9",
                                    "nominatedNodeName": "node2"}),
     ["10.244.1.9", "node1", "node2", "<none>"]),
    (pod([running()], spec_extra={"readinessGates": [{"conditionType": "a"},
                                                     {"conditionType": "b"}]},
         status_extra={"conditions": [{"type": "a", "status": "True"},
                                      {"type": "b", "status": "False"}]}),
     ["10.244.0.5", "node1", "<none>", "1/2"]),
])
def test_pod_wide_cells(obj: dict[str, Any], wide_cells: list[str]) -> None:
    assert tables.row_cells("pods", "", obj, now=NOW)[5:] == wide_cells


def test_pod_without_creation_timestamp_has_unknown_age() -> None:
    obj = {"metadata": {"name": "p"}, "spec": {"containers": []}, "status": {}}
    assert tables.row_cells("pods", "", obj, now=NOW)[4] == "<unknown>"


@pytest.mark.parametrize(("phase", "reason"), [("Succeeded", "Succeeded"), ("Failed", "Failed"),
                                               ("Running", None)])
def test_pod_row_conditions(phase: str, reason: str | None) -> None:
    row = tables.table_row("pods", "", pod(phase=phase), now=NOW)
    if reason is None:
        assert "conditions" not in row
    else:
        assert row["conditions"][0]["type"] == "Completed"
        assert row["conditions"][0]["reason"] == reason


# --- workloads ------------------------------------------------------------------

TEMPLATE = {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"},
                                    {"name": "log", "image": "busybox"}]}}
SELECTOR = {"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "Exists"},
                                 {"key": "env", "operator": "In", "values": ["staging", "prod"]},
                                 {"key": "zone", "operator": "DoesNotExist"},
                                 {"key": "arch", "operator": "NotIn", "values": ["arm"]}]}
SELECTOR_TEXT = "app=web,arch notin (arm),env in (prod,staging),tier,!zone"

WORKLOAD_CASES: list[tuple[str, str, dict[str, Any], list[Any]]] = [
    ("apps", "deployments",
     {"spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE},
      "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}},
     ["2/3", 3, 2, "5m", "web,log", "nginx:1.27,busybox", "app=web"]),
    ("apps", "deployments",
     {"spec": {"replicas": 0, "selector": SELECTOR, "template": TEMPLATE}},
     ["0/0", 0, 0, "5m", "web,log", "nginx:1.27,busybox", SELECTOR_TEXT]),
    ("apps", "deployments",
     {"spec": {"replicas": 1, "selector": {"matchExpressions": [{"key": "a", "operator": "Bad"}]},
               "template": TEMPLATE}},
     ["0/1", 0, 0, "5m", "web,log", "nginx:1.27,busybox", "<invalid>"]),
    ("apps", "replicasets",
     {"spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "7d"}},
               "template": TEMPLATE}, "status": {"replicas": 2, "readyReplicas": 1}},
     [2, 2, 1, "5m", "web,log", "nginx:1.27,busybox", "app=web,pod-template-hash=7d"]),
    ("apps", "replicasets", {"spec": {"replicas": 1, "selector": {}, "template": TEMPLATE}},
     [1, 0, 0, "5m", "web,log", "nginx:1.27,busybox", "<none>"]),
    ("", "replicationcontrollers",
     {"spec": {"replicas": 2, "selector": {"b": "2", "a": "1"}, "template": TEMPLATE},
      "status": {"replicas": 2, "readyReplicas": 2}},
     [2, 2, 2, "5m", "web,log", "nginx:1.27,busybox", "a=1,b=2"]),
    ("apps", "daemonsets",
     {"spec": {"selector": {"matchLabels": {"app": "agent"}},
               "template": {"spec": {"containers": [{"name": "a", "image": "agent:1"}],
                                     "nodeSelector": {"kubernetes.io/os": "linux"}}}},
      "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                 "updatedNumberScheduled": 3, "numberAvailable": 2}},
     [3, 3, 2, 3, 2, "kubernetes.io/os=linux", "5m", "a", "agent:1", "app=agent"]),
    ("apps", "daemonsets",
     {"spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": TEMPLATE}},
     [0, 0, 0, 0, 0, "<none>", "5m", "web,log", "nginx:1.27,busybox", "app=agent"]),
    ("apps", "statefulsets",
     {"spec": {"replicas": 3, "template": TEMPLATE}, "status": {"readyReplicas": 1}},
     ["1/3", "5m", "web,log", "nginx:1.27,busybox"]),
]


@pytest.mark.parametrize(("group", "resource", "obj", "cells"), WORKLOAD_CASES)
def test_workload_cells(group: str, resource: str, obj: dict[str, Any], cells: list[Any]) -> None:
    assert tables.row_cells(resource, group, {"metadata": meta("w"), **obj}, now=NOW) == ["w", *cells]


def job(conditions: tuple[tuple[str, str], ...] = (), **fields: Any) -> dict[str, Any]:
    spec = {"template": TEMPLATE, "selector": {"matchLabels": {"job-name": "pi"}},
            **fields.pop("spec", {})}
    status = {"conditions": [{"type": t, "status": s} for t, s in conditions],
              **fields.pop("status", {})}
    return {"metadata": meta("pi", **fields.pop("meta", {})), "spec": spec, "status": status}


JOB_CASES = [
    (job((("Complete", "True"),), spec={"completions": 1},
         status={"succeeded": 1, "startTime": "2024-05-02T11:55:00Z",
                 "completionTime": "2024-05-02T11:55:30Z"}),
     ["Complete", "1/1", "30s"]),
    (job(spec={"completions": 5}, status={"succeeded": 2, "startTime": "2024-05-02T11:57:00Z"}),
     ["Running", "2/5", "3m"]),
    (job(spec={"parallelism": 3}), ["Running", "0/1 of 3", ""]),
    (job(spec={"parallelism": 1}, status={"succeeded": 1}), ["Running", "1/1", ""]),
    (job((("Failed", "True"),), spec={"completions": 1}), ["Failed", "0/1", ""]),
    (job((("Suspended", "True"),), spec={"completions": 1}), ["Suspended", "0/1", ""]),
    (job((("Suspended", "False"),), spec={"completions": 1}), ["Running", "0/1", ""]),
    (job((("FailureTarget", "True"),), spec={"completions": 1}), ["FailureTarget", "0/1", ""]),
    (job((("Suspended", "True"),), spec={"completions": 1},
         meta={"deletionTimestamp": "2024-05-02T11:59:00Z"}), ["Terminating", "0/1", ""]),
    (job((("Complete", "True"),), spec={"completions": 1},
         meta={"deletionTimestamp": "2024-05-02T11:59:00Z"}), ["Complete", "0/1", ""]),
]


@pytest.mark.parametrize(("obj", "cells"), JOB_CASES)
def test_job_cells(obj: dict[str, Any], cells: list[Any]) -> None:
    assert tables.row_cells("jobs", "batch", obj, now=NOW) == [
        "pi", *cells, "5m", "web,log", "nginx:1.27,busybox", "job-name=pi"]


@pytest.mark.parametrize(("spec", "status", "cells"), [
    ({"schedule": "*/5 * * * *", "suspend": False}, {},
     ["*/5 * * * *", "<none>", "False", 0, "<none>"]),
    ({"schedule": "0 3 * * *", "timeZone": "Europe/Paris", "suspend": True},
     {"active": [{"name": "j1"}], "lastScheduleTime": "2024-05-02T11:58:00Z"},
     ["0 3 * * *", "Europe/Paris", "True", 1, "2m"]),
    ({"schedule": "@hourly"}, {}, ["@hourly", "<none>", "<unset>", 0, "<none>"]),
])
def test_cronjob_cells(spec: dict[str, Any], status: dict[str, Any], cells: list[Any]) -> None:
    job_template = {"spec": {"template": TEMPLATE}}
    obj = {"metadata": meta("cj"), "spec": {**spec, "jobTemplate": job_template},
           "status": status}
    assert tables.row_cells("cronjobs", "batch", obj, now=NOW) == [
        "cj", *cells, "5m", "web,log", "nginx:1.27,busybox", "<none>"]


# --- services and endpoints -----------------------------------------------------

SERVICE_CASES = [
    ({"type": "ClusterIP", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
      "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}], "selector": {"app": "web"}},
     {}, ["ClusterIP", "10.96.0.20", "<none>", "80/TCP", "5m", "app=web"]),
    ({"type": "ClusterIP", "clusterIP": "10.96.0.21",
      "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
     {}, ["ClusterIP", "10.96.0.21", "<none>", "53/UDP,53/TCP", "5m", "<none>"]),
    ({"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"], "ports": [],
      "selector": {"app": "db"}},
     {}, ["ClusterIP", "None", "<none>", "<none>", "5m", "app=db"]),
    ({"type": "ClusterIP", "clusterIP": "10.96.0.22", "externalIPs": ["192.0.2.1", "192.0.2.2"],
      "ports": [{"port": 80, "protocol": "TCP"}]},
     {}, ["ClusterIP", "10.96.0.22", "192.0.2.1,192.0.2.2", "80/TCP", "5m", "<none>"]),
    ({"type": "NodePort", "clusterIP": "10.96.0.23",
      "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                {"port": 443, "nodePort": 30443, "protocol": "TCP"}]},
     {}, ["NodePort", "10.96.0.23", "<none>", "80:30080/TCP,443:30443/TCP", "5m", "<none>"]),
    ({"type": "LoadBalancer", "clusterIP": "10.96.0.24",
      "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"}]},
     {"loadBalancer": {}},
     ["LoadBalancer", "10.96.0.24", "<pending>", "80:31000/TCP", "5m", "<none>"]),
    ({"type": "LoadBalancer", "clusterIP": "10.96.0.25", "externalIPs": ["192.0.2.9"],
      "ports": [{"port": 80, "nodePort": 31001, "protocol": "TCP"}]},
     {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}, {"hostname": "lb.example.com"},
                                   {"ip": "203.0.113.7"}]}},
     ["LoadBalancer", "10.96.0.25", "203.0.113.7,lb.example.com,192.0.2.9", "80:31001/TCP",
      "5m", "<none>"]),
    ({"type": "ExternalName", "externalName": "db.example.com"},
     {}, ["ExternalName", "<none>", "db.example.com", "<none>", "5m", "<none>"]),
]


@pytest.mark.parametrize(("spec", "status", "cells"), SERVICE_CASES)
def test_service_cells(spec: dict[str, Any], status: dict[str, Any], cells: list[Any]) -> None:
    obj = {"metadata": meta("svc"), "spec": spec, "status": status}
    assert tables.row_cells("services", "", obj, now=NOW) == ["svc", *cells]


def addresses(*ips: str) -> list[dict[str, str]]:
    return [{"ip": ip} for ip in ips]


@pytest.mark.parametrize(("subsets", "text"), [
    (None, "<none>"),
    ([], "<none>"),
    ([{"addresses": addresses("10.244.0.5"), "ports": [{"port": 8080}]}], "10.244.0.5:8080"),
    ([{"addresses": addresses("10.244.0.5", "10.244.1.5"),
       "ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}],
     "10.244.0.5:80,10.244.1.5:80,10.244.0.5:443 + 1 more..."),
    ([{"addresses": addresses("10.244.0.5", "10.244.1.6")}], "10.244.0.5,10.244.1.6"),
    ([{"addresses": addresses("fd00::5"), "ports": [{"port": 80}]}], "[fd00::5]:80"),
    ([{"notReadyAddresses": addresses("10.244.0.7"), "ports": [{"port": 80}]}], ""),
])
def test_endpoints_cells(subsets: list[dict[str, Any]] | None, text: str) -> None:
    obj = {"metadata": meta("ep"), "subsets": subsets}
    assert tables.row_cells("endpoints", "", obj, now=NOW) == ["ep", text, "5m"]


# --- nodes ----------------------------------------------------------------------

NODE_INFO = {"kubeletVersion": "v1.31.0-flotilla", "osImage": "Debian GNU/Linux 12",
             "kernelVersion": "6.1.0", "containerRuntimeVersion": "docker://24.0.5"}
NODE_ADDRESSES = [{"type": "InternalIP", "address": "10.0.0.11"},
                  {"type": "Hostname", "address": "node1"}]


def node(ready: str | None = "True", *, labels: dict[str, str] | None = None,
         unschedulable: bool = False, info: dict[str, str] | None = None,
         node_addresses: list[dict[str, str]] | None = None) -> dict[str, Any]:
    conditions = [{"type": "MemoryPressure", "status": "False"}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready})
    return {"metadata": meta("node1", labels=labels or {}),
            "spec": {"unschedulable": unschedulable},
            "status": {"conditions": conditions, "nodeInfo": NODE_INFO if info is None else info,
                       "addresses": NODE_ADDRESSES if node_addresses is None else node_addresses}}


WIDE_NODE = ["10.0.0.11", "<none>", "Debian GNU/Linux 12", "6.1.0", "docker://24.0.5"]

NODE_CASES = [
    (node(), ["Ready", "<none>", "5m", "v1.31.0-flotilla", *WIDE_NODE]),
    (node("False"), ["NotReady", "<none>", "5m", "v1.31.0-flotilla", *WIDE_NODE]),
    (node("Unknown"), ["NotReady", "<none>", "5m", "v1.31.0-flotilla", *WIDE_NODE]),
    (node(None), ["Unknown", "<none>", "5m", "v1.31.0-flotilla", *WIDE_NODE]),
    (node(unschedulable=True),
     ["Ready,SchedulingDisabled", "<none>", "5m", "v1.31.0-flotilla", *WIDE_NODE]),
    (node(None, unschedulable=True),
     ["Unknown,SchedulingDisabled", "<none>", "5m", "v1.31.0-flotilla", *WIDE_NODE]),
    (node(labels={"node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/control-plane": "",
                  "node-role.kubernetes.io/": "", "kubernetes.io/hostname": "node1"}),
     ["Ready", "control-plane,worker", "5m", "v1.31.0-flotilla", *WIDE_NODE]),
    (node(labels={"kubernetes.io/role": "edge"}),
     ["Ready", "edge", "5m", "v1.31.0-flotilla", *WIDE_NODE]),
    (node(info={}, node_addresses=[{"type": "ExternalIP", "address": "198.51.100.4"}]),
     ["Ready", "<none>", "5m", "", "<none>", "198.51.100.4", "<unknown>", "<unknown>",
      "<unknown>"]),
]


@pytest.mark.parametrize(("obj", "cells"), NODE_CASES)
def test_node_cells(obj: dict[str, Any], cells: list[Any]) -> None:
    assert tables.row_cells("nodes", "", obj, now=NOW) == ["node1", *cells]


# --- small core kinds -----------------------------------------------------------

SIMPLE_CASES: list[tuple[str, str, dict[str, Any], list[Any]]] = [
    ("", "namespaces", {"status": {"phase": "Active"}}, ["Active", "5m"]),
    ("", "namespaces", {"status": {"phase": "Terminating"}}, ["Terminating", "5m"]),
    ("", "configmaps", {"data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}, [3, "5m"]),
    ("", "configmaps", {}, [0, "5m"]),
    ("", "secrets", {"type": "Opaque", "data": {"u": "YQ==", "p": "Yg=="}}, ["Opaque", 2, "5m"]),
    ("", "secrets", {"type": "kubernetes.io/tls", "data": {}},
     ["kubernetes.io/tls", 0, "5m"]),
    ("", "resourcequotas",
     {"status": {"hard": {"pods": "10", "requests.cpu": "2", "limits.memory": "1Gi",
                          "limits": "3"},
                 "used": {"pods": "4", "requests.cpu": "500m"}}},
     ["5m", "limits: 0/3, pods: 4/10, requests.cpu: 500m/2", "limits.memory: 0/1Gi"]),
    ("", "resourcequotas", {}, ["5m", "", ""]),
    ("coordination.k8s.io", "leases", {"spec": {"holderIdentity": "master-a"}},
     ["master-a", "5m"]),
    ("coordination.k8s.io", "leases", {"spec": {}}, ["", "5m"]),
]


@pytest.mark.parametrize(("group", "resource", "obj", "cells"), SIMPLE_CASES)
def test_simple_kind_cells(group: str, resource: str, obj: dict[str, Any],
                           cells: list[Any]) -> None:
    assert tables.row_cells(resource, group, {"metadata": meta("o"), **obj}, now=NOW) == ["o", *cells]


# --- events ---------------------------------------------------------------------

def event(**fields: Any) -> dict[str, Any]:
    return {"metadata": meta("web.17c"), "type": "Warning", "reason": "BackOff",
            "message": "  Back-off restarting failed container\n",
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default",
                               "fieldPath": "spec.containers{web}"}, **fields}


EVENT_CASES = [
    (event(firstTimestamp="2024-05-02T11:50:00Z", lastTimestamp="2024-05-02T11:59:00Z", count=4,
           source={"component": "kubelet", "host": "node1"}),
     ["60s", "Warning", "BackOff", "pod/web", "spec.containers{web}", "kubelet, node1",
      "Back-off restarting failed container", "10m", 4, "web.17c"]),
    (event(firstTimestamp="2024-05-02T11:50:00Z", source={"component": "default-scheduler"}),
     ["10m", "Warning", "BackOff", "pod/web", "spec.containers{web}", "default-scheduler",
      "Back-off restarting failed container", "10m", 1, "web.17c"]),
    (event(eventTime="2024-05-02T11:57:59.500000Z", reportingComponent="flotilla-scheduler",
           reportingInstance="master-a"),
     ["2m", "Warning", "BackOff", "pod/web", "spec.containers{web}",
      "flotilla-scheduler, master-a", "Back-off restarting failed container", "2m", 1,
      "web.17c"]),
    (event(eventTime="2024-05-02T11:50:00.000000Z",
           series={"count": 7, "lastObservedTime": "2024-05-02T11:59:30.000000Z"}),
     ["30s", "Warning", "BackOff", "pod/web", "spec.containers{web}", "",
      "Back-off restarting failed container", "10m", 7, "web.17c"]),
    (event(involvedObject={"kind": "Node"}, type="Normal", reason="Starting"),
     ["<unknown>", "Normal", "Starting", "node", "", "",
      "Back-off restarting failed container", "<unknown>", 1, "web.17c"]),
]


@pytest.mark.parametrize(("obj", "cells"), EVENT_CASES)
def test_event_cells(obj: dict[str, Any], cells: list[Any]) -> None:
    assert tables.row_cells("events", "", obj, now=NOW) == cells


# --- default printer ------------------------------------------------------------

@pytest.mark.parametrize(("created", "cell"), [
    (CREATED, CREATED),
    ("2024-05-02T13:55:00+02:00", CREATED),
    ("2024-05-02T11:55:00.5Z", CREATED),
    (None, "0001-01-01T00:00:00Z"),
])
def test_default_printer(created: str | None, cell: str) -> None:
    metadata = {"name": "w"} if created is None else {"name": "w", "creationTimestamp": created}
    assert tables.row_cells("widgets", "example.com", {"metadata": metadata}, now=NOW) == ["w", cell]


# --- Table assembly -------------------------------------------------------------

def test_table_shape() -> None:
    pods = [pod([running()]), pod([waiting("ErrImagePull")], phase="Pending")]
    result = tables.table("pods", "", pods, resource_version="1009", now=NOW)
    assert result["kind"] == "Table"
    assert result["apiVersion"] == "meta.k8s.io/v1"
    assert result["metadata"] == {"resourceVersion": "1009"}
    assert result["columnDefinitions"] == tables.column_definitions("pods", "")
    assert [r["cells"][2] for r in result["rows"]] == ["Running", "ErrImagePull"]
    assert all(len(r["cells"]) == 9 for r in result["rows"])


def test_empty_table_keeps_columns_and_rows() -> None:
    result = tables.table("services", "", [], resource_version="7", now=NOW)
    assert result["rows"] == []
    assert len(result["columnDefinitions"]) == 7


def test_table_continue_token_and_no_headers() -> None:
    result = tables.table("pods", "", [], resource_version="7", now=NOW, continue_token="abc",
                          remaining_item_count=12, include_columns=False)
    assert result["metadata"] == {"resourceVersion": "7", "continue": "abc",
                                  "remainingItemCount": 12}
    assert result["columnDefinitions"] == []


def test_include_object_metadata_is_partial_object_metadata() -> None:
    obj = pod([running()])
    row = tables.table("pods", "", [obj], resource_version="1", now=NOW)["rows"][0]
    assert row["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj["metadata"]}


def test_include_object_object_adds_type_meta_without_mutating() -> None:
    obj = pod([running()])
    row = tables.table_row("pods", "", obj, include_object="Object", now=NOW)
    assert row["object"]["kind"] == "Pod"
    assert row["object"]["apiVersion"] == "v1"
    assert row["object"]["spec"] == obj["spec"]
    assert "kind" not in obj


def test_include_object_object_keeps_full_object() -> None:
    obj = {"kind": "Deployment", "apiVersion": "apps/v1", "metadata": meta("d"), "spec": {}}
    row = tables.table_row("deployments", "apps", obj, include_object="Object", now=NOW)
    assert row["object"] == obj


def test_include_object_none_omits_object() -> None:
    row = tables.table_row("pods", "", pod([running()]), include_object="None", now=NOW)
    assert "object" not in row


def test_include_object_rejects_unknown_value() -> None:
    with pytest.raises(ValueError):
        tables.table("pods", "", [pod()], resource_version="1", include_object="Full", now=NOW)


def test_one_row_table_takes_object_resource_version() -> None:
    obj = {"metadata": meta("cm", resourceVersion="77"), "data": {"a": "b"}}
    result = tables.one_row_table("configmaps", "", obj, now=NOW)
    assert result["metadata"] == {"resourceVersion": "77"}
    assert [r["cells"] for r in result["rows"]] == [["cm", 1, "5m"]]
    assert result["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert tables.one_row_table("configmaps", "", obj, now=NOW,
                                resource_version="80")["metadata"]["resourceVersion"] == "80"


def test_naive_now_is_utc() -> None:
    naive = NOW.replace(tzinfo=None)
    assert tables.row_cells("namespaces", "", {"metadata": meta("n")}, now=naive)[2] == "5m"


def test_table_does_not_mutate_inputs() -> None:
    import copy
    objs = [pod([waiting("CrashLoopBackOff", restarts=5, **LAST_EXIT)], phase="Succeeded")]
    before = copy.deepcopy(objs)
    for include in tables.INCLUDE_OBJECT_CHOICES:
        tables.table("pods", "", objs, resource_version="1", include_object=include, now=NOW)
    assert objs == before
