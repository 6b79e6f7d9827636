"""The Job reconciler: run pods to `completions` successes, within limits.

`plan_job(job, pods, now=..., backoff_base_s=...)` is a pure function of the
Job, the pods it controls and the time; it returns a `JobPlan` (pods to
create and delete, the new status, Events, and whether the finished Job's
TTL has run out). The controller in master/controllers/job.py applies it.

Kubernetes 1.31's order of conditions: when the success criteria are met
the Job first gets SuccessCriteriaMet=True (reason CompletionsReached), its
remaining pods are deleted, and once none is left running it gets
Complete=True with completionTime. A failure (BackoffLimitExceeded,
DeadlineExceeded) first gets FailureTarget=True, then Failed=True once the
pods are gone. A finished Job is never touched again except for its TTL.

Counting: `succeeded` and `failed` never go down; they are the larger of
the stored count and the finished pods present (finished pods are kept, not
deleted; Kubernetes' tracking finalizers are not used). With restartPolicy
OnFailure, container restarts of running pods count as failures against
backoffLimit, as Kubernetes does. A failed pod is replaced after a backoff
of backoff_base_s * 2^(failures-1), capped at 6 minutes, counted from the
last failure's finish time when the pod reports one.

Indexed mode: each pod carries its index in the annotation and label
batch.kubernetes.io/job-completion-index and the env var
JOB_COMPLETION_INDEX, hostname NAME-INDEX; completedIndexes is kept as
Kubernetes writes it ("0-2,4").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from master.reconcile.workloadpods import (
    NORMAL,
    WARNING,
    Plan,
    copy_message,
    is_active,
    is_ready,
    is_terminating,
    pod_from_template,
    restart_count,
)
from protos.batch.v1 import batch_pb2
from protos.core.v1 import core_pb2

INDEX_KEY = "batch.kubernetes.io/job-completion-index"
INDEX_ENV = "JOB_COMPLETION_INDEX"
JOB_NAME_LABELS = ("job-name", "batch.kubernetes.io/job-name")
CONTROLLER_UID_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")
MAX_BACKOFF_S = 360.0

COMPLETIONS_REACHED = ("CompletionsReached", "Reached expected number of succeeded pods")
BACKOFF_EXCEEDED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE_EXCEEDED = ("DeadlineExceeded", "Job was active longer than specified deadline")


@dataclass
class JobPlan(Plan):
    delete_job: bool = False  # ttlSecondsAfterFinished has passed


def condition(status: batch_pb2.JobStatus, type_: str) -> batch_pb2.JobCondition | None:
    for cond in status.conditions:
        if cond.type == type_:
            return cond
    return None


def is_true(status: batch_pb2.JobStatus, type_: str) -> bool:
    cond = condition(status, type_)
    return cond is not None and cond.status == "True"


def is_finished(job: batch_pb2.Job) -> bool:
    return is_true(job.status, "Complete") or is_true(job.status, "Failed")


def _ts(now: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(now)
    return ts


def _set_condition(status: batch_pb2.JobStatus, type_: str, value: str, reason: str,
                   message: str, now: datetime) -> bool:
    """Set a condition; True when it changed."""
    cond = condition(status, type_)
    if cond is not None and (cond.status, cond.reason, cond.message) == (value, reason, message):
        return False
    if cond is None:
        cond = status.conditions.add(type=type_)
    if cond.status != value:
        cond.last_transition_time.CopyFrom(_ts(now))
    cond.status, cond.reason, cond.message = value, reason, message
    cond.last_probe_time.CopyFrom(_ts(now))
    return True


def index_of(pod: core_pb2.Pod) -> int | None:
    text = pod.metadata.annotations.get(INDEX_KEY, pod.metadata.labels.get(INDEX_KEY, ""))
    return int(text) if text.isascii() and text.isdigit() else None


def format_indexes(indexes: set[int]) -> str:
    """Kubernetes' interval list: {0,1,2,4} -> "0-2,4"."""
    parts: list[str] = []
    ordered = sorted(indexes)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def parse_indexes(text: str) -> set[int]:
    result: set[int] = set()
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (not hi or hi.isdigit()):
            result.update(range(int(lo), int(hi or lo) + 1))
    return result


def new_job_pod(job: batch_pb2.Job, index: int | None) -> core_pb2.Pod:
    labels = {k: job.metadata.name for k in JOB_NAME_LABELS}
    labels.update({k: job.metadata.uid for k in CONTROLLER_UID_LABELS})
    annotations: dict[str, str] = {}
    prefix = f"{job.metadata.name}-"
    if index is not None:
        labels[INDEX_KEY] = annotations[INDEX_KEY] = str(index)
        prefix = f"{job.metadata.name}-{index}-"
    pod = pod_from_template(job.spec.template, job, api_version="batch/v1", kind="Job",
                            generate_name=prefix, labels=labels, annotations=annotations)
    if index is not None:
        pod.spec.hostname = f"{job.metadata.name}-{index}"
        for container in list(pod.spec.init_containers) + list(pod.spec.containers):
            if not any(e.name == INDEX_ENV for e in container.env):
                container.env.add(name=INDEX_ENV, value=str(index))
    return pod


def plan_job(job: batch_pb2.Job, pods: list[core_pb2.Pod], *, now: datetime,
             backoff_base_s: float = 10.0) -> JobPlan:
    plan = JobPlan()
    status = copy_message(job.status)
    if is_finished(job):
        _plan_ttl(job, now, plan)
        return plan
    spec = job.spec
    active = [p for p in pods if is_active(p)]
    terminating = [p for p in pods if is_terminating(p) and p.status.phase not in ("Succeeded", "Failed")]
    succeeded_pods = [p for p in pods if p.status.phase == "Succeeded"]
    failed_pods = [p for p in pods if p.status.phase == "Failed"]
    status.succeeded = max(status.succeeded, len(succeeded_pods))
    status.failed = max(status.failed, len(failed_pods))
    indexed = spec.completion_mode == "Indexed"
    if indexed:
        done = parse_indexes(status.completed_indexes)
        done.update(i for p in succeeded_pods if (i := index_of(p)) is not None
                    and i < spec.completions)
        status.completed_indexes = format_indexes(done)

    suspended = spec.HasField("suspend") and spec.suspend
    if _plan_suspend(status, suspended, now, plan):
        plan.deletes.extend(p.metadata.name for p in active)
        _counts(status, [], terminating + active, plan)
        plan.status = status
        return plan
    if not status.HasField("start_time"):
        status.start_time.CopyFrom(_ts(now))

    finishing = _finishing(job, status, active, now, plan)
    if finishing is not None:
        kind, (reason, message) = finishing
        target = "SuccessCriteriaMet" if kind == "Complete" else "FailureTarget"
        if _set_condition(status, target, "True", reason, message, now) and kind == "Failed":
            plan.events.append((WARNING, reason, message))
        plan.deletes.extend(p.metadata.name for p in active)
        still_running = terminating + active
        if not still_running:
            _set_condition(status, kind, "True", reason, message, now)
            if kind == "Complete":
                status.completion_time.CopyFrom(_ts(now))
                plan.events.append((NORMAL, "Completed", "Job completed"))
            _plan_ttl_after(job, now, plan)
        _counts(status, [], still_running, plan)
        plan.status = status
        return plan

    delay = _backoff_remaining(failed_pods, status.failed, now, backoff_base_s)
    occupying = active + (terminating if spec.pod_replacement_policy == "Failed" else [])
    if delay > 0:
        plan.requeue(delay)
    else:
        _plan_creates(job, status, active, occupying, plan)
    _counts(status, active, terminating, plan)
    plan.status = status
    return plan


def _counts(status: batch_pb2.JobStatus, active: list[core_pb2.Pod],
            terminating: list[core_pb2.Pod], plan: Plan) -> None:
    status.active = len(active)
    status.ready = sum(1 for p in active if is_ready(p))
    status.terminating = len(terminating)


def _plan_suspend(status: batch_pb2.JobStatus, suspended: bool, now: datetime, plan: Plan) -> bool:
    """Suspended condition and Events; True when the Job is suspended."""
    if suspended:
        if _set_condition(status, "Suspended", "True", "JobSuspended", "Job suspended", now):
            plan.events.append((NORMAL, "Suspended", "Job suspended"))
        status.ClearField("start_time")  # the deadline starts again on resume
        return True
    if is_true(status, "Suspended"):
        _set_condition(status, "Suspended", "False", "JobResumed", "Job resumed", now)
        plan.events.append((NORMAL, "Resumed", "Job resumed"))
        status.start_time.CopyFrom(_ts(now))
    return False


def _finishing(job: batch_pb2.Job, status: batch_pb2.JobStatus, active: list[core_pb2.Pod],
               now: datetime, plan: Plan) -> tuple[str, tuple[str, str]] | None:
    """("Complete"|"Failed", (reason, message)) once the Job's outcome is decided."""
    for type_, kind in (("SuccessCriteriaMet", "Complete"), ("FailureTarget", "Failed")):
        cond = condition(status, type_)
        if cond is not None and cond.status == "True":
            return kind, (cond.reason, cond.message)
    spec = job.spec
    if spec.completion_mode == "Indexed":
        complete = len(parse_indexes(status.completed_indexes)) >= spec.completions
    elif spec.HasField("completions"):
        complete = status.succeeded >= spec.completions
    else:
        complete = status.succeeded > 0 and not active
    if complete:
        return "Complete", COMPLETIONS_REACHED
    backoff_limit = spec.backoff_limit if spec.HasField("backoff_limit") else 6
    failures = status.failed
    if spec.template.spec.restart_policy == "OnFailure":
        failures += sum(restart_count(p) for p in active)
    if failures > backoff_limit:
        return "Failed", BACKOFF_EXCEEDED
    if spec.HasField("active_deadline_seconds") and status.HasField("start_time"):
        started = status.start_time.ToDatetime().replace(tzinfo=now.tzinfo)
        left = spec.active_deadline_seconds - (now - started).total_seconds()
        if left <= 0:
            return "Failed", DEADLINE_EXCEEDED
        plan.requeue(left)
    return None


def _backoff_remaining(failed_pods: list[core_pb2.Pod], failures: int, now: datetime,
                       base_s: float) -> float:
    if failures == 0 or base_s <= 0:
        return 0.0
    finished = [cs.state.terminated.finished_at.ToDatetime()
                for p in failed_pods for cs in p.status.container_statuses
                if cs.state.terminated.HasField("finished_at")]
    if not finished:
        return 0.0
    last = max(finished).replace(tzinfo=now.tzinfo)
    delay = min(base_s * 2 ** (failures - 1), MAX_BACKOFF_S)
    return max(0.0, (last + timedelta(seconds=delay) - now).total_seconds())


def _plan_creates(job: batch_pb2.Job, status: batch_pb2.JobStatus, active: list[core_pb2.Pod],
                  occupying: list[core_pb2.Pod], plan: Plan) -> None:
    spec = job.spec
    parallelism = spec.parallelism if spec.HasField("parallelism") else 1
    if spec.completion_mode == "Indexed":
        done = parse_indexes(status.completed_indexes)
        running = {index_of(p) for p in active}
        free = [i for i in range(spec.completions) if i not in done and i not in running]
        room = max(0, parallelism - len(occupying))
        plan.creates.extend(new_job_pod(job, i) for i in free[:room])
        return
    if spec.HasField("completions"):
        wanted = min(parallelism, spec.completions - status.succeeded)
    else:
        wanted = 0 if status.succeeded > 0 else parallelism
    for _ in range(max(0, wanted - len(occupying))):
        plan.creates.append(new_job_pod(job, None))


def _finish_time(job: batch_pb2.Job) -> datetime | None:
    for type_ in ("Complete", "Failed"):
        cond = condition(job.status, type_)
        if cond is not None and cond.status == "True" and cond.HasField("last_transition_time"):
            return cond.last_transition_time.ToDatetime()
    return None


def _plan_ttl(job: batch_pb2.Job, now: datetime, plan: JobPlan) -> None:
    if not job.spec.HasField("ttl_seconds_after_finished"):
        return
    finished = _finish_time(job)
    if finished is None:
        return
    left = job.spec.ttl_seconds_after_finished - (now - finished.replace(tzinfo=now.tzinfo)).total_seconds()
    if left <= 0:
        plan.delete_job = True
    else:
        plan.requeue(left)


def _plan_ttl_after(job: batch_pb2.Job, now: datetime, plan: JobPlan) -> None:
    if job.spec.HasField("ttl_seconds_after_finished"):
        plan.requeue(max(float(job.spec.ttl_seconds_after_finished), 0.001))
