"""The Job reconciler (master/reconcile/job.py): table tests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from master.reconcile.job import (
    INDEX_ENV,
    INDEX_KEY,
    format_indexes,
    parse_indexes,
    plan_job,
)
from protos.batch.v1 import batch_pb2
from protos.core.v1 import core_pb2
from tests.unit.workload_builders import NOW, job, owned_pod, ts


def pod(j: batch_pb2.Job, name: str, phase: str = "Running", **kw: Any) -> core_pb2.Pod:
    return owned_pod(j, name, kind="Job", phase=phase, **kw)


def conds(plan: Any) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in plan.status.conditions}


def started(j: batch_pb2.Job, seconds_ago: float = 60) -> batch_pb2.Job:
    j.status.start_time.CopyFrom(ts(NOW - timedelta(seconds=seconds_ago)))
    return j


@pytest.mark.parametrize(("case", "j", "phases", "creates"), [
    ("starts parallelism pods", job(completions=5, parallelism=2), [], 2),
    ("keeps parallelism", job(completions=5, parallelism=2), ["Running"], 1),
    ("not more than remaining", job(completions=5, parallelism=3), ["Succeeded"] * 3, 2),
    ("running pods count", job(completions=5, parallelism=3), ["Succeeded"] * 3 + ["Running"] * 2, 0),
    ("a failed pod is replaced", job(completions=2, parallelism=2), ["Failed", "Running"], 1),
    ("no completions: parallel pods", job(completions=None, parallelism=3), [], 3),
    ("no completions: one success stops new pods", job(completions=None, parallelism=3),
     ["Succeeded", "Running"], 0),
])
def test_creates(case: str, j: batch_pb2.Job, phases: list[str], creates: int) -> None:
    pods = [pod(j, f"p{i}", phase) for i, phase in enumerate(phases)]
    plan = plan_job(started(j), pods, now=NOW, backoff_base_s=0)
    assert len(plan.creates) == creates, case


def test_created_pod_shape() -> None:
    j = job()
    (p,) = plan_job(j, [], now=NOW).creates
    assert p.metadata.generate_name == "pi-"
    for key in ("job-name", "batch.kubernetes.io/job-name"):
        assert p.metadata.labels[key] == "pi"
    for key in ("controller-uid", "batch.kubernetes.io/controller-uid"):
        assert p.metadata.labels[key] == "job-uid"
    ref = p.metadata.owner_references[0]
    assert (ref.api_version, ref.kind, ref.controller, ref.block_owner_deletion) == ("batch/v1", "Job", True, True)


def test_start_time_and_counts() -> None:
    j = job(completions=3, parallelism=2)
    pods = [pod(j, "a", "Succeeded"), pod(j, "b"), pod(j, "c", ready=False), pod(j, "d", "Failed")]
    plan = plan_job(j, pods, now=NOW, backoff_base_s=0)
    s = plan.status
    assert s.start_time.ToDatetime() == NOW.replace(tzinfo=None)
    assert (s.active, s.ready, s.succeeded, s.failed, s.terminating) == (2, 1, 1, 1, 0)


def test_counts_never_go_down() -> None:
    j = job(completions=5)
    j.status.succeeded, j.status.failed = 2, 1
    s = plan_job(started(j), [], now=NOW, backoff_base_s=0).status
    assert (s.succeeded, s.failed) == (2, 1)


def test_completion_in_two_steps() -> None:
    j = started(job(completions=2, parallelism=2))
    pods = [pod(j, "a", "Succeeded"), pod(j, "b", "Succeeded")]
    plan = plan_job(j, pods, now=NOW)
    assert conds(plan) == {"SuccessCriteriaMet": ("True", "CompletionsReached"),
                           "Complete": ("True", "CompletionsReached")}
    assert plan.status.HasField("completion_time")
    assert ("Normal", "Completed", "Job completed") in plan.events


def test_success_waits_for_running_pods() -> None:
    j = started(job(completions=1, parallelism=2))
    pods = [pod(j, "a", "Succeeded"), pod(j, "b")]
    plan = plan_job(j, pods, now=NOW)
    assert conds(plan) == {"SuccessCriteriaMet": ("True", "CompletionsReached")}
    assert plan.deletes == ["b"] and not plan.status.HasField("completion_time")
    # b terminating: still not Complete
    j.status.CopyFrom(plan.status)
    plan = plan_job(j, [pods[0], pod(j, "b", terminating=True)], now=NOW)
    assert "Complete" not in conds(plan) and plan.status.terminating == 1
    plan = plan_job(j, [pods[0]], now=NOW)
    assert conds(plan)["Complete"] == ("True", "CompletionsReached")


@pytest.mark.parametrize(("restart_policy", "phases", "restarts", "failed"), [
    ("Never", ["Failed"] * 3, 0, False),
    ("Never", ["Failed"] * 4, 0, True),
    ("OnFailure", ["Running"], 3, False),
    ("OnFailure", ["Running"], 4, True),
    ("OnFailure", ["Failed", "Running"], 3, True),
])
def test_backoff_limit(restart_policy: str, phases: list[str], restarts: int, failed: bool) -> None:
    j = started(job(completions=5, parallelism=1, backoff_limit=3, restart_policy=restart_policy))
    pods = [pod(j, f"p{i}", phase) for i, phase in enumerate(phases)]
    for p in pods:
        if p.status.phase == "Running":
            p.status.container_statuses.add(name="c", restart_count=restarts)
    plan = plan_job(j, pods, now=NOW, backoff_base_s=0)
    if not failed:
        assert "FailureTarget" not in conds(plan)
        return
    assert conds(plan)["FailureTarget"] == ("True", "BackoffLimitExceeded")
    assert ("Warning", "BackoffLimitExceeded", "Job has reached the specified backoff limit") in plan.events
    running = [p.metadata.name for p in pods if p.status.phase == "Running"]
    assert plan.deletes == running and plan.creates == []
    assert ("Failed" in conds(plan)) == (not running)


def test_active_deadline() -> None:
    j = job(completions=5)
    j.spec.active_deadline_seconds = 100
    plan = plan_job(started(j, 40), [pod(j, "a")], now=NOW)
    assert plan.requeue_after_s == pytest.approx(60) and "FailureTarget" not in conds(plan)
    plan = plan_job(started(j, 100), [pod(j, "a")], now=NOW)
    assert conds(plan)["FailureTarget"] == ("True", "DeadlineExceeded")
    assert plan.deletes == ["a"]
    j.status.CopyFrom(plan.status)
    plan = plan_job(j, [], now=NOW)
    assert conds(plan)["Failed"] == ("True", "DeadlineExceeded")


def test_failure_backoff_delays_replacement() -> None:
    j = started(job(completions=1))
    failed = pod(j, "a", "Failed")
    failed.status.container_statuses.add(name="c").state.terminated.finished_at.CopyFrom(
        ts(NOW - timedelta(seconds=4)))
    plan = plan_job(j, [failed], now=NOW, backoff_base_s=10)
    assert plan.creates == [] and plan.requeue_after_s == pytest.approx(6)
    assert len(plan_job(j, [failed], now=NOW + timedelta(seconds=6), backoff_base_s=10).creates) == 1


def test_suspend_and_resume() -> None:
    j = started(job(completions=3, parallelism=2, suspend=True))
    plan = plan_job(j, [pod(j, "a"), pod(j, "b")], now=NOW)
    assert plan.deletes == ["a", "b"] and plan.creates == []
    assert conds(plan)["Suspended"] == ("True", "JobSuspended")
    assert ("Normal", "Suspended", "Job suspended") in plan.events
    assert not plan.status.HasField("start_time")
    j.status.CopyFrom(plan.status)
    j.spec.suspend = False
    plan = plan_job(j, [], now=NOW)
    assert conds(plan)["Suspended"] == ("False", "JobResumed") and len(plan.creates) == 2
    assert ("Normal", "Resumed", "Job resumed") in plan.events and plan.status.HasField("start_time")


def test_indexed() -> None:
    j = started(job(completions=4, parallelism=2, mode="Indexed"))
    plan = plan_job(j, [], now=NOW)
    assert [p.metadata.annotations[INDEX_KEY] for p in plan.creates] == ["0", "1"]
    p0 = plan.creates[0]
    assert p0.metadata.generate_name == "pi-0-" and p0.spec.hostname == "pi-0"
    assert [(e.name, e.value) for e in p0.spec.containers[0].env] == [(INDEX_ENV, "0")]
    done = pod(j, "x", "Succeeded")
    done.metadata.annotations[INDEX_KEY] = "1"
    running = pod(j, "y")
    running.metadata.annotations[INDEX_KEY] = "0"
    plan = plan_job(j, [done, running], now=NOW)
    assert [p.metadata.annotations[INDEX_KEY] for p in plan.creates] == ["2"]
    assert plan.status.completed_indexes == "1"


@pytest.mark.parametrize(("indexes", "text"), [
    (set(), ""), ({3}, "3"), ({0, 1, 2, 4}, "0-2,4"), ({1, 3, 5, 6, 7, 9}, "1,3,5-7,9")])
def test_index_intervals(indexes: set[int], text: str) -> None:
    assert format_indexes(indexes) == text and parse_indexes(text) == indexes


def test_ttl_after_finished() -> None:
    j = job()
    j.spec.ttl_seconds_after_finished = 30
    cond = j.status.conditions.add(type="Complete", status="True")
    cond.last_transition_time.CopyFrom(ts(NOW - timedelta(seconds=10)))
    plan = plan_job(j, [], now=NOW)
    assert not plan.delete_job and plan.requeue_after_s == pytest.approx(20) and plan.status is None
    assert plan_job(j, [], now=NOW + timedelta(seconds=20)).delete_job


@settings(max_examples=200, deadline=None)
@given(phases=st.lists(st.sampled_from(["Pending", "Running", "Succeeded", "Failed", "Terminating"]), max_size=12),
       completions=st.one_of(st.none(), st.integers(1, 8)), parallelism=st.integers(0, 5),
       backoff_limit=st.integers(0, 10))
def test_never_more_than_parallelism_or_remaining(phases: list[str], completions: int | None,
                                                  parallelism: int, backoff_limit: int) -> None:
    j = started(job(completions=completions, parallelism=parallelism, backoff_limit=backoff_limit))
    pods = [pod(j, f"p{i}", "Running" if phase == "Terminating" else phase, terminating=phase == "Terminating")
            for i, phase in enumerate(phases)]
    plan = plan_job(j, pods, now=NOW, backoff_base_s=0)
    active = sum(1 for p in phases if p in ("Pending", "Running")) - len(plan.deletes)
    assert active + len(plan.creates) <= parallelism or not plan.creates
    if completions is not None:
        succeeded = phases.count("Succeeded")
        assert len(plan.creates) + active <= max(0, completions - succeeded) or not plan.creates
    if plan.creates:
        assert not any(c.type in ("FailureTarget", "SuccessCriteriaMet") for c in plan.status.conditions)
