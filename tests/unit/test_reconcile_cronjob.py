"""The CronJob reconciler (master/reconcile/cronjob.py): table tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from master.reconcile.cronjob import (
    SCHEDULED_TIMESTAMP_ANNOTATION,
    job_name,
    job_reference,
    plan_cronjob,
)
from protos.batch.v1 import batch_pb2
from tests.unit.workload_builders import template, ts

CREATED = datetime(2024, 1, 1, 0, 0, 30, tzinfo=UTC)


def cronjob(schedule: str = "* * * * *", *, policy: str = "Allow", **spec: object) -> batch_pb2.CronJob:
    cj = batch_pb2.CronJob()
    cj.metadata.name, cj.metadata.namespace, cj.metadata.uid = "hello", "ns", "cj-uid"
    cj.metadata.creation_timestamp.CopyFrom(ts(CREATED))
    cj.spec.schedule = schedule
    cj.spec.concurrency_policy = policy
    cj.spec.job_template.metadata.labels["team"] = "a"
    cj.spec.job_template.spec.template.CopyFrom(template())
    for key, value in spec.items():
        setattr(cj.spec, key, value)
    return cj


def owned_job(cj: batch_pb2.CronJob, scheduled: datetime, finished: str = "",
              completed: datetime | None = None) -> batch_pb2.Job:
    j = batch_pb2.Job()
    j.metadata.name, j.metadata.namespace = job_name(cj, scheduled), "ns"
    j.metadata.uid = f"uid-{j.metadata.name}"
    j.metadata.owner_references.add(kind="CronJob", name=cj.metadata.name, uid=cj.metadata.uid, controller=True)
    j.status.start_time.CopyFrom(ts(scheduled))
    if finished:
        j.status.conditions.add(type=finished, status="True")
    if completed:
        j.status.completion_time.CopyFrom(ts(completed))
    return j


def at(minute: int, second: int = 0) -> datetime:
    return datetime(2024, 1, 1, 0, minute, second, tzinfo=UTC)


def test_not_yet_time() -> None:
    plan = plan_cronjob(cronjob(), [], now=at(0, 50))
    assert plan.creates == [] and plan.requeue_after_s == pytest.approx(10)


def test_fires_and_names_the_job() -> None:
    plan = plan_cronjob(cronjob(), [], now=at(1, 5))
    (j,) = plan.creates
    assert j.metadata.name == f"hello-{int(at(1).timestamp()) // 60}"
    assert j.metadata.labels["team"] == "a"
    assert j.metadata.annotations[SCHEDULED_TIMESTAMP_ANNOTATION] == "2024-01-01T00:01:00+00:00"
    ref = j.metadata.owner_references[0]
    assert (ref.kind, ref.controller, ref.block_owner_deletion) == ("CronJob", True, True)
    assert plan.status.last_schedule_time.ToDatetime() == at(1).replace(tzinfo=None)
    assert plan.requeue_after_s == pytest.approx(55)


def test_only_most_recent_missed_run() -> None:
    plan = plan_cronjob(cronjob(), [], now=at(7, 1))
    assert [j.metadata.name for j in plan.creates] == [job_name(cronjob(), at(7))]


def test_too_many_missed() -> None:
    cj = cronjob()
    plan = plan_cronjob(cj, [], now=CREATED + timedelta(hours=3))
    assert any(reason == "TooManyMissedTimes" for _, reason, _ in plan.events)
    assert len(plan.creates) == 1


def test_starting_deadline() -> None:
    cj = cronjob("0 * * * *", starting_deadline_seconds=60)
    assert plan_cronjob(cj, [], now=datetime(2024, 1, 1, 1, 0, 30, tzinfo=UTC)).creates
    assert plan_cronjob(cj, [], now=datetime(2024, 1, 1, 1, 2, tzinfo=UTC)).creates == []


def test_already_created_job_is_not_made_again() -> None:
    cj = cronjob()
    plan = plan_cronjob(cj, [owned_job(cj, at(1))], now=at(1, 30))
    assert plan.creates == [] and plan.status.last_schedule_time.ToDatetime() == at(1).replace(tzinfo=None)
    assert [r.name for r in plan.status.active] == [job_name(cj, at(1))]


@pytest.mark.parametrize(("policy", "creates", "deletes", "event"), [
    ("Allow", 1, 0, None), ("Forbid", 0, 0, "JobAlreadyActive"), ("Replace", 1, 1, None)])
def test_concurrency(policy: str, creates: int, deletes: int, event: str | None) -> None:
    cj = cronjob(policy=policy)
    running = owned_job(cj, at(1))
    cj.status.last_schedule_time.CopyFrom(ts(at(1)))
    cj.status.active.append(job_reference(running))
    plan = plan_cronjob(cj, [running], now=at(2, 1))
    assert len(plan.creates) == creates and len(plan.deletes) == deletes
    assert (event is None) or any(reason == event for _, reason, _ in plan.events)


def test_saw_completed_job_and_last_successful() -> None:
    cj = cronjob()
    done = owned_job(cj, at(1), "Complete", completed=at(1, 20))
    cj.status.active.append(job_reference(done))
    cj.status.last_schedule_time.CopyFrom(ts(at(1)))
    plan = plan_cronjob(cj, [done], now=at(1, 30))
    assert ("Normal", "SawCompletedJob", f"Saw completed job: {done.metadata.name}, condition: Complete") \
        in plan.events
    assert list(plan.status.active) == []
    assert plan.status.last_successful_time.ToDatetime() == at(1, 20).replace(tzinfo=None)


def test_history_limits() -> None:
    cj = cronjob(successful_jobs_history_limit=2, failed_jobs_history_limit=1)
    cj.status.last_schedule_time.CopyFrom(ts(at(9)))
    jobs = [owned_job(cj, at(m), "Complete") for m in (1, 2, 3, 4)] + \
           [owned_job(cj, at(m), "Failed") for m in (5, 6)] + [owned_job(cj, at(9))]
    plan = plan_cronjob(cj, jobs, now=at(9, 30))
    assert sorted(plan.deletes) == sorted(job_name(cj, at(m)) for m in (1, 2, 5))


def test_suspend() -> None:
    plan = plan_cronjob(cronjob(suspend=True), [], now=at(5))
    assert plan.creates == [] and plan.requeue_after_s is None


def test_time_zone() -> None:
    cj = cronjob("0 9 * * *", time_zone="Asia/Tokyo")  # 09:00 JST is 00:00 UTC
    plan = plan_cronjob(cj, [], now=datetime(2024, 1, 2, 0, 0, 10, tzinfo=UTC))
    (j,) = plan.creates
    assert j.metadata.annotations[SCHEDULED_TIMESTAMP_ANNOTATION] == "2024-01-02T09:00:00+09:00"


def test_bad_schedule_is_an_event() -> None:
    plan = plan_cronjob(cronjob("61 * * * *"), [], now=at(5))
    assert plan.creates == [] and plan.events[0][1] == "UnparseableSchedule"
