"""Workload rows: apps (Deployments, ReplicaSets, DaemonSets, StatefulSets),
batch (Jobs, CronJobs), and core ReplicationControllers, printed as ReplicaSets
are but for their plain-map selector.

Pure, as the whole package.
"""

from __future__ import annotations

from master.apiserver.tables.cells import (
    _AGE,
    _CONTAINERS,
    _EMPTY,
    _IMAGES,
    _NAME,
    _NONE,
    _SELECTOR,
    Cells,
    Obj,
    Printers,
    _age,
    _col,
    _condition_true,
    _containers_and_images,
    _epoch,
    _format_label_selector,
    _format_labels,
    _ints,
    _name,
    _selector_string,
    _since,
    _template_spec,
    human_duration,
)


def _deployment_cells(obj: Obj, now_s: float) -> Cells:
    spec, status = obj.get("spec") or _EMPTY, obj.get("status") or _EMPTY
    try:  # Deployment prints the bare selector string, "" when empty
        selector = _selector_string(spec.get("selector"))
    except ValueError:
        selector = "<invalid>"
    return [_name(obj), f"{status.get('readyReplicas') or 0}/{spec.get('replicas', 1)}",
            status.get("updatedReplicas") or 0, status.get("availableReplicas") or 0,
            _age(obj, now_s), *_containers_and_images(_template_spec(obj)), selector]


def _replicaset_cells(obj: Obj, now_s: float) -> Cells:
    spec, status = obj.get("spec") or _EMPTY, obj.get("status") or _EMPTY
    return [_name(obj), spec.get("replicas", 1), status.get("replicas") or 0,
            status.get("readyReplicas") or 0, _age(obj, now_s),
            *_containers_and_images(_template_spec(obj)),
            _format_label_selector(spec.get("selector"))]


def _replicationcontroller_cells(obj: Obj, now_s: float) -> Cells:
    cells = _replicaset_cells(obj, now_s)
    cells[-1] = _format_labels((obj.get("spec") or _EMPTY).get("selector"))  # a plain map here
    return cells


def _daemonset_cells(obj: Obj, now_s: float) -> Cells:
    status = obj.get("status") or _EMPTY
    pod_spec = _template_spec(obj)
    return [_name(obj), status.get("desiredNumberScheduled") or 0,
            status.get("currentNumberScheduled") or 0, status.get("numberReady") or 0,
            status.get("updatedNumberScheduled") or 0, status.get("numberAvailable") or 0,
            _format_labels(pod_spec.get("nodeSelector")), _age(obj, now_s),
            *_containers_and_images(pod_spec),
            _format_label_selector((obj.get("spec") or _EMPTY).get("selector"))]


def _statefulset_cells(obj: Obj, now_s: float) -> Cells:
    spec, status = obj.get("spec") or _EMPTY, obj.get("status") or _EMPTY
    return [_name(obj), f"{status.get('readyReplicas') or 0}/{spec.get('replicas', 1)}",
            _age(obj, now_s), *_containers_and_images(_template_spec(obj))]


_JOB_STATUS_ORDER = ("Complete", "Failed", "Terminating", "Suspended", "FailureTarget",
                     "SuccessCriteriaMet")


def _job_status(obj: Obj) -> str:
    conditions = (obj.get("status") or _EMPTY).get("conditions")
    for status in _JOB_STATUS_ORDER:
        if status == "Terminating":
            if (obj.get("metadata") or _EMPTY).get("deletionTimestamp"):
                return status
        elif _condition_true(conditions, status):
            return status
    return "Running"


def _job_completions(spec: Obj, succeeded: int) -> str:
    if spec.get("completions") is not None:
        return f"{succeeded}/{spec['completions']}"
    parallelism = spec.get("parallelism") or 0
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def _job_duration(status: Obj, now_s: float) -> str:
    start = _epoch(status["startTime"]) if status.get("startTime") else None
    if start is None:
        return ""
    end = _epoch(status["completionTime"]) if status.get("completionTime") else None
    return human_duration((now_s if end is None else end) - start)


def _job_cells(obj: Obj, now_s: float) -> Cells:
    spec, status = obj.get("spec") or _EMPTY, obj.get("status") or _EMPTY
    return [_name(obj), _job_status(obj), _job_completions(spec, status.get("succeeded") or 0),
            _job_duration(status, now_s), _age(obj, now_s),
            *_containers_and_images(_template_spec(obj)),
            _format_label_selector(spec.get("selector"))]


def _cronjob_cells(obj: Obj, now_s: float) -> Cells:
    spec, status = obj.get("spec") or _EMPTY, obj.get("status") or _EMPTY
    job_spec = (spec.get("jobTemplate") or _EMPTY).get("spec") or _EMPTY
    suspend = spec.get("suspend")
    last = status.get("lastScheduleTime")
    return [_name(obj), spec.get("schedule", ""), spec.get("timeZone") or _NONE,
            "<unset>" if suspend is None else str(bool(suspend)),
            len(status.get("active") or ()), _since(last, now_s) if last else _NONE,
            _age(obj, now_s),
            *_containers_and_images((job_spec.get("template") or _EMPTY).get("spec") or _EMPTY),
            _format_label_selector(job_spec.get("selector"))]


PRINTERS: Printers = {
    ("apps", "deployments"): ([
        _NAME, _col("Ready", "Ready pods out of desired replicas."),
        _col("Up-to-date", "Pods that run the newest template."),
        _col("Available", "Pods available for at least minReadySeconds."), _AGE,
        _CONTAINERS, _IMAGES, _SELECTOR,
    ], _deployment_cells),
    ("apps", "replicasets"): ([
        _NAME, *_ints("Desired", "Current", "Ready"), _AGE, _CONTAINERS, _IMAGES, _SELECTOR,
    ], _replicaset_cells),
    ("", "replicationcontrollers"): ([
        _NAME, *_ints("Desired", "Current", "Ready"), _AGE, _CONTAINERS, _IMAGES, _SELECTOR,
    ], _replicationcontroller_cells),
    ("apps", "daemonsets"): ([
        _NAME, *_ints("Desired", "Current", "Ready", "Up-to-date", "Available"),
        _col("Node Selector", "The node selector of the pod template."), _AGE,
        _CONTAINERS, _IMAGES, _SELECTOR,
    ], _daemonset_cells),
    ("apps", "statefulsets"): ([
        _NAME, _col("Ready", "Ready pods out of desired replicas."), _AGE, _CONTAINERS, _IMAGES,
    ], _statefulset_cells),
    ("batch", "jobs"): ([
        _NAME, _col("Status", "Status of the job."),
        _col("Completions", "Succeeded pods out of the completions wanted."),
        _col("Duration", "Time required to complete the job."), _AGE,
        _CONTAINERS, _IMAGES, _SELECTOR,
    ], _job_cells),
    ("batch", "cronjobs"): ([
        _NAME, _col("Schedule", "The cron schedule."),
        _col("Timezone", "The time zone of the schedule."),
        _col("Suspend", "Whether later runs are suspended.", type_="boolean"),
        _col("Active", "Jobs currently running.", type_="integer"),
        _col("Last Schedule", "Time since a job was last scheduled."), _AGE,
        _CONTAINERS, _IMAGES, _SELECTOR,
    ], _cronjob_cells),
}
