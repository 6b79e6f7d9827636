"""The CronJob controller: applies `plan_cronjob` for every CronJob.

Watches CronJobs and Jobs (a Job change enqueues its controlling CronJob).
Time comes from ControllerContext.clock: `wall()` for fire times, and the
work queue's `add_after` (on the same clock) to wake at the next one, so
tests drive it with FakeClock. Decisions live in master/reconcile/cronjob.py.
"""

from __future__ import annotations

from typing import Any

from master.controllers.workloadbase import OwnerController
from master.reconcile.cronjob import job_reference, plan_cronjob
from master.reconcile.workloadpods import Plan
from protos.batch.v1 import batch_pb2


class CronJobController(OwnerController):
    name = "cronjob"
    owner_cls = batch_pb2.CronJob
    child_cls = batch_pb2.Job
    owner_kind = "CronJob"

    def plan(self, owner: Any, children: list[Any]) -> Plan:
        return plan_cronjob(owner, children, now=self.clock.wall())

    def create_message(self, owner: Any, name: str) -> str:
        return f"Created job {name}"

    def delete_message(self, owner: Any, name: str) -> str:
        return f"Deleted job {name}"

    def add_created(self, status: Any, created: Any) -> None:
        status.active.append(job_reference(created))
