"""The Job controller: applies `plan_job` for every Job.

Watches Jobs and Pods (a pod change enqueues its controlling Job). Decisions
live in master/reconcile/job.py. Options (ControllerContext.options["job"]):
`backoff_base_s` (default 10, Kubernetes' pod failure backoff base; tests
use 0). A finished Job whose ttlSecondsAfterFinished has passed is deleted
here with Background propagation (Kubernetes' TTL-after-finished controller;
its pods go with the garbage collector).
"""

from __future__ import annotations

from typing import Any

from master.client.errors import NotFound
from master.controllers.workloadbase import OwnerController
from master.reconcile.job import JobPlan, plan_job
from master.reconcile.workloadpods import Plan
from protos.batch.v1 import batch_pb2
from protos.core.v1 import core_pb2


class JobController(OwnerController):
    name = "job"
    owner_cls = batch_pb2.Job
    child_cls = core_pb2.Pod
    owner_kind = "Job"

    def plan(self, owner: Any, children: list[Any]) -> Plan:
        base = float(self.ctx.option("job", "backoff_base_s", 10.0))
        return plan_job(owner, children, now=self.clock.wall(), backoff_base_s=base)

    async def after_apply(self, owner: Any, plan: Plan) -> None:
        if isinstance(plan, JobPlan) and plan.delete_job:
            try:
                await self.client.delete(batch_pb2.Job, owner.metadata.name,
                                         namespace=owner.metadata.namespace,
                                         propagation_policy="Background",
                                         precondition_uid=owner.metadata.uid)
            except NotFound:
                pass
