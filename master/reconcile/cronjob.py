"""The CronJob reconciler: a Job per scheduled time, within the concurrency policy.

`plan_cronjob(cj, jobs, now=...)` is a pure function of the CronJob, the Jobs
it controls and the wall-clock time (aware, UTC); it returns a `Plan`:
at most one Job to create, Jobs to delete (Replace, history limits), the new
status, Events, and when to look again (the next fire time). The controller
in master/controllers/cronjob.py applies it; it adds the created Job to
status.active (the reference needs the Job's uid).

Follows Kubernetes' CronJob controller (v2): the run considered is the most
recent fire time after max(lastScheduleTime or creationTimestamp,
now - startingDeadlineSeconds); missed earlier runs are not caught up. Job
names are NAME-<scheduled time in minutes since the epoch>, so a run is
created at most once even when a status write is lost: the name already
exists. More than 100 missed runs gives a TooManyMissedTimes warning.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from master.reconcile import cron
from master.reconcile.job import condition, is_finished
from master.reconcile.workloadpods import NORMAL, WARNING, Plan, copy_message, owner_reference
from protos.batch.v1 import batch_pb2
from protos.core.v1 import core_pb2

SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
MAX_MISSED = 100


def job_name(cj: batch_pb2.CronJob, scheduled: datetime) -> str:
    return f"{cj.metadata.name}-{int(scheduled.timestamp()) // 60}"


def job_reference(job: batch_pb2.Job) -> core_pb2.ObjectReference:
    return core_pb2.ObjectReference(kind="Job", namespace=job.metadata.namespace,
                                    name=job.metadata.name, uid=job.metadata.uid,
                                    api_version="batch/v1",
                                    resource_version=job.metadata.resource_version)


def new_job(cj: batch_pb2.CronJob, scheduled: datetime, tz: object) -> batch_pb2.Job:
    template = cj.spec.job_template
    job = batch_pb2.Job(api_version="batch/v1", kind="Job")
    job.metadata.name = job_name(cj, scheduled)
    job.metadata.namespace = cj.metadata.namespace
    job.metadata.labels.update(template.metadata.labels)
    job.metadata.annotations.update(template.metadata.annotations)
    local = scheduled.astimezone(tz)  # type: ignore[arg-type]
    job.metadata.annotations[SCHEDULED_TIMESTAMP_ANNOTATION] = local.isoformat()
    job.metadata.owner_references.append(
        owner_reference(cj, api_version="batch/v1", kind="CronJob"))
    job.spec.CopyFrom(template.spec)
    return job


def _ts(moment: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(moment)
    return ts


def _dt(ts: Timestamp) -> datetime:
    return ts.ToDatetime().replace(tzinfo=UTC)


def _finish_type(job: batch_pb2.Job) -> str:
    for type_ in ("Complete", "Failed"):
        cond = condition(job.status, type_)
        if cond is not None and cond.status == "True":
            return type_
    return ""


def plan_cronjob(cj: batch_pb2.CronJob, jobs: list[batch_pb2.Job], *, now: datetime) -> Plan:
    plan = Plan()
    status = copy_message(cj.status)
    plan.status = status
    by_name = {j.metadata.name: j for j in jobs}
    _track_active(cj, status, by_name, plan)
    if cj.metadata.HasField("deletion_timestamp"):
        return plan
    _plan_history(cj, jobs, plan)
    try:
        schedule = cron.parse(cj.spec.schedule)
    except cron.CronError as exc:
        plan.events.append((WARNING, "UnparseableSchedule", f"unparseable schedule: {cj.spec.schedule!r} : {exc}"))
        return plan
    try:
        tz = cron.zone(cj.spec.time_zone if cj.spec.HasField("time_zone") else None)
    except cron.CronError as exc:
        plan.events.append((WARNING, "UnknownTimeZone", str(exc)))
        return plan
    if cj.spec.HasField("suspend") and cj.spec.suspend:
        return plan
    nxt = cron.next_fire(schedule, now, tz)
    if nxt is not None:
        plan.requeue((nxt - now).total_seconds())
    earliest = (_dt(status.last_schedule_time) if status.HasField("last_schedule_time")
                else _dt(cj.metadata.creation_timestamp))
    if cj.spec.HasField("starting_deadline_seconds"):
        earliest = max(earliest, now - timedelta(seconds=cj.spec.starting_deadline_seconds))
    scheduled = cron.previous_fire(schedule, now, tz)
    if scheduled is None or scheduled <= earliest:
        return plan
    missed = cron.count_fires(schedule, earliest, now, tz, limit=MAX_MISSED + 1)
    if missed > MAX_MISSED:
        plan.events.append((WARNING, "TooManyMissedTimes",
                            f"too many missed start times: > {MAX_MISSED}. Set or decrease "
                            ".spec.startingDeadlineSeconds or check clock skew"))
    name = job_name(cj, scheduled)
    if name in by_name:  # created already; the status write was lost or is behind
        status.last_schedule_time.CopyFrom(_ts(scheduled))
        return plan
    policy = cj.spec.concurrency_policy or "Allow"
    if policy == "Forbid" and status.active:
        plan.events.append((NORMAL, "JobAlreadyActive", "Not starting job because prior execution "
                                                        "is running and concurrency policy is Forbid"))
        if nxt is None or (nxt - now).total_seconds() > 10:
            plan.requeue(10.0)  # look again when the running Job may have finished
        return plan
    if policy == "Replace":
        for ref in list(status.active):
            plan.deletes.append(ref.name)
        del status.active[:]
    plan.creates.append(new_job(cj, scheduled, tz))
    status.last_schedule_time.CopyFrom(_ts(scheduled))
    return plan


def _track_active(cj: batch_pb2.CronJob, status: batch_pb2.CronJobStatus,
                  by_name: dict[str, batch_pb2.Job], plan: Plan) -> None:
    """Rebuild status.active; SawCompletedJob for Jobs that finished; lastSuccessfulTime."""
    was_active = {ref.name for ref in status.active}
    del status.active[:]
    for name in sorted(by_name):
        job = by_name[name]
        finished = _finish_type(job)
        if not finished:
            if not job.metadata.HasField("deletion_timestamp"):
                status.active.append(job_reference(job))
            continue
        if name in was_active:
            plan.events.append((NORMAL, "SawCompletedJob",
                                f"Saw completed job: {name}, condition: {finished}"))
        if finished == "Complete" and job.status.HasField("completion_time"):
            done = job.status.completion_time
            if not status.HasField("last_successful_time") or _dt(done) > _dt(status.last_successful_time):
                status.last_successful_time.CopyFrom(done)


def _plan_history(cj: batch_pb2.CronJob, jobs: list[batch_pb2.Job], plan: Plan) -> None:
    spec = cj.spec
    limits = {"Complete": spec.successful_jobs_history_limit if spec.HasField("successful_jobs_history_limit") else 3,
              "Failed": spec.failed_jobs_history_limit if spec.HasField("failed_jobs_history_limit") else 1}
    for type_, limit in limits.items():
        finished = [j for j in jobs if _finish_type(j) == type_
                    and not j.metadata.HasField("deletion_timestamp")]
        finished.sort(key=_start_key)
        for job in finished[:max(0, len(finished) - limit)]:
            plan.deletes.append(job.metadata.name)


def _start_key(job: batch_pb2.Job) -> tuple[float, str]:
    ts = job.status.start_time if job.status.HasField("start_time") else job.metadata.creation_timestamp
    return (ts.seconds + ts.nanos / 1e9, job.metadata.name)


__all__ = ["is_finished", "job_name", "new_job", "plan_cronjob", "SCHEDULED_TIMESTAMP_ANNOTATION"]
